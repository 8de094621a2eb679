"""The face region's own recognition network, for configurations with `face_branch_kind` "deep"
(`DeepFaceBranch`) or "mobilenet" (`MobileNetFaceBranch`).

Uniface's face branch is two conv-ReLU-pool stages over the pooled region. The seed paper
("End-to-end spatial transform face detection and recognition") measured that a network which
shares only the early stages with the detector and keeps a real recognition network on the
aligned region features recognises better than one sharing less or more. This branch is that
network at a size a CPU can run per face: the aligned region (ArcFace's chip geometry, sampled
at `face_roi`) goes through two separable stages with residual blocks down to a 7 x 7 map (the
map that hints from SFace's last convolution teach, `engines.train.hints`), then a global
depthwise convolution (MobileFaceNet's GDC: every cell keeps its own weight, where an average
pool would blur where on the face a feature is) and a linear layer to the 512-D face feature.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.model.layers import ResidualSeparable, SeparableConv
from engines.model.mobilenet_v2 import CHANNELS_AT, ConvBNReLU6, MobileNetV2Features

FACE_FEATURES = 512  # as the two-stage branch's flattened face feature: the projection is unchanged


@dataclass(frozen=True)
class FaceMaps:
    """A face branch's maps of each face, for training's hints: `input`, what its first layer of
    recognition takes (R, c, roi, roi; with face pixels, the projection of F_r alone), and `output`,
    its last map before the global depthwise conv."""

    input: torch.Tensor
    output: torch.Tensor


class FaceBatchNorm(nn.BatchNorm2d):
    """Batch norm over per-face values that uses its running statistics when a training batch
    holds one face: a step's full-image stream can bring a single face, and one value per
    channel has no batch statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class DeepFaceBranch(nn.Module):
    """Aligned face region (R, C, roi, roi) -> (R, 512) face feature, and its `FaceMaps` (input: the
    region; output: the (R, c2, roi/4, roi/4) map)."""

    def __init__(self, cin: int, channels: tuple[int, int], blocks: tuple[int, int], roi: int,
                 features: int = FACE_FEATURES):
        super().__init__()
        c1, c2 = channels
        self.stage1 = nn.Sequential(SeparableConv(cin, c1), nn.MaxPool2d(2), *(ResidualSeparable(c1) for _ in range(blocks[0])))
        self.stage2 = nn.Sequential(SeparableConv(c1, c2), nn.MaxPool2d(2), *(ResidualSeparable(c2) for _ in range(blocks[1])))
        side = roi // 4
        self.gdc = nn.Sequential(nn.Conv2d(c2, c2, side, groups=c2, bias=False), FaceBatchNorm(c2))
        self.out = nn.Linear(c2, features)
        self.map_channels = c2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, FaceMaps]:
        fmap = self.stage2(self.stage1(x))
        return self.out(self.gdc(fmap).flatten(1)), FaceMaps(x, fmap)


class MobileNetFaceBranch(nn.Module):
    """Aligned face region (R, C, roi, roi) -> (R, 512) face feature, and its `FaceMaps` (input: the
    (R, 24, roi, roi) projection block 4 takes; output: block 13's (R, 96, roi/4, roi/4) map).

    MobileNetV2's blocks 4 to 13 (ImageNet weights, `engines.model.mobilenet_v2.init_from_imagenet`)
    take the region from stride 4 to stride 16 as they do in MobileNetV2, behind a 1x1 projection of
    F_r to the 24 channels block 4 takes (linear, as MobileNetV2's block outputs are). Then
    MobileFaceNet's head: a 1x1 conv to `width` channels, a global depthwise conv and a linear
    layer. The feasibility run in MODEL.md (ImageNet MobileNetV2 on aligned crops: 91% on LFW
    within 15 CPU-minutes, against 74% from random weights) is why the recognition branch starts
    from ImageNet's blocks rather than from random separable stages.

    pixels: also ImageNet's blocks 0-3 (`pixel_blocks`), which take the aligned chip (R, 3, 4 roi,
    4 roi) to the same (R, 24, roi, roi) layout; blocks 4-13 then take the mean of their map and the
    projection of F_r (`UnifaceConfig.face_pixels`).
    """

    def __init__(self, cin: int, width: int, roi: int, skip: tuple[int, ...] = (), features: int = FACE_FEATURES,
                 pixels: bool = False):
        super().__init__()
        self.adapt = nn.Sequential(nn.Conv2d(cin, CHANNELS_AT[4], 1, bias=False), nn.BatchNorm2d(CHANNELS_AT[4]))
        self.pixel_blocks = MobileNetV2Features(strides=(4,)) if pixels else None
        self.mobilenet = MobileNetV2Features(strides=(16,), first=4, skip=skip)
        self.expand = ConvBNReLU6(CHANNELS_AT[16], width, 1)
        side = roi // 4
        self.gdc = nn.Sequential(nn.Conv2d(width, width, side, groups=width, bias=False), FaceBatchNorm(width))
        self.out = nn.Linear(width, features)
        self.map_channels = CHANNELS_AT[16]

    def forward(self, x: torch.Tensor, chips: torch.Tensor | None = None) -> tuple[torch.Tensor, FaceMaps]:
        """x: F_r's face regions; chips: their pixels, normalised as the network's input (with
        `pixel_blocks` only)."""
        if (chips is None) != (self.pixel_blocks is None):
            raise ValueError("the face branch takes the face chips exactly when it was built with pixel blocks")
        projected = self.adapt(x)
        start = projected if chips is None else (projected + self.pixel_blocks(chips)[0]) / 2
        fmap = self.mobilenet(start)[0]
        return self.out(self.gdc(self.expand(fmap)).flatten(1)), FaceMaps(projected, fmap)
