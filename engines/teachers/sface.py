"""SFace (OpenCV Zoo): a MobileFaceNet giving 128-D embeddings of 5-point aligned 112x112 chips.

The file as shipped lists its weights a second time as graph inputs that no node reads;
ONNX Runtime refuses such a graph, so they are dropped in memory at load. Its batch
dimension is fixed at 1: it is made symbolic in memory, and faces go through in batches.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engines.errors import EngineUnavailable
from engines.faces import EMBEDDING_DIM
from engines.teachers.locate import SFACE_FILE, opencv_zoo_model

CHIP_SIZE = 112
# ArcFace's 112x112 template (insightface), the chips SFace was trained on
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
MAX_BATCH = 32  # faces per ONNX Runtime call: larger batches gain nothing on a CPU and cost memory


def _loadable_graph(path: Path, dynamic_batch: bool = True) -> bytes:
    """The ONNX file with its unread inputs removed (and a symbolic batch dimension)."""
    import onnx

    model = onnx.load(str(path))
    read = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.input if i.name in read]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    if dynamic_batch:
        for value in [*model.graph.input[:1], *model.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        del model.graph.value_info[:]  # shapes inferred for batch 1 would contradict the new input
    return model.SerializeToString()


def similarity_transform(landmarks: np.ndarray, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray | None:
    """The 2x3 similarity (rotation, one scale, shift) taking 5 landmarks onto the template.

    Least squares (Umeyama, no reflection), as insightface's `norm_crop`. None when the
    landmarks are degenerate (all in one point, or not finite).
    """
    src = np.asarray(landmarks, np.float64).reshape(5, 2)
    dst = np.asarray(template, np.float64).reshape(5, 2)
    if not np.isfinite(src).all():
        return None
    src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
    norm = (src_c ** 2).sum()
    if norm < 1e-6:
        return None
    a = (src_c * dst_c).sum() / norm
    b = (src_c[:, 0] * dst_c[:, 1] - src_c[:, 1] * dst_c[:, 0]).sum() / norm
    rot = np.array([[a, -b], [b, a]])
    shift = dst.mean(0) - rot @ src.mean(0)
    return np.concatenate([rot, shift[:, None]], axis=1)


def align_chip(image_bgr: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray | None:
    """The 112x112 RGB uint8 chip SFace sees for one face (5 landmarks); None if it cannot be aligned.

    matrix: a 2x3 transform from image to chip to use instead of the landmarks' own (training
    views compose their jitter with it). Parts of the chip outside the image are black, as in
    the chips SFace was trained on.
    """
    m = similarity_transform(landmarks) if matrix is None else np.asarray(matrix, np.float64)
    if m is None:
        return None
    chip = cv2.warpAffine(image_bgr, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return cv2.cvtColor(chip, cv2.COLOR_BGR2RGB)


class SFaceEmbedder:
    """128-D unit embeddings of aligned chips; one instance is safe to share between threads."""

    def __init__(self, model_dir: Path | None = None, threads: int | None = None) -> None:
        path = opencv_zoo_model(SFACE_FILE, model_dir)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineUnavailable(f"SFace needs ONNX Runtime: `pip install onnxruntime` ({exc})") from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the file's leftover shape constants make warnings, not errors
        # fold the int8 weights into float ones once at load instead of dequantising them on every
        # call: ~25% less time a face, embeddings equal within 2e-6
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(_loadable_graph(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx/ORT raise their own types for a file they cannot read
            raise EngineUnavailable(f"ONNX Runtime cannot load SFace from {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def chips(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Aligned chips (k, 112, 112, 3) RGB uint8 for landmarks (n, 5, 2), and the (n,) mask of
        faces that could be aligned (k = mask.sum())."""
        chips, ok = [], []
        for points in np.asarray(landmarks, np.float32).reshape(-1, 5, 2):
            chip = align_chip(image_bgr, points)
            ok.append(chip is not None)
            if chip is not None:
                chips.append(chip)
        stack = np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        return stack, np.asarray(ok, bool)

    def embed_chips(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 128) float32 unit vectors for RGB uint8 chips (n, 112, 112, 3)."""
        chips = np.asarray(chips, np.uint8).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3)
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        out = []
        for start in range(0, len(chips), MAX_BATCH):
            batch = chips[start:start + MAX_BATCH].transpose(0, 3, 1, 2).astype(np.float32)
            with self._lock:  # one ORT session: concurrent runs would only fight for the same cores
                out.append(self._session.run(None, {self._input: batch})[0])
        emb = np.concatenate(out).astype(np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def embed(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (k, 128) of the faces whose landmarks (n, 5, 2) could be aligned, and that mask (n,)."""
        chips, ok = self.chips(image_bgr, landmarks)
        return self.embed_chips(chips), ok
