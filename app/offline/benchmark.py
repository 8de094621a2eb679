"""Latency benchmark of a face engine, pre- and post-processing included."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(slots=True)
class BenchCase:
    """One measured configuration."""

    engine: str
    backend: str
    device: str
    faces: int | None  # faces in the frame (None: the sample as it is)
    forced: bool  # faces forced through the embedding head (every candidate through NMS)
    latencies_ms: list[float]
    batch: int
    detected: float  # mean faces returned per image

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latencies_ms, 95))

    @property
    def fps(self) -> float:
        """Images per second at the median latency."""
        return self.batch * 1000.0 / self.p50

    def summary(self) -> dict:
        d = asdict(self)
        del d["latencies_ms"]
        d.update(
            fps=round(self.fps, 1),
            latency_ms={"p50": round(self.p50, 3), "p95": round(self.p95, 3),
                        "mean": round(float(np.mean(self.latencies_ms)), 3)},
            iterations=len(self.latencies_ms),
            detected=round(self.detected, 2),
        )
        return d


def make_face_frames(sample: np.ndarray, face_box: tuple[float, float, float, float], faces: int,
                     size: tuple[int, int], batch: int) -> list[np.ndarray]:
    """`batch` frames of `size` (w, h) holding `faces` copies of the sample's face (x1, y1, x2, y2):
    a square twice the face's side around it, tiled on a grid of about square cells, each copy
    scaled to fit its cell but never enlarged (a face of ~90 px alone, ~50 px among 20 at 640x480).

    A frame with N real faces costs what a user's frame does, detection candidates and NMS included.
    """
    if faces < 1:
        raise ValueError(f"a face frame holds at least one face, not {faces}")
    w, h = size
    cols = max(1, round(math.sqrt(faces * w / h)))
    rows = math.ceil(faces / cols)
    x1, y1, x2, y2 = face_box
    side = 2 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    cell_w, cell_h = w // cols, h // rows
    scale = min(1.0, cell_w / side, cell_h / side)
    tile_side = max(1, int(side * scale))
    # the crop as an affine warp: parts outside the sample are grey, as the frame around them
    m = np.array([[scale, 0, tile_side / 2 - cx * scale], [0, scale, tile_side / 2 - cy * scale]], np.float32)
    tile = cv2.warpAffine(sample, m, (tile_side, tile_side), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114))
    frame = np.full((h, w, 3), 114, np.uint8)
    for i in range(faces):
        row, col = divmod(i, cols)
        y = row * cell_h + (cell_h - tile_side) // 2
        x = col * cell_w + (cell_w - tile_side) // 2
        frame[y : y + tile_side, x : x + tile_side] = tile
    return [np.roll(frame, i, axis=1) for i in range(batch)]  # not byte-identical frames


def make_frames(sample: np.ndarray, size: tuple[int, int], batch: int) -> list[np.ndarray]:
    """`batch` frames of `size` (w, h): the sample image scaled to fit and centred on grey."""
    w, h = size
    scale = min(w / sample.shape[1], h / sample.shape[0])
    img = cv2.resize(sample, (max(1, round(sample.shape[1] * scale)), max(1, round(sample.shape[0] * scale))))
    frames = []
    for i in range(batch):
        frame = np.full((h, w, 3), 114, np.uint8)
        y, x = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
        frame[y : y + img.shape[0], x : x + img.shape[1]] = img
        frames.append(np.roll(frame, i, axis=1))  # not byte-identical frames
    return frames


def run_cases(engines: list, frames: dict[int | None, list[np.ndarray]], iterations: int, warmup: int,
              forced: list[int] | None = None, rounds: int = 5) -> list[BenchCase]:
    """Time every (engine, face count) case, interleaved in `rounds` so machine noise hits all alike.

    frames: the frames of each case by its face count (None: the sample as it is), run at each
    engine's own detection threshold. forced: face counts forced through the embedding head of
    the frames under None instead (threshold -1: every candidate through NMS, the worst case; for
    models that find no face, random weights).
    """
    force = bool(forced)
    cases = [(e, f) for e in engines for f in (forced if force else list(frames))]
    lat: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    found: dict[int, list[int]] = {i: [] for i in range(len(cases))}

    def call(engine, faces):
        if force:
            return engine.infer(frames[None], score_threshold=-1.0, max_faces=faces)
        return engine.infer(frames[faces])

    for engine, faces in cases:
        for _ in range(warmup):
            call(engine, faces)
    per_round = max(1, iterations // rounds)
    for _ in range(rounds):
        for i, (engine, faces) in enumerate(cases):
            for _ in range(per_round):
                t0 = time.perf_counter()
                result = call(engine, faces)
                lat[i].append((time.perf_counter() - t0) * 1000)
                found[i].append(sum(len(r) for r in result))
    batch = len(next(iter(frames.values())))
    return [
        BenchCase(e.info.engine, e.info.backend, e.info.device, f, force, lat[i], batch, float(np.mean(found[i])) / batch)
        for i, (e, f) in enumerate(cases)
    ]
