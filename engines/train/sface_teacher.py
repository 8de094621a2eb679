"""SFace in PyTorch, built from the shipped ONNX file: the teacher inside the training process.

ONNX Runtime gives SFace's embedding; training also wants what it computes on the way (FitNets
hints: Romero et al. 2015; ShrinkTeaNet), and embeddings of the very pixels the student sees
(live targets, `embed_views`), in the same process as the student. So its graph is read once, its block-quantised int8 weights are
dequantised, and it runs as a plain module: 14 conv-BN-PReLU units (a MobileNetV1 at 112 px,
stride 1 first), then BN, a 50,176 -> 128 linear layer and BN. `taps` names the units whose
output the forward also returns (e.g. `conv_12`: 512 x 14 x 14, `conv_14`: 1024 x 7 x 7).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.teachers.locate import SFACE_FILE, opencv_zoo_model
from engines.teachers.sface import align_chip

PIXEL_MEAN, PIXEL_SCALE = 127.5, 0.0078125  # the graph's own Sub and Mul on RGB 0-255 input


def _dequantise(q: np.ndarray, scales: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """DequantizeLinear with blocks of `block` values along `axis` sharing one scale and zero point."""
    reps = lambda a: np.repeat(a, block, axis=axis).take(np.arange(q.shape[axis]), axis=axis)  # noqa: E731
    return ((q.astype(np.float32) - reps(zero).astype(np.float32)) * reps(scales)).astype(np.float32)


def read_weights(graph) -> dict[str, np.ndarray]:
    """Every float tensor an ONNX graph computes from constants alone: its initialisers, with each
    quantised weight replaced by its dequantised and reshaped value under the node's output name."""
    import onnx
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            q, scales, zero = (values[name] for name in node.input)
            values[node.output[0]] = _dequantise(q, scales, zero, attrs.get("axis", 1), attrs.get("block_size", 0) or q.shape[0])
        elif node.op_type == "Reshape" and all(name in values for name in node.input):
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    return values


def teacher_chips(images: torch.Tensor, landmarks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """SFace's RGB chips (R, 3, 112, 112), float 0-255, of the faces with landmarks (R, 5, 2) in
    the BGR uint8 images (N, H, W, 3) at rows `index` (R,)."""
    pics = images.cpu().numpy()
    chips = []
    for points, i in zip(landmarks.cpu().numpy(), index.cpu().numpy()):
        chip = align_chip(pics[int(i)], points)
        chips.append(np.zeros((112, 112, 3), np.uint8) if chip is None else chip)
    if not chips:
        return torch.zeros(0, 3, 112, 112)
    return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()


class SFaceTeacher(nn.Module):
    """SFace as a frozen torch module: RGB chips (N, 3, 112, 112), 0-255 -> unit embeddings and taps."""

    def __init__(self, path: Path | None = None, taps: tuple[str, ...] = ()):
        super().__init__()
        import onnx

        path = path or opencv_zoo_model(SFACE_FILE)
        graph = onnx.load(str(path)).graph
        values = read_weights(graph)
        eps = {node.name: onnx.helper.get_attribute_value(a) for node in graph.node
               if node.op_type == "BatchNormalization" for a in node.attribute if a.name == "epsilon"}
        self.units = nn.ModuleList()
        self.names: list[str] = []
        for node in graph.node:
            if node.op_type != "Conv":
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            weight = torch.from_numpy(values[node.input[1]])
            name = node.name.removesuffix("_conv2d")
            conv = nn.Conv2d(weight.shape[1] * attrs["group"], weight.shape[0], weight.shape[2],
                             stride=attrs["strides"][0], padding=attrs["pads"][0], groups=attrs["group"], bias=False)
            conv.weight.data.copy_(weight)
            bn = self._batchnorm(nn.BatchNorm2d, values, f"{name}_batchnorm", eps)
            prelu = nn.PReLU(weight.shape[0])
            prelu.weight.data.copy_(torch.from_numpy(values[f"{name}_relu_gamma"].reshape(-1)))
            self.units.append(nn.Sequential(conv, bn, prelu))
            self.names.append(name)
        unknown = set(taps) - set(self.names)
        if unknown:
            raise ValueError(f"SFace has no unit {sorted(unknown)}; units: {', '.join(self.names)}")
        self.taps = tuple(taps)
        self.bn1 = self._batchnorm(nn.BatchNorm2d, values, "bn1", eps)
        fc_weight = torch.from_numpy(values["pre_fc1_weight_dequantized"])
        self.fc = nn.Linear(fc_weight.shape[1], fc_weight.shape[0])
        self.fc.weight.data.copy_(fc_weight)
        self.fc.bias.data.copy_(torch.from_numpy(values["pre_fc1_bias_dequantized"]))
        self.fc_bn = self._batchnorm(nn.BatchNorm1d, values, "fc1", eps)
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def _batchnorm(kind, values: dict, prefix: str, eps: dict[str, float]) -> nn.Module:
        """A batch norm with the graph's statistics and epsilon (ONNX's default 1e-5 where unset)."""
        gamma = torch.from_numpy(values[f"{prefix}_gamma"])
        bn = kind(gamma.shape[0], eps=float(eps.get(prefix, 1e-5)))
        bn.weight.data.copy_(gamma)
        bn.bias.data.copy_(torch.from_numpy(values[f"{prefix}_beta"]))
        bn.running_mean.copy_(torch.from_numpy(values[f"{prefix}_moving_mean"]))
        bn.running_var.copy_(torch.from_numpy(values[f"{prefix}_moving_var"]))
        return bn

    def channels(self, unit: str) -> int:
        """Channels of a unit's output map."""
        return self.units[self.names.index(unit)][0].out_channels

    def train(self, mode: bool = True) -> "SFaceTeacher":
        return super().train(False)  # a teacher: its batch norms always use the stored statistics

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(unit embeddings (N, 128), {tap name: feature map}) for RGB chips (N, 3, 112, 112) in 0-255."""
        x = (chips - PIXEL_MEAN) * PIXEL_SCALE
        taps: dict[str, torch.Tensor] = {}
        for name, unit in zip(self.names, self.units):
            x = unit(x)
            if name in self.taps:
                taps[name] = x
        emb = self.fc_bn(self.fc(self.bn1(x).flatten(1)))
        return F.normalize(emb, dim=1), taps

    @torch.no_grad()
    def embed_views(self, images: torch.Tensor, landmarks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Unit embeddings (R, 128) of the faces with landmarks (R, 5, 2) in the BGR uint8 images
        (N, H, W, 3) at rows `index`: what SFace says of exactly these pixels."""
        chips = teacher_chips(images, landmarks, index)
        if len(chips) == 0:
            return torch.zeros(0, 128)
        return self(chips.contiguous(memory_format=torch.channels_last))[0]
