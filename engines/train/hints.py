"""Dense hints: the deep face branch's 7 x 7 map is taught SFace's own 7 x 7 map of the same view.

The 128-D embedding tells the student little per face: how the teacher got there is in its
feature maps (FitNets, Romero et al. 2015; ShrinkTeaNet, Duong et al. 2019). For every face of
the view stream, SFace runs on the chip it embedded for the stored target (the view, aligned on
the view's landmarks), and its last convolution's map (`conv_14`, 1024 x 7 x 7) is the target of
the student's last face-branch map (c x 7 x 7, same chip region since the branch samples the
ArcFace chip's frame) through a training-only 1 x 1 regressor. The teacher's map is
standardised per channel over the batch, so no channel's scale dominates the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.train.sface_teacher import SFaceTeacher

HINT_TAP = "conv_14"


class HintTeacher(nn.Module):
    """SFace (frozen, run in bfloat16 on the CPU) and the regressor from the student's map to its tap.

    sface: the training's one SFace module, built with `tap` among its taps (channels-last on the
    CPU: the live targets share it)."""

    def __init__(self, sface: SFaceTeacher, student_channels: int, tap: str = HINT_TAP, bf16: bool = True):
        super().__init__()
        if tap not in sface.taps:
            raise ValueError(f"the SFace module does not return {tap}; build it with taps=({tap!r},)")
        self.sface = sface
        self.tap = tap
        self.bf16 = bf16
        self.regressor = nn.Conv2d(student_channels, sface.channels(tap), 1)

    @torch.no_grad()
    def targets(self, chips: torch.Tensor) -> torch.Tensor:
        """SFace's tap for chips (R, 3, 112, 112), float32, standardised per channel over the batch."""
        device = self.regressor.weight.device
        x = chips.to(device)
        if self.bf16 and device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and device.type == "cpu"):
            _, taps = self.sface(x)
        t = taps[self.tap].float()
        mean = t.mean((0, 2, 3), keepdim=True)
        std = t.std((0, 2, 3), keepdim=True) if len(t) > 1 else torch.ones_like(mean)
        return (t - mean) / (std + 1e-3)

    def loss(self, student_map: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error between the regressed student map and the standardised target; the
        student's map is resized to the target's grid if the two differ."""
        if len(student_map) == 0:
            return student_map.sum() * 0
        pred = self.regressor(student_map.float())
        if pred.shape[-2:] != target.shape[-2:]:
            pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(pred, target)
