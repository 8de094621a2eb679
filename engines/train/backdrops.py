"""Face-free backgrounds for training: a region of a training photo that holds no teacher face,
enlarged to a whole canvas.

Training canvases otherwise show the largest anchors only faces, parts of faces and flat
colour, so a model continued on them learns that a large blurred blob is a face: on the sample
clip's dark, out-of-focus audience and stage curtain it drew 150-300 px boxes that the teacher
does not confirm (83 such boxes over 275 frames for the shipped model, 184 after turned
training). An enlarged face-free region is exactly that kind of picture: dark or bright,
textured, blurred by the enlargement, and with no face in it.
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_REGION_SIDE = 24.0  # smaller regions enlarge into mush that no camera shows
FACE_MARGIN = 0.3  # teacher faces are kept out with this share of their size added on every side


def face_free_region(image_size: tuple[int, int], boxes: np.ndarray, aspect: float, rng: np.random.Generator,
                     tries: int = 24) -> tuple[int, int, int, int] | None:
    """A random region (x1, y1, x2, y2) of an image of `image_size` (w, h) with width/height
    `aspect`, overlapping none of `boxes` (n, 4) grown by FACE_MARGIN; None when `tries`
    draws all hit a face or the image is too small.

    Its height is drawn log-uniformly between MIN_REGION_SIDE and the largest that fits, so
    every amount of enlargement is taught (large regions hit faces more often and are kept less).
    """
    w, h = image_size
    max_h = min(h, w / aspect)
    if max_h < MIN_REGION_SIDE:
        return None
    size = boxes[:, 2:] - boxes[:, :2]
    grown = np.concatenate([boxes[:, :2] - FACE_MARGIN * size, boxes[:, 2:] + FACE_MARGIN * size], axis=1)
    for _ in range(tries):
        rh = float(np.exp(rng.uniform(np.log(MIN_REGION_SIDE), np.log(max_h))))
        rw = rh * aspect
        x1, y1 = rng.uniform(0, w - rw), rng.uniform(0, h - rh)
        x2, y2 = x1 + rw, y1 + rh
        apart = (grown[:, 0] >= x2) | (grown[:, 2] <= x1) | (grown[:, 1] >= y2) | (grown[:, 3] <= y1)
        if apart.all():
            return int(np.floor(x1)), int(np.floor(y1)), min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    return None


def backdrop(image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
    """A face-free region of `image` (BGR) with teacher faces `boxes`, resized to `size` (w, h);
    None when the image has no such region (a face fills it)."""
    w, h = size
    region = face_free_region((image.shape[1], image.shape[0]), np.asarray(boxes, np.float32).reshape(-1, 4), w / h, rng)
    if region is None:
        return None
    x1, y1, x2, y2 = region
    part = image[y1:y2, x1:x2]
    interp = cv2.INTER_AREA if part.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(part, (w, h), interpolation=interp)


def has_room(width: int, height: int, boxes: np.ndarray) -> bool:
    """Whether an image has a strip beside its faces (grown by FACE_MARGIN) at least
    MIN_REGION_SIDE across: where `face_free_region` can find a square. Most training sets are
    face-filling crops (UTKFace, aligned CelebA) that have none."""
    if min(width, height) < MIN_REGION_SIDE:
        return False
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return True
    size = boxes[:, 2:] - boxes[:, :2]
    lo = (boxes[:, :2] - FACE_MARGIN * size).min(axis=0)
    hi = (boxes[:, 2:] + FACE_MARGIN * size).max(axis=0)
    gaps = (lo[0], width - hi[0], lo[1], height - hi[1])
    return max(gaps) >= MIN_REGION_SIDE


def backdrop_sources(labels: list) -> list:
    """The training photos (`ImageLabels`) with room for a face-free region (`has_room`)."""
    return [l for l in labels if has_room(l.width, l.height, l.boxes)]


def draw_backdrop(labels: list, size: tuple[int, int], rng: np.random.Generator, sources: int = 3) -> np.ndarray | None:
    """`backdrop` from one of up to `sources` random photos of `labels` (`ImageLabels`, best
    filtered by `backdrop_sources`), tried in turn until one has a face-free region; None when
    none has (or `labels` is empty)."""
    for _ in range(sources if labels else 0):
        label = labels[int(rng.integers(len(labels)))]
        image = cv2.imread(label.path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        out = backdrop(image, label.boxes, size, rng)
        if out is not None:
            return out
    return None


def maybe_backdrop(labels: list, size: tuple[int, int], rng: np.random.Generator, p: float) -> np.ndarray | None:
    """With probability `p`, `draw_backdrop`; None otherwise (or when none was found). Draws
    nothing from `rng` when `p` is 0, so runs without backdrops keep their random stream."""
    if p <= 0 or rng.random() >= p:
        return None
    return draw_backdrop(labels, size, rng)
