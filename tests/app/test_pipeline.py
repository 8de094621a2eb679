"""The threaded pipeline with a fake engine: order, drops, batching, errors, states, clean stop."""
import threading
import time

import numpy as np
import pytest

from app.live.mailbox import Closed
from app.live.pipeline import Pipeline
from app.sources import FileSource, SourceState, SyntheticSource
from engines.faces import Faces
from tests.support.fakes import FakeEngine, flaky_source, make_video

pytestmark = pytest.mark.timeout(60)


def _pipeline_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("unisight-")]


@pytest.fixture(autouse=True)
def no_threads_left_behind():
    yield
    deadline = time.monotonic() + 2
    while _pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pipeline_threads() == []


def _collect(results, lock=threading.Lock()):
    def on_result(result):
        with lock:
            results.append(result)
    return on_result


def test_file_frames_all_arrive_in_order_with_a_slow_engine(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=40, fps=25, size=(64, 48))
    results, finished = [], threading.Event()
    engine = FakeEngine(faces_per_image=2, delay=0.005)
    p = Pipeline([FileSource(path)], engine, on_result=_collect(results), on_finished=finished.set, queue_size=2)
    p.start()
    assert p.wait(10)
    assert finished.is_set()
    assert [r.frame.index for r in results] == list(range(40))
    assert all(len(r.faces) == 2 for r in results)
    stats = p.stats()
    assert stats.dropped == 0
    assert stats.sources[str(path)].captured == 40 and stats.sources[str(path)].processed == 40
    assert stats.stages["output"].count == 40
    assert stats.latency_p50_ms is not None and stats.latency_p50_ms >= 5.0  # at least the engine's delay
    assert engine.threads == {"unisight-inference"}


def test_live_source_with_a_slow_engine_drops_oldest_and_counts(tmp_path):
    src = SyntheticSource(width=64, height=48, fps=200, frames=120, realtime=True)
    results = []
    engine = FakeEngine(delay=0.03)
    p = Pipeline([src], engine, on_result=_collect(results))
    p.start()
    assert p.wait(10)
    stats = p.stats()
    s = stats.sources["synthetic"]
    assert s.captured == 120
    assert s.dropped > 30  # the engine manages ~33 fps of 200
    assert s.processed + s.dropped == s.captured  # every frame either processed or counted as dropped
    assert len(results) == s.processed
    idx = [r.frame.index for r in results]
    assert idx == sorted(idx) and idx[-1] == 119  # newest first, and the last frame is never lost
    assert stats.latency_p50_ms < 300  # no backlog builds up: about one engine call (30 ms)


def test_stop_is_quick_and_leaves_no_thread():
    sources = [SyntheticSource(width=64, height=48, fps=60, realtime=True, source_id=f"cam{i}") for i in range(2)]
    p = Pipeline(sources, FakeEngine(delay=0.02))
    p.start()
    time.sleep(0.3)
    assert p.running and len(_pipeline_threads()) == 4
    newest = p.results.get(timeout=1)
    assert newest is not None
    t0 = time.monotonic()
    assert p.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert not p.running and _pipeline_threads() == []
    with pytest.raises(Closed):
        p.results.get(timeout=0.1)


def test_stop_while_blocked_on_a_full_lossless_queue(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=200, fps=25, size=(64, 48))
    p = Pipeline([FileSource(path)], FakeEngine(), queue_size=2)  # nobody reads p.results: all stages block
    p.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert p.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0


def test_one_engine_serves_several_sources_in_batches():
    sources = [SyntheticSource(width=64 + 16 * i, height=48, fps=100, frames=30, realtime=True,
                               source_id=f"cam{i}") for i in range(3)]
    engine = FakeEngine(delay=0.02)
    results = []
    p = Pipeline(sources, engine, on_result=_collect(results))
    p.start()
    assert p.wait(10)
    assert max(engine.calls) == 3  # the newest frame of each source in one infer call
    by_source = {r.frame.source_id for r in results}
    assert by_source == {"cam0", "cam1", "cam2"}
    for r in results:  # each result belongs to its own frame
        assert r.faces.boxes[0, 2] <= r.frame.image.shape[1]
        assert np.allclose(r.faces.boxes, FakeEngine.faces_for(r.frame.image.shape[1], 48, 1).boxes)


