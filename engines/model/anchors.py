"""SSD-style anchors, generated from the feature map sizes so any input size works."""
from __future__ import annotations

import math

import torch

VARIANCES = (0.1, 0.2)  # centre and size variances of the offset encoding
MAX_LOG_SCALE = math.log(1000.0 / 16.0)  # caps exp() in decoding


def level_anchor_shapes(sizes, aspect_ratios) -> torch.Tensor:
    """(A, 2) anchor widths and heights for one level: every size x every aspect ratio (w/h)."""
    shapes = [(s * math.sqrt(r), s / math.sqrt(r)) for s in sizes for r in aspect_ratios]
    return torch.tensor(shapes, dtype=torch.float32)


def grid_anchors(height, width, stride: int, shapes: torch.Tensor) -> torch.Tensor:
    """(height*width*A, 4) anchors as cx, cy, w, h in input pixels, ordered (y, x, anchor).

    height/width may be traced tensors (ONNX export with dynamic input size).
    """
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # (HW, 1, 2)
    a = shapes.shape[0]
    wh = shapes.reshape(1, a, 2)
    return torch.cat([centres.expand(-1, a, 2), wh.expand(centres.shape[0], a, 2)], dim=-1).reshape(-1, 4)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., 4) relative to anchors (..., 4 as cx cy w h) -> boxes x1 y1 x2 y2."""
    centre = anchors[..., :2] + deltas[..., :2] * VARIANCES[0] * anchors[..., 2:]
    size = anchors[..., 2:] * torch.exp(torch.clamp(deltas[..., 2:] * VARIANCES[1], max=MAX_LOG_SCALE))
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of `decode_boxes`: boxes x1 y1 x2 y2 -> offsets relative to anchors."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-3)
    d_centre = (centre - anchors[..., :2]) / (VARIANCES[0] * anchors[..., 2:])
    d_size = torch.log(size / anchors[..., 2:]) / VARIANCES[1]
    return torch.cat([d_centre, d_size], dim=-1)


def decode_landmarks(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., 10) -> landmarks (..., 5, 2) in input pixels."""
    d = deltas.reshape(*deltas.shape[:-1], 5, 2)
    return anchors[..., None, :2] + d * VARIANCES[0] * anchors[..., None, 2:]


def encode_landmarks(landmarks: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of `decode_landmarks`: landmarks (..., 5, 2) -> offsets (..., 10)."""
    d = (landmarks - anchors[..., None, :2]) / (VARIANCES[0] * anchors[..., None, 2:])
    return d.reshape(*d.shape[:-2], 10)
