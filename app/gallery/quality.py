"""How usable a detected face is: size, sharpness and frontal pose from the 5 landmarks.

Two uses: enrolment refuses faces that fail a check (with the reason), and the identity
vote weights each observation by `FaceQuality.weight`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHARPNESS_SIZE = 64  # faces are resampled to this square before measuring sharpness


@dataclass(slots=True)
class FaceQuality:
    """Measurements of one face; angles and ratios are estimates from 5 landmarks."""

    height: float  # box height, pixels
    interocular: float  # distance between the eye centres, pixels
    sharpness: float  # Laplacian variance / intensity variance on a fixed-size crop
    yaw: float  # nose offset from the face midline / inter-ocular distance (0 = frontal)
    roll: float  # eye-line angle, degrees (0 = upright)
    pitch: float  # nose height between eye line and mouth line (about 0.5 when level)
    score: float  # detection score

    @property
    def weight(self) -> float:
        """A vote weight in (0, 1]: small, blurred, turned or doubtful faces count less."""
        size = _ramp(self.height, 24.0, 80.0)
        sharp = _ramp(self.sharpness, 0.0, 3.0)
        turned = 1.0 - _ramp(abs(self.yaw), 0.1, 0.6)
        tilted = 1.0 - _ramp(abs(self.roll), 15.0, 60.0)
        score = min(1.0, max(0.0, self.score))
        return max(1e-3, max(size, 0.05) * max(sharp, 0.1) * max(turned, 0.1) * max(tilted, 0.2) * max(score, 0.05))

    def to_dict(self) -> dict:
        return {
            "height": round(self.height, 1),
            "interocular": round(self.interocular, 1),
            "sharpness": round(self.sharpness, 3),
            "yaw": round(self.yaw, 3),
            "roll": round(self.roll, 1),
            "pitch": round(self.pitch, 3),
            "score": round(self.score, 3),
            "weight": round(self.weight, 3),
        }


@dataclass(slots=True)
class QualityThresholds:
    """Enrolment limits, set from 299 random LFW photos (dlib landmarks): sharpness 1st
    percentile 0.73 (a Gaussian blur of sigma 3 px gives median 0.27), |yaw| 95th percentile
    0.33, pitch 1st-99th percentile 0.24-0.77, eye-line roll within +-14 degrees."""

    min_height: float = 60.0
    min_interocular: float = 24.0
    min_sharpness: float = 0.5
    max_yaw: float = 0.35
    max_roll: float = 25.0
    min_pitch: float = 0.2
    max_pitch: float = 0.85
    min_score: float = 0.5

    def __post_init__(self) -> None:
        if self.min_height < 0 or self.min_interocular < 0 or self.min_sharpness < 0:
            raise ValueError("quality minimums must be >= 0")
        if not (self.max_yaw > 0 and 0 < self.max_roll <= 90):
            raise ValueError("max_yaw must be > 0 and max_roll in (0, 90]")
        if not self.min_pitch < self.max_pitch:
            raise ValueError("min_pitch must be below max_pitch")


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(yaw, roll, pitch, interocular) from 5 landmarks (eyes, nose, mouth corners).

    yaw: signed offset of the nose from the eye-mouth midline along the eye line, in
    inter-ocular units; roll: eye-line angle in degrees; pitch: where the nose sits between
    the eye line (0) and the mouth line (1).
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    eye_vec = right_eye - left_eye
    iod = float(np.hypot(*eye_vec))
    if iod < 1e-6:
        return 0.0, 0.0, 0.5, 0.0
    u = eye_vec / iod
    v = np.array([-u[1], u[0]])  # points down the face
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    midline = (eye_mid + mouth_mid) / 2
    yaw = float(np.dot(nose - midline, u) / iod)
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    face_len = float(np.dot(mouth_mid - eye_mid, v))
    pitch = float(np.dot(nose - eye_mid, v) / face_len) if face_len > 1e-6 else 0.5
    return yaw, roll, pitch, iod


def sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian on the face resampled to 64x64, divided by its intensity
    variance, so neither face size nor contrast changes the value much (0 = flat/no face)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(c))) for c in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    patch = image[y1:y2, x1:x2]
    if patch.ndim == 3:
        patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    patch = cv2.resize(patch, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    contrast = float(patch.var())
    if contrast < 1.0:
        return 0.0
    lap = cv2.Laplacian(patch, cv2.CV_32F, ksize=3)
    return float(lap.var()) / contrast


def assess(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray, score: float = 1.0) -> FaceQuality:
    """Measure one face of `image` (BGR) given its box (x1 y1 x2 y2) and 5 landmarks."""
    yaw, roll, pitch, iod = pose_from_landmarks(landmarks)
    box = np.asarray(box, dtype=np.float32).reshape(4)
    return FaceQuality(
        height=float(box[3] - box[1]),
        interocular=iod,
        sharpness=sharpness(image, box),
        yaw=yaw,
        roll=roll,
        pitch=pitch,
        score=float(score),
    )


def enrolment_problems(q: FaceQuality, limits: QualityThresholds | None = None) -> list[str]:
    """Why this face should not be enrolled (empty list = good enough); one sentence each."""
    t = limits or QualityThresholds()
    problems = []
    if q.height < t.min_height or q.interocular < t.min_interocular:
        problems.append(
            f"face too small ({q.height:.0f} px high, eyes {q.interocular:.0f} px apart; need "
            f">= {t.min_height:.0f} px and >= {t.min_interocular:.0f} px): use a closer or larger photo"
        )
    if q.sharpness < t.min_sharpness:
        problems.append(f"face too blurry (sharpness {q.sharpness:.2f}, need >= {t.min_sharpness:.2f}): use a sharper photo")
    if abs(q.yaw) > t.max_yaw:
        side = "right" if q.yaw > 0 else "left"
        problems.append(
            f"face turned to the {side} (yaw {q.yaw:+.2f}, limit {t.max_yaw:.2f}): use a photo looking at the camera"
        )
    if abs(q.roll) > t.max_roll:
        problems.append(f"head tilted {q.roll:+.0f} degrees (limit {t.max_roll:.0f}): use an upright photo")
    if not t.min_pitch <= q.pitch <= t.max_pitch:
        way = "down" if q.pitch > t.max_pitch else "up"
        problems.append(
            f"face tilted {way} (nose position {q.pitch:.2f}, allowed {t.min_pitch:.2f}-{t.max_pitch:.2f}): "
            "use a photo looking at the camera"
        )
    if q.score < t.min_score:
        problems.append(f"detection uncertain (score {q.score:.2f}, need >= {t.min_score:.2f}): is this a face?")
    return problems


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, linear between."""
    if hi <= lo:
        return 1.0 if x >= hi else 0.0
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))
