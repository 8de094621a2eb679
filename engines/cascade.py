"""The "cascade" engine, the product's accurate one: YuNet finds faces and their 5 landmarks,
SFace embeds each 5-point aligned chip (99.3% on LFW).

Both run in native code that releases the GIL (OpenCV's DNN, ONNX Runtime), so the window
can run it in a thread. Cost: one YuNet pass per frame plus one SFace pass per face.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from engines.engine import EngineInfo, FaceEngine
from engines.faces import Faces
from engines.teachers.sface import SFaceEmbedder
from engines.teachers.yunet import DEFAULT_SCORE_THRESHOLD, YuNetDetector

ENGINE_NAME = "cascade"
MODEL_ID = "cascade-yunet-sface-v1"


class CascadeEngine(FaceEngine):
    """YuNet + SFace; `EngineUnavailable` when a model file is missing or altered."""

    def __init__(self, embed: bool = True, model_dir: Path | None = None,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> None:
        self.detector = YuNetDetector(model_dir, score_threshold)
        self.embedder = SFaceEmbedder(model_dir) if embed else None
        self.score_threshold = float(score_threshold)
        self.info = EngineInfo(engine=ENGINE_NAME, backend="opencv+onnxruntime", device="cpu", model_id=MODEL_ID)

    def infer(
        self,
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
        max_faces: int | None = None,
    ) -> list[Faces]:
        """Faces with boxes, scores, YuNet landmarks and (unless embed=False) SFace embeddings.

        A face whose landmarks cannot be aligned (degenerate points) is left out rather than
        given an embedding of nothing.
        """
        results = []
        for image in images:
            faces = self.detector.detect(image, score_threshold, max_faces)
            if self.embedder is not None:
                embeddings, aligned = self.embedder.embed(image, faces.landmarks)
                faces = faces[aligned]
                faces.embeddings = embeddings
            results.append(faces)
        return results
