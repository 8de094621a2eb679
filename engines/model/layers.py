"""Building blocks: conv-BN-ReLU, depthwise-separable convolutions and identity-initialised residuals."""
from __future__ import annotations

import torch
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


class ResidualSeparable(nn.Module):
    """x + separable conv(x), the last batch norm's scale zero-initialised: a new block starts as
    the identity (Goyal et al.'s zero-gamma), so adding it to a trained network changes nothing."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(channels, channels, 3, groups=channels),
                                  ConvBNReLU(channels, channels, 1, relu=False))
        nn.init.zeros_(self.body[1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLP(nn.Module):
    """x + W2 relu(W1 x), W2 zero-initialised (starts as the identity)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(x)))
