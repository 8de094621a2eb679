"""YuNet (OpenCV Zoo): boxes, 5 landmarks and a score for every face, any image size.

Run through OpenCV's `FaceDetectorYN`, which decodes YuNet's anchor-free outputs and applies
NMS. Its landmark order (the subject's right eye first) is the project's: the left eye as
seen in the image first.
"""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from engines.errors import EngineUnavailable
from engines.faces import Faces
from engines.teachers.locate import YUNET_FILE, opencv_zoo_model

DEFAULT_SCORE_THRESHOLD = 0.7
NMS_THRESHOLD = 0.3
TOP_K = 5000  # candidates kept before NMS (WIDER crowds need thousands at a low threshold)
# with a face limit, this many candidates per face kept before NMS (at least MIN_TOP_K): NMS over
# every anchor at threshold 0 costs as much as the network (1,464 boxes on the bench frame)
TOP_K_PER_FACE, MIN_TOP_K = 8, 256
# images smaller than this on a side hold no face YuNet can find (its smallest anchors are ~10 px):
# they get no detector call (OpenCV pads any other size to multiples of 32 itself)
MIN_SIDE = 16


class YuNetDetector:
    """Faces (no embeddings) in BGR uint8 images; one instance is safe to share between threads."""

    def __init__(self, model_dir: Path | None = None, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> None:
        path = opencv_zoo_model(YUNET_FILE, model_dir)
        # OpenCV 5 warns on every load that its new graph engine ignores the preferred target
        # (CPU is the only one asked for): a line the user can do nothing about
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), float(score_threshold),
                                                  NMS_THRESHOLD, TOP_K)
        except cv2.error as exc:
            raise EngineUnavailable(f"OpenCV cannot load YuNet from {path}: {exc}") from exc
        finally:
            cv2.utils.logging.setLogLevel(previous)
        self.score_threshold = float(score_threshold)
        self._lock = threading.Lock()
        self._size: tuple[int, int] | None = None
        self._threshold = float(score_threshold)
        self._top_k = TOP_K

    def detect(self, image: np.ndarray, score_threshold: float | None = None, max_faces: int | None = None) -> Faces:
        """Faces in one BGR uint8 image (h, w, 3), sorted by score, highest first (at most
        `max_faces`, when given)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (h, w, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if h < MIN_SIDE or w < MIN_SIDE:
            return Faces.empty(with_embeddings=False)
        # OpenCV refuses negative thresholds; "every box" (bench forcing faces) is 0 here
        threshold = self.score_threshold if score_threshold is None else max(0.0, float(score_threshold))
        with self._lock:
            if self._size != (w, h):
                self._net.setInputSize((w, h))
                self._size = (w, h)
            if self._threshold != threshold:
                self._net.setScoreThreshold(threshold)
                self._threshold = threshold
            top_k = TOP_K if max_faces is None else min(TOP_K, max(MIN_TOP_K, TOP_K_PER_FACE * int(max_faces)))
            if self._top_k != top_k:
                self._net.setTopK(top_k)
                self._top_k = top_k
            _, rows = self._net.detect(np.ascontiguousarray(image))
        if rows is None or len(rows) == 0:
            return Faces.empty(with_embeddings=False)
        rows = rows[np.argsort(-rows[:, 14], kind="stable")][: None if max_faces is None else max(0, int(max_faces))]
        boxes = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        return Faces(boxes=boxes, scores=np.clip(rows[:, 14], 0, 1), landmarks=rows[:, 4:14].reshape(-1, 5, 2))
