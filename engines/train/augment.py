"""Augmentation that teaches what operators see: small and many faces, cut faces, mirror
images, tilted heads, bad light, blur, noise and occluders. Works on `Sample`s in canvas pixels."""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from engines.faces import FLIP_ORDER, box_sides


@dataclass(slots=True)
class Sample:
    """An image and its teacher faces.

    mimic: per face, whether the teacher embedding is a valid target for the face as it
    now appears (false once it is cut by the border or too small; a mirror image keeps it).
    ignore: per face, whether it is too small/uncertain to be a positive or a negative.
    identities: per face, its identity class for the identity loss, -1 for none (None: none has one).
    Every step that drops or reorders faces does the same to all these per-face arrays.
    """

    image: np.ndarray  # BGR uint8
    boxes: np.ndarray  # (n, 4) float32
    landmarks: np.ndarray  # (n, 5, 2) float32
    embeddings: np.ndarray  # (n, 128) float32
    mimic: np.ndarray  # (n,) bool
    ignore: np.ndarray  # (n,) bool
    identities: np.ndarray | None = None  # (n,) int64

    def __post_init__(self):
        if self.identities is None:
            self.identities = np.full(len(self.boxes), -1, np.int64)

    def transformed(self, image: np.ndarray, scale: float, dx: float, dy: float) -> "Sample":
        """Same faces after the image was scaled by `scale` then shifted by (dx, dy)."""
        off = np.array([dx, dy], np.float32)
        boxes = self.boxes * scale + np.tile(off, 2)
        return replace(self, image=image, boxes=boxes, landmarks=self.landmarks * scale + off)


def concat(samples: list[Sample], image: np.ndarray) -> Sample:
    """Faces of several placed samples on one canvas."""
    return Sample(
        image=image,
        boxes=np.concatenate([s.boxes for s in samples]).reshape(-1, 4),
        landmarks=np.concatenate([s.landmarks for s in samples]).reshape(-1, 5, 2),
        embeddings=np.concatenate([s.embeddings for s in samples]).reshape(-1, 128),
        mimic=np.concatenate([s.mimic for s in samples]),
        ignore=np.concatenate([s.ignore for s in samples]),
        identities=np.concatenate([s.identities for s in samples]).astype(np.int64),
    )


def place(sample: Sample, canvas: np.ndarray, scale: float, x0: int, y0: int) -> Sample:
    """Paste `sample` scaled by `scale` with its top-left at (x0, y0) (may fall partly outside)."""
    h, w = sample.image.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(sample.image, (nw, nh), interpolation=interp)
    H, W = canvas.shape[:2]
    cx1, cy1, cx2, cy2 = max(0, x0), max(0, y0), min(W, x0 + nw), min(H, y0 + nh)
    if cx2 > cx1 and cy2 > cy1:
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
    return sample.transformed(canvas, nw / w, x0, y0)


def clip_to_canvas(s: Sample, min_face: float, min_mimic_face: float) -> Sample:
    """Drop faces that left the canvas, ignore cut or tiny ones, stop mimicking cut ones."""
    H, W = s.image.shape[:2]
    if len(s.boxes) == 0:
        return s
    clipped = s.boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, W)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, H)
    area = np.prod(np.maximum(s.boxes[:, 2:] - s.boxes[:, :2], 1e-3), axis=1)
    visible = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), axis=1) / area
    keep = visible > 0.2
    size = box_sides(clipped)
    ignore = s.ignore | (visible < 0.6) | (size < min_face)
    mimic = s.mimic & (visible > 0.95) & (size >= min_mimic_face)
    return Sample(s.image, clipped[keep], s.landmarks[keep], s.embeddings[keep], mimic[keep], ignore[keep],
                  s.identities[keep])


