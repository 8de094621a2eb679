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
    steps = _steps(size * sampling, boxes)
    x1, y1, x2, y2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    xs = x1 + (x2 - x1) * steps  # (R, S) input pixels
    ys = y1 + (y2 - y1) * steps
    return _sample_points(stacked, image_height, xs[:, None, :], ys[:, :, None], batch_index, stride, sampling)


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
    steps = _steps(size * sampling, origin)
    points = (origin[:, None, None, :] + steps[None, None, :, None] * axis_u[:, None, None, :]
              + steps[None, :, None, None] * axis_v[:, None, None, :])  # (R, S rows, S cols, 2)
    return _sample_points(stacked, image_height, points[..., 0], points[..., 1], batch_index, stride, sampling)


def _steps(n_samples: int, like: torch.Tensor) -> torch.Tensor:
    """Sample positions (n,) in (0, 1): the centres of n equal parts."""
    return (torch.arange(n_samples, dtype=like.dtype, device=like.device) + 0.5) / n_samples


def _sample_points(
    stacked: torch.Tensor,
    image_height: torch.Tensor | int,
    xs: torch.Tensor,
    ys: torch.Tensor,
    batch_index: torch.Tensor,
    stride: int,
    sampling: int,
) -> torch.Tensor:
    """Bilinear samples of the stacked map at input-pixel points xs, ys (each (R, S, S) or
    broadcast to it: row, column), averaged over `sampling` x `sampling` blocks."""
    _, c, total_h, total_w = stacked.shape
    # input pixel -> feature cell coordinate (cell j is centred on (j + 0.5) * stride)
    fx = xs / stride - 0.5
    fy = ys / stride - 0.5 + batch_index.to(xs.dtype)[:, None, None] * (image_height + 1)
    gx, gy = torch.broadcast_tensors((2 * fx + 1) / total_w - 1, (2 * fy + 1) / total_h - 1)
    r, rows, cols = gx.shape
    grid = torch.stack([gx, gy], dim=-1).reshape(1, r * rows, cols, 2)
    sampled = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(c, r, rows, cols).permute(1, 0, 2, 3)
    if sampling > 1:
        sampled = F.avg_pool2d(sampled, sampling)
    return sampled
