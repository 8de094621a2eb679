"""The training loop: seeded, resumable from checkpoints, logging losses and validation figures."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from engines.model.config import SHIPPED_CONFIG, get_config
from engines.model.deepen import check_deepenable, deepen_state
from engines.model.face_branch import FaceMaps
from engines.model.layers import ResidualMLP, ResidualSeparable
from engines.model.network import Uniface
from engines.model.widen import check_widenable, same_layout, widen_state
from engines.train.augment import AugmentSettings
from engines.train.carried_state import expand, write_carried
from engines.train.dataset import FaceDataset, centred_teacher, collate, mimic_eligible, split_labels
from engines.train.face_crops import CropSettings, FaceCropDataset, mimic_faces, repeat_identified
from engines.train.hints import HINT_TAP, HintTeacher
from engines.train.imagenet_hint import ImageNetInputHint
from engines.train.identities import DEFAULT_IDENTITIES, IdentityTable, class_centres, identity_table, read_identities
from engines.train.labelling import load_labels
from engines.train.ledger import ComputeLedger
from engines.train.losses import LossWeights, detection_losses, identity_loss, mimic_loss, relation_loss
from engines.train.official_boxes import merge_official_boxes, read_official_boxes
from engines.train.sface_teacher import SFaceTeacher, teacher_chips
from engines.model.mobilenet_v2 import init_from_imagenet
from engines.train.validate import validate
from engines.train.view_crops import ViewCropDataset
from engines.train.view_labels import is_view_cache, load_face_views, load_view_labels
from engines.train.weight_average import WeightAverage
from engines.train.views import CROP_SIZE

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    labels_dir: str
    out_dir: str
    config: str = SHIPPED_CONFIG
    sets: list[str] | None = None  # label sets to use (None: all)
    data_roots: dict[str, str] = field(default_factory=dict)  # set name -> image folder, if moved
    steps: int = 20000
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 500
    canvas: tuple[int, int] = (320, 320)
    # canvases per step at wide_canvas beside the batch at canvas (0: none): a 320x320 canvas's
    # stride-32 and -64 maps are 10x10 and 5x5, every cell near the padding, where a deployed
    # 640x480 frame has interior cells that such canvases never show the coarse levels
    wide_batch: int = 0
    wide_canvas: tuple[int, int] = (640, 480)
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    log_every: int = 20
    eval_every: int = 1000
    val_images: int = 300
    init: str | None = None  # start from these weights (fine-tuning)
    jitter: float = 0.04  # box/landmark noise on mimic ROIs, as a share of the face size
    crop_batch: int = 0  # faces per step from the mimic stream of face crops (0: none)
    crop_canvas: int = 128  # side of those crops
    crop_context: tuple[float, float] = (1.3, 2.2)  # crop side / face size, drawn in this range
    relation_temp: float = 0.05  # softmax temperature of the relation loss (weights["relation"])
    letterbox_p: float = 0.0  # share of canvases with letterbox borders (`augment.letterbox_border`)
    turn_p: float = 0.0  # share of source images turned before placement or cropping (`augment.turn`)
    turn_degrees: float = 30.0  # largest turn, either way
    backdrop_p: float = 0.0  # share of canvases and crops laid on a face-free photo region (`backdrops`)
    faceless_p: float = 0.0  # share of canvases and crops that are only a face-free photo region
    dark_p: float = 0.0  # share of canvases and crops dimmed to a dark room's light
    native_p: float = 0.0  # share of single-photo canvases cut at about the photo's own scale (`AugmentSettings`)
    small_p: float = 0.0  # share of canvases that are a grid of small faces (`augment.small_face_grid`)
    official_boxes: str = ""  # a WIDER FACE ground-truth .mat whose boxes join the training labels (`official_boxes`)
    set_repeat: dict = field(default_factory=dict)  # set name -> times each of its images is a canvas source
    identities: str = str(DEFAULT_IDENTITIES)  # CelebA identity_all.txt, for the identity loss (weights["identity"])
    identity_scale: float = 30.0  # CosFace scale s of the identity loss
    identity_margin: float = 0.2  # CosFace margin m of the identity loss
    identity_min_images: int = 1  # people with fewer identified training faces get no class (`identity_table`)
    identity_repeat: int = 1  # each identified face appears this many times in the mimic stream (`repeat_identified`)
    # learning-rate multiplier for landmark attention's added residual blocks (configs with
    # branch_residuals / embedding_hidden): they start as the identity, and at the base rate
    # their zero-initialised last layers hardly move from it (`parameter_groups`)
    residual_lr_scale: float = 1.0
    # train F_r's top-down pathway and landmark attention only: the backbone and detection heads
    # (and their batch-norm statistics) stay as loaded, so every box, score and landmark does too
    freeze_detector: bool = False
    # bfloat16 autocast and channels-last tensors on the CPU (MODEL.md: 2x on this CPU); no effect on CUDA
    bf16: bool = False
    # channels-last tensors in float32 on the CPU (bf16 implies them): the same arithmetic in other
    # kernels, a step of the long run's network ~1.2x faster on this CPU, where bf16 gained nothing
    channels_last: bool = False
    stop_at: int = 0  # stop (with a checkpoint) at this step, the schedule still that of `steps`; 0: at `steps`
    # keep the evaluated checkpoint of every step that is a multiple of this as step_NNNNNN.pt
    # (no optimizer state), for comparisons at equal steps (the ablations) after last.pt moves on; 0: none
    keep_every: int = 0
    # the full-image stream's mimic targets from SFace on the augmented canvas itself, instead of
    # the stored embedding of the clean photo (view caches only: the view stream's are exact already)
    live_targets: bool = False
    # decay of the moving average of the weights that validation, best.pt, the kept checkpoints and
    # last.pt's "state_dict" hold (`weight_average`); last.pt keeps the trained weights beside it
    # ("train_state_dict") to resume from. 0: no average, the trained weights themselves
    ema: float = 0.0
    # a carried copy of last.pt (`carried_state`: small enough to commit), written beside it at
    # every evaluation; the run starts from it when it holds a later step than last.pt (a fresh
    # machine, where runs/ is gone). "": none
    carried: str = ""
    weights: dict = field(default_factory=lambda: asdict(LossWeights()))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _lr(step: int, s: TrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def kept_checkpoint(out_dir: Path, step: int) -> Path:
    """Where a run keeps its checkpoint of `step` (`TrainSettings.keep_every`)."""
    return Path(out_dir) / f"step_{step:06d}.pt"


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _jitter(boxes: torch.Tensor, landmarks: torch.Tensor, amount: float, gen: torch.Generator):
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1)
    scale = size.repeat(1, 2)
    boxes = boxes + torch.randn(boxes.shape, generator=gen) * amount * scale
    landmarks = landmarks + torch.randn(landmarks.shape, generator=gen) * amount * 0.5 * size[:, None, :]
    return boxes, landmarks


def _anchors(model: Uniface, canvas: tuple[int, int], device: torch.device) -> np.ndarray:
    """The model's anchors for a (w, h) canvas."""
    w, h = canvas
    training = model.training
    model.eval()  # a 1x1 top level cannot be batch-normalised from one image
    with torch.no_grad():
        anchors = model.forward_heads(torch.zeros(1, 3, h, w, device=device)).anchors.cpu().numpy()
    model.train(training)
    return anchors


