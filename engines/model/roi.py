"""RoIAlign as bilinear sampling (`grid_sample`), so ROI pooling exports to ONNX and TensorRT.

All ROIs of all images are sampled in one call, from the N images' maps laid out as one
(`stack_feature_maps`), in either of two layouts that sample the same values:

- stacked: the maps one above the other, (1, C, N*(H+1), W), with a zero row after each image
  so that samples at a border blend with zeros as RoIAlign's zero padding would; each ROI's y
  coordinates are offset to its image, and its points beyond the zero rows are sent off the
  stack (before, a region hanging more than a cell below its image read the next image's top
  rows). Every bilinear point reads C channels. Laying it out copies the maps twice (a pad,
  then a transpose that ONNX Runtime runs even for N = 1).
- folded: the images side by side in channels, (1, N*C, H, W), a reshape that copies nothing;
  every point reads all N*C channels and each ROI then keeps its own image's C. The deployed
  graph's layout: one frame (N = 1) pays nothing for its layout, where the stacked one cost
  ~1.9 ms a 640x480 frame in ONNX Runtime (F_r and the face pixels' pad and transpose), and
  ONNX Runtime's GridSample costs ~16 ns a point and ~0.6 ns a channel, so a few frames
  batched together pay little for reading every image's channels. Training stacks: its
  batches are many small images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MapStack:
    """The feature maps of N images laid out for one `grid_sample` call."""

    data: torch.Tensor  # stacked (1, C, N*(H+1), W) or folded (1, N*C, H, W)
    image_height: torch.Tensor | int  # H: one image's map height
    channels: int  # C: one image's channels
    folded: bool


def stack_feature_maps(features: torch.Tensor, folded: bool = False) -> MapStack:
    """(N, C, H, W) -> the `MapStack` of the given layout (see the module docstring)."""
    n, c, h, w = features.shape
    if folded:
        return MapStack(features.reshape(1, -1, h, w), h, c, True)
    padded = F.pad(features, (0, 0, 0, 1))
    return MapStack(padded.permute(1, 0, 2, 3).reshape(1, c, -1, w), h, c, False)


def roi_align(
    maps: MapStack,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
    stride: int,
    sampling: int = 2,
) -> torch.Tensor:
    """Sample each box (R, 4; x1 y1 x2 y2 in input pixels) of its image's map -> (R, C, size, size).

    Each output bin averages `sampling` x `sampling` bilinear samples, like RoIAlign with that
    sampling ratio.
    """
    steps = _steps(size * sampling, boxes)
    x1, y1, x2, y2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    xs = x1 + (x2 - x1) * steps  # (R, S) input pixels
    ys = y1 + (y2 - y1) * steps
    return _sample_points(maps, xs[:, None, :], ys[:, :, None], batch_index, stride, sampling)


def sample_frames(
    maps: MapStack,
    origin: torch.Tensor,
    axis_u: torch.Tensor,
    axis_v: torch.Tensor,
    batch_index: torch.Tensor,
    size: int,
    stride: int,
    sampling: int = 2,
) -> torch.Tensor:
    """Sample each frame (origin, axis_u, axis_v: (R, 2) in input pixels; the region is
    origin + u * axis_u + v * axis_v for u, v in [0, 1]) of its image's map -> (R, C, size, size).

    `roi_align` for regions that may be turned: output row i follows axis_v, column j axis_u.
    An axis-aligned box is origin (x1, y1), axis_u (x2 - x1, 0), axis_v (0, y2 - y1).
    """
    steps = _steps(size * sampling, origin)
    points = (origin[:, None, None, :] + steps[None, None, :, None] * axis_u[:, None, None, :]
              + steps[None, :, None, None] * axis_v[:, None, None, :])  # (R, S rows, S cols, 2)
    return _sample_points(maps, points[..., 0], points[..., 1], batch_index, stride, sampling)


def _steps(n_samples: int, like: torch.Tensor) -> torch.Tensor:
    """Sample positions (n,) in (0, 1): the centres of n equal parts."""
    return (torch.arange(n_samples, dtype=like.dtype, device=like.device) + 0.5) / n_samples


def _sample_points(
    maps: MapStack,
    xs: torch.Tensor,
    ys: torch.Tensor,
    batch_index: torch.Tensor,
    stride: int,
    sampling: int,
) -> torch.Tensor:
    """Bilinear samples of each ROI's image at input-pixel points xs, ys (each (R, S, S) or
    broadcast to it: row, column), averaged over `sampling` x `sampling` blocks."""
    _, _, total_h, total_w = maps.data.shape
    c = maps.channels
    # input pixel -> feature cell coordinate (cell j is centred on (j + 0.5) * stride)
    fx = xs / stride - 0.5
    fy = ys / stride - 0.5
    if not maps.folded:
        # a point below its image's zero row, or above the previous image's, would blend in the
        # neighbouring image's rows: it is sent above the whole stack, where it reads zeros
        outside = (fy >= maps.image_height) | (fy < -1)
        fy = fy + batch_index.to(xs.dtype)[:, None, None] * (maps.image_height + 1)
        fy = torch.where(outside, torch.full_like(fy, -2.0), fy)
    gx, gy = torch.broadcast_tensors((2 * fx + 1) / total_w - 1, (2 * fy + 1) / total_h - 1)
    r, rows, cols = gx.shape
    grid = torch.stack([gx, gy], dim=-1).reshape(1, r * rows, cols, 2)
    sampled = F.grid_sample(maps.data, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if maps.folded:  # (1, N*C, R*S, S): every ROI in every image; keep each ROI's own image
        images = maps.data.shape[1] // c
        sampled = sampled.reshape(images, c, r, rows, cols).permute(2, 0, 1, 3, 4).reshape(-1, c, rows, cols)
        sampled = sampled.index_select(0, torch.arange(r, device=xs.device) * images + batch_index)
    else:
        sampled = sampled.reshape(c, r, rows, cols).permute(1, 0, 2, 3)
    if sampling > 1:
        sampled = F.avg_pool2d(sampled, sampling)
    return sampled
