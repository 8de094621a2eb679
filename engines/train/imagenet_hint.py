"""The ImageNet input hint: the MobileNetV2 face branch's input is taught ImageNet's own map of the chip.

`MobileNetFaceBranch` is ImageNet's MobileNetV2 blocks 4 to 13. In MobileNetV2 they take what
blocks 0 to 3 make of the image; in the student they take a 1 x 1 projection of F_r sampled over
the face's chip region, which starts out random, so their ImageNet weights first see inputs
unlike any they learnt from. This hint teaches that projection ImageNet's blocks 0-3 map of the
aligned 112 px chip (24 x 28 x 28: the branch samples the chip's region at 28 x 28 cells, cell
for cell), so that the branch computes what ImageNet's MobileNetV2 computes on the aligned face:
the start that reached 91% on LFW within 15 CPU-minutes in MODEL.md's feasibility run. The loss
is the squared error scaled per channel by the target's spread over the batch (the values
themselves are matched, not only their pattern: blocks 4-13 read them as they are).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engines.model.mobilenet_v2 import MobileNetV2Features, load_imagenet
from engines.model.network import PIXEL_MEAN, PIXEL_SCALE


class ImageNetInputHint(nn.Module):
    """ImageNet's MobileNetV2 blocks 0-3 (frozen) as the teacher of the face branch's input map.

    bf16: on the CPU the teacher runs in bfloat16 with channels-last tensors (64 chips in 0.23 s
    against 0.44 s in float32 on one loaded core; targets within 2-4% of float32's, relative norm)."""

    def __init__(self, weights: Path | None = None, bf16: bool = True):
        super().__init__()
        self.blocks = MobileNetV2Features((4,))
        load_imagenet(self.blocks, weights, bgr_centred=True)
        self.blocks.eval()
        for p in self.blocks.parameters():
            p.requires_grad_(False)
        self.bf16 = bf16
        if bf16:  # used on the CPU only (`targets`); .to(device) keeps the layout
            self.blocks.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "ImageNetInputHint":
        return super().train(False)  # a teacher: its batch norms keep ImageNet's statistics

    @torch.no_grad()
    def targets(self, chips: torch.Tensor) -> torch.Tensor:
        """ImageNet's stride-4 map (R, 24, 28, 28) of aligned chips (R, 3, 112, 112), RGB 0-255
        (`engines.train.sface_teacher.teacher_chips`), normalised as Uniface normalises its input."""
        device = next(self.blocks.parameters()).device
        x = (chips.to(device).flip(1) - PIXEL_MEAN) * PIXEL_SCALE  # RGB -> BGR: the weights are rewritten for BGR
        fast = self.bf16 and device.type == "cpu"
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            return self.blocks(x)[0].float().contiguous()

    @staticmethod
    def loss(student_input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared error between the branch's input map and the target, each channel divided by the
        target's standard deviation over the batch; 0 (with a gradient path) for no faces."""
        if len(student_input) == 0:
            return student_input.sum() * 0
        if student_input.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"the face branch samples {tuple(student_input.shape[-2:])} cells, the chip map has "
                             f"{tuple(target.shape[-2:])}: the input hint needs a 28 x 28 face region")
        spread = target.std((0, 2, 3), keepdim=True) + 1e-3 if len(target) > 1 else target.new_ones(1, target.shape[1], 1, 1)
        return F.mse_loss(student_input.float() / spread, target / spread)