def turn(s: Sample, degrees: float, fill: np.ndarray) -> Sample:
    """The sample turned `degrees` counter-clockwise (as seen) about its image centre, on an
    image grown to hold all of it, the new corners filled with `fill` (BGR).

    Landmarks turn exactly. Each box moves with its centre and becomes the bounds of the ellipse
    inscribed in it, turned, because that is how the teacher boxes a turned face: on 60 labelled
    photos turned 20 / 30 degrees, MTCNN's box has a median IoU of 0.89 / 0.87 with it and the
    same size within 2% (boxes that keep their size: 0.87 / 0.82; bounds of the turned corners:
    0.62 / 0.56). Teacher embeddings are kept: dlib describes a chip aligned on the face's own
    landmarks, and its descriptor of the turned face has a median cosine of 0.99 to the upright
    one's after centring (at 30 degrees, 10th percentile 0.93; different people: 0.07, see `flip`).
    """
    h, w = s.image.shape[:2]
    rad = np.deg2rad(degrees)
    c, si = abs(np.cos(rad)), abs(np.sin(rad))
    nw, nh = int(np.ceil(w * c + h * si)), int(np.ceil(w * si + h * c))
    # In continuous coordinates (pixel i spans [i, i+1)): p' = A (p - centre) + new centre.
    a = np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])
    shift = np.array([nw / 2, nh / 2]) - a @ np.array([w / 2, h / 2])
    # cv2 samples at pixel indices (continuous - 0.5).
    index_matrix = np.hstack([a, (shift + a @ [0.5, 0.5] - 0.5)[:, None]])
    image = cv2.warpAffine(s.image, index_matrix, (nw, nh), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in fill))
    a32, shift32 = a.astype(np.float32), shift.astype(np.float32)
    landmarks = s.landmarks @ a32.T + shift32
    centres = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2 @ a32.T + shift32
    half = (s.boxes[:, 2:] - s.boxes[:, :2]) / 2
    # half-sides of the bounds of the box's inscribed ellipse, turned
    half = np.sqrt(half**2 @ np.array([[c * c, si * si], [si * si, c * c]], np.float32))
    boxes = np.concatenate([centres - half, centres + half], axis=1).reshape(-1, 4)
    return replace(s, image=image, boxes=boxes.astype(np.float32), landmarks=landmarks.astype(np.float32))


def maybe_turn(s: Sample, rng: np.random.Generator, p: float, max_degrees: float, fill: np.ndarray) -> Sample:
    """With probability `p`, `turn` by an angle drawn uniformly in +-`max_degrees`."""
    if p <= 0 or rng.random() >= p:
        return s
    return turn(s, float(rng.uniform(-max_degrees, max_degrees)), fill)


def flip(s: Sample) -> Sample:
    """Mirror image; landmark order swapped. Mirrored faces keep their teacher target: on 40
    LFW training photos dlib's descriptor of the mirror image has cosine 0.946 to the
    original's after centring (different people: 0.07), far closer than the student gets."""
    W = s.image.shape[1]
    boxes = s.boxes.copy()
    boxes[:, [0, 2]] = W - s.boxes[:, [2, 0]]
    lmk = s.landmarks[:, FLIP_ORDER].copy()
    lmk[..., 0] = W - lmk[..., 0]
    return Sample(np.ascontiguousarray(s.image[:, ::-1]), boxes, lmk, s.embeddings, s.mimic.copy(), s.ignore,
                  s.identities)


