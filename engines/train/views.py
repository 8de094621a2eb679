"""Training views of a face: the exact pixels the student is shown and the teacher embedded.

A face is stored once, as a loosely aligned square crop (`CROP_SIZE`, the face upright and
centred, with context around it). A view is that crop turned, scaled, shifted, mirrored,
recoloured and blurred by a parameter vector; `render_view` is a pure function of the crop and
the parameters, so training regenerates the view the teacher saw from the stored parameters
instead of drawing a new augmentation whose target would be wrong (Beyer et al. 2022: the
teacher must see the student's view).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.faces import FLIP_ORDER
from engines.teachers.sface import ARCFACE_TEMPLATE, CHIP_SIZE, similarity_transform

CROP_SIZE = 128
# crop pixels per ArcFace-chip pixel: the 112 px chip spans 84 px in the middle of the crop,
# leaving room for shifts, turns and zoom-outs without running off the stored pixels
CROP_CHIP_SCALE = 0.75
# the ArcFace landmarks in crop pixels: where every stored face's landmarks are put
CROP_TEMPLATE = ((ARCFACE_TEMPLATE - CHIP_SIZE / 2) * CROP_CHIP_SCALE + CROP_SIZE / 2).astype(np.float32)

# a view's parameters, in this order (one float32 row each)
PARAM_NAMES = ("flip", "angle", "scale", "dx", "dy", "brightness", "contrast", "saturation", "blur")
IDENTITY = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0], np.float32)
MIRROR = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0], np.float32)


@dataclass(frozen=True, slots=True)
class JitterRanges:
    """How far a random view may differ from the clean crop."""

    angle: float = 20.0  # degrees, either way
    scale: tuple[float, float] = (0.8, 1.2)  # zoom (log-uniform)
    shift: float = 0.06  # of the crop side, each axis
    brightness: float = 32.0  # added to every channel, either way
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.6, 1.3)
    blur_p: float = 0.3  # chance of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.5, 2.0)
    flip_p: float = 0.5


def crop_transform(landmarks: np.ndarray) -> np.ndarray | None:
    """The 2x3 similarity taking a face's 5 image landmarks to `CROP_TEMPLATE` (None: degenerate)."""
    return similarity_transform(landmarks, CROP_TEMPLATE)


def extract_crop(image_bgr: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored crop (CROP_SIZE^2 BGR uint8) of a face and its landmarks (5, 2) in crop pixels."""
    m = crop_transform(landmarks)
    if m is None:
        return None
    crop = cv2.warpAffine(image_bgr, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    points = np.asarray(landmarks, np.float64).reshape(5, 2) @ m[:, :2].T + m[:, 2]
    return crop, points.astype(np.float32)


def random_params(rng: np.random.Generator, count: int, ranges: JitterRanges = JitterRanges()) -> np.ndarray:
    """(count, len(PARAM_NAMES)) float32 random view parameters."""
    r = ranges
    n = count
    blur = np.where(rng.random(n) < r.blur_p, rng.uniform(*r.blur_sigma, n), 0.0)
    return np.stack([
        (rng.random(n) < r.flip_p).astype(np.float64),
        rng.uniform(-r.angle, r.angle, n),
        np.exp(rng.uniform(np.log(r.scale[0]), np.log(r.scale[1]), n)),
        rng.uniform(-r.shift, r.shift, n),
        rng.uniform(-r.shift, r.shift, n),
        rng.uniform(-r.brightness, r.brightness, n),
        rng.uniform(*r.contrast, n),
        rng.uniform(*r.saturation, n),
        blur,
    ], axis=1).astype(np.float32)


def view_matrix(params: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The 2x3 affine of a view (flip, then turn and zoom about the centre, then shift) on crop pixels."""
    flip, angle, scale, dx, dy = (float(v) for v in params[:5])
    c = (size - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), angle, scale)  # 2x3, about the pixel centre
    m[:, 2] += (dx * size, dy * size)
    if flip >= 0.5:
        mirror = np.array([[-1, 0, size - 1], [0, 1, 0], [0, 0, 1]], np.float64)
        m = m @ mirror
    return m


def view_landmarks(crop_landmarks: np.ndarray, params: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Where a face's crop landmarks (5, 2) land in its view, in `LANDMARK_NAMES` order."""
    m = view_matrix(params, size)
    pts = np.asarray(crop_landmarks, np.float64).reshape(5, 2) @ m[:, :2].T + m[:, 2]
    if params[0] >= 0.5:  # the subject's left eye is now on the image's right
        pts = pts[FLIP_ORDER]
    return pts.astype(np.float32)


def render_view(crop: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The view's pixels: geometry, then brightness / contrast / saturation, then blur. Deterministic."""
    size = crop.shape[0]
    out = cv2.warpAffine(crop, view_matrix(params, size), (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    _, _, _, _, _, brightness, contrast, saturation, blur = (float(v) for v in params)
    img = out.astype(np.float32)
    grey = img @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma
    img = grey[..., None] + (img - grey[..., None]) * saturation
    img = (img - 128.0) * contrast + 128.0 + brightness
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if blur > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out


def teacher_chip(view: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The aligned 112x112 RGB chip SFace embeds for a view and its landmarks."""
    from engines.teachers.sface import align_chip

    chip = align_chip(view, landmarks)
    if chip is None:  # cannot happen for a view of a stored crop: its landmarks are never degenerate
        raise ValueError("view landmarks are degenerate")
    return chip
