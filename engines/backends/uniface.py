"""Shared front end of every single-shot backend: letterbox, run the graph, map back."""
from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Sequence

import numpy as np

from engines.engine import EngineInfo, FaceEngine
from engines.faces import Faces
from engines.model.detection_threshold import DEFAULT_DETECTION_THRESHOLD
from engines.preprocess import RawOutputs, batch_buffer, letterbox_batch, to_faces

# Frames smaller than the input are placed at their own size, not enlarged: enlarging adds no
# detail and pushes faces past the sizes the network was taught (LFW's 250x250 photos would
# arrive 1.92x enlarged at 640x480, faces ~210 px; measured: README, model card).
DEFAULT_MAX_UPSCALE = 1.0


class UnifaceBackend(FaceEngine):
    """A single-shot Uniface graph behind some runtime; subclasses implement `_run`.

    Graph contract (the ONNX file and every runtime agree on it):
      inputs  images (N, H, W, 3) uint8 BGR, score_threshold (1,) float32, max_faces (1,) int32
      outputs boxes (N, K, 4), scores (N, K), landmarks (N, K, 5, 2), embeddings (N, K, 128)
              float32 in input pixels, count (N,) int32; faces sorted by score, valid first.
    """

    def __init__(self, info: EngineInfo, max_faces: int, score_threshold: float = DEFAULT_DETECTION_THRESHOLD,
                 max_upscale: float = DEFAULT_MAX_UPSCALE):
        self.info = info
        self.max_faces = max_faces
        self.score_threshold = score_threshold
        self.max_upscale = max_upscale
        self._local = threading.local()  # per-thread staging buffer

    @property
    def input_size(self) -> tuple[int, int]:
        assert self.info.input_size is not None
        return self.info.input_size

    def infer(
        self,
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
        max_faces: int | None = None,
    ) -> list[Faces]:
        if len(images) == 0:
            return []
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        k = self.max_faces if max_faces is None else max(0, min(int(max_faces), self.max_faces))
        batch, placements = letterbox_batch(images, self.input_size, self._staging(len(images)), self.max_upscale)
        raw = self._run(batch, thr, k)
        return to_faces(raw, placements)

    def _staging(self, n: int) -> np.ndarray:
        """This thread's reusable letterbox buffer, grown to hold at least `n` images."""
        self._local.staging = batch_buffer(getattr(self._local, "staging", None), n, self.input_size)
        return self._local.staging

    @abstractmethod
    def _run(self, batch: np.ndarray, score_threshold: float, max_faces: int) -> RawOutputs:
        """Run the graph on a letterboxed uint8 batch (N, H, W, 3)."""
