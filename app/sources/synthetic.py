"""A generated camera (`synthetic:` specs): moving cartoon faces, or a given face image, at a
set rate."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from engines.errors import UserError
from app.types import Frame
from app.sources.base import SourceInfo, SourceState, VideoSource, _Pacer
from app.sources.files import FileSource


class SyntheticSource(VideoSource):
    """A generated camera: a textured background with faces moving across it.

    faces: BGR face images to paste (a real detector finds them); None draws simple cartoon
    faces (enough for boxes in the GUI, not for a detector). frames: stop after this many
    (None = endless). realtime: deliver at `fps`, like a camera.
    """

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, frames: int | None = None,
                 faces: Sequence[np.ndarray] | None = None, count: int = 2, realtime: bool = True,
                 seed: int = 0, source_id: str = "synthetic"):
        if width < 32 or height < 32 or fps <= 0:
            raise UserError(f"synthetic source needs size >= 32x32 and fps > 0, got {width}x{height} @ {fps}")
        info = SourceInfo(name="synthetic", kind="synthetic", realtime=realtime, fps=fps, width=width,
                          height=height, frame_count=frames, time_base=None)
        super().__init__(source_id, info)
        rng = np.random.default_rng(seed)
        self._limit = frames
        side = max(16, min(width, height) // 3)
        self._sprites = [cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in faces] if faces else \
            [_cartoon_face(side, rng) for _ in range(max(1, count))]
        n = len(self._sprites) if faces else max(1, count)
        self._pos = rng.uniform([0, 0], [width - side, height - side], size=(n, 2))
        self._vel = rng.uniform(-1, 1, size=(n, 2)) * (min(width, height) / fps / 3)
        self._side = side
        self._last_pos = np.floor(self._pos).astype(int)
        yy, xx = np.mgrid[0:height, 0:width]
        bg = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                       np.full_like(xx, 96)], axis=-1).astype(np.uint8)
        self._background = cv2.addWeighted(bg, 0.6, rng.integers(0, 255, bg.shape, dtype=np.uint8), 0.4, 0)
        self._pacer = _Pacer(self._interrupted)
        self._open = False

    def open(self) -> None:
        self._set_state(SourceState.CONNECTING)
        self._open = True
        self._set_state(SourceState.LIVE)

    @property
    def face_boxes(self) -> np.ndarray:
        """Where the faces of the last frame were drawn: (n, 4) x1 y1 x2 y2."""
        return np.concatenate([self._last_pos, self._last_pos + self._side], axis=1).astype(np.float32)

    def read(self) -> Frame | None:
        if not self._open or self._interrupted.is_set():
            return None
        if self._limit is not None and self.frames_read >= self._limit:
            self._set_state(SourceState.ENDED, f"{self.frames_read} frames")
            return None
        media = self.frames_read / self.info.fps
        if self.info.realtime:
            self._pacer.wait(media)
        image = self._background.copy()
        h, w = image.shape[:2]
        self._last_pos = np.floor(self._pos).astype(int)
        for sprite, (x, y) in zip(self._sprites, self._last_pos):
            image[y:y + self._side, x:x + self._side] = sprite
        self._pos += self._vel
        for axis, limit in ((0, w - self._side), (1, h - self._side)):
            out = (self._pos[:, axis] < 0) | (self._pos[:, axis] > limit)
            self._vel[out, axis] *= -1
            self._pos[:, axis] = np.clip(self._pos[:, axis], 0, limit)
        return self._frame(image, media)

    def close(self) -> None:
        self._open = False


def _cartoon_face(side: int, rng: np.random.Generator) -> np.ndarray:
    """A skin-toned oval with eyes, nose and mouth on a plain square."""
    img = np.full((side, side, 3), rng.integers(40, 90), np.uint8)
    c = side // 2
    skin = tuple(int(v) for v in rng.integers([90, 130, 170], [140, 180, 230]))
    cv2.ellipse(img, (c, c), (int(side * 0.36), int(side * 0.46)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    eye_y, dx = int(side * 0.40), int(side * 0.15)
    for x in (c - dx, c + dx):
        cv2.circle(img, (x, eye_y), max(2, side // 18), (40, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, (c, int(side * 0.45)), (c, int(side * 0.60)), (60, 80, 120), max(1, side // 40), cv2.LINE_AA)
    cv2.ellipse(img, (c, int(side * 0.70)), (int(side * 0.13), int(side * 0.05)), 0, 0, 180, (50, 50, 150),
                max(1, side // 30), cv2.LINE_AA)
    return img


def _parse_synthetic(spec: str) -> VideoSource:
    """`synthetic:` options, comma-separated: size=WxH, fps=N, frames=N, count=N, face=PATH,
    realtime=0|1, seed=N, pattern=faces|testsrc."""
    body = spec.split(":", 1)[1]
    opts: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        if "=" not in item:
            if item in ("testsrc", "faces"):
                opts["pattern"] = item
                continue
            raise UserError(f"bad synthetic option {item!r}: use key=value, e.g. synthetic:size=640x480,fps=30")
        key, value = item.split("=", 1)
        opts[key.strip()] = value.strip()
    try:
        width, height = (int(v) for v in opts.pop("size", "640x480").lower().split("x"))
        fps = float(opts.pop("fps", "30"))
        frames = int(opts["frames"]) if "frames" in opts else None
        opts.pop("frames", None)
        count = int(opts.pop("count", "2"))
        realtime = opts.pop("realtime", "1") not in ("0", "false", "no")
        seed = int(opts.pop("seed", "0"))
    except ValueError as exc:
        raise UserError(f"bad synthetic source {spec!r}: {exc} (e.g. synthetic:size=640x480,fps=30,frames=100)") from exc
    pattern = opts.pop("pattern", "faces")
    face_path = opts.pop("face", None)
    if opts:
        raise UserError(f"unknown synthetic option(s) {', '.join(sorted(opts))}: "
                        "known are size, fps, frames, count, face, realtime, seed, pattern")
    if pattern == "testsrc":
        graph = f"testsrc=size={width}x{height}:rate={fps:g}"
        if frames is not None:
            graph += f":duration={frames / fps:.6f}"
        return FileSource(graph, format="lavfi", realtime=realtime, source_id="synthetic")
    if pattern != "faces":
        raise UserError(f"unknown synthetic pattern {pattern!r}: use faces or testsrc")
    faces = None
    if face_path:
        from app.imageio import load_image

        faces = [load_image(face_path)]
    return SyntheticSource(width=width, height=height, fps=fps, frames=frames, faces=faces, count=count,
                           realtime=realtime, seed=seed)
