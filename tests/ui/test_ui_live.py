"""The window's Qt-free parts: a steerable file, crops per track, undo for the gallery, the
live session's threshold and minimum face size, the tick-gap meter."""
import threading
import time

import numpy as np
import pytest

from app.gallery.store import Gallery, NewSample
from app.gallery.undo import restore, snapshot_identity
from app.live.entries import display_name, source_kind
from app.live.session import LiveSession, _merge_small
from app.sources.playback import PlayableFile
from app.sources import SourceState
from app.live.track_crops import TrackCrops
from app.types import Frame
from engines.faces import Faces
from tests.support.fakes import FakeEngine, make_video
from tests.support.ui_support import SYNTHETIC, unit, wait_threads_gone

pytestmark = pytest.mark.timeout(60)


class _Reader:
    """Reads a source on a thread, as the pipeline's capture thread does."""

    def __init__(self, source):
        self.source, self.frames = source, []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while (f := self.source.read()) is not None:
            self.frames.append(f)

    def wait_for(self, predicate, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.005)
        return predicate()

    def stop(self):
        self.source.interrupt()
        self.thread.join(2)
        assert not self.thread.is_alive()


def test_playable_file_pauses_steps_seeks_and_holds_the_end(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=45, fps=30, size=(64, 48), gop=10)
    src = PlayableFile(path)
    src.open()
    r = _Reader(src)
    assert r.wait_for(lambda: len(r.frames) >= 5)
    src.pause()
    time.sleep(0.1)
    n = len(r.frames)
    time.sleep(0.2)
    assert len(r.frames) == n and src.paused
    src.step(2)
    assert r.wait_for(lambda: len(r.frames) == n + 2)
    src.seek(1.0)
    assert r.wait_for(lambda: len(r.frames) == n + 3)
    assert r.frames[-1].media_time == pytest.approx(1.0, abs=1e-6) and src.position == pytest.approx(1.0)
    src.step_back()
    assert r.wait_for(lambda: len(r.frames) == n + 4)
    assert r.frames[-1].media_time == pytest.approx(1.0 - 1 / 30, abs=1e-6)
    indices = [f.index for f in r.frames]
    assert indices == sorted(set(indices))  # indices keep rising across seeks
    src.resume()
    assert r.wait_for(lambda: src.state == SourceState.ENDED and src.held)
    last = len(r.frames)
    assert r.frames[-1].media_time == pytest.approx(44 / 30, abs=1e-6)
    time.sleep(0.15)
    assert len(r.frames) == last and r.thread.is_alive()  # holds the last frame, still open
    src.resume()  # play at the end: from the start
    assert r.wait_for(lambda: len(r.frames) > last and src.state == SourceState.LIVE)
    assert r.frames[last].media_time == pytest.approx(0.0, abs=1e-6)
    r.stop()
    src.close()


def test_playable_file_loops_and_starts_where_asked(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=12, fps=30, size=(64, 48))
    src = PlayableFile(path, loop=True, start_at=0.3, first_index=100)
    src.open()
    times = [round(src.read().media_time * 30) for _ in range(6)]
    assert times == [9, 10, 11, 0, 1, 2]
    src.close()


def _faces(boxes, track_ids, names=None, quality=None):
    n = len(boxes)
    rel = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.58], [0.35, 0.78], [0.65, 0.78]], np.float32)
    boxes = np.asarray(boxes, np.float32)
    side = boxes[:, 2:3] - boxes[:, 0:1]
    lms = boxes[:, None, :2] + rel[None] * side[:, None]
    f = Faces(boxes=boxes, scores=np.full(n, 0.99), landmarks=lms, track_ids=np.asarray(track_ids),
              names=names or [None] * n)
    f.extra["quality"] = np.asarray(quality if quality is not None else np.full(n, 0.5), np.float32)
    return f