def _endless(dataset, batch: int, workers: int, seed: int, epoch: int):
    """Shuffled batches of `dataset` forever, a new augmentation draw each pass."""
    while True:
        dataset.epoch = epoch
        yield from DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate,
                              drop_last=True, generator=torch.Generator().manual_seed(seed + 7919 * (epoch + 1)))
        epoch += 1


@dataclass
class StreamOutput:
    """One stream's share of a step: detection losses, its mimicked faces' student and (centred)
    teacher embeddings and identity classes (-1: none), the landmarks the student embedded them
    on (jittered), and the face branch's maps when asked for (`FaceMaps`), else None."""

    losses: dict[str, torch.Tensor]
    student: torch.Tensor
    target: torch.Tensor
    classes: torch.Tensor
    landmarks: torch.Tensor
    maps: FaceMaps | None = None


def _batch_losses(model: Uniface, batch: dict, device: torch.device, jitter: float, gen: torch.Generator,
                  teacher_mean: torch.Tensor, bf16: bool = False, with_map: bool = False,
                  live: SFaceTeacher | None = None, channels_last: bool = False) -> StreamOutput:
    """Detection losses and mimicked faces of one batch (`StreamOutput`).
    live: the teacher embeds the batch's own pixels for the targets instead of the stored ones.
    channels_last (implied by bf16): the input in channels-last memory, as the model's weights."""
    images = batch["images"].to(device, non_blocking=True)
    x = model.normalise(images)
    if bf16 or channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        heads = model.forward_heads(x)
    losses = detection_losses(heads.logits.float(), heads.box_deltas.float(), heads.landmark_deltas.float(),
                              batch["labels"].to(device), batch["box_t"].to(device), batch["lmk_t"].to(device))
    boxes, lmks = _jitter(batch["mimic_boxes"], batch["mimic_landmarks"], jitter, gen)
    stored = batch["mimic_targets"]
    if live is not None:  # the teacher's landmarks as moved into the canvas (unjittered)
        stored = live.embed_views(batch["images"], batch["mimic_landmarks"], batch["mimic_index"]).cpu()
    target = F.normalize(stored - teacher_mean, dim=1).to(device)
    maps = None
    if len(boxes):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            student = model.embed(heads.fr, boxes.to(device), lmks.to(device), batch["mimic_index"].to(device),
                                  with_map=with_map, pixels=heads.pixels)
        if with_map:
            student, maps = student
        student = student.float()
    else:  # keeps F_r in the graph so every parameter gets a (zero) gradient
        student = (heads.fr.new_zeros(0, target.shape[1]) + heads.fr.sum() * 0).float()
    return StreamOutput(losses, student, target, batch["mimic_identities"].to(device), lmks, maps)


