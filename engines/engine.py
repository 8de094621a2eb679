"""The one interface every face engine implements (single-shot backends, the cascade, the
teachers): BGR frames in, `Faces` out. Its errors are in `engines.errors`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engines.faces import Faces


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What is running: shown in the GUI status bar and in every JSON output."""

    engine: str  # "uniface" (single-shot) or "cascade" (MTCNN + dlib)
    backend: str  # "onnxruntime", "torch", "tensorrt", "dlib", ...
    device: str  # "cpu", "cuda:0", ...
    model_id: str  # identifies the weights that make embeddings (gallery compatibility)
    random_weights: bool = False
    input_size: tuple[int, int] | None = None  # network input (w, h), None = native size


class FaceEngine(ABC):
    """Detects faces, their 5 landmarks and 128-D embeddings in BGR uint8 images."""

    info: EngineInfo

    @abstractmethod
    def infer(
        self,
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
        max_faces: int | None = None,
    ) -> list[Faces]:
        """One `Faces` per image, in that image's pixel coordinates.

        images: BGR uint8 arrays of shape (h, w, 3); sizes may differ.
        score_threshold: minimum detection score (None = the engine's default).
        max_faces: keep at most this many faces per image (None = the engine's maximum).
        """

    def close(self) -> None:
        """Release sessions, threads and device memory."""

    def __enter__(self) -> "FaceEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
