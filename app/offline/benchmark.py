"""Latency benchmark of a face engine, pre- and post-processing included."""
from __future__ import annotations

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
    faces: int | None  # forced number of embedded faces (None: real detections)
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


def run_cases(engines: list, frames: list[np.ndarray], faces_list: list[int | None], iterations: int,
              warmup: int, rounds: int = 5) -> list[BenchCase]:
    """Time every (engine, faces) case, interleaved in `rounds` so machine noise hits all alike."""
    cases = [(e, f) for e in engines for f in faces_list]
    lat: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    found: dict[int, list[int]] = {i: [] for i in range(len(cases))}

    def call(engine, faces):
        if faces is None:
            return engine.infer(frames)
        return engine.infer(frames, score_threshold=-1.0, max_faces=faces)

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
    return [
        BenchCase(e.info.engine, e.info.backend, e.info.device, f, lat[i], len(frames), float(np.mean(found[i])) / len(frames))
        for i, (e, f) in enumerate(cases)
    ]