def augment_settings(s: TrainSettings) -> AugmentSettings:
    """The canvas stream's augmentation as the run's settings ask for it."""
    return AugmentSettings(canvas=tuple(s.canvas), letterbox_p=s.letterbox_p, turn_p=s.turn_p,
                           turn_degrees=s.turn_degrees, backdrop_p=s.backdrop_p, faceless_p=s.faceless_p,
                           dark_p=s.dark_p, native_p=s.native_p, small_p=s.small_p)


def teacher_centre(labels) -> np.ndarray:
    """Mean of the unit teacher embeddings over the training images (float32, 128)."""
    emb = np.concatenate([l.embeddings for l in labels if len(l.embeddings)]).astype(np.float32)
    emb = emb[np.linalg.norm(emb, axis=1) > 0]  # faces the teacher did not embed (view labels: small or unsure)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.mean(0).astype(np.float32)


def checkpoint_score(result) -> float:
    """What best.pt maximises: detection (AP), closeness to the teacher (cosine) and telling
    faces apart as the teacher does (retrieval@1); the relation loss trades a little cosine
    for much more retrieval, which is what LFW follows."""
    return sum(v for v in (result.ap50, result.cosine, result.retrieval1) if not math.isnan(v))


def teacher_bank(labels, centre: np.ndarray) -> np.ndarray:
    """Centred unit teacher embeddings of every mimic-eligible face (float32, (M, 128)):
    the faces the relation loss compares each student embedding with."""
    parts = [l.embeddings[mimic_eligible(l)] for l in labels if len(l.embeddings)]
    return centred_teacher(np.concatenate(parts) if parts else np.zeros((0, len(centre))), centre)


