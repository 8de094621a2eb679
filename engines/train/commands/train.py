"""`main.py train`: train the single-shot network by mimicking the teachers (resumable)."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from engines.options import parse_size
from engines.paths import REPO_ROOT, user_cache_dir
from engines.model.config import CONFIG_HELP, SHIPPED_CONFIG


def register(sub) -> None:
    p = sub.add_parser("train",
                       description="Mimic distillation from the label cache made by `main.py label`. Re-running "
                                   "the same command resumes from OUT/last.pt.")
    p.add_argument("--labels", type=Path, default=None, help="label cache (default: the user cache's labels/)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "prod", help="run folder (runs/prod)")
    p.add_argument("--config", default=SHIPPED_CONFIG, help=CONFIG_HELP)
    p.add_argument("--sets", default=None, help="comma-separated label sets (default: all)")
    p.add_argument("--data-root", action="append", default=[], metavar="SET=DIR",
                   help="where a set's images are now, if moved since labelling")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--canvas", type=parse_size, default=(320, 320), metavar="WxH", help="training canvas (320x320)")
    p.add_argument("--wide-batch", type=int, default=0,
                   help="add N canvases per step at --wide-canvas, the sizes the product runs at (0: off)")
    p.add_argument("--wide-canvas", type=parse_size, default=(640, 480), metavar="WxH",
                   help="those canvases' size (640x480): the coarse levels then see cells far from the "
                        "padding, which 320x320 canvases never show them")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--val-images", type=int, default=300)
    p.add_argument("--init", type=Path, default=None, help="start from these weights; weights of a narrower "
                   "configuration (prod for --config wide) are widened so the network starts where they were; "
                   "'imagenet': the ImageNet MobileNetV2 backbone (configs on mobilenet_v2, e.g. mnv2_aligned)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast and channels-last memory on the CPU (about 2x faster there)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels-last memory in float32 on the CPU: the same arithmetic, a step of "
                        "mnv2_s8_mnv2face_px_d8 ~1.2x faster on a 2-core CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-batch", type=int, default=0,
                   help="add N face-centred crops per step (the mimic stream; 0: off)")
    p.add_argument("--crop-canvas", type=_parse_crop_canvas, default=128, help="side of those crops, a multiple of 32 (128)")
    p.add_argument("--crop-context", type=_parse_range, default=(1.3, 2.2), metavar="LO,HI",
                   help="crop side / face size, drawn between LO and HI (1.3,2.2): sets the face sizes taught")
    p.add_argument("--mimic-weight", type=float, default=None, help="weight of the mimic loss (4)")
    p.add_argument("--relation-weight", type=float, default=0.0,
                   help="weight of the relation loss: the student's similarities to a bank of teacher faces "
                        "mimic the teacher's (0: off)")
    p.add_argument("--relation-temp", type=float, default=0.05, help="softmax temperature of the relation loss (0.05)")
    p.add_argument("--letterbox-p", type=float, default=0.0,
                   help="share of canvases given black letterbox borders, as small frames get in the product (0)")
    p.add_argument("--turn-p", type=float, default=0.0,
                   help="share of training images turned before use, so tilted heads are taught (0)")
    p.add_argument("--turn-degrees", type=float, default=30.0,
                   help="largest turn either way, in degrees (30)")
    p.add_argument("--backdrop-p", type=float, default=0.0,
                   help="share of canvases and crops laid on a face-free region of another training photo, "
                        "enlarged, instead of a flat colour (0)")
    p.add_argument("--faceless-p", type=float, default=0.0,
                   help="share of canvases and crops that are only such a region: no face, so large "
                        "blurred backgrounds are taught as background (0)")
    p.add_argument("--dark-p", type=float, default=0.0,
                   help="share of canvases and crops dimmed to a dark room's light, so faces in the dark "
                        "stay faces (0)")
    p.add_argument("--native-p", type=float, default=0.0,
                   help="share of single-photo canvases cut at about the photo's own scale (0.4-1.4) instead of "
                        "the whole photo zoomed to the canvas: crowds' small faces at the size the product sees them (0)")
    p.add_argument("--small-p", type=float, default=0.0,
                   help="share of canvases that are a grid of 2x2 to 4x4 windows, each on a photo scaled so that "
                        "one of its faces is 8-64 px: small faces for the smallest anchors (0)")
    p.add_argument("--official-boxes", type=Path, default=None, metavar="MAT",
                   help="a WIDER FACE ground truth (wider_face_val.mat): its boxes join the labels of the training "
                        "images it covers (the odd-event val images), faces the teacher missed without landmarks")
    p.add_argument("--set-repeat", action="append", default=[], metavar="SET=N",
                   help="each image of label set SET is a canvas source N times (repeatable; e.g. wider-odd=8)")
    p.add_argument("--identity-weight", type=float, default=0.0,
                   help="weight of the identity loss: a CosFace margin softmax over the people of the CelebA "
                        "label sets, on the student's embeddings (0: off)")
    p.add_argument("--identity-margin", type=float, default=0.2, help="its cosine margin m, in [0, 1) (0.2)")
    p.add_argument("--identity-scale", type=float, default=30.0, help="its logit scale s, > 0 (30)")
    p.add_argument("--identity-min-images", type=int, default=1,
                   help="people with fewer identified training faces get no class (1: every person)")
    p.add_argument("--identity-repeat", type=int, default=1,
                   help="each face with an identity appears this many times in the mimic stream of face crops, "
                        "so each person is seen that many times as often (1)")
    p.add_argument("--identities", type=Path, default=None,
                   help="CelebA's identity_all.txt, file name -> person (../shared/data/celeba-wild/identity_all.txt)")
    p.add_argument("--residual-lr-scale", type=float, default=1.0,
                   help="learning-rate multiplier for the residual blocks a deeper configuration adds to "
                        "landmark attention (wide_aligned_deep), which start as the identity (1)")
    p.add_argument("--hint-weight", type=float, default=0.0,
                   help="weight of the dense hint: a deep face branch's last map (config mnv2_s8_deep) taught "
                        "SFace's last 7x7 map of the same view, on the view stream (--labels VIEWCACHE, "
                        "--crop-batch > 0); 0: off (0)")
    p.add_argument("--input-hint-weight", type=float, default=0.0,
                   help="weight of the ImageNet input hint: the MobileNetV2 face branch's input (config "
                        "mnv2_s8_mnv2face) taught ImageNet's own blocks 0-3 map of the aligned chip, on the view "
                        "stream; 0: off (0)")
    p.add_argument("--live-targets", action="store_true",
                   help="the full-image stream's mimic targets from SFace on the augmented canvas itself (the "
                        "view the student sees) instead of the stored embedding of the clean photo; needs a "
                        "label-views cache")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate, keep and ship a moving average of the weights with this decay (e.g. 0.998: "
                        "about the last 500 steps) instead of the last step's; last.pt keeps both, and a run "
                        "takes one up when resumed; 0: off (0)")
    p.add_argument("--carried", type=Path, default=None, metavar="FILE",
                   help="also write a small copy of last.pt here at every evaluation (about a third of its size: "
                        "weights in float16, for committing to the repository), and start from it when it holds "
                        "a later step than last.pt, as on a fresh machine where --out is gone (none)")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop at this step (with a checkpoint) without changing the --steps schedule: a "
                        "slice of a long run, e.g. one arm of an A/B; 0: run to --steps (0)")
    p.add_argument("--keep-every", type=int, default=0, metavar="N",
                   help="also keep the checkpoint of every N-th step as step_NNNNNN.pt in --out (weights only, "
                        "at evaluation steps: N a multiple of --eval-every), for comparisons at equal steps after "
                        "last.pt has moved on; 0: none (0)")
    p.add_argument("--freeze-detector", action="store_true",
                   help="train only the top-down pathway and landmark attention (the embeddings): the "
                        "backbone and detection heads stay exactly as --init gave them, so detection does too")
    p.set_defaults(func=run)


def _parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 1.3,2.2, got {text!r}") from None
    if not 1.0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI (the crop holds the face), got {text!r}")
    return lo, hi


def _parse_crop_canvas(text: str) -> int:
    try:
        side = int(text)
    except ValueError:
        side = 0
    if side < 64 or side % 32:
        raise argparse.ArgumentTypeError(f"the crop side must be a multiple of 32 of at least 64, got {text!r}")
    return side


def run(args) -> int:
    from engines.errors import UserError
    from engines.train.identities import DEFAULT_IDENTITIES
    from engines.train.loop import TrainSettings, train
    from engines.train.losses import LossWeights

    labels = args.labels or user_cache_dir() / "labels"
    if not labels.is_dir():
        raise UserError(f"no label cache at {labels}; run `main.py label` or `label-views` first (or pass --labels)")
    if args.relation_weight < 0 or args.relation_temp <= 0:
        raise UserError("--relation-weight must be >= 0 and --relation-temp > 0")
    for flag, share in (("--letterbox-p", args.letterbox_p), ("--turn-p", args.turn_p),
                        ("--backdrop-p", args.backdrop_p), ("--faceless-p", args.faceless_p),
                        ("--dark-p", args.dark_p), ("--native-p", args.native_p),
                        ("--small-p", args.small_p)):
        if not 0 <= share <= 1:
            raise UserError(f"{flag} must be between 0 and 1")
    if not 0 <= args.turn_degrees <= 90:
        raise UserError("--turn-degrees must be between 0 and 90")
    if args.official_boxes is not None and not args.official_boxes.is_file():
        raise UserError(f"--official-boxes: no file {args.official_boxes}")
    if args.identity_weight < 0 or args.hint_weight < 0 or args.input_hint_weight < 0:
        raise UserError("--identity-weight, --hint-weight and --input-hint-weight must be >= 0")
    if not (args.ema == 0 or 0 < args.ema < 1):
        raise UserError(f"--ema must be 0 (off) or between 0 and 1, got {args.ema}")
    if args.stop_at < 0:
        raise UserError("--stop-at must be >= 0")
    if args.keep_every < 0 or (args.keep_every and args.keep_every % args.eval_every):
        raise UserError(f"--keep-every must be 0 or a multiple of --eval-every ({args.eval_every}), "
                        f"got {args.keep_every}")
    if not 0 <= args.identity_margin < 1:
        raise UserError("--identity-margin must be in [0, 1)")
    if args.identity_scale <= 0:
        raise UserError("--identity-scale must be > 0")
    if args.residual_lr_scale <= 0:
        raise UserError("--residual-lr-scale must be > 0")
    if args.identity_min_images < 1:
        raise UserError("--identity-min-images must be at least 1")
    if args.identity_repeat < 1:
        raise UserError("--identity-repeat must be at least 1")
    if args.wide_batch < 0 or args.wide_canvas[0] % 32 or args.wide_canvas[1] % 32:
        raise UserError("--wide-batch must be >= 0 and --wide-canvas multiples of 32")
    if args.identity_repeat > 1 and (args.identity_weight == 0 or args.crop_batch == 0):
        raise UserError("--identity-repeat needs --identity-weight > 0 and --crop-batch > 0")
    identities = args.identities or DEFAULT_IDENTITIES
    if args.identity_weight > 0 and not identities.is_file():
        raise UserError(f"--identities: {identities} not found (the identity loss needs CelebA's "
                        "identity_all.txt)")
    weights = LossWeights(relation=args.relation_weight, identity=args.identity_weight, hint=args.hint_weight,
                          input_hint=args.input_hint_weight,
                          **({} if args.mimic_weight is None else {"mimic": args.mimic_weight}))
    roots = dict(v.split("=", 1) for v in args.data_root)
    set_repeat = {}
    for item in args.set_repeat:
        name, _, times = item.partition("=")
        if not name or not times.isdigit() or int(times) < 1:
            raise UserError(f"--set-repeat takes SET=N with N >= 1, got {item!r}")
        set_repeat[name] = int(times)
    settings = TrainSettings(
        labels_dir=str(labels), out_dir=str(args.out), config=args.config,
        sets=args.sets.split(",") if args.sets else None, data_roots=roots, steps=args.steps, batch=args.batch,
        lr=args.lr, canvas=args.canvas, wide_batch=args.wide_batch, wide_canvas=args.wide_canvas, workers=args.workers, device=args.device, eval_every=args.eval_every,
        val_images=args.val_images, init=str(args.init) if args.init else None, seed=args.seed, bf16=args.bf16,
        channels_last=args.channels_last,
        weights=asdict(weights), crop_batch=args.crop_batch, crop_canvas=args.crop_canvas,
        crop_context=args.crop_context, relation_temp=args.relation_temp, letterbox_p=args.letterbox_p,
        turn_p=args.turn_p, turn_degrees=args.turn_degrees, backdrop_p=args.backdrop_p, faceless_p=args.faceless_p,
        dark_p=args.dark_p, native_p=args.native_p, small_p=args.small_p, official_boxes=str(args.official_boxes or ""), set_repeat=set_repeat, identities=str(identities), identity_scale=args.identity_scale,
        identity_margin=args.identity_margin, identity_min_images=args.identity_min_images,
        identity_repeat=args.identity_repeat,
        residual_lr_scale=args.residual_lr_scale, freeze_detector=args.freeze_detector, stop_at=args.stop_at,
        keep_every=args.keep_every,
        live_targets=args.live_targets, ema=args.ema, carried=str(args.carried or ""),
    )
    try:
        result = train(settings)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(result))
    return 0
