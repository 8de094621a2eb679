"""The measuring helpers of scripts/gpu_check.py: the time budget, the clip's frames, batches,
timing cases, agreement with the CPU reference, and what the machine is (versions, nvidia-smi,
CUDA state)."""
from __future__ import annotations

import importlib.metadata
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

NVIDIA_SMI_FIELDS = ("name", "driver_version", "memory.total", "compute_cap", "clocks.max.sm", "power.limit")


# ------------------------------------------------------------------------------- helpers
class Budget:
    """Wall-clock seconds left for the whole check."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def iterations_for(batch: int, base: int) -> int:
    """Timed calls at `batch`: fewer for larger batches (each call carries more images)."""
    return max(min(base, 5), math.ceil(base / math.sqrt(batch)))


def read_clip_frames(path: Path, count: int) -> tuple[list[np.ndarray], list[int]]:
    """`count` BGR frames spread evenly through the video (fewer if it is shorter), and their indices.

    Two passes: the frame count first (headers can be wrong), then only the picked frames kept."""
    def frames():
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise RuntimeError(f"OpenCV cannot open {path}")
        try:
            while cap.grab():
                yield cap
        finally:
            cap.release()

    total = sum(1 for _ in frames())
    if total == 0:
        raise RuntimeError(f"no frame could be decoded from {path}")
    picks = sorted(set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()))
    wanted, kept = set(picks), []
    for i, cap in enumerate(frames()):
        if i in wanted:
            ok, frame = cap.retrieve()
            if not ok:
                raise RuntimeError(f"frame {i} of {path} could not be decoded")
            kept.append(frame)
    return kept, picks


def batch_of(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """`n` frames: the first n, cycled when there are fewer."""
    return [frames[i % len(frames)] for i in range(n)]


def infer_all(engine, frames: Sequence[np.ndarray], chunk: int) -> list:
    """Faces of every frame, `chunk` frames per call."""
    out = []
    for i in range(0, len(frames), chunk):
        out.extend(engine.infer(frames[i:i + chunk]))
    return out


def timing_cases(engines: dict[str, object], frames: Sequence[np.ndarray], batches: Sequence[int],
                 iterations: int, warmup: int) -> list[dict]:
    """Latency and images/s of each engine (name -> engine) at each batch size, interleaved."""
    from app.offline.benchmark import run_cases

    rows = []
    for b in batches:
        cases = run_cases(list(engines.values()), {None: batch_of(frames, b)}, iterations_for(b, iterations), warmup)
        for name, case in zip(engines, cases):
            s = case.summary()
            rows.append({
                "name": name, "device": s["device"], "batch": b,
                "latency_ms": s["latency_ms"],
                "images_per_s": s["fps"],  # at the median latency
                "images_per_s_mean": round(b * 1000.0 / float(np.mean(case.latencies_ms)), 1),
                "iterations": s["iterations"],
                "faces_per_image": s["detected"],
            })
    return rows


def agreement(reference: list, faces: list, threshold: float, precision: str) -> dict:
    """A run's faces against the reference's, with the tolerance used."""
    from engines.eval.backend_match import compare_runs, tolerance_for

    tol = tolerance_for(precision)
    return {**compare_runs(reference, faces, threshold, tol).as_dict(), "tolerance": tol.as_dict()}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> dict:
    """What nvidia-smi reports for each GPU, or why it could not be asked."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"ok": False, "reason": "nvidia-smi not found (no NVIDIA driver here)"}
    reasons = []
    for fields in (NVIDIA_SMI_FIELDS, NVIDIA_SMI_FIELDS[:3]):  # the short list for drivers that lack a field
        try:
            p = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"ok": False, "reason": f"nvidia-smi failed: {exc}"}
        if p.returncode == 0:
            gpus = [dict(zip(fields, (v.strip() for v in line.split(",")))) for line in p.stdout.strip().splitlines()]
            return {"ok": True, "gpus": gpus}
        reasons.append(f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[:300]}")
    return {"ok": False, "reason": "nvidia-smi failed: " + "; ".join(reasons)}


def cuda_state(device: str) -> tuple[bool, str | None]:
    """Whether torch can use `device` (a CUDA one), and why not."""
    import torch

    if not torch.cuda.is_available():
        build = torch.version.cuda or "none: a CPU-only build"
        return False, f"torch {torch.__version__} (CUDA build: {build}) sees no CUDA device"
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return False, f"CUDA device {index} does not exist ({torch.cuda.device_count()} found)"
    return True, None


# ------------------------------------------------------------------------------- sections