def identity_classes(s: TrainSettings, train_labels, centre: np.ndarray) -> tuple[IdentityTable, np.ndarray]:
    """The identity table of the training images and its classes' starting weights
    (`class_centres`), for the identity loss."""
    path = Path(s.identities)
    if not path.is_file():
        raise ValueError(f"identity file {path} not found (the identity loss needs CelebA's identity_all.txt)")
    table = identity_table(train_labels, read_identities(path), min_images=s.identity_min_images)
    if table.classes == 0:
        raise ValueError(f"no training image of the CelebA label sets has an identity in {path}")
    return table, class_centres(table, train_labels, centre)


def init_state(path: Path, cfg, model: Uniface) -> dict[str, torch.Tensor]:
    """The weights to start from: a checkpoint of this configuration, or of another whose
    tensors all have this network's shapes (a warm start, e.g. finer ROIs), as it is; or one
    of a narrower or shallower configuration widened or deepened so that the network computes
    what it did."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt)
    source = ckpt.get("config", cfg.name)
    if source == cfg.name:
        return state
    if same_layout(state, model.state_dict()):
        log.info("starting %s from %s's weights (%s): every tensor has the same shape", cfg.name, source, path)
        return state
    if set(state) < set(model.state_dict()):
        check_deepenable(get_config(source), cfg)
        log.info("deepening %s weights from %s into %s (new blocks start as the identity)", source, path, cfg.name)
        return deepen_state(state, model.state_dict())
    check_widenable(get_config(source), cfg)
    log.info("widening %s weights from %s into %s", source, path, cfg.name)
    return widen_state(state, model.state_dict())


def detector_modules(model: Uniface) -> list[torch.nn.Module]:
    """The modules that detection depends on: the backbone and the SSD heads (the heads read the
    bottom-up levels; F_r and landmark attention feed only the embeddings)."""
    return [model.backbone, model.heads]


def freeze_detector(model: Uniface) -> None:
    """Stop gradients into the detector's parameters (`detector_modules`)."""
    for module in detector_modules(model):
        module.requires_grad_(False)


def training_mode(model: Uniface, detector_frozen: bool) -> None:
    """model.train(), except that a frozen detector keeps its batch norms in inference mode: in
    training mode they would update their running statistics and so change detection."""
    model.train()
    if detector_frozen:
        for module in detector_modules(model):
            module.eval()


def parameter_groups(model: Uniface, weight_decay: float, residual_lr_scale: float = 1.0) -> list[dict]:
    """AdamW groups: weights (decayed) and biases/norms (not), and the same two for the added
    residual blocks of landmark attention, if the configuration has them, whose learning rate
    is scaled by `residual_lr_scale` (key "lr_scale"). The groups depend only on the
    configuration, so a run resumes whatever the scale."""
    added = {id(p) for m in model.modules() if isinstance(m, (ResidualSeparable, ResidualMLP))
             for p in m.parameters()}
    groups = []
    for residual, scale in ((False, 1.0), (True, residual_lr_scale)):
        params = [(n, p) for n, p in model.named_parameters() if (id(p) in added) == residual]
        if not params:
            continue
        groups += [{"params": [p for _, p in params if p.ndim > 1], "weight_decay": weight_decay, "lr_scale": scale},
                   {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0, "lr_scale": scale}]
    return groups