def test_analyzers_run_in_order_in_the_inference_thread(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=5, size=(64, 48))
    seen = []

    def first(frame, faces):
        seen.append(("first", frame.index, threading.current_thread().name))
        return faces.with_identities(["alice"] * len(faces), np.full(len(faces), 0.5))

    def second(frame, faces):
        seen.append(("second", frame.index, faces.names[0]))
        return faces[np.zeros(len(faces), bool)]  # drops every face

    results = []
    p = Pipeline([FileSource(path)], FakeEngine(), analyzers=[first, second], on_result=_collect(results))
    p.start()
    assert p.wait(10)
    assert seen[:2] == [("first", 0, "unisight-inference"), ("second", 0, "alice")]
    assert all(len(r.faces) == 0 for r in results) and len(results) == 5


def test_engine_error_is_reported_and_stops_the_pipeline():
    errors = []
    src = SyntheticSource(width=64, height=48, fps=100, realtime=True)
    p = Pipeline([src], FakeEngine(fail_after=3), on_error=errors.append)
    p.start()
    assert p.wait(5)  # stopped by itself
    assert len(errors) == 1 and errors[0].stage == "inference" and errors[0].fatal
    assert "fake engine failure" in errors[0].message
    assert p.stats().errors == 1


def test_output_callback_error_is_reported_not_swallowed(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=20, size=(64, 48))
    errors = []

    def on_result(result):
        if result.frame.index == 4:
            raise OSError(28, "No space left on device")

    p = Pipeline([FileSource(path)], FakeEngine(), on_result=on_result, on_error=errors.append)
    p.start()
    assert p.wait(5)
    assert [e.stage for e in errors] == ["output"] and isinstance(errors[0].error, OSError)