def test_track_crops_keep_the_best_spread_out_faces_with_verdicts():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    crops = TrackCrops(per_track=3, min_gap=5)
    for i in range(30):
        q = 0.2 + 0.02 * i
        crops.observe(Frame(image, i, i / 30, 0.0, "cam"), _faces([[100, 40, 200, 140], [5, 5, 25, 25]], [7, -1],
                                                                  quality=[q, 0.9]))
    kept = crops.crops("cam", 7)
    assert len(kept) == 3
    assert [c.frame_index for c in kept] == [29, 24, 19]  # the best of each stretch of 5 frames, best first
    assert all(c.usable and c.image.shape[0] >= 112 for c in kept)
    assert crops.crops("cam", -1) == []  # untracked faces are not kept
    small = TrackCrops()
    small.observe(Frame(image, 0, 0.0, 0.0, "cam"), _faces([[10, 10, 40, 40]], [3]))
    [c] = small.crops("cam", 3)
    assert not c.usable and "too small" in c.problems[0]


def test_merge_small_puts_recognised_faces_back_in_place():
    faces = _faces([[0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 12, 12]], [-1, -1, -1])
    small = faces.heights < 50
    named = faces[~small]
    named = Faces(boxes=named.boxes, scores=named.scores, landmarks=named.landmarks, track_ids=[4], names=["Al"],
                  similarities=[0.97], extra={"quality": np.array([0.8], np.float32), "doubtful": np.array([True])})
    out = _merge_small(faces, small, named)
    assert list(out.extra["doubtful"]) == [False, True, False]
    assert out.names == [None, "Al", None] and list(out.track_ids) == [-1, 4, -1]
    assert np.isnan(out.similarities[0]) and out.similarities[1] == pytest.approx(0.97)
    assert list(out.extra["small"]) == [True, False, True] and out.extra["quality"][1] == pytest.approx(0.8)


def test_deleted_identity_comes_back_with_every_embedding(tmp_path):
    with Gallery(tmp_path / "g") as g:
        ids = g.add_samples("Ann", [NewSample(embedding=unit(np.eye(128)[k]), quality=0.5 + k / 10, source=f"s{k}")
                                    for k in range(2)], "model-a")
        g.set_embeddings("model-b", {ids[0]: unit(np.eye(128)[9])})
        snap = snapshot_identity(g, "Ann")
        assert g.remove("Ann") == 2 and "Ann" not in g
        assert restore(g, snap) == 2
        samples = g.samples("Ann")
        assert [s.source for s in samples] == ["s0", "s1"] and samples[0].model_ids == ["model-a", "model-b"]
        assert g.match(unit(np.eye(128)[1])[None], "model-a").names == ["Ann"]
        assert g.match(unit(np.eye(128)[9])[None], "model-b", allow_missing=True).names == ["Ann"]


