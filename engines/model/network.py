"""The Uniface network: bottom-up detection pathway, top-down fusion into F_r, landmark attention.

One module holds the whole inference graph (`forward`): uint8 images in; boxes, scores,
landmarks, embeddings and counts out, with decoding, NMS and ROI pooling inside, so that
PyTorch, ONNX Runtime and TensorRT all run the same computation. Training uses
`forward_heads` and `embed`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.model.alignment import fit_frames, fit_teacher_frames, landmark_frames
from engines.model.anchors import decode_boxes, decode_landmarks, grid_anchors, level_anchor_shapes
from engines.model.config import UnifaceConfig
from engines.model.face_branch import DeepFaceBranch, MobileNetFaceBranch
from engines.model.layers import ConvBNReLU, ResidualMLP, ResidualSeparable, SeparableConv
from engines.model.mobilenet_v2 import InvertedResidual, MobileNetV2Features
from engines.model.nms import cluster_nms
from engines.model.roi import MapStack, roi_align, sample_frames, stack_feature_maps

OUTPUTS_PER_ANCHOR = 2 + 4 + 10  # class logits, box offsets, landmark offsets
PIXEL_MEAN, PIXEL_SCALE = 127.5, 1 / 128.0


@dataclass
class HeadOutputs:
    """Raw per-anchor predictions for a batch (A = all anchors of all levels)."""

    logits: torch.Tensor  # (N, A, 2)
    box_deltas: torch.Tensor  # (N, A, 4)
    landmark_deltas: torch.Tensor  # (N, A, 10)
    anchors: torch.Tensor  # (A, 4) cx cy w h
    fr: torch.Tensor  # (N, C_r, H/4, W/4)
    pixels: torch.Tensor  # (N, 3, H, W): the normalised input, where face-pixel configurations cut chips


@dataclass
class Detections:
    """The deployed graph's faces before landmark attention (K = max faces per image), with the
    maps `Uniface.embed` takes: `Uniface.detect`'s result."""

    boxes: torch.Tensor  # (N, K, 4) input pixels, zero where not valid
    scores: torch.Tensor  # (N, K) sorted, zero where not valid
    landmarks: torch.Tensor  # (N, K, 5, 2)
    valid: torch.Tensor  # (N, K) bool: the faces above the threshold, within max_faces
    count: torch.Tensor  # (N,) int32
    heads: HeadOutputs