def train(s: TrainSettings) -> dict:
    """Train (or resume) into `s.out_dir`: last.pt every evaluation, best.pt by validation."""
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    device = pick_device(s.device)
    cfg = get_config(s.config)
    roots = {k: Path(v) for k, v in s.data_roots.items()} or None
    views = is_view_cache(Path(s.labels_dir))
    labels = (load_view_labels if views else load_labels)(Path(s.labels_dir), s.sets, roots)
    split = split_labels(labels, s.val_images)
    train_labels, val_labels = split.train, split.validation
    if s.official_boxes:  # training images only: validation measures against the teacher
        train_labels, merged = merge_official_boxes(train_labels, read_official_boxes(Path(s.official_boxes)))
        log.info("official boxes: %d images, %d teacher faces confirmed, %d faces added without landmarks",
                 merged.images, merged.confirmed, merged.added)
    if not train_labels:
        raise ValueError(f"no labelled images with faces under {s.labels_dir}; run `main.py label` first")
    log.info("training on %d images (%d left out: the teacher found no face), validating on %d (device %s)",
             len(train_labels), split.teacher_missed, len(val_labels), device)

    last = out / "last.pt"
    carried = Path(s.carried) if s.carried else None
    saved = [(torch.load(path, map_location="cpu", weights_only=False), path)
             for path in (last, carried) if path is not None and path.is_file()]
    ckpt, source = max(saved, key=lambda found: found[0]["step"], default=(None, None))  # a tie: last.pt
    del saved  # the other one's tensors
    if source is not None and source == carried:
        ckpt = expand(ckpt)
    # dlib descriptors share a large common component (different people score cos ~0.85),
    # so the student mimics them centred: the identity-bearing part dominates the loss. A
    # resumed run keeps the centre it started with, whatever images the cache has gained since
    # (a run may start on a cache still being labelled).
    if ckpt is not None and "teacher_mean" in ckpt:
        teacher_mean = torch.tensor(ckpt["teacher_mean"], dtype=torch.float32)
    else:
        teacher_mean = torch.from_numpy(teacher_centre(train_labels))
    model = Uniface(cfg).to(device)
    if s.init and ckpt is None:  # a resumed run starts from its own checkpoint instead
        if s.init == "imagenet":
            log.info("backbone from ImageNet: %d tensors", init_from_imagenet(model))
        else:
            model.load_state_dict(init_state(Path(s.init), cfg, model))
    if s.freeze_detector:
        freeze_detector(model)  # its parameters then get no gradient, and AdamW skips them
    groups = parameter_groups(model, s.weight_decay, s.residual_lr_scale)
    lw = LossWeights(**s.weights)
    table, head = None, None
    if lw.identity > 0:
        # A training-only class-weight matrix, outside the network: exported weights never see it.
        table, centres = identity_classes(s, train_labels, teacher_mean.numpy())
        head = torch.nn.Parameter(torch.from_numpy(centres).to(device))
        groups.append({"params": [head], "weight_decay": 0.0})  # rows are normalised: decay would only shrink them
        log.info("identity loss: weight %g, %d classes (%d with one face) over %d training faces, CosFace s=%g m=%g",
                 lw.identity, table.classes, table.single_classes, table.faces, s.identity_scale, s.identity_margin)
    if lw.hint > 0 and (cfg.face_branch_kind not in ("deep", "mobilenet") or not views or s.crop_batch == 0):
        raise ValueError("the hint loss needs a deep face branch (e.g. config mnv2_s8_mnv2face) and the view "
                         "stream (a label-views cache and a crop batch > 0)")
    if s.live_targets and not views:
        raise ValueError("live targets need a label-views cache: SFace is the teacher whose space it holds")
    # training-only, like the identity head: SFace and the hint regressor stay out of the network;
    # one SFace module serves both the hints and the live targets
    sface = None
    if lw.hint > 0 or s.live_targets:
        sface = SFaceTeacher(taps=(HINT_TAP,) if lw.hint > 0 else ()).to(device).to(memory_format=torch.channels_last)
    hints = None
    if lw.hint > 0:
        hints = HintTeacher(sface, model.attention.face.map_channels).to(device)
        groups.append({"params": list(hints.regressor.parameters()), "weight_decay": 0.0})
        log.info("hint loss: weight %g, the face branch's %d-channel map taught SFace's %s",
                 lw.hint, hints.regressor.in_channels, hints.tap)
    input_hint = None
    if lw.input_hint > 0:
        if (cfg.face_branch_kind != "mobilenet" or cfg.face_roi != 28 or cfg.face_template is None or not views
                or s.crop_batch == 0):
            raise ValueError("the input hint needs the MobileNetV2 face branch on a 28 x 28 aligned region (config "
                             "mnv2_s8_mnv2face) and the view stream (a label-views cache and a crop batch > 0)")
        input_hint = ImageNetInputHint().to(device)
        log.info("input hint: weight %g, the face branch's input taught ImageNet's blocks 0-3 map of the chip",
                 lw.input_hint)
    live = sface if s.live_targets else None
    if live is not None:
        log.info("live targets: SFace embeds every augmented canvas face for its mimic target")
    opt = torch.optim.AdamW(groups, lr=s.lr)
    step, best = 0, -1.0
    saved_average = None
    ledger = ComputeLedger.from_checkpoint(ckpt)
    if ckpt is not None:
        if ckpt.get("config", s.config) != s.config:
            raise ValueError(f"{source} is a run of config {ckpt['config']}, not {s.config}: resume it with "
                             "that config, or use another --out")
        # a run that keeps an average saves the weights it trains beside it
        model.load_state_dict(ckpt.get("train_state_dict", ckpt["state_dict"]))
        if "train_state_dict" in ckpt:
            saved_average = (ckpt["state_dict"], ckpt.get("ema_updates", 0))
        if (head is None) != ("identity_head" not in ckpt):
            raise ValueError(f"{source} was trained with the identity loss {'on' if head is None else 'off'}: "
                             "resume it the same way, or use another --out")
        if head is not None:
            if ckpt["identity_names"] != table.names:
                raise ValueError(f"{source} has another identity table (file, sets or --identity-min-images "
                                 "changed): resume it with the same, or use another --out")
            head.data.copy_(ckpt["identity_head"])
        if (hints is None) != ("hint_regressor" not in ckpt):
            raise ValueError(f"{source} was trained with the hint loss {'on' if hints is None else 'off'}: "
                             "resume it the same way, or use another --out")
        if hints is not None:
            hints.regressor.load_state_dict(ckpt["hint_regressor"])
        opt.load_state_dict(ckpt["optimizer"])
        for g, fresh in zip(opt.param_groups, groups):  # this run's scale, not the saved one
            g["lr_scale"] = fresh.get("lr_scale", 1.0)
        step, best = ckpt["step"], ckpt.get("best", -1.0)
        torch.set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d (trained so far: %s)", source, step, ledger.summary())
        del ckpt  # its optimiser state and weights are in place
    (out / "settings.json").write_text(json.dumps(asdict(s), indent=1))

    dataset = FaceDataset(train_labels, _anchors(model, s.canvas, device), augment_settings(s),
                          seed=s.seed, identities=table, repeats=s.set_repeat)
    wide_batches = None
    if s.wide_batch > 0:
        wide = FaceDataset(train_labels, _anchors(model, tuple(s.wide_canvas), device),
                           replace(augment_settings(s), canvas=tuple(s.wide_canvas)),
                           seed=s.seed + 1, identities=table, repeats=s.set_repeat)
        wide_batches = _endless(wide, s.wide_batch, s.workers, s.seed + 1, step // max(1, len(wide) // s.wide_batch))
        log.info("wide stream: %d canvases of %dx%d per step", s.wide_batch, *s.wide_canvas)
    if s.identity_repeat > 1 and (table is None or s.crop_batch == 0):
        raise ValueError("identity repeat needs the identity loss (its weight > 0) and the mimic stream (crop batch > 0)")
    crops = None
    if s.crop_batch > 0 and views:
        if s.crop_canvas != CROP_SIZE:
            raise ValueError(f"the view stream's crops are {CROP_SIZE} px: use crop canvas {CROP_SIZE}")
        crops = ViewCropDataset(load_face_views(Path(s.labels_dir), s.sets), train_labels,
                                _anchors(model, (CROP_SIZE, CROP_SIZE), device), seed=s.seed)
        crop_batches = _endless(crops, s.crop_batch, s.workers, s.seed, step // max(1, len(crops) // s.crop_batch))
        log.info("view stream: %d stored faces, %d per step, each in one of its %d labelled views",
                 len(crops), s.crop_batch, crops.views.params.shape[1])
    elif s.crop_batch > 0:
        if s.crop_canvas < 64 or s.crop_canvas % 32:
            raise ValueError(f"crop canvas must be a multiple of 32 of at least 64, got {s.crop_canvas}")
        crops = FaceCropDataset(train_labels, repeat_identified(mimic_faces(train_labels), table, s.identity_repeat),
                                _anchors(model, (s.crop_canvas, s.crop_canvas), device),
                                CropSettings(canvas=s.crop_canvas, context=tuple(s.crop_context),
                                             turn_p=s.turn_p, turn_degrees=s.turn_degrees,
                                             backdrop_p=s.backdrop_p, faceless_p=s.faceless_p, dark_p=s.dark_p),
                                seed=s.seed, identities=table)
        crop_batches = _endless(crops, s.crop_batch, s.workers, s.seed, step // max(1, len(crops) // s.crop_batch))
        log.info("mimic stream: %d faces, %d per step on %dx%d crops", len(crops), s.crop_batch,
                 s.crop_canvas, s.crop_canvas)
    bank_np = teacher_bank(train_labels, teacher_mean.numpy())
    bank = None
    if lw.relation > 0:
        bank = torch.from_numpy(bank_np).to(device)
        log.info("relation loss: weight %g over a bank of %d teacher faces, temperature %g",
                 lw.relation, len(bank), s.relation_temp)
    gen = torch.Generator().manual_seed(s.seed + step)
    bf16 = s.bf16 and device.type == "cpu"
    channels_last = (s.bf16 or s.channels_last) and device.type == "cpu"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    average = None
    if s.ema:
        average = WeightAverage(model, s.ema)
        if saved_average is not None:
            average.load(*saved_average)
        log.info("weight average: decay %g, %s", s.ema,
                 f"resumed after {average.updates} updates" if saved_average else "starting from these weights")
    log_file = open(out / "train.jsonl", "a")
    t_last, seen = time.time(), 0
    # the ledger's unsaved stretch: a run stopped between checkpoints loses its steps and their cost alike
    t_counted, counted_step = time.time(), step
    end = min(s.steps, s.stop_at) if s.stop_at else s.steps
    while step < end:
        dataset.epoch = step // max(1, len(dataset) // s.batch)
        loader = DataLoader(dataset, batch_size=s.batch, shuffle=True, num_workers=s.workers,
                            collate_fn=collate, drop_last=True, persistent_workers=False,
                            generator=torch.Generator().manual_seed(s.seed + dataset.epoch))
        training_mode(model, s.freeze_detector)
        for batch in loader:
            if step >= end:
                break
            for g in opt.param_groups:
                g["lr"] = _lr(step, s) * g.get("lr_scale", 1.0)
            full = _batch_losses(model, batch, device, s.jitter, gen, teacher_mean, bf16, live=live,
                                 channels_last=channels_last)
            losses, student, target, classes = full.losses, full.student, full.target, full.classes
            streams = 1  # each stream's losses count alike, whatever its batch
            if wide_batches is not None:
                wide_out = _batch_losses(model, next(wide_batches), device, s.jitter, gen, teacher_mean, bf16,
                                         live=live, channels_last=channels_last)
                losses = {k: v + wide_out.losses[k] for k, v in losses.items()}
                student, target = torch.cat([student, wide_out.student]), torch.cat([target, wide_out.target])
                classes = torch.cat([classes, wide_out.classes])
                streams += 1
            if crops is not None:
                crop_batch = next(crop_batches)
                view = _batch_losses(model, crop_batch, device, s.jitter, gen, teacher_mean, bf16,
                                     with_map=hints is not None or input_hint is not None,
                                     channels_last=channels_last)
                losses = {k: v + view.losses[k] for k, v in losses.items()}
                streams += 1
            losses = {k: v / streams for k, v in losses.items()}
            if crops is not None:
                if hints is not None:  # the teacher's chips: the view on its own (unjittered) landmarks
                    chips = teacher_chips(crop_batch["images"], crop_batch["mimic_landmarks"], crop_batch["mimic_index"])
                    losses["hint"] = hints.loss(view.maps.output, hints.targets(chips))
                if input_hint is not None:  # chips on the landmarks the student sampled: cell for cell
                    chips = teacher_chips(crop_batch["images"], view.landmarks, crop_batch["mimic_index"])
                    losses["input_hint"] = input_hint.loss(view.maps.input, input_hint.targets(chips))
                student, target = torch.cat([student, view.student]), torch.cat([target, view.target])
                classes = torch.cat([classes, view.classes])
            losses["mimic"] = mimic_loss(student, target)
            if len(student):
                with torch.no_grad():
                    losses["cos"] = (student * target).sum(1).mean()
            total = lw.cls * losses["cls"] + lw.box * losses["box"] + lw.landmarks * losses["landmarks"] \
                + lw.mimic * losses["mimic"]
            if bank is not None:
                losses["relation"] = relation_loss(student, target, bank, s.relation_temp)
                total = total + lw.relation * losses["relation"]
            if hints is not None:
                total = total + lw.hint * losses["hint"]
            if input_hint is not None:
                total = total + lw.input_hint * losses["input_hint"]
            if head is not None:
                losses["identity"] = identity_loss(student, classes, head, s.identity_scale, s.identity_margin)
                total = total + lw.identity * losses["identity"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)  # not the head: Adam steps hardly depend on its scale
            opt.step()
            if average is not None:
                average.update(model)
            step += 1
            seen += len(batch["images"])
            if step % s.log_every == 0:
                rate = seen / (time.time() - t_last)
                t_last, seen = time.time(), 0
                rec = {"step": step, "lr": round(_lr(step, s), 6), "img_s": round(rate, 1), "total": round(float(total.detach()), 4),
                       **{k: round(float(v.detach()), 4) for k, v in losses.items()}, "mimic_faces": int(len(student))}
                if head is not None:
                    known = int((classes >= 0).sum())
                    rec.update(identity_faces=known, identity_share=round(known / max(1, len(classes)), 3))
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log.info("step %d %s", step, " ".join(f"{k}={v}" for k, v in rec.items() if k != "step"))
            if step % s.eval_every == 0 or step == end:
                evaluated = model if average is None else average.module
                result = validate(evaluated, val_labels, device=device, teacher_mean=teacher_mean.numpy(), bank=bank_np)
                score = checkpoint_score(result)
                rec = {"step": step, "val": result.as_dict()}
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                log.info("validation at step %d: %s", step, result.as_dict())
                stretch = step - counted_step  # both streams drop their last short batch: every step is whole
                ledger.add(device.type, time.time() - t_counted, stretch * (s.batch + s.wide_batch),
                           stretch * s.crop_batch if crops is not None else 0)
                t_counted, counted_step = time.time(), step
                payload = {"config": s.config, "state_dict": evaluated.state_dict(), "step": step,
                           "teacher_mean": teacher_mean.tolist(), "ledger": ledger.as_dict(),
                           "val": result.as_dict(), "settings": asdict(s)}
                if head is not None:  # training-only: publish_weights takes the state dict alone
                    payload.update(identity_head=head.detach().cpu().clone(), identity_names=table.names)
                if hints is not None:
                    payload["hint_regressor"] = hints.regressor.state_dict()
                if score > best:
                    best = score
                    _save(out / "best.pt", payload)
                if s.keep_every and step % s.keep_every == 0:
                    _save(kept_checkpoint(out, step), payload)
                resume = {"optimizer": opt.state_dict(), "best": best, "rng": torch.get_rng_state()}
                if average is not None:
                    resume.update(train_state_dict=model.state_dict(), ema_updates=average.updates)
                resumable = {**payload, **resume}
                _save(last, resumable)
                if carried is not None:
                    write_carried(resumable, carried)
                training_mode(model, s.freeze_detector)
    log_file.close()
    return {"step": step, "best": best, "out": str(out)}
