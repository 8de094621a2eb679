"""PyTorch backend: the reference implementation, CPU or CUDA, FP32 or FP16 (autocast)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from engines.engine import EngineInfo
from engines.errors import EngineUnavailable
from engines.backends.uniface import UnifaceBackend
from engines.preprocess import RawOutputs
from engines.model.config import SHIPPED_CONFIG

PRECISIONS = ("fp32", "fp16")


class TorchBackend(UnifaceBackend):
    """Runs the network module itself (same graph as the ONNX export).

    precision: "fp32" (default) or "fp16": the graph runs under `torch.autocast` with float16,
    so convolutions run in half precision while softmax, box decoding and NMS stay in float32
    (autocast's own op lists); outputs are float32 either way.
    """

    def __init__(
        self,
        config: str = SHIPPED_CONFIG,
        weights: Path | None = None,
        device: str = "cpu",
        input_size: tuple[int, int] | None = None,
        precision: str = "fp32",
        **_: object,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        try:
            import torch
        except ImportError as exc:
            raise EngineUnavailable("torch is not installed") from exc
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineUnavailable("torch has no CUDA device here")
        from engines.model.weights import load_model

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        model, meta = load_model(config, weights)
        self.model = model.to(self.device)
        info = EngineInfo(
            engine="uniface",
            backend="torch",
            device=str(self.device),
            model_id=meta.model_id,
            random_weights=meta.random_weights,
            input_size=tuple(input_size or model.cfg.input_size),
        )
        super().__init__(info, max_faces=model.cfg.max_faces, score_threshold=meta.detection_threshold)

    def _autocast(self):
        if self.precision == "fp16":
            return self.torch.autocast(self.device.type, dtype=self.torch.float16)
        return contextlib.nullcontext()

    def _run(self, batch: np.ndarray, score_threshold: float, max_faces: int) -> RawOutputs:
        torch = self.torch
        with torch.inference_mode(), self._autocast():
            images = torch.from_numpy(batch).to(self.device, non_blocking=True)
            thr = torch.tensor([score_threshold], dtype=torch.float32, device=self.device)
            k = torch.tensor([max_faces], dtype=torch.int32, device=self.device)
            outputs = self.model(images, thr, k)
        return RawOutputs(*(t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy() for t in outputs))

    def close(self) -> None:
        self.model = None
