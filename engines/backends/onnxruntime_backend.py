"""ONNX Runtime backend: CPU everywhere, CUDA when the onnxruntime-gpu provider is present."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engines.engine import EngineInfo
from engines.errors import EngineUnavailable
from engines.backends.uniface import UnifaceBackend
from engines.model.config import SHIPPED_CONFIG, get_config
from engines.model.detection_threshold import threshold_from_metadata
from engines.model.onnx_file import resolve_onnx
from engines.preprocess import RawOutputs

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(UnifaceBackend):
    """Runs the exported graph with ONNX Runtime."""

    def __init__(
        self,
        config: str = SHIPPED_CONFIG,
        weights: Path | None = None,
        cache_dir: Path | None = None,
        device: str = "cpu",
        input_size: tuple[int, int] | None = None,
        threads: int | None = None,
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineUnavailable("onnxruntime is not installed (pip install onnxruntime)") from exc
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EngineUnavailable("onnxruntime has no CUDA provider here (needs onnxruntime-gpu and a GPU)")
            providers.insert(0, "CUDAExecutionProvider")
        cfg = get_config(config)
        path, meta = resolve_onnx(config, weights, cache_dir)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        if device.startswith("cuda") and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise EngineUnavailable("onnxruntime could not start its CUDA provider")
        info = EngineInfo(
            engine="uniface",
            backend="onnxruntime",
            device=device,
            model_id=meta.get("model_id", "unknown"),
            random_weights=meta.get("random_weights") == "True",
            input_size=tuple(input_size or cfg.input_size),
        )
        super().__init__(info, max_faces=cfg.max_faces,
                         score_threshold=threshold_from_metadata(meta, f"the metadata of {path}"))
        self.onnx_path = path

    def _run(self, batch: np.ndarray, score_threshold: float, max_faces: int) -> RawOutputs:
        outputs = self.session.run(
            None,
            {
                "images": batch,
                "score_threshold": np.array([score_threshold], np.float32),
                "max_faces": np.array([max_faces], np.int32),
            },
        )
        return RawOutputs(*outputs)

    def close(self) -> None:
        self.session = None
