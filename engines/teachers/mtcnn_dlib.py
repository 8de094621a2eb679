"""The "mtcnn-dlib" engine: MTCNN boxes and landmarks, dlib ResNet embeddings.

The seeds' teachers and the Uniface paper's Model B baseline (two networks, detection then
recognition); slow, its cost grows with the number of faces. Runs on CPU; torch's thread count is the
caller's choice (it is process-wide).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from engines.engine import EngineInfo, FaceEngine
from engines.errors import EngineUnavailable
from engines.faces import Faces
from engines.teachers.dlib_embedder import DlibEmbedder, predictor_boxes

if TYPE_CHECKING:
    from engines.teachers.mtcnn import MTCNNSettings

# kept from when this was the "cascade" engine: galleries it embedded stay valid
MODEL_ID = "cascade-mtcnn-dlib-v1"
ENGINE_NAME = "mtcnn-dlib"


class MtcnnDlibEngine(FaceEngine):
    """MTCNN + dlib; `EngineUnavailable` when dlib or the weight files are missing."""

    def __init__(self, settings: MTCNNSettings | None = None, embed: bool = True) -> None:
        try:
            from engines.teachers.mtcnn import MTCNN
        except ImportError as exc:
            raise EngineUnavailable(f"the mtcnn-dlib engine needs torch: `pip install torch` ({exc})") from exc
        self.embedder = DlibEmbedder() if embed else None
        self.detector = MTCNN(settings)
        self.info = EngineInfo(engine=ENGINE_NAME, backend="dlib", device="cpu", model_id=MODEL_ID)

    def infer(
        self,
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
        max_faces: int | None = None,
    ) -> list[Faces]:
        """Faces with boxes, scores, MTCNN landmarks and (unless embed=False) dlib embeddings."""
        results = []
        for image, faces in zip(images, self.detector.detect(images, score_threshold)):
            order = np.argsort(-faces.scores, kind="stable")
            if max_faces is not None:
                order = order[: max(0, int(max_faces))]
            faces = faces[order]
            if self.embedder is not None:
                faces.embeddings = self.embedder.embed(image, predictor_boxes(faces.boxes))
            results.append(faces)
        return results

