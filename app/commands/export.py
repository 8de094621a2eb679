"""`main.py export onnx|weights`: the single-shot graph as one ONNX file, or a training
checkpoint as the shippable weights file."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from engines.model.config import CONFIG_HELP, SHIPPED_CONFIG, get_config


def register(sub) -> None:
    p = sub.add_parser("export", help="export the single-shot network",
                       description="onnx: the whole graph (decoding, NMS, ROI pooling, embeddings) as one ONNX file. "
                                   "weights: a training checkpoint (--weights runs/prod/best.pt) as the shipped "
                                   "weights file, optimizer state dropped (default out: the shipped path of the "
                                   "checkpoint's configuration, engines/model/weights/uniface_CONFIG.pt); "
                                   "several --weights give their element-wise mean (a model soup); "
                                   "--detection-threshold stores the detection score these weights use by default.")
    p.add_argument("format", choices=["onnx", "weights"], help="output format")
    p.add_argument("--config", default=SHIPPED_CONFIG, help=CONFIG_HELP)
    p.add_argument("--weights", type=Path, action="append", default=None,
                   help="weights (default: the shipped model); with `weights`, give it several times to "
                        "average checkpoints of one configuration fine-tuned from the same weights")
    p.add_argument("--out", type=Path, default=None, help="output file (default: uniface_CONFIG.onnx)")
    p.add_argument("--detection-threshold", type=_threshold, default=None, metavar="T",
                   help="with `weights`: the detection score (0-1) the weights use wherever none is asked "
                        "for, chosen for them with `eval agreement --min-score` (default: the checkpoint's "
                        "own, else 0.9); published weights may be given again to change only this")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _threshold(text: str) -> float:
    from engines.model.detection_threshold import checked_detection_threshold

    try:
        return checked_detection_threshold(text, "--detection-threshold")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args) -> int:
    from app.errors import UserError
    from engines.model.export import export_onnx

    try:
        get_config(args.config)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for path in args.weights or []:
        if not path.exists():
            raise UserError(f"weights file not found: {path}")
    if args.format == "weights":
        return _publish(args)
    if args.detection_threshold is not None:
        raise UserError("--detection-threshold is stored with `export weights`; the ONNX file takes the weights' own")
    if args.weights and len(args.weights) > 1:
        raise UserError("export onnx takes one --weights; average checkpoints with `export weights` first")
    out = args.out or Path(f"uniface_{args.config}.onnx")
    try:
        export_onnx(args.config, args.weights[0] if args.weights else None, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    from engines.model.onnx_file import onnx_metadata

    meta = onnx_metadata(out)
    summary = {"output": str(out), "bytes": out.stat().st_size, **meta}
    print(json.dumps(summary) if args.json else f"wrote {out} ({summary['bytes'] / 1e6:.1f} MB, {meta.get('model_id')})")
    return 0


def _publish(args) -> int:
    from app.errors import UserError
    from engines.model.weights import publish_weights

    if not args.weights:
        raise UserError("export weights needs --weights CHECKPOINT (e.g. runs/prod/best.pt)")
    out = args.out  # None: the shipped path of the checkpoint's own configuration
    try:
        meta = publish_weights(args.weights, out, detection_threshold=args.detection_threshold)
    except (ValueError, RuntimeError, KeyError) as exc:
        names = ", ".join(str(p) for p in args.weights)
        raise UserError(f"{names}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write {out or 'the shipped weights file'}: {exc.strerror or exc}") from None
    out = Path(meta.weights_path)
    summary = {"output": str(out), "bytes": out.stat().st_size, **meta.as_dict()}
    print(json.dumps(summary) if args.json else f"wrote {out} ({summary['bytes'] / 1e6:.1f} MB, {meta.model_id})")
    return 0
