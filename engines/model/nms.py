"""Batched non-maximum suppression made of plain tensor ops, so it exports to ONNX as is."""
from __future__ import annotations

import torch


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in a (..., n, 4) with every box in b (..., m, 4) -> (..., n, m)."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter + 1e-9)


def cluster_nms(boxes: torch.Tensor, iou_threshold: float, iterations: int) -> torch.Tensor:
    """Greedy NMS for score-sorted boxes (N, M, 4) -> keep mask (N, M), as matrix rounds.

    Cluster-NMS: box i is suppressed when a kept, higher-scored box overlaps it by more
    than the threshold; repeating the round converges to exactly the greedy result, in
    as many rounds as the longest chain of suppressions (a few for faces; `iterations`
    bounds it because the exported graph has to unroll the loop).
    """
    m = boxes.shape[1]
    iou = box_iou(boxes, boxes)
    upper = torch.triu(torch.ones(m, m, dtype=torch.bool, device=boxes.device), diagonal=1)
    overlaps = ((iou > iou_threshold) & upper).to(boxes.dtype)  # [j, i]: j higher-scored
    keep = torch.ones(boxes.shape[:2], dtype=boxes.dtype, device=boxes.device)
    for _ in range(iterations):
        suppressed = (overlaps * keep[:, :, None]).amax(dim=1)
        keep = 1.0 - suppressed
    return keep > 0.5