def test_truncated_file_is_a_reported_source_error(tmp_path):
    path = tmp_path / "whole.mp4"
    make_video(path, frames=60, size=(64, 48), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    errors, results = [], []
    p = Pipeline([FileSource(cut)], FakeEngine(), on_result=_collect(results), on_error=errors.append)
    p.start()
    assert p.wait(5)
    assert 0 < len(results) < 60
    assert len(errors) == 1 and errors[0].stage == "capture" and not errors[0].fatal


def test_reconnecting_source_keeps_the_pipeline_running():
    src = flaky_source(sessions=(10, 10, None), failed_connects=2, interval=0.005)
    states, results = [], []
    p = Pipeline([src], FakeEngine(), on_state=lambda e: states.append(e.state), on_result=_collect(results))
    p.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (len(results) > 40 and states.count(SourceState.LIVE) >= 3):
        time.sleep(0.01)
    assert p.stop(1.0)
    assert states[:6] == [SourceState.CONNECTING, SourceState.LIVE, SourceState.RECONNECTING, SourceState.LIVE,
                          SourceState.RECONNECTING, SourceState.LIVE]
    assert len(results) > 40 and results[-1].frame.index > 20
    assert p.errors == []


def test_a_live_source_offline_at_start_is_retried():
    src = flaky_source(sessions=(None,), refuse_first=3, interval=0.005)
    states, results, errors = [], [], []
    p = Pipeline([src], FakeEngine(), on_state=lambda e: states.append(e.state), on_result=_collect(results),
                 on_error=errors.append)
    p.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(results) < 5:
        time.sleep(0.01)
    assert p.stop(1.0)
    assert states[:3] == [SourceState.CONNECTING, SourceState.RECONNECTING, SourceState.LIVE]
    assert src.connect_calls == 4 and len(results) >= 5 and errors == []


def test_a_source_that_cannot_open_is_reported(tmp_path):
    errors, states = [], []
    missing = FileSource(tmp_path / "gone.mp4")
    ok = SyntheticSource(width=64, height=48, fps=100, frames=10, realtime=False, source_id="ok")
    results = []
    p = Pipeline([missing, ok], FakeEngine(), on_error=errors.append, on_state=lambda e: states.append(e),
                 on_result=_collect(results))
    p.start()
    assert p.wait(5)
    assert len(results) == 10  # the other source still ran
    assert errors[0].stage == "capture" and "video not found" in errors[0].message
    assert any(e.state == SourceState.FAILED and e.source_id == str(tmp_path / "gone.mp4") for e in states)


def test_stats_report_stage_rates():
    src = SyntheticSource(width=64, height=48, fps=100, realtime=True)
    p = Pipeline([src], FakeEngine(delay=0.0))
    p.start()
    got = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        if p.results.get(timeout=0.1) is not None:
            got += 1
    stats = p.stats()
    p.stop()
    assert 30 < stats.fps("capture") < 140  # 100 fps nominal; loose bounds for a shared machine
    assert 20 < stats.fps("inference") < 140 and 20 < stats.fps("output") < 140
    assert stats.running and stats.sources["synthetic"].state == "live"
    assert len(stats.overlay_lines()) == 2 and "fps" in stats.overlay_lines()[0]
    assert got > 20


def test_pipeline_validates_its_sources():
    with pytest.raises(ValueError):
        Pipeline([], FakeEngine())
    a = SyntheticSource(source_id="x")
    b = SyntheticSource(source_id="x")
    with pytest.raises(ValueError, match="unique"):
        Pipeline([a, b], FakeEngine())
    assert isinstance(Faces.empty(), Faces)


def test_rate_meter_counts_over_elapsed_time_so_bursts_and_stalls_read_right():
    from app.live.stats import RateMeter

    steady = RateMeter(window=2.0)
    for i in range(91):  # 30 events per second for 3 s
        steady.tick(now=i / 30)
    assert abs(steady.rate(now=3.0) - 30) < 1
    assert abs(steady.rate(now=0.5 + 90 / 30) - 30 * 1.5 / 2) < 1  # half a second with nothing: falls
    assert steady.rate(now=10.0) == 0.0  # stalled for longer than the window

    bursts = RateMeter(window=2.0)  # batches of two frames at once, 15 batches per second
    for i in range(30):
        bursts.tick(now=i / 15)
        bursts.tick(now=i / 15)
    assert abs(bursts.rate(now=2.0) - 30) < 2.5
    first_batch = RateMeter(window=2.0)
    first_batch.tick(now=5.0)
    first_batch.tick(now=5.0)
    assert first_batch.rate(now=5.0) == 0.0 and abs(first_batch.rate(now=5.1) - 20.0) < 1e-6  # no division by ~0


def _count_by_source(results, lock=threading.Lock()):
    with lock:
        counts = {}
        for r in results:
            counts[r.frame.source_id] = counts.get(r.frame.source_id, 0) + 1
        return counts


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_sources_join_and_leave_a_running_pipeline_without_stopping_the_others():
    first = SyntheticSource(width=64, height=48, fps=60, frames=None, realtime=True, source_id="cam0")
    second = SyntheticSource(width=80, height=48, fps=60, frames=None, realtime=True, source_id="cam1")
    results, errors = [], []
    p = Pipeline([first], FakeEngine(), on_result=_collect(results), on_error=errors.append)
    p.start()
    try:
        _wait_for(lambda: _count_by_source(results).get("cam0", 0) >= 5)
        capture_thread = next(t for t in threading.enumerate() if t.name == "unisight-capture-cam0")
        p.add_source(second)
        _wait_for(lambda: _count_by_source(results).get("cam1", 0) >= 5)
        # the first source ran on: same capture thread, frame indices never restarted
        assert capture_thread.is_alive()
        cam0 = [r.frame.index for r in results if r.frame.source_id == "cam0"]
        assert cam0 == sorted(cam0) and len(set(cam0)) == len(cam0)
        assert set(p.stats().sources) == {"cam0", "cam1"}
        with pytest.raises(ValueError, match="already"):
            p.add_source(SyntheticSource(width=64, height=48, fps=60, realtime=True, source_id="cam1"))

        assert p.remove_source("cam1") and not p.remove_source("cam1")
        _wait_for(lambda: not any(t.name == "unisight-capture-cam1" for t in threading.enumerate()))
        before = _count_by_source(results)
        _wait_for(lambda: _count_by_source(results)["cam0"] >= before["cam0"] + 5)
        assert _count_by_source(results)["cam1"] <= before["cam1"] + 1  # at most one was in flight
        assert set(p.stats().sources) == {"cam0"}
        assert errors == [] and p.running
    finally:
        p.stop()


def test_removing_the_last_source_ends_the_pipeline_and_it_takes_no_more():
    finished = threading.Event()
    p = Pipeline([SyntheticSource(width=64, height=48, fps=60, frames=None, realtime=True, source_id="cam0")],
                 FakeEngine(), on_result=lambda r: None, on_finished=finished.set)
    with pytest.raises(RuntimeError, match="running"):
        p.add_source(SyntheticSource(width=64, height=48, fps=60, realtime=True, source_id="early"))
    p.start()
    assert p.remove_source("cam0")
    assert finished.wait(5) and p.wait(5)
    with pytest.raises(RuntimeError, match="running"):
        p.add_source(SyntheticSource(width=64, height=48, fps=60, realtime=True, source_id="late"))
