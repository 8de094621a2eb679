"""The earlier teachers: MTCNN (our torch port of the published nets), dlib embeddings, the mtcnn-dlib engine."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import EngineUnavailable
from tests.support.paths import REPO, SHARED_DATA

DATA = SHARED_DATA
ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"
CAT = REPO / "docs" / "samples" / "cat_no_face.jpg"

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mtcnn():
    from engines.teachers.mtcnn import MTCNN

    try:
        return MTCNN()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def test_weights_are_found_without_importing_their_packages():
    from engines.teachers.locate import dlib_weights, mtcnn_weights

    try:
        paths = {**mtcnn_weights(), **dlib_weights()}
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    assert all(p.is_file() for p in paths.values())
    assert "facenet_pytorch" not in sys.modules
    assert "face_recognition_models" not in sys.modules


def test_missing_package_is_a_clear_unavailable_error():
    from engines.teachers.locate import _require, package_dir

    assert package_dir("no_such_module_xyz", "no-such-dist-xyz") is None
    with pytest.raises(EngineUnavailable, match="pip install facenet-pytorch"):
        _require(None, ("pnet.pt",), "facenet-pytorch")


def test_nms_keeps_the_best_of_each_overlapping_group():
    from engines.teachers.mtcnn import batched_nms, nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 5, 5]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.95, 0.5, 0.8])
    # IoU(0,1) = 81/119 = 0.68; box 3 is inside box 0 (IoU 0.25, but 1.0 by the smaller area)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.7).tolist() == [1, 0, 3, 2]
    # by the smaller area box 3 overlaps box 1 by 16/25 = 0.64
    assert nms(boxes, scores, 0.6).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.6, mode="min").tolist() == [1, 2]
    # the same boxes in two images never suppress each other
    both = torch.cat([boxes, boxes])
    keep = batched_nms(both, torch.cat([scores, scores]), torch.tensor([0] * 4 + [1] * 4), 0.5)
    assert sorted(keep.tolist()) == [1, 2, 3, 5, 6, 7]


def test_pyramid_scales_follow_min_face_and_factor(mtcnn):
    scales = mtcnn.scales(250, 250)
    assert scales[0] == pytest.approx(12 / 20)
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709


def test_mtcnn_finds_the_astronaut_with_plausible_landmarks(mtcnn):
    faces = mtcnn.detect([cv2.imread(str(ASTRONAUT))])[0]
    assert len(faces) == 1
    assert faces.scores[0] > 0.99
    x1, y1, x2, y2 = faces.boxes[0]
    assert 60 < x2 - x1 < 200 and 60 < y2 - y1 < 200  # her face is ~90x115 px in a 512 px image
    le, re, nose, ml, mr = faces.landmarks[0]
    assert le[0] < re[0] and ml[0] < mr[0]  # image-left first
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes above nose above mouth
    assert np.all((faces.landmarks[0] >= [x1, y1]) & (faces.landmarks[0] <= [x2, y2]))
    assert faces.embeddings is None


def test_mtcnn_finds_no_face_on_the_cat(mtcnn):
    assert len(mtcnn.detect([cv2.imread(str(CAT))])[0]) == 0


def test_mtcnn_batch_of_mixed_sizes_equals_single_calls(mtcnn):
    astronaut, cat = cv2.imread(str(ASTRONAUT)), cv2.imread(str(CAT))
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    batch = mtcnn.detect([astronaut, cat, small])
    for image, got in zip([astronaut, cat, small], batch):
        alone = mtcnn.detect([image])[0]
        assert len(got) == len(alone)
        np.testing.assert_allclose(got.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(got.landmarks, alone.landmarks, atol=1e-3)
    # the half-size copy gives about half the box
    np.testing.assert_allclose(batch[2].boxes[0], batch[0].boxes[0] / 2, atol=4)


def test_mtcnn_rejects_non_bgr_input(mtcnn):
    with pytest.raises(ValueError, match="BGR uint8"):
        mtcnn.detect([np.zeros((32, 32), np.uint8)])


def test_mtcnn_dlib_engine_gives_unit_embeddings_and_honours_max_faces(mtcnn_dlib):
    assert mtcnn_dlib.info.engine == "mtcnn-dlib" and mtcnn_dlib.info.backend == "dlib"
    assert mtcnn_dlib.info.model_id == "cascade-mtcnn-dlib-v1"  # galleries embedded when it was "cascade" stay valid
    astronaut = cv2.imread(str(ASTRONAUT))
    two = np.concatenate([astronaut, astronaut], axis=1)  # the same face twice
    faces = mtcnn_dlib.infer([two])[0]
    assert len(faces) == 2
    assert faces.embeddings.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(faces.embeddings, axis=1), 1.0, atol=1e-5)
    assert float(faces.embeddings[0] @ faces.embeddings[1]) > 0.99  # identical pixels
    assert np.all(np.diff(faces.scores) <= 0)
    one = mtcnn_dlib.infer([two], max_faces=1)[0]
    assert len(one) == 1 and one.scores[0] == faces.scores[0]
    assert len(mtcnn_dlib.infer([cv2.imread(str(CAT))])[0]) == 0


def _lfw_pairs():
    pairs_file = DATA / "lfw" / "pairs.txt"
    if not pairs_file.is_file():
        pytest.skip("../shared/data/lfw is not present")
    from engines.eval.lfw import read_pairs

    return read_pairs(pairs_file)


def test_dlib_embeddings_put_the_same_person_closer(mtcnn_dlib):
    pairs = _lfw_pairs()
    same = [p for p in pairs if p.same][:3]
    diff = [p for p in pairs if not p.same][:3]
    root = DATA / "lfw" / "images"

    def similarity(pair):
        a, b = mtcnn_dlib.infer([cv2.imread(str(root / pair.a)), cv2.imread(str(root / pair.b))])
        return float(a.embeddings[0] @ b.embeddings[0])

    same_sims = [similarity(p) for p in same]
    diff_sims = [similarity(p) for p in diff]
    assert min(same_sims) > max(diff_sims), (same_sims, diff_sims)


def test_predictor_boxes_are_squares_a_little_below_the_mtcnn_box():
    from engines.teachers.dlib_embedder import predictor_boxes

    b = predictor_boxes(np.array([[100.0, 50.0, 175.0, 150.0]]))[0]  # 75 x 100, centre (137.5, 100)
    side = b[2] - b[0]
    assert side == pytest.approx(b[3] - b[1])
    assert 75 < side < 100  # between MTCNN's width and height, like dlib's own detector
    assert (b[0] + b[2]) / 2 == pytest.approx(137.5)
    assert 100 < (b[1] + b[3]) / 2 < 110


def test_dlib_embedding_comes_from_the_aligned_chip(mtcnn_dlib):
    from engines.teachers.dlib_embedder import predictor_boxes

    astronaut = cv2.imread(str(ASTRONAUT))
    faces = mtcnn_dlib.infer([astronaut])[0]
    chips = mtcnn_dlib.embedder.chips(astronaut, predictor_boxes(faces.boxes))
    assert chips[0].shape == (150, 150, 3) and chips[0].dtype == np.uint8
    np.testing.assert_allclose(mtcnn_dlib.embedder.embed_chips(chips), faces.embeddings, atol=1e-5)
    # a box shifted by a few pixels still lands on the same face (the shape predictor re-aligns)
    shifted = mtcnn_dlib.embedder.embed(astronaut, predictor_boxes(faces.boxes) + 4)
    assert float(shifted[0] @ faces.embeddings[0]) > 0.97
