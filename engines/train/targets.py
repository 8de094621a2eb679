"""Anchor matching: which anchors are faces, background or ignored, and their regression targets."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.faces import box_iou
from engines.model.anchors import encode_boxes, encode_landmarks

POSITIVE_IOU = 0.35
NEGATIVE_IOU = 0.3
FORCED_MIN_IOU = 0.1  # a face's best anchor is positive if it overlaps at least this much


@dataclass(slots=True)
class AnchorTargets:
    labels: np.ndarray  # (A,) int64: 1 face, 0 background, -1 ignored
    box: np.ndarray  # (A, 4) float32 encoded offsets (valid where labels == 1)
    landmarks: np.ndarray  # (A, 10) float32


def match_anchors(anchors_cxcywh: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                  ignore: np.ndarray) -> AnchorTargets:
    """SSD matching with forced best anchors; anchors on ignored faces are ignored."""
    n_anchors = len(anchors_cxcywh)
    labels = np.zeros(n_anchors, np.int64)
    box_t = np.zeros((n_anchors, 4), np.float32)
    lmk_t = np.zeros((n_anchors, 10), np.float32)
    if len(boxes) == 0:
        return AnchorTargets(labels, box_t, lmk_t)
    a = anchors_cxcywh
    anchors_xyxy = np.concatenate([a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2], 1)
    iou = box_iou(anchors_xyxy, boxes)  # (A, n)
    best_face = iou.argmax(1)
    best_iou = iou.max(1)
    best_anchor = iou.argmax(0)
    for face, anchor in enumerate(best_anchor):
        if iou[anchor, face] >= FORCED_MIN_IOU:
            best_face[anchor], best_iou[anchor] = face, 1.0
    face_ignored = ignore[best_face]
    labels[(best_iou >= NEGATIVE_IOU) & (best_iou < POSITIVE_IOU)] = -1
    pos = (best_iou >= POSITIVE_IOU) & ~face_ignored
    labels[pos] = 1
    labels[(best_iou >= NEGATIVE_IOU) & face_ignored] = -1
    if pos.any():
        anchors_t = torch.from_numpy(a[pos])
        box_t[pos] = encode_boxes(torch.from_numpy(boxes[best_face[pos]]), anchors_t).numpy()
        lmk_t[pos] = encode_landmarks(torch.from_numpy(landmarks[best_face[pos]]), anchors_t).numpy()
    return AnchorTargets(labels, box_t, lmk_t)
