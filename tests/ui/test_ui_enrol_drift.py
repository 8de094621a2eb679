"""Enrolment from a live track that drifts from a face onto background offers no crop
without a face: a real engine on a clip built here (an LFW face, then a dissolve to a
face-free picture that the detector still boxes, unsurely, and the tracker lets continue)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.live.recognition import Recognizer
from app.settings import Settings
from app.live.track_crops import TrackCrops
from app.types import Frame
from tests.support.ui_support import open_window, view_of, wait_threads_gone
from tests.support.paths import REPO

LFW = REPO.parent / "shared" / "data" / "lfw" / "images"
FACE_FRAMES, RAMP, FRAMES = 16, 10, 60  # the face, a dissolve over RAMP frames, then background


def _background_share(k: int) -> float:
    """How much of frame k is the face-free picture: 0, rising to 0.7, then 0.7."""
    return 0.0 if k < FACE_FRAMES else min(0.7, 0.07 * (k - FACE_FRAMES + 1))


FACE_GONE = FACE_FRAMES + RAMP - 1  # from here on 70% background: the face all but gone
pytestmark = pytest.mark.timeout(240)


def _write_drift_clip(path: Path) -> None:
    face = cv2.imread(str(sorted((LFW / "Tony_Blair").glob("*.jpg"))[0]))
    background = cv2.resize(cv2.imread(str(REPO / "docs/samples/cat_no_face.jpg")), (250, 250))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 320, "yuv420p"
        stream.options = {"crf": "18"}
        for k in range(FRAMES):
            canvas = np.zeros((320, 320, 3), np.uint8)
            dx, dy = k % 4, (k // 4) % 3
            a = _background_share(k)  # a dissolve, not a cut: the shot-change detector stays quiet
            canvas[35 + dy:285 + dy, 35 + dx:285 + dx] = cv2.addWeighted(face, 1 - a, background, a, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def uniface():
    from app.paths import user_cache_dir
    from engines.errors import EngineUnavailable
    from engines.backends.registry import create_engine

    if not LFW.is_dir():
        pytest.skip(f"LFW images not found at {LFW}")
    try:
        return create_engine("uniface", "onnxruntime", "cpu", cache_dir=user_cache_dir())
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def _frame_of(label: str) -> int:
    return int(re.search(r"frame (\d+)", label).group(1))


def test_the_track_drifts_onto_background_and_no_crop_of_it_is_kept(tmp_path, uniface):
    """Every frame, no drops: the track does continue onto the background (the test is not
    vacuous), and the crops kept for enrolment all come from the frames with the face."""
    clip = tmp_path / "drift.mp4"
    _write_drift_clip(clip)
    rec, crops = Recognizer(None, engine=uniface), TrackCrops()
    face_ids, drift_ids = set(), set()
    with av.open(str(clip)) as container:
        for index, vf in enumerate(container.decode(video=0)):
            image = vf.to_ndarray(format="bgr24")
            frame = Frame(image=image, index=index, media_time=vf.time, capture_time=time.monotonic(), source_id="c")
            out = rec(frame, uniface.infer([image])[0])
            crops.observe(frame, out)
            ids = {int(t) for t in out.track_ids if t >= 0}
            (face_ids if index < FACE_FRAMES else drift_ids if index >= FACE_GONE else set()).update(ids)
    assert face_ids and face_ids & drift_ids, (face_ids, drift_ids)  # one track runs onto the background
    for source, tid in crops.tracks():
        kept = crops.crops(source, tid)
        assert all(c.frame_index < FACE_GONE for c in kept), [c.frame_index for c in kept]
    tid = next(iter(face_ids & drift_ids))
    assert crops.crops("c", tid), "the face frames of the track give crops"


def test_enrol_dialog_from_a_drifting_live_track_offers_only_faces(qtbot, tmp_path, uniface):
    clip = tmp_path / "drift.mp4"
    _write_drift_clip(clip)
    window = open_window(qtbot, tmp_path, [str(clip)], engine=uniface,
                         settings=Settings(gallery_dir=str(tmp_path / "gallery")))
    view = view_of(window)
    qtbot.waitUntil(lambda: view.result is not None and view.result.frame.index >= FRAMES - 5, timeout=60000)
    tracks = window.session.crops.tracks()
    assert tracks
    offered = 0
    for source_id, track_id in tracks:
        dialog = window.enrolment.enrol_track(source_id, track_id)
        assert dialog is not None
        for cand in dialog.candidates:
            assert _frame_of(cand.label) < FACE_GONE, cand.label  # no crop of the background
            assert cand.reason  # why it passes or fails, shown on hover
        offered += len(dialog.candidates)
        dialog.close()
    assert offered >= 1
    window.close()
    assert wait_threads_gone() == []
