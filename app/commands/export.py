"""`main.py export onnx`: the single-shot graph as one ONNX file (`export weights`, a training
checkpoint as the shippable weights file, is registered by `engines/train/commands`)."""
from __future__ import annotations

import json
from pathlib import Path

from engines.errors import UserError
from engines.options import add_export_options, check_export_args


def register(sub) -> None:
    p = sub.add_parser("onnx",
                       description="The whole graph (decoding, NMS, ROI pooling, embeddings) as one ONNX file.")
    add_export_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.model.export import export_onnx

    check_export_args(args)
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