def photometric(image: np.ndarray, rng: np.random.Generator, dark_p: float = 0.0) -> np.ndarray:
    """Brightness, contrast, saturation, grey, blur, noise; with probability `dark_p`, a dim room."""
    img = image.astype(np.float32)
    if rng.random() < 0.8:
        img = (img - 128) * rng.uniform(0.6, 1.4) + 128 + rng.uniform(-40, 40)
    if rng.random() < 0.5:
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.3, 1.5)
    if rng.random() < 0.05:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.15:
        k = int(rng.choice([3, 5, 7]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < 0.15:
        img = img + rng.normal(0, rng.uniform(3, 15), img.shape)
    if dark_p > 0 and rng.random() < dark_p:
        # A dim room: faces in it must stay faces once dark backgrounds are taught as
        # background (`backdrops`); trained without this, dark-skinned faces in a dark
        # audience fell below the detection threshold.
        img = np.clip(img, 0, 255) * rng.uniform(0.15, 0.5) + rng.normal(0, rng.uniform(1, 4), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def occlude(s: Sample, rng: np.random.Generator, p: float = 0.15) -> None:
    """Cover part of some faces with a random-coloured rectangle (sunglasses, hands, masks)."""
    for box in s.boxes:
        if rng.random() >= p:
            continue
        w, h = box[2] - box[0], box[3] - box[1]
        ow, oh = w * rng.uniform(0.2, 0.6), h * rng.uniform(0.15, 0.4)
        x, y = box[0] + rng.uniform(0, w - ow), box[1] + rng.uniform(0, h - oh)
        x1, y1, x2, y2 = (int(round(v)) for v in (x, y, x + ow, y + oh))
        s.image[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = rng.integers(0, 256, 3, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class AugmentSettings:
    canvas: tuple[int, int] = (320, 320)  # (w, h)
    mosaic_p: float = 0.3
    flip_p: float = 0.3
    zoom_range: tuple[float, float] = (0.35, 1.6)  # long side / canvas long side
    min_face: float = 6.0  # smaller faces are ignored (neither face nor background)
    min_mimic_face: float = 28.0  # smaller faces get no embedding target
    letterbox_p: float = 0.0  # share of canvases given the exact black borders of a letterboxed small frame
    turn_p: float = 0.0  # share of source images turned (`turn`) before they are placed (by their grown size)
    turn_degrees: float = 30.0  # largest turn, either way
    backdrop_p: float = 0.0  # share of canvases laid on a face-free photo region (`backdrops`), not flat colour
    faceless_p: float = 0.0  # share of canvases that are only a face-free photo region
    dark_p: float = 0.0  # share of canvases dimmed to a dark room's light (`photometric`)
    # share of single-photo canvases cut from the photo at about its own scale (drawn from
    # native_range) instead of the whole photo zoomed to the canvas (zoom_range): a 1024 px crowd
    # photo otherwise reaches a 320 px canvas at 0.1-0.5 of its size, its 10-30 px faces at 1-15 px,
    # where the product sees them at full size (WIDER at 1024x768)
    native_p: float = 0.0
    native_range: tuple[float, float] = (0.4, 1.4)
    # share of canvases that are a grid of small windows, each on one photo scaled so that one of
    # its faces is drawn from small_range (`small_face_grid`): the stride-8 anchors otherwise see
    # ~2.5 positives a canvas against ~16 at stride 32 (`scripts/canvas_positives.py`), while 81% of
    # WIDER's hard faces are 10-32 px
    small_p: float = 0.0
    small_range: tuple[float, float] = (8.0, 64.0)  # face side in canvas pixels, drawn log-uniform
    small_cells: tuple[int, ...] = (2, 3, 4)  # windows per side, one drawn per canvas
    small_max_zoom: float = 2.0  # a photo is never enlarged more (its face then stays smaller)


def augment(samples: list[Sample], rng: np.random.Generator, cfg: AugmentSettings,
            mosaic: bool | None = None, backdrop: np.ndarray | None = None) -> Sample:
    """One training canvas from one sample (zoom in/out, crop) or four (mosaic).

    `mosaic`: the caller's decision (it then loads four samples only when needed); None draws it here.
    `backdrop`: a canvas-sized face-free image to lay the photos on instead of a flat colour.
    """
    W, H = cfg.canvas
    canvas = np.empty((H, W, 3), np.uint8)
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    canvas[:] = colour if backdrop is None else backdrop
    if mosaic is None:
        mosaic = rng.random() < cfg.mosaic_p
    samples = [maybe_turn(s, rng, cfg.turn_p, cfg.turn_degrees, colour) for s in samples[: 4 if mosaic else 1]]
    if len(samples) >= 4 and mosaic:
        cx, cy = int(W * rng.uniform(0.3, 0.7)), int(H * rng.uniform(0.3, 0.7))
        cells = [(0, 0, cx, cy), (cx, 0, W, cy), (0, cy, cx, H), (cx, cy, W, H)]
        placed = []
        for s, (x1, y1, x2, y2) in zip(samples[:4], cells):
            h, w = s.image.shape[:2]
            scale = min((x2 - x1) / w, (y2 - y1) / h) * rng.uniform(0.6, 1.3)
            nw, nh = w * scale, h * scale
            x0 = int(x1 + rng.uniform(min(0, x2 - x1 - nw), max(0, x2 - x1 - nw)))
            y0 = int(y1 + rng.uniform(min(0, y2 - y1 - nh), max(0, y2 - y1 - nh)))
            sub = np.empty_like(canvas)
            sub[:] = canvas
            p = place(s, sub, scale, x0, y0)
            canvas[y1:y2, x1:x2] = p.image[y1:y2, x1:x2]
            placed.append(clip_region(p, (x1, y1, x2, y2)))
        out = concat(placed, canvas)
    else:
        s = samples[0]
        h, w = s.image.shape[:2]
        if cfg.native_p > 0 and rng.random() < cfg.native_p:  # no draw at 0: earlier runs' canvases stay
            scale = rng.uniform(*cfg.native_range)
        else:
            scale = max(W, H) * rng.uniform(*cfg.zoom_range) / max(w, h)
        nw, nh = w * scale, h * scale
        x0 = int(rng.uniform(min(0, W - nw), max(0, W - nw)))
        y0 = int(rng.uniform(min(0, H - nh), max(0, H - nh)))
        out = place(s, canvas, scale, x0, y0)
    out = finish(clip_to_canvas(out, cfg.min_face, cfg.min_mimic_face), rng, cfg.flip_p, cfg.dark_p)
    if rng.random() < cfg.letterbox_p:
        out = letterbox_border(out, rng)
    return out


def small_face_grid(samples: list[Sample], rng: np.random.Generator, cfg: AugmentSettings,
                    backdrop: np.ndarray | None = None) -> Sample:
    """A canvas of n x n windows (n * n = len(samples)), each a view of one photo scaled so that one
    of its faces, drawn at random, has a side drawn log-uniform from `cfg.small_range`, centred at
    a random point of its window; the photo's other faces scale with it, and the window cuts it as a
    mosaic cell does. Data-anchor sampling (PyramidBox) for the smallest anchors: crowds of small
    faces in their own photo's surroundings, whichever set the photo came from."""
    W, H = cfg.canvas
    n = int(round(len(samples) ** 0.5))
    if n * n != len(samples):
        raise ValueError(f"a small-face grid needs a square number of photos, got {len(samples)}")
    canvas = np.empty((H, W, 3), np.uint8)
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    canvas[:] = colour if backdrop is None else backdrop
    samples = [maybe_turn(s, rng, cfg.turn_p, cfg.turn_degrees, colour) for s in samples]
    xs, ys = np.linspace(0, W, n + 1).astype(int), np.linspace(0, H, n + 1).astype(int)
    placed = []
    for k, s in enumerate(samples):
        window = (xs[k % n], ys[k // n], xs[k % n + 1], ys[k // n + 1])
        h, w = s.image.shape[:2]
        candidates = np.flatnonzero(~s.ignore) if (~s.ignore).any() else np.arange(len(s.boxes))
        if len(candidates):
            j = int(rng.choice(candidates))
            side = float(box_sides(s.boxes[j : j + 1])[0])
            target = float(np.exp(rng.uniform(*np.log(cfg.small_range))))
            scale = min(target / max(side, 1.0), cfg.small_max_zoom)
            centre = (s.boxes[j, :2] + s.boxes[j, 2:]) / 2
        else:  # a photo without faces: all of it in the window, as background
            scale = min((window[2] - window[0]) / w, (window[3] - window[1]) / h)
            centre = np.array([w / 2, h / 2], np.float32)
        fx, fy = rng.uniform(window[0], window[2]), rng.uniform(window[1], window[3])
        placed.append(place_window(s, canvas, scale, fx - centre[0] * scale, fy - centre[1] * scale, window))
    out = finish(clip_to_canvas(concat(placed, canvas), cfg.min_face, cfg.min_mimic_face), rng, cfg.flip_p,
                 cfg.dark_p)
    if rng.random() < cfg.letterbox_p:
        out = letterbox_border(out, rng)
    return out


def place_window(sample: Sample, canvas: np.ndarray, scale: float, x0: float, y0: float,
                 window: tuple[int, int, int, int]) -> Sample:
    """Paste the part of `sample`, scaled by `scale` with its top-left at (x0, y0), that falls in
    `window` (x1, y1, x2, y2 of `canvas`), which must show some of it; its faces as seen through
    the window (`clip_region`).
    Only the source pixels that land in the window are resized: a crowd photo enlarged around one
    small face costs a window's worth, not the whole photo's."""
    x1, y1, x2, y2 = window
    h, w = sample.image.shape[:2]
    sx1, sy1 = max(0, int(np.floor((x1 - x0) / scale))), max(0, int(np.floor((y1 - y0) / scale)))
    sx2, sy2 = min(w, int(np.ceil((x2 - x0) / scale)) + 1), min(h, int(np.ceil((y2 - y0) / scale)) + 1)
    nw, nh = max(1, round((sx2 - sx1) * scale)), max(1, round((sy2 - sy1) * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(sample.image[sy1:sy2, sx1:sx2], (nw, nh), interpolation=interp)
    px, py = int(round(x0 + sx1 * scale)), int(round(y0 + sy1 * scale))  # the crop's top-left on the canvas
    cx1, cy1, cx2, cy2 = max(x1, px), max(y1, py), min(x2, px + nw), min(y2, py + nh)
    if cx2 > cx1 and cy2 > cy1:
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - py : cy2 - py, cx1 - px : cx2 - px]
    shown = nw / (sx2 - sx1)  # the scale the resize made, within a pixel of `scale`
    moved = sample.transformed(canvas, shown, px - sx1 * shown, py - sy1 * shown)
    return clip_region(moved, window)


def letterbox_border(s: Sample, rng: np.random.Generator) -> Sample:
    """Black out the right and/or bottom of the canvas, after every photometric change, as the
    backends' letterbox does around a frame smaller than the input: exact zeros, which random
    canvas colours and noise never give, and on which the largest anchors otherwise fire.
    Faces behind the border are cut as by a crop."""
    H, W = s.image.shape[:2]
    cut = rng.integers(1, 4)  # 1: right, 2: bottom, 3: both
    cw = int(W * rng.uniform(0.3, 0.9)) if cut & 1 else W
    ch = int(H * rng.uniform(0.3, 0.9)) if cut & 2 else H
    out = clip_region(s, (0, 0, cw, ch))
    out.image[ch:] = 0
    out.image[:ch, cw:] = 0
    return out


def finish(s: Sample, rng: np.random.Generator, flip_p: float, dark_p: float = 0.0) -> Sample:
    """The steps every training canvas ends with: maybe mirror, occluders, then colour, blur, noise
    (and, with probability `dark_p`, dim light)."""
    if rng.random() < flip_p:
        s = flip(s)
    occlude(s, rng)
    s.image = photometric(s.image, rng, dark_p)
    return s


def clip_region(s: Sample, region: tuple[int, int, int, int]) -> Sample:
    """Faces of a mosaic cell, as seen through its window: outside parts count as cut."""
    x1, y1, x2, y2 = region
    shifted = s.transformed(s.image[y1:y2, x1:x2], 1.0, -x1, -y1)
    c = clip_to_canvas(shifted, 0.0, 0.0)
    return c.transformed(s.image, 1.0, x1, y1)
