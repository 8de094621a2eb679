"""dlib's ResNet face descriptor (99.38% LFW) on boxes found by another detector.

Per box: dlib's 5-point shape predictor, a 150x150 aligned chip (padding 0.25), then the
128-D descriptor, L2-normalised so the gallery's cosine similarity applies.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from engines.backends.base import EngineUnavailable
from engines.faces import EMBEDDING_DIM
from engines.teachers.locate import DLIB_RESNET_FILE, DLIB_SHAPE_FILE, dlib_weights

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def import_dlib():
    """The dlib module, or `EngineUnavailable` naming the pip package."""
    try:
        import dlib
    except ImportError as exc:
        raise EngineUnavailable(f"dlib is not installed: `pip install dlib-bin` ({exc})") from exc
    return dlib


class DlibEmbedder:
    """128-D unit embeddings for face boxes in BGR images."""

    def __init__(self) -> None:
        self._dlib = import_dlib()
        paths = dlib_weights()
        self._shape = self._dlib.shape_predictor(str(paths[DLIB_SHAPE_FILE]))
        self._resnet = self._dlib.face_recognition_model_v1(str(paths[DLIB_RESNET_FILE]))

    def chips(self, image_bgr: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """The aligned 150x150 RGB chip dlib's ResNet sees for each box (n, 4) x1 y1 x2 y2."""
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
            shape = self._shape(rgb, rect)
            out.append(self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
        return out

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 128) float32 unit vectors, one per box."""
        chips = self.chips(image_bgr, boxes)
        return self.embed_chips(chips)

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 128) float32 unit vectors for aligned RGB chips from `chips`."""
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        desc = np.asarray([np.asarray(d) for d in self._resnet.compute_face_descriptor(list(chips))], np.float32)
        return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
