"""`bench --faces N`: frames that really hold N faces, found by an independent detector (YuNet)."""
from __future__ import annotations

import numpy as np
import pytest

from app.imageio import load_image
from app.offline.benchmark import make_face_frames
from app.paths import SAMPLE_FACE_BOX, SAMPLE_IMAGE
from engines.errors import EngineUnavailable
from engines.faces import box_iou


@pytest.fixture(scope="module")
def yunet():
    from engines.cascade import CascadeEngine

    try:
        engine = CascadeEngine(embed=False)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    yield engine
    engine.close()


def test_the_sample_face_box_is_where_yunet_finds_the_face(yunet):
    faces = yunet.infer([load_image(SAMPLE_IMAGE)])[0]
    assert len(faces) == 1
    assert box_iou(np.asarray([SAMPLE_FACE_BOX], np.float32), faces.boxes)[0, 0] > 0.9


@pytest.mark.parametrize("size,faces", [((640, 480), 1), ((640, 480), 5), ((640, 480), 20), ((320, 240), 5),
                                        ((480, 640), 7)])
def test_face_frames_hold_that_many_separate_faces(yunet, size, faces):
    frames = make_face_frames(load_image(SAMPLE_IMAGE), SAMPLE_FACE_BOX, faces, size, batch=2)
    assert len(frames) == 2 and all(f.shape == (size[1], size[0], 3) for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # not byte-identical frames
    found = yunet.infer(frames[:1])[0]
    assert len(found) == faces
    if faces > 1:  # each copy its own face: no two boxes overlap
        iou = box_iou(found.boxes, found.boxes)
        assert (iou - np.eye(faces)).max() < 0.05
    width = found.boxes[:, 2] - found.boxes[:, 0]
    assert width.min() > 15 and width.max() < 100  # never enlarged past the sample's ~90 px face


def test_a_face_frame_needs_a_face():
    with pytest.raises(ValueError, match="at least one face"):
        make_face_frames(np.zeros((10, 10, 3), np.uint8), (2, 2, 8, 8), 0, (64, 48), 1)
