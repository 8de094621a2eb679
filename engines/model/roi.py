"""RoIAlign as bilinear sampling (`grid_sample`), so ROI pooling exports to ONNX and TensorRT.

All ROIs of all images are sampled in one call: the batch of feature maps is stacked into
one tall map, with a zero row between images so samples at a border blend with zeros as
RoIAlign's zero padding would, and each ROI's y coordinates are offset to its image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def stack_feature_maps(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (1, C, N*(H+1), W): images one above the other, a zero row after each."""
    padded = F.pad(features, (0, 0, 0, 1))
    n, c, h1, w = padded.shape
    return padded.permute(1, 0, 2, 3).reshape(1, c, n * h1, w)


def roi_align(
    stacked: torch.Tensor,
    image_height: torch.Tensor | int,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
    stride: int,
    sampling: int = 2,
) -> torch.Tensor:
    """Sample each box (R, 4; x1 y1 x2 y2 in input pixels) of a stacked map -> (R, C, size, size).

    image_height: H of one feature map before stacking. Each output bin averages
    `sampling` x `sampling` bilinear samples, like RoIAlign with that sampling ratio.
    """
    r = boxes.shape[0]
    _, c, total_h, total_w = stacked.shape
    n_samples = size * sampling
    steps = (torch.arange(n_samples, dtype=boxes.dtype, device=boxes.device) + 0.5) / n_samples
    x1, y1, x2, y2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    xs = x1 + (x2 - x1) * steps  # (R, S) input pixels
    ys = y1 + (y2 - y1) * steps
    # input pixel -> feature cell coordinate (cell j is centred on (j + 0.5) * stride)
    fx = xs / stride - 0.5
    fy = ys / stride - 0.5 + batch_index.to(boxes.dtype)[:, None] * (image_height + 1)
    gx = (2 * fx + 1) / total_w - 1
    gy = (2 * fy + 1) / total_h - 1
    grid = torch.stack(
        [gx[:, None, :].expand(r, n_samples, n_samples), gy[:, :, None].expand(r, n_samples, n_samples)], dim=-1
    ).reshape(1, r * n_samples, n_samples, 2)
    sampled = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(c, r, n_samples, n_samples).permute(1, 0, 2, 3)
    if sampling > 1:
        sampled = F.avg_pool2d(sampled, sampling)
    return sampled


def sample_frames(
    stacked: torch.Tensor,
    image_height: torch.Tensor | int,
    origin: torch.Tensor,
    axis_u: torch.Tensor,
    axis_v: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
    stride: int,
    sampling: int = 2,
) -> torch.Tensor:
    """Sample each frame (origin, axis_u, axis_v: (R, 2) in input pixels; the region is
    origin + u * axis_u + v * axis_v for u, v in [0, 1]) of a stacked map -> (R, C, size, size).

    `roi_align` for regions that may be turned: output row i follows axis_v, column j axis_u.
    An axis-aligned box is origin (x1, y1), axis_u (x2 - x1, 0), axis_v (0, y2 - y1).
    """
    r = origin.shape[0]
    _, c, total_h, total_w = stacked.shape
    n_samples = size * sampling
    steps = (torch.arange(n_samples, dtype=origin.dtype, device=origin.device) + 0.5) / n_samples
    points = (origin[:, None, None, :] + steps[None, None, :, None] * axis_u[:, None, None, :]
              + steps[None, :, None, None] * axis_v[:, None, None, :])  # (R, S rows, S cols, 2)
    fx = points[..., 0] / stride - 0.5
    fy = points[..., 1] / stride - 0.5 + batch_index.to(origin.dtype)[:, None, None] * (image_height + 1)
    grid = torch.stack([(2 * fx + 1) / total_w - 1, (2 * fy + 1) / total_h - 1], dim=-1)
    sampled = F.grid_sample(stacked, grid.reshape(1, r * n_samples, n_samples, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(c, r, n_samples, n_samples).permute(1, 0, 2, 3)
    if sampling > 1:
        sampled = F.avg_pool2d(sampled, sampling)
    return sampled
