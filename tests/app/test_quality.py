"""Face quality: pose from landmarks, sharpness normalisation, enrolment reasons, vote weight."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from app.gallery.quality import FaceQuality, QualityThresholds, assess, enrolment_problems, pose_from_landmarks, sharpness

FRONTAL = np.array([[40, 50], [80, 50], [60, 71], [45, 92], [75, 92]], np.float32)  # iod 40, pitch 0.5


def _rotate(points, degrees, centre=(60, 70)):
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ r.T + centre


def _textured_face(size: int, seed: int = 0) -> np.ndarray:
    """A detailed grey pattern (stand-in for skin, eyes, hair detail) of `size` px."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (16, 16), dtype=np.uint8)  # about as detailed as a real face
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def test_pose_of_a_frontal_face_and_rotation_invariance():
    yaw, roll, pitch, iod = pose_from_landmarks(FRONTAL)
    assert (yaw, roll, pitch, iod) == pytest.approx((0.0, 0.0, 0.5, 40.0), abs=1e-6)
    yaw, roll, pitch, iod = pose_from_landmarks(_rotate(FRONTAL, 20))
    assert roll == pytest.approx(20.0, abs=1e-4)
    assert yaw == pytest.approx(0.0, abs=1e-6) and pitch == pytest.approx(0.5) and iod == pytest.approx(40.0)


def test_turned_and_tilted_faces_are_measured_and_refused_with_reasons():
    turned = FRONTAL.copy()
    turned[2, 0] += 20  # nose half an inter-ocular distance to the right of the midline
    yaw, *_ = pose_from_landmarks(turned)
    assert yaw == pytest.approx(0.5)
    q = FaceQuality(height=120, interocular=40, sharpness=2.0, yaw=yaw, roll=0, pitch=0.5, score=0.99)
    problems = enrolment_problems(q)
    assert len(problems) == 1 and "turned to the right" in problems[0]
    q_left = FaceQuality(height=120, interocular=40, sharpness=2.0, yaw=-0.4, roll=0, pitch=0.5, score=0.99)
    assert "turned to the left" in enrolment_problems(q_left)[0]
    tilted = FaceQuality(height=120, interocular=40, sharpness=2.0, yaw=0, roll=-40, pitch=0.5, score=0.99)
    assert "tilted -40 degrees" in enrolment_problems(tilted)[0]
    looking_up = FaceQuality(height=120, interocular=40, sharpness=2.0, yaw=0, roll=0, pitch=0.1, score=0.99)
    assert "tilted up" in enrolment_problems(looking_up)[0]
    good = FaceQuality(height=120, interocular=40, sharpness=2.0, yaw=0.1, roll=5, pitch=0.5, score=0.99)
    assert enrolment_problems(good) == []
    small = FaceQuality(height=40, interocular=15, sharpness=2.0, yaw=0, roll=0, pitch=0.5, score=0.99)
    assert "too small (40 px high" in enrolment_problems(small)[0]
    assert enrolment_problems(small, QualityThresholds(min_height=32, min_interocular=12)) == []


def test_sharpness_drops_with_blur_but_not_with_size_or_contrast():
    face = _textured_face(128)
    box = np.array([0, 0, 128, 128])
    sharp = sharpness(face, box)
    blurred = sharpness(cv2.GaussianBlur(face, (0, 0), 5), box)
    assert sharp > 1.0 and blurred < 0.35 * sharp
    # the same face twice as large: resampled to a fixed size first, so about the same value
    big = cv2.resize(face, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert sharpness(big, np.array([0, 0, 256, 256])) == pytest.approx(sharp, rel=0.3)
    # half the contrast: divided by the intensity variance, so about the same value
    dim = (face.astype(np.float32) * 0.5 + 60).astype(np.uint8)
    assert sharpness(dim, box) == pytest.approx(sharp, rel=0.1)
    # a flat patch or a box outside the image has no sharpness
    assert sharpness(np.full((100, 100, 3), 128, np.uint8), box) == 0.0
    assert sharpness(face, np.array([500, 500, 600, 600])) == 0.0


def test_assess_and_vote_weight_order():
    image = np.zeros((400, 400, 3), np.uint8)
    image[100:228, 100:228] = _textured_face(128)
    lm = FRONTAL * 2 + 100 - np.array([60, 40])  # landmarks scaled into the box
    good = assess(image, np.array([100, 100, 228, 228]), lm, 0.98)
    assert good.height == 128 and good.interocular == pytest.approx(80)
    assert enrolment_problems(good) == []
    blurred_img = image.copy()
    blurred_img[100:228, 100:228] = cv2.GaussianBlur(image[100:228, 100:228], (0, 0), 5)
    blurred = assess(blurred_img, np.array([100, 100, 228, 228]), lm, 0.98)
    assert any("blurry" in p for p in enrolment_problems(blurred))
    small = FaceQuality(height=30, interocular=12, sharpness=good.sharpness, yaw=0, roll=0, pitch=0.5, score=0.98)
    turned = FaceQuality(height=128, interocular=60, sharpness=good.sharpness, yaw=0.5, roll=0, pitch=0.5, score=0.98)
    doubtful = FaceQuality(height=128, interocular=80, sharpness=good.sharpness, yaw=0, roll=0, pitch=0.5, score=0.3)
    assert good.weight > 0.5
    for worse in (blurred, small, turned, doubtful):
        assert 0 < worse.weight < 0.5 * good.weight
    assert set(good.to_dict()) >= {"height", "sharpness", "yaw", "roll", "weight"}


def test_thresholds_are_validated():
    with pytest.raises(ValueError):
        QualityThresholds(max_roll=0)
    with pytest.raises(ValueError):
        QualityThresholds(min_pitch=0.9, max_pitch=0.5)
    with pytest.raises(ValueError):
        QualityThresholds(min_height=-1)
