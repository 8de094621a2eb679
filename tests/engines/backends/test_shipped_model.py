"""The shipped single-shot model: the default of every command, it finds faces of every size,
and names an enrolled person while a stranger stays unknown (LFW photos, when present)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from app.paths import NO_FACE_IMAGE, SAMPLE_IMAGE, user_cache_dir
from engines.faces import box_iou
from engines.model.config import SHIPPED_CONFIG
from engines.model.weights import default_weights
from tests.engines.train.test_train import FACE_BOX
from tests.support.paths import SHARED_DATA

pytestmark = pytest.mark.skipif(not default_weights(SHIPPED_CONFIG).exists(), reason="no shipped model committed")

LFW = SHARED_DATA / "lfw" / "images"
ASTRONAUT_FACE = FACE_BOX[0]  # as the MTCNN teacher finds it


@pytest.fixture(scope="module")
def engine():
    from engines.backends.registry import create_engine

    return create_engine("uniface", "onnxruntime", cache_dir=user_cache_dir())


def test_shipped_model_is_the_default_and_its_threshold_was_calibrated_for_it(engine):
    from app.gallery.recognition_defaults import CALIBRATED_MODEL, default_threshold

    assert not engine.info.random_weights
    assert engine.info.model_id == CALIBRATED_MODEL["uniface"], (
        "the shipped weights changed: run `main.py eval lfw` and update app/gallery/recognition_defaults.py")
    assert 0.0 < default_threshold("uniface") < 1.0


def test_finds_the_astronaut_with_her_landmarks(engine):
    faces = engine.infer([cv2.imread(str(SAMPLE_IMAGE))])[0]
    assert len(faces) == 1 and faces.scores[0] > 0.8
    assert box_iou(faces.boxes[0], ASTRONAUT_FACE)[0, 0] > 0.5
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = faces.landmarks[0]
    x1, y1, x2, y2 = faces.boxes[0]
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in faces.landmarks[0])
    assert lx < nx < rx and mlx < mrx and max(ly, ry) < ny < min(mly, mry)  # eyes, nose, mouth in order
    assert np.linalg.norm(faces.embeddings[0]) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.xfail(strict=True, reason="known weakness of the shipped model (uniface-wide_aligned-bbd28bc47cdc): the "
                                       "cat's face scores 0.979 against its 0.75 threshold (previous models 0.970, "
                                       "0.931 and 0.901 against 0.9)")
def test_no_face_in_the_cat(engine):
    assert len(engine.infer([cv2.imread(str(NO_FACE_IMAGE))])[0]) == 0  # 451x300, placed at its own size


@pytest.mark.xfail(strict=True, reason="known weakness of the shipped model: enlarged 1.5x, the cat's face "
                                       "is taken for a human one; passes once retrained with non-human faces")
def test_no_face_in_the_enlarged_cat(engine):
    cat = cv2.imread(str(NO_FACE_IMAGE))
    assert len(engine.infer([cv2.resize(cat, None, fx=1.5, fy=1.5)])[0]) == 0


def test_a_face_filling_most_of_the_frame_and_many_small_faces_are_found(engine):
    image = cv2.imread(str(SAMPLE_IMAGE))
    x1, y1, x2, y2 = ASTRONAUT_FACE.astype(int)
    cx, cy = max(0, x1 - 30), max(0, y1 - 30)
    crop = image[cy:y2 + 30, cx:x2 + 30]
    scale = 440 / crop.shape[0]
    big = cv2.resize(crop, (round(crop.shape[1] * scale), 440))
    frame = np.full((480, 640, 3), 90, np.uint8)
    left = 320 - big.shape[1] // 2
    frame[20:460, left:left + big.shape[1]] = big
    expected = (ASTRONAUT_FACE - [cx, cy, cx, cy]) * scale + [left, 20, left, 20]
    assert expected[3] - expected[1] > 0.55 * 480  # the teacher's box of this face: over half the frame high
    faces = engine.infer([frame])[0]
    assert len(faces) >= 1 and box_iou(faces.boxes[0], expected)[0, 0] > 0.5, (faces.boxes, expected)

    tile = cv2.resize(crop, (80, round(crop.shape[0] * 80 / crop.shape[1])))
    grid = np.full((480, 640, 3), 90, np.uint8)
    placed = 0
    for gy in range(0, 480 - tile.shape[0], tile.shape[0] + 10):
        for gx in range(0, 640 - tile.shape[1], tile.shape[1] + 10):
            grid[gy:gy + tile.shape[0], gx:gx + tile.shape[1]] = tile
            placed += 1
    found = len(engine.infer([grid])[0])
    assert found >= 0.8 * placed, (found, placed)


def test_enrolled_person_is_named_and_a_stranger_is_unknown(engine, tmp_path):
    from app.gallery.enrollment import enrol_images
    from app.gallery.store import open_gallery

    blair, powell = sorted((LFW / "Tony_Blair").glob("*.jpg")), sorted((LFW / "Colin_Powell").glob("*.jpg"))
    if len(blair) < 10 or len(powell) < 3:
        pytest.skip("the LFW photos this test uses are not present")
    with open_gallery(tmp_path / "g", engine) as gallery:
        added = enrol_images(gallery, engine, "Tony Blair", blair[:3], face="largest")
        assert len(added.added) == 3, added.summary_lines()
        named = unknown = 0
        for query, expected in [(p, "Tony Blair") for p in blair[5:10]] + [(p, None) for p in powell[:3]]:
            image = cv2.imread(str(query))
            faces = engine.infer([image])[0]
            centre = int(np.argmin(np.linalg.norm((faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2 - 125, axis=1)))
            name = gallery.match(faces.embeddings[centre:centre + 1], engine.info.model_id).names[0]
            assert name in (expected, None), (query.name, name)  # never the wrong name
            named += name == expected and expected is not None
            unknown += expected is None and name is None
        # at the gallery threshold (0.1% false accepts) about half of an enrolled person's photos are
        # named on their own (LFW pairs: 54.2%; video votes over many frames); strangers never are
        assert named >= 1 and unknown == 3, (named, unknown)
