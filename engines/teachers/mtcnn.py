"""MTCNN (Zhang et al., 2016): P-Net proposals over an image pyramid, R-Net refinement,
O-Net boxes and 5 landmarks. Weights: the state dicts shipped in the facenet-pytorch wheel.

Inside the cascade, boxes follow the reference implementation's arithmetic (1-based pixel
indices, inclusive corners: a box (x1, y1, x2, y2) spans x2 - x1 + 1 pixels), which the
weights were tuned with; `detect` returns 0-based pixel edges (x1 <= x < x2), as `Faces` does.
The networks take RGB scaled to about [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.faces import Faces
from engines.teachers.locate import mtcnn_weights

PNET_STRIDE = 2
PNET_CELL = 12
STAGE_BATCH = 256  # R/O-Net crops per forward pass


class PNet(nn.Module):
    """Fully convolutional proposal net: 12x12 windows, stride 2 -> face prob, box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> face probability (N, H', W'), offsets (N, 4, H', W')."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    # The weights come from a port that ran on transposed (W, H) images: flatten in that order.
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops -> face probability (N,), box offsets (N, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_transposed(x)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops -> probability (N,), offsets (N, 4), landmarks (N, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_transposed(x)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


# ---------------------------------------------------------------------------- box helpers


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy NMS -> indices kept, best first. mode "min" divides by the smaller area."""
    order = torch.argsort(scores, descending=True)
    if len(order) == 0:
        return order
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    alive = torch.ones(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = torch.nonzero(alive[i + 1 :]).flatten() + i + 1
        if len(rest) == 0:
            break
        w = (torch.minimum(b[i, 2], b[rest, 2]) - torch.maximum(b[i, 0], b[rest, 0])).clamp(min=0)
        h = (torch.minimum(b[i, 3], b[rest, 3]) - torch.maximum(b[i, 1], b[rest, 1])).clamp(min=0)
        inter = w * h
        denom = torch.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        alive[rest[inter / denom.clamp(min=1e-9) > iou_threshold]] = False
    return order[torch.tensor(keep, dtype=torch.long)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float, mode: str = "union"
) -> torch.Tensor:
    """NMS within each group (image) at once: groups are moved apart so they never overlap."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    offset = groups.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, iou_threshold, mode)


def regress(boxes: torch.Tensor, offsets: torch.Tensor, inclusive: bool = True) -> torch.Tensor:
    """Shift each box edge by offset x its width/height (+1 for inclusive corners).

    The reference measures P-Net windows without the +1 and later stages with it.
    """
    wh = (boxes[:, 2:4] - boxes[:, 0:2] + (1.0 if inclusive else 0.0)).repeat(1, 2)
    return boxes + offsets * wh


def square(boxes: torch.Tensor) -> torch.Tensor:
    """The square with the same centre and the longer side of each box."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    side = (boxes[:, 2:4] - boxes[:, 0:2]).max(dim=1, keepdim=True).values
    return torch.cat([centre - side / 2, centre + side / 2], dim=1)


def area_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 3, H, W) float resized by box averaging (as the weights' reference port does)."""
    return F.interpolate(image, size=(height, width), mode="area")


def crop_resize(image: np.ndarray, box: np.ndarray, size: int) -> torch.Tensor:
    """The pixels of a 1-based inclusive box (zero outside the image), resized to
    (3, size, size) float 0..255.

    Area resampling even when enlarging: cv2's bilinear enlargement lets through false
    positives the reference implementation rejects.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)  # truncation, as the reference does
    x1, y1 = x1 - 1, y1 - 1  # to 0-based start, exclusive end
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    x = torch.from_numpy(patch).permute(2, 0, 1)[None].float()
    return area_resize(x, size, size)[0]


def normalise(x: torch.Tensor) -> torch.Tensor:
    """0..255 RGB -> the networks' input range."""
    return (x - 127.5) * 0.0078125


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32, 0..255."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


# ---------------------------------------------------------------------------- the cascade


@dataclass(slots=True)
class MTCNNSettings:
    """Cascade parameters (the published defaults)."""

    min_face_size: float = 20.0  # pixels
    min_face_ratio: float = 0.0  # also at least this fraction of the shorter side (fewer scales, faster)
    factor: float = 0.709  # pyramid scale step
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-Net


class MTCNN:
    """The three-stage detector. `detect` takes BGR uint8 images, returns `Faces` (no embeddings)."""

    def __init__(self, settings: MTCNNSettings | None = None, device: str = "cpu") -> None:
        self.settings = settings or MTCNNSettings()
        self.device = torch.device(device)
        paths = mtcnn_weights()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, name in ((self.pnet, "pnet.pt"), (self.rnet, "rnet.pt"), (self.onet, "onet.pt")):
            state = torch.load(paths[name], map_location="cpu", weights_only=True)
            net.load_state_dict(state)
            net.to(self.device).eval()

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the smallest face maps to P-Net's 12 px window, down to a 12 px image."""
        s = self.settings
        min_face = max(s.min_face_size, s.min_face_ratio * min(height, width))
        scale = PNET_CELL / min_face
        side = min(height, width) * scale
        out = []
        while side >= PNET_CELL:
            out.append(scale)
            scale *= s.factor
            side *= s.factor
        return out

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray], score_threshold: float | None = None) -> list[Faces]:
        """Faces in each BGR image. score_threshold overrides O-Net's threshold (final score)."""
        s = self.settings
        thresholds = list(s.thresholds)
        if score_threshold is not None:
            thresholds[2] = float(score_threshold)
        for img in images:
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"expected a BGR uint8 (h, w, 3) image, got {img.dtype} {img.shape}")
        rgb = [cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for img in images]

        boxes, image_ids = self._propose(rgb, thresholds[0])
        boxes, image_ids = self._refine(rgb, boxes, image_ids, thresholds[1])
        boxes, scores, points, image_ids = self._output(rgb, boxes, image_ids, thresholds[2])

        results = []
        for i in range(len(images)):
            sel = image_ids == i
            b = boxes[sel].numpy().copy()
            b[:, :2] -= 1  # 1-based inclusive -> 0-based edges
            results.append(Faces(boxes=b, scores=scores[sel].numpy(), landmarks=points[sel].numpy()))
        return results

    def _propose(self, rgb: list[np.ndarray], threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over each image's pyramid; images of one size share forward passes."""
        all_boxes, all_ids = [], []
        by_shape: dict[tuple[int, int], list[int]] = {}
        tensors = [to_tensor(img).to(self.device) for img in rgb]
        for i, img in enumerate(rgb):
            by_shape.setdefault(img.shape[:2], []).append(i)
        for (h, w), ids in by_shape.items():
            for scale in self.scales(h, w):
                hs, ws = int(h * scale + 1), int(w * scale + 1)
                batch = torch.cat([tensors[i] for i in ids])
                prob, offsets = self.pnet(normalise(area_resize(batch, hs, ws)))
                prob, offsets = prob.cpu(), offsets.cpu()
                n, yy, xx = torch.nonzero(prob >= threshold, as_tuple=True)
                if len(n) == 0:
                    continue
                origin = torch.stack([xx, yy], dim=1).float() * PNET_STRIDE
                b = torch.cat([((origin + 1) / scale).floor(), ((origin + PNET_CELL) / scale).floor()], dim=1)
                score = prob[n, yy, xx]
                reg = offsets[n, :, yy, xx]
                keep = batched_nms(b, score, n, 0.5)
                img_ids = torch.tensor(ids, dtype=torch.long)[n[keep]]
                all_boxes.append(torch.cat([b[keep], score[keep, None], reg[keep]], dim=1))
                all_ids.append(img_ids)
        if not all_boxes:
            return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
        cand, ids = torch.cat(all_boxes), torch.cat(all_ids)
        keep = batched_nms(cand[:, :4], cand[:, 4], ids, 0.7)
        cand, ids = cand[keep], ids[keep]
        boxes = square(regress(cand[:, :4], cand[:, 5:9], inclusive=False))
        return boxes, ids

    def _crops(self, rgb: list[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor, size: int) -> torch.Tensor:
        boxes_np, ids_np = boxes.numpy(), ids.numpy()
        return normalise(torch.stack([crop_resize(rgb[i], b, size) for b, i in zip(boxes_np, ids_np)]))

    def _run_batched(self, net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [net(x[i : i + STAGE_BATCH].to(self.device)) for i in range(0, len(x), STAGE_BATCH)]
        return [torch.cat([o[k] for o in outs]).cpu() for k in range(len(outs[0]))]

    def _refine(
        self, rgb: list[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """R-Net on 24x24 crops: reject, NMS, regress, square."""
        if len(boxes) == 0:
            return boxes, ids
        prob, offsets = self._run_batched(self.rnet, self._crops(rgb, boxes, ids, 24))
        ok = prob > threshold
        boxes, prob, offsets, ids = boxes[ok], prob[ok], offsets[ok], ids[ok]
        keep = batched_nms(boxes, prob, ids, 0.7)
        return square(regress(boxes[keep], offsets[keep])), ids[keep]

    def _output(
        self, rgb: list[np.ndarray], boxes: torch.Tensor, ids: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-Net on 48x48 crops: landmarks, final boxes and scores, NMS by the smaller area."""
        if len(boxes) == 0:
            return boxes, torch.zeros(0), torch.zeros(0, 5, 2), ids
        prob, offsets, marks = self._run_batched(self.onet, self._crops(rgb, boxes, ids, 48))
        ok = prob > threshold
        boxes, prob, offsets, marks, ids = boxes[ok], prob[ok], offsets[ok], marks[ok], ids[ok]
        wh = boxes[:, 2:4] - boxes[:, 0:2] + 1
        points = torch.stack([marks[:, :5], marks[:, 5:]], dim=2) * wh[:, None, :] + boxes[:, None, 0:2] - 1
        boxes = regress(boxes, offsets)
        keep = batched_nms(boxes, prob, ids, 0.7, mode="min")
        return boxes[keep], prob[keep], points[keep], ids[keep]
