"""Building blocks: conv-BN-ReLU and depthwise-separable convolutions."""
from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """k x k convolution, batch norm, ReLU (groups=channels makes it depthwise)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (with stride) then pointwise 1x1: MobileNet's block."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(ConvBNReLU(cin, cin, 3, stride, groups=cin), ConvBNReLU(cin, cout, 1))
