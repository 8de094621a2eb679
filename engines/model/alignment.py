"""Landmark-aligned face frames: where landmark attention samples F_r when a configuration
has a face template.

The teacher embeds a face from a chip aligned on its landmarks (upright, fixed scale). An
axis-aligned box gives the student a tilted face wherever the head is tilted, and a face
whose position in the box varies with the detector's box. A frame fitted to the 5 landmarks
(a similarity: shift, rotation, one scale) gives the student the teacher's view instead,
with the same cost: the sampling grid is only rotated.

A frame is (origin, axis_u, axis_v) in input pixels: face-frame point (u, v) lies at
origin + u * axis_u + v * axis_v; axis_v is axis_u turned 90 degrees, the same length.
The template holds the 5 landmarks in face-frame units, where the face region is
[0, 1] x [0, aspect].
"""
from __future__ import annotations

import numpy as np
import torch

from engines.faces import FLIP_ORDER


def fit_frames(landmarks: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity from the template (5, 2) onto each face's landmarks (R, 5, 2).

    Returns origin, axis_u, axis_v, each (R, 2). Closed form (Umeyama without reflection):
    only means, sums and products, so it exports to ONNX as plain arithmetic.
    """
    t_mean = template.mean(0)
    t = template - t_mean  # (5, 2)
    p_mean = landmarks.mean(1)  # (R, 2)
    p = landmarks - p_mean[:, None, :]
    norm = (t * t).sum()
    # axis_u = (a, b): a = sum(t . p) / |t|^2, b = sum(t x p) / |t|^2
    a = (t[None, :, 0] * p[..., 0] + t[None, :, 1] * p[..., 1]).sum(1) / norm
    b = (t[None, :, 0] * p[..., 1] - t[None, :, 1] * p[..., 0]).sum(1) / norm
    axis_u = torch.stack([a, b], dim=1)
    axis_v = torch.stack([-b, a], dim=1)
    origin = p_mean - t_mean[0] * axis_u - t_mean[1] * axis_v
    return origin, axis_u, axis_v


def fit_teacher_frames(landmarks: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frames (origin, axis_u, axis_v, each (R, 2)) of the teacher's chips: the inverse of the
    least-squares similarity from each face's landmarks onto the template, as SFace's alignment
    fits it (`engines.teachers.sface.similarity_transform`). `fit_frames` fits the other way, and
    where 5 landmarks do not fit a similarity exactly the two differ a little in scale and turn."""
    t_mean = template.mean(0)
    t = template - t_mean
    p_mean = landmarks.mean(1)
    p = landmarks - p_mean[:, None, :]
    # floors only for landmarks all on one point (the network's throwaway face), which have no
    # similarity to invert: a zero frame there, as `fit_frames` gives, instead of NaN
    norm = (p * p).sum((1, 2)).clamp(min=1e-12)
    # template ~ [[a, -b], [b, a]] landmarks; its inverse's columns are the frame's axes
    a = (p[..., 0] * t[None, :, 0] + p[..., 1] * t[None, :, 1]).sum(1) / norm
    b = (p[..., 0] * t[None, :, 1] - p[..., 1] * t[None, :, 0]).sum(1) / norm
    scale = (a * a + b * b).clamp(min=1e-12)
    axis_u = torch.stack([a, -b], dim=1) / scale[:, None]
    axis_v = torch.stack([b, a], dim=1) / scale[:, None]
    origin = p_mean - t_mean[0] * axis_u - t_mean[1] * axis_v
    return origin, axis_u, axis_v


def landmark_frames(
    centres: torch.Tensor, axis_u: torch.Tensor, axis_v: torch.Tensor, side: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Square frames of `side` face-frame units centred on centres (R, M, 2), turned with the
    face: returns origin, axis_u, axis_v, each (R, M, 2)."""
    u = side * axis_u[:, None, :].expand_as(centres)
    v = side * axis_v[:, None, :].expand_as(centres)
    return centres - (u + v) / 2, u, v


def measure_template(boxes: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The mean face in box units: landmarks (n, 5, 2) relative to their boxes (n, 4), both
    coordinates divided by the box width, averaged with their mirror images; and the mean
    box height / width.

    With this template the fitted frame of an upright, average face is its box, so a model
    trained on boxes starts from where it was. Averaging in the mirror images makes it
    left-right symmetric, so that a flipped face's frame is the flipped frame.
    """
    boxes = np.asarray(boxes, np.float64)
    landmarks = np.asarray(landmarks, np.float64)
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    keep = (width > 1) & (height > 1)
    if not keep.any():
        raise ValueError("no boxes to measure a face template from")
    rel = (landmarks[keep] - boxes[keep, None, :2]) / width[keep, None, None]
    mirrored = rel[:, FLIP_ORDER].copy()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    return (rel.mean(0) + mirrored.mean(0)) / 2, float((height[keep] / width[keep]).mean())
