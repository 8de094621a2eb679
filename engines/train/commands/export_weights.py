"""`main.py export weights`: a training checkpoint as the shippable weights file (optimizer state
dropped); several checkpoints give their element-wise mean (a model soup)."""
from __future__ import annotations

import json
from pathlib import Path

from engines.errors import UserError
from engines.options import add_export_options, check_export_args


def register(sub) -> None:
    p = sub.add_parser("weights",
                       description="A training checkpoint (--weights runs/prod/best.pt) as the shipped weights "
                                   "file, optimizer state dropped (default out: the shipped path of the "
                                   "checkpoint's configuration, engines/model/weights/uniface_CONFIG.pt); "
                                   "several --weights give their element-wise mean (a model soup); "
                                   "--detection-threshold stores the detection score these weights use by default.")
    add_export_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.model.weights import publish_weights

    check_export_args(args)
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
