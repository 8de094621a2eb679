"""Face crops cut from frames: the upright, roomy crop the gallery stores (an engine must be
able to find the face in it again to re-embed it) and small thumbnails for display."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CROP_CONTEXT = 2.0  # crop side = this x the longer side of the face box
MIN_CROP_SIDE = 112  # smaller crops are upscaled: detectors need some pixels
MAX_CROP_SIDE = 256  # larger crops are downscaled: the face is then ~128 px, plenty
JPEG_QUALITY = 92


@dataclass(slots=True)
class FaceCrop:
    """A square upright crop with the face's box and landmarks in crop pixels."""

    image: np.ndarray  # BGR uint8 (s, s, 3)
    box: np.ndarray  # (4,) float32 x1 y1 x2 y2
    landmarks: np.ndarray  # (5, 2) float32


def storage_crop(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None = None) -> FaceCrop:
    """Cut the face out of `image`, rotated so the eyes are level, with one box of context on
    every side (outside the frame is black), scaled to 112-256 px."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw, bh = max(1.0, box[2] - box[0]), max(1.0, box[3] - box[1])
    side = CROP_CONTEXT * max(bw, bh)
    out = int(round(min(MAX_CROP_SIDE, max(MIN_CROP_SIDE, side))))
    scale = out / side
    roll = 0.0
    if landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        dx, dy = lm[1] - lm[0]
        if dx * dx + dy * dy > 1.0:
            roll = math.degrees(math.atan2(dy, dx))
    # Rotating by +roll about the face centre levels the eye line (OpenCV angles are
    # counter-clockwise on screen), then the centre moves to the crop centre.
    m = cv2.getRotationMatrix2D((cx, cy), roll, scale)
    m[0, 2] += out / 2 - cx
    m[1, 2] += out / 2 - cy
    crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    half_w, half_h = bw * scale / 2, bh * scale / 2
    crop_box = np.array([out / 2 - half_w, out / 2 - half_h, out / 2 + half_w, out / 2 + half_h], np.float32)
    if landmarks is None:
        crop_lm = np.full((5, 2), np.nan, np.float32)
    else:
        pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        crop_lm = (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
    return FaceCrop(image=crop, box=crop_box, landmarks=crop_lm)


def thumbnail(image: np.ndarray, box: np.ndarray, size: int = 96, context: float = 1.3) -> np.ndarray:
    """A square `size` px BGR thumbnail of the face at `box` (with a little context)."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = context * max(1.0, box[2] - box[0], box[3] - box[1])
    scale = size / side
    m = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """BGR uint8 image to JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not JPEG-encode an image of shape {image.shape}")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG (or PNG) bytes to a BGR uint8 image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("could not decode the stored image bytes")
    return image