class Backbone(nn.Module):
    """Stem (stride 2) and separable-conv stages at strides 4, 8, 16, ...; with the
    "mobilenet_v2" backbone, MobileNetV2's blocks give strides 4 to 32 and the stages after
    them are separable ones."""

    def __init__(self, cfg: UnifaceConfig):
        super().__init__()
        own_specs = cfg.stages
        self.mobilenet: MobileNetV2Features | None = None
        if cfg.backbone == "mobilenet_v2":
            # own strides: 4 when MobileNetV2 starts at block 4, 4 and 8 when at block 7
            own_strides = {0: 0, 4: 1, 7: 2}[cfg.mobilenet_first]
            self.mobilenet = MobileNetV2Features((4, 8, 16, 32)[own_strides:], first=cfg.mobilenet_first,
                                                 skip=cfg.mobilenet_skip)
            stem: list[nn.Module] = []
            if own_strides:
                stem.append(ConvBNReLU(3, cfg.stem_channels, 3, 2))
                cin = cfg.stem_channels
                for spec in cfg.stages[:own_strides]:
                    stem.append(SeparableConv(cin, spec.channels, stride=2))
                    cin = spec.channels
            self.stem = nn.ModuleList(stem)
            # after the stride-8 stem layer (a separate list: the stem's parameter names stay)
            self.s8_blocks = nn.Sequential(*(identity_inverted_residual(cfg.stages[1].channels)
                                             for _ in range(cfg.s8_blocks)))
            own_specs, cin = cfg.stages[4:], cfg.stages[3].channels
        else:
            self.stem = ConvBNReLU(3, cfg.stem_channels, 3, 2)
            cin = cfg.stem_channels
        stages = []
        for spec in own_specs:
            blocks = [SeparableConv(cin, spec.channels, stride=2)]
            blocks += [SeparableConv(spec.channels, spec.channels) for _ in range(spec.blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = spec.channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.mobilenet is not None:
            feats = []
            for i, layer in enumerate(self.stem):  # our own strides before MobileNetV2's first block
                x = layer(x)
                if i == 2:
                    x = self.s8_blocks(x)
                if i:
                    feats.append(x)
            feats += self.mobilenet(x)
            x = feats[-1]
        else:
            x = self.stem(x)
            feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def identity_inverted_residual(channels: int, expansion: int = 4) -> InvertedResidual:
    """A MobileNetV2 block x + f(x) whose last batch norm's scale is zero: it starts as the identity,
    so adding it to a trained network changes nothing until it learns."""
    block = InvertedResidual(channels, channels, 1, expansion)
    nn.init.zeros_(block.conv[-1].weight)
    return block


class TopDown(nn.Module):
    """F_td^{i+1} = Upsample(F_td^i + F_bu^i), coarsest level first, ending in F_r at stride 4."""

    def __init__(self, cfg: UnifaceConfig):
        super().__init__()
        chans = [s.channels for s in cfg.stages]
        self.laterals = nn.ModuleList(ConvBNReLU(c, cfg.td_channels, 1, relu=False) for c in chans)
        self.out = SeparableConv(cfg.td_channels, cfg.fr_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.with_levels(feats)[0]

    def with_levels(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """F_r and the top-down maps F_td at every backbone level (at feats[i]'s stride)."""
        td = self.laterals[-1](feats[-1])
        levels = [td]
        for lateral, feat in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            td = F.interpolate(td, size=feat.shape[-2:], mode="nearest") + lateral(feat)
            levels.append(td)
        return self.out(td), levels[::-1]


def zero_context_lateral(cin: int, cout: int) -> ConvBNReLU:
    """1x1 conv + batch norm whose scale is zero: added to a map, it changes nothing until it learns."""
    lateral = ConvBNReLU(cin, cout, 1, relu=False)
    nn.init.zeros_(lateral[1].weight)
    return lateral


class DeepMap(nn.Module):
    """F_r without fusion (the paper's ablation C): the backbone's map at `fr_stride` alone, through
    the separable conv that ends the top-down pathway."""

    def __init__(self, cfg: UnifaceConfig):
        super().__init__()
        self.level = cfg.fr_level
        self.out = SeparableConv(cfg.stages[self.level].channels, cfg.fr_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.out(feats[self.level])


class DetectionHead(nn.Module):
    """SSD-style head on one bottom-up level: per anchor 2 + 4 + 10 outputs."""

    def __init__(self, cin: int, anchors: int):
        super().__init__()
        self.dw = ConvBNReLU(cin, cin, 3, groups=cin)
        self.pred = nn.Conv2d(cin, anchors * OUTPUTS_PER_ANCHOR, 1)
        self.anchors = anchors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pred(self.dw(x))  # (N, A*16, h, w)
        n = y.shape[0]
        return y.permute(0, 2, 3, 1).reshape(n, -1, OUTPUTS_PER_ANCHOR)


class RegionBranch(nn.Module):
    """Two conv-ReLU-pool stages (separable convs) over a pooled region, average-pooled by
    `pool` (1: not at all), flattened."""

    def __init__(self, cin: int, channels: tuple[int, int], pool: int = 1, residuals: int = 0):
        super().__init__()
        c1, c2 = channels
        # residual blocks after the pool (a quarter of the pixels): their parameter names are
        # new, so weights without them load as they are (`engines.model.deepen`)
        self.stage1 = nn.Sequential(SeparableConv(cin, c1), nn.MaxPool2d(2),
                                    *(ResidualSeparable(c1) for _ in range(residuals)))
        self.stage2 = nn.Sequential(SeparableConv(c1, c2), nn.MaxPool2d(2),
                                    *(ResidualSeparable(c2) for _ in range(residuals)))
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stage2(self.stage1(x))).flatten(1)


class LandmarkAttention(nn.Module):
    """Face region (512-D) + eyes, nose and mouth-centre regions (4 x 128-D) -> 128-D unit vector."""

    def __init__(self, cfg: UnifaceConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.face_branch_kind == "deep":
            self.face = DeepFaceBranch(cfg.fr_channels, cfg.face_branch, cfg.deep_blocks, cfg.face_roi,
                                       cfg.face_features)
        elif cfg.face_branch_kind == "mobilenet":
            self.face = MobileNetFaceBranch(cfg.fr_channels, cfg.face_branch[1], cfg.face_roi, cfg.face_mobilenet_skip,
                                            cfg.face_features, pixels=cfg.face_pixels)
        else:
            self.face = RegionBranch(cfg.fr_channels, cfg.face_branch, cfg.branch_pool, cfg.branch_residuals)
        self.parts = nn.ModuleList(RegionBranch(cfg.fr_channels, cfg.landmark_branch, cfg.branch_pool,
                                                cfg.branch_residuals) for _ in range(4 if cfg.landmark_attention else 0))
        self.mix = ResidualMLP(512 + 4 * 128, cfg.embedding_hidden) if cfg.embedding_hidden else nn.Identity()
        self.project = nn.Linear(512 + 4 * 128, cfg.embedding_dim)
        # a buffer so it follows the module's device; unused (zeros) when regions follow the box
        template = torch.tensor(cfg.face_template or [[0.0, 0.0]] * 5, dtype=torch.float32)
        self.register_buffer("face_template", template, persistent=False)

    @staticmethod
    def landmark_centres(landmarks: torch.Tensor) -> torch.Tensor:
        """Centres (R, 4, 2) of the left eye, right eye, nose and mouth regions."""
        return torch.stack(
            [landmarks[:, 0], landmarks[:, 1], landmarks[:, 2], (landmarks[:, 3] + landmarks[:, 4]) / 2], dim=1
        )

    def regions(self, boxes: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Square regions (R, 4, 4) around left eye, right eye, nose and mouth centre."""
        centres = self.landmark_centres(landmarks)
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
        half = (self.cfg.landmark_region_scale / 2) * torch.sqrt(wh[:, 0] * wh[:, 1])
        half = half[:, None, None]
        return torch.cat([centres - half, centres + half], dim=-1)

    def forward(self, fr: MapStack, boxes, landmarks, batch_index, with_map: bool = False,
                pixels: MapStack | None = None):
        """Embeddings (R, 128) for R faces given by boxes (R, 4), landmarks (R, 5, 2) in input pixels
        of the images batch_index (R,) of F_r laid out for sampling (`stack_feature_maps`);
        with_map: also the deep face branch's `FaceMaps` (hint training), else None. pixels: the
        normalised input images laid out as F_r is, for face-pixel configurations."""
        cfg = self.cfg
        if cfg.face_pixels and pixels is None:
            raise ValueError(f"config {cfg.name!r} embeds from the input pixels too: pass them")
        r, stride = boxes.shape[0], cfg.fr_stride
        part_index = batch_index[:, None].expand(r, 4).reshape(-1)
        if cfg.face_template is None:
            face = roi_align(fr, boxes, batch_index, cfg.face_roi, stride, sampling=cfg.face_sampling)
            if cfg.landmark_attention:
                regions = self.regions(boxes, landmarks).reshape(-1, 4)
                parts = roi_align(fr, regions, part_index, cfg.landmark_roi, stride)
        else:
            origin, axis_u, axis_v = fit_frames(landmarks, self.face_template)
            face = sample_frames(fr, origin, axis_u, cfg.face_aspect * axis_v, batch_index,
                                 cfg.face_roi, stride, sampling=cfg.face_sampling)
            parts = self.aligned_parts(fr, landmarks, axis_u, axis_v, part_index)
        face_map = None
        if cfg.face_pixels:  # one sample a pixel: the teacher's own aligned chip
            side = cfg.face_roi * 4
            chip_origin, chip_u, chip_v = fit_teacher_frames(landmarks, self.face_template)
            chip_v = cfg.face_aspect * chip_v
            # as cv2.warpAffine cuts it: chip pixel k at frame coordinate k / side (not its centre,
            # (k + 0.5) / side), and landmarks in pixel-index coordinates (a pixel's centre at its
            # index, where sampling puts it at index + 0.5)
            chip_origin = chip_origin + 0.5 - (chip_u + chip_v) * (0.5 / side)
            chips = sample_frames(pixels, chip_origin, chip_u, chip_v, batch_index, side, 1,
                                  sampling=1)
            face_feat, face_map = self.face(face, chips)
        elif isinstance(self.face, (DeepFaceBranch, MobileNetFaceBranch)):
            face_feat, face_map = self.face(face)
        else:
            face_feat = self.face(face)
        feats = [face_feat]
        if cfg.landmark_attention:
            parts = parts.reshape(r, 4, *parts.shape[1:])
            feats += [branch(parts[:, i]) for i, branch in enumerate(self.parts)]
        emb = F.normalize(self.project(self.mix(torch.cat(feats, dim=1))), dim=1)
        return (emb, face_map) if with_map else emb

    def aligned_parts(self, fr: MapStack, landmarks, axis_u, axis_v, part_index) -> torch.Tensor:
        """The 4 landmark regions of each face, turned with its fitted frame -> (R*4, C, s, s)."""
        # as wide as the box-mode regions (scale x sqrt(box area)) on the template's face
        side = self.cfg.landmark_region_scale * self.cfg.face_aspect ** 0.5
        origin, u, v = landmark_frames(self.landmark_centres(landmarks), axis_u, axis_v, side)
        return sample_frames(fr, origin.reshape(-1, 2), u.reshape(-1, 2), v.reshape(-1, 2),
                             part_index, self.cfg.landmark_roi, self.cfg.fr_stride)


def best_aspect_only(scores: torch.Tensor, ratios: int) -> torch.Tensor:
    """Face scores (N, A) with each anchor that is not the best of its cell and size zeroed.

    The anchors of one cell and size differ only in aspect ratio (consecutive in the layout of
    `grid_anchors` and `level_anchor_shapes`): concentric boxes with an IoU of 0.7 or more, which
    regress onto the same face, and which NMS would suppress anyway. Dropping them first leaves a
    third of the candidates above a threshold, so the decoded candidates hold three times the
    faces of a crowd and the quadratic NMS rounds cost a ninth. Ties all stay.
    """
    per_cell = scores.reshape(scores.shape[0], -1, ratios)
    best = per_cell.amax(-1, keepdim=True)
    return (per_cell * (per_cell >= best).to(per_cell.dtype)).reshape(scores.shape)


class Uniface(nn.Module):
    """The whole single-shot network."""

    def __init__(self, cfg: UnifaceConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        # ablation B: recognition's own network (F_r from its own backbone)
        self.recognition_backbone = None if cfg.shared_backbone else Backbone(cfg)
        self.topdown = TopDown(cfg) if cfg.fusion else DeepMap(cfg)
        self.heads = nn.ModuleList(
            DetectionHead(s.channels, a) for s, a in zip(cfg.stages[1:], cfg.anchors_per_cell)
        )
        # the finest heads' top-down context (`UnifaceConfig.head_context`), stride 8 first
        self.head_context = nn.ModuleList(zero_context_lateral(cfg.td_channels, s.channels)
                                          for s in cfg.stages[1:1 + cfg.head_context])
        self.attention = LandmarkAttention(cfg)
        for i, sizes in enumerate(cfg.anchor_sizes):
            self.register_buffer(f"anchor_shapes_{i}", level_anchor_shapes(sizes, cfg.aspect_ratios), persistent=False)

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """uint8 BGR (N, H, W, 3) -> float (N, 3, H, W), zero-centred, about unit range."""
        return (images.permute(0, 3, 1, 2).float() - PIXEL_MEAN) * PIXEL_SCALE

    def forward_heads(self, x: torch.Tensor) -> HeadOutputs:
        """Normalised images (N, 3, H, W) -> per-anchor predictions, anchors and F_r."""
        feats = self.backbone(x)
        if self.cfg.head_context:
            fr, td = self.topdown.with_levels(feats)
            feats = [f + self.head_context[i - 1](td[i]) if 0 < i <= len(self.head_context) else f
                     for i, f in enumerate(feats)]
        else:
            fr = self.topdown(feats if self.recognition_backbone is None else self.recognition_backbone(x))
        preds, anchors = [], []
        for i, (head, feat, stride) in enumerate(zip(self.heads, feats[1:], self.cfg.strides)):
            preds.append(head(feat))
            shapes = getattr(self, f"anchor_shapes_{i}")
            anchors.append(grid_anchors(feat.shape[2], feat.shape[3], stride, shapes))
        p = torch.cat(preds, dim=1)
        return HeadOutputs(p[..., :2], p[..., 2:6], p[..., 6:], torch.cat(anchors, 0).to(x.device), fr, x)

    def embed(self, fr: torch.Tensor, boxes, landmarks, batch_index, with_map: bool = False,
              pixels: torch.Tensor | None = None, folded: bool = False):
        """Embeddings for given faces (e.g. teacher boxes and landmarks during training); with_map:
        (embeddings, the deep face branch's `FaceMaps` or None). pixels: the normalised input
        (`HeadOutputs.pixels`), which face-pixel configurations need. folded: sample the maps in
        the folded layout (`engines.model.roi`: the same values, cheaper for a frame or a few)."""
        fr_maps = stack_feature_maps(fr, folded)
        if pixels is None or not self.cfg.face_pixels:
            return self.attention(fr_maps, boxes, landmarks, batch_index, with_map)
        return self.attention(fr_maps, boxes, landmarks, batch_index, with_map, stack_feature_maps(pixels, folded))

    def suppress(self, boxes: torch.Tensor, scores: torch.Tensor, score_threshold: torch.Tensor) -> torch.Tensor:
        """NMS keep mask (N, M) of score-sorted candidates, run on those above the threshold only.

        A candidate's fate depends only on higher-scored ones, and those below the threshold are
        dropped anyway, so NMS over the prefix of candidates above it (in any image: each image's
        scores are sorted, so that is a prefix) keeps the same faces. The matrix rounds are
        quadratic in the candidates: a frame with one face pays for a few, not for all M. The
        first candidate always takes part, so NMS never runs on nothing; NonZero gives the prefix
        a data-dependent length that TensorRT accepts too."""
        m = scores.shape[1]
        slots = torch.arange(m, device=scores.device)
        prefix = torch.nonzero((scores > score_threshold).any(0) | (slots == 0)).reshape(-1)
        kept = cluster_nms(boxes[:, prefix], self.cfg.nms_iou, self.cfg.nms_iterations)  # (N, P)
        keep = torch.zeros(m, scores.shape[0], dtype=torch.bool, device=scores.device)
        keep[prefix] = kept.t()
        return keep.t()

    def detect(self, images: torch.Tensor, score_threshold: torch.Tensor, max_faces: torch.Tensor) -> Detections:
        """The deployed graph up to landmark attention: its faces, sorted, and the maps to embed them."""
        cfg = self.cfg
        out = self.forward_heads(self.normalise(images))
        scores = best_aspect_only(out.logits.softmax(-1)[..., 1], len(cfg.aspect_ratios))
        scores, order = scores.topk(cfg.pre_nms_topk, dim=1)  # sorted, descending
        boxes = decode_boxes(torch.gather(out.box_deltas, 1, order[..., None].expand(-1, -1, 4)), out.anchors[order])
        keep = self.suppress(boxes, scores, score_threshold)
        scores, kept = (scores * keep.to(scores.dtype)).topk(cfg.max_faces, dim=1)
        boxes = torch.gather(boxes, 1, kept[..., None].expand(-1, -1, 4))
        # landmarks of the K kept anchors only: NMS needs none, and decoding all M cost M x 10 gathers
        anchor_index = torch.gather(order, 1, kept)  # (N, K)
        lmk_deltas = torch.gather(out.landmark_deltas, 1, anchor_index[..., None].expand(-1, -1, 10))
        landmarks = decode_landmarks(lmk_deltas, out.anchors[anchor_index])
        hw = torch._shape_as_tensor(images)[1:3].to(boxes.dtype)  # stays dynamic when exported
        boxes = torch.minimum(boxes.clamp(min=0), torch.stack([hw[1], hw[0], hw[1], hw[0]]))
        rank = torch.arange(cfg.max_faces, device=images.device)[None, :]
        valid = (scores > score_threshold) & (rank < max_faces.to(rank.dtype))
        count = valid.sum(1).to(torch.int32)
        validf = valid.to(scores.dtype)
        scores, boxes = scores * validf, boxes * validf[..., None]
        landmarks = landmarks * validf[..., None, None]
        return Detections(boxes, scores, landmarks, valid, count, out)

    def forward(self, images: torch.Tensor, score_threshold: torch.Tensor, max_faces: torch.Tensor):
        """The deployed graph (see `engines.backends.uniface.UnifaceBackend` for the contract)."""
        cfg = self.cfg
        n = images.shape[0]
        found = self.detect(images, score_threshold, max_faces)
        boxes, scores, landmarks, valid, count, out = (found.boxes, found.scores, found.landmarks, found.valid,
                                                       found.count, found.heads)

        # Landmark attention on the valid faces only. The ROI batch must never be empty, so a
        # frame without a valid face embeds one throwaway face (slot 0, cleared below); a frame
        # with faces pays for its faces alone (a throwaway face beside them cost one face's branch).
        k = cfg.max_faces
        slot = torch.arange(n * k, device=images.device)
        pick = valid.reshape(-1) | ((slot == 0) & (count.sum() == 0))
        flat = torch.nonzero(pick).reshape(-1)
        emb = self.embed(out.fr, boxes.reshape(-1, 4)[flat], landmarks.reshape(-1, 5, 2)[flat], flat // k,
                         pixels=out.pixels, folded=True)
        embeddings = torch.zeros(n * k, cfg.embedding_dim, dtype=emb.dtype, device=emb.device)
        embeddings[flat] = emb
        # a select, not a product: the throwaway face's degenerate frame may give NaN
        embeddings = torch.where(valid[..., None], embeddings.reshape(n, k, cfg.embedding_dim), 0.0)
        return boxes, scores, landmarks, embeddings, count