def test_session_threshold_and_sources_without_qt(tmp_path):
    with Gallery(tmp_path / "g") as g:
        g.add_samples("Bea", [NewSample(embedding=unit(0.8 * np.eye(128)[0] + 0.6 * np.eye(128)[1]))], "fake-1")
    session = LiveSession(FakeEngine(), Gallery(tmp_path / "g"), threshold=0.7)
    try:
        sid = session.add_source(SYNTHETIC)
        assert sid == "synthetic" and source_kind("rtsp://u:p@h/x") == "stream"
        assert display_name("rtsp://u:secret@h/x") == "rtsp://u:***@h/x"

        def newest_names(timeout=3.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                time.sleep(0.05)
                latest = session.take_latest()
                if sid in latest:
                    return latest[sid].faces.names
            raise AssertionError("no frame")

        deadline = time.monotonic() + 5
        while newest_names() != ["Bea"] and time.monotonic() < deadline:
            pass
        assert newest_names() == ["Bea"]
        session.set_threshold(0.9)
        time.sleep(0.1)
        session.take_latest()
        assert newest_names() == [None]  # decided again at once, not out-voted slowly
        session.set_min_face(500)
        time.sleep(0.1)
        session.take_latest()
        assert newest_names() == [None]
        with pytest.raises(Exception, match="not found"):
            session.add_source(str(tmp_path / "missing.mp4"))
    finally:
        assert session.close()
    assert wait_threads_gone() == []


def test_adding_and_removing_a_source_leaves_the_others_running(tmp_path):
    session = LiveSession(FakeEngine(), None)
    try:
        first = session.add_source(SYNTHETIC)
        assert session.wait_idle(5)
        deadline = time.monotonic() + 5
        while session.entry(first).source is None or session.entry(first).source.frames_read < 5:
            assert time.monotonic() < deadline, "the first source never started"
            time.sleep(0.01)
        source = session.entry(first).source
        second = session.add_source(SYNTHETIC)
        assert second == "synthetic (2)" and session.wait_idle(5)
        deadline = time.monotonic() + 5
        while second not in session.take_latest():
            assert time.monotonic() < deadline, "the added source never delivered"
            time.sleep(0.01)
        # the first source was not restarted: same object, still reading, counting on
        assert session.entry(first).source is source and source.state == SourceState.LIVE
        read = source.frames_read
        session.remove_source(second)
        assert session.wait_idle(5)
        time.sleep(0.3)
        assert session.entry(first).source is source and source.frames_read > read
        assert session.entry(second) is None
    finally:
        assert session.close()
    assert wait_threads_gone() == []


def test_tick_gap_meter():
    from ui.frame_bridge import TickGapMeter

    m = TickGapMeter()
    for t in (0.0, 0.015, 0.030, 0.090, 0.105):
        m.tick(t)
    assert m.max_gap_ms == pytest.approx(60.0) and m.ticks == 5
    m.reset()
    m.tick(1.0)
    assert m.max_gap_ms == 0.0


def test_process_engine_runs_an_engine_in_a_child_and_reports_its_errors(cache_dir):
    from engines.wrappers.child_process import ProcessEngine
    from engines.errors import EngineUnavailable
    from engines.backends.registry import create_engine

    with pytest.raises(EngineUnavailable, match="unknown backend"):
        ProcessEngine("uniface", "no-such-backend", factory=create_engine)  # refused in the child: reported, child gone
    kw = dict(config="tiny", cache_dir=cache_dir)
    remote = ProcessEngine("uniface", "onnxruntime", "cpu", factory=create_engine, **kw)
    local = create_engine("uniface", "onnxruntime", device="cpu", **kw)
    try:
        assert remote.info == local.info and remote._proc.pid != threading.get_native_id()
        images = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(2)]
        got, want = remote.infer(images), local.infer(images)
        assert len(got) == 2
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-4)
            np.testing.assert_allclose(g.embeddings, w.embeddings, atol=1e-4)
    finally:
        remote.close()
        local.close()
    assert remote._proc is None
    with pytest.raises(RuntimeError, match="closed"):
        remote.infer(images)


def test_process_engine_restarts_a_crashed_child_and_gives_up_on_a_crash_loop(cache_dir, monkeypatch):
    import os
    import signal

    from engines.wrappers import child_process as engine_process
    from engines.wrappers.child_process import ProcessEngine
    from engines.backends.registry import create_engine

    monkeypatch.setattr(engine_process, "MAX_RESTARTS", 1)
    remote = ProcessEngine("uniface", "onnxruntime", "cpu", factory=create_engine, config="tiny", cache_dir=cache_dir)
    images = [np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)]
    try:
        want = remote.infer(images)[0]
        first = remote._proc.pid
        os.kill(first, signal.SIGKILL)  # a native crash, as far as the parent can tell
        remote._proc.join(5)
        got = remote.infer(images)[0]  # served by a new child, the call not lost
        assert remote.restarts == 1 and remote._proc.pid != first
        np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)
        os.kill(remote._proc.pid, signal.SIGKILL)
        remote._proc.join(5)
        with pytest.raises(RuntimeError, match="given up"):
            remote.infer(images)
    finally:
        remote.close()
