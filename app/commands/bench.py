"""`main.py bench`: end-to-end latency and FPS of an engine (pre/post-processing included)."""
from __future__ import annotations

import argparse
import json
import logging

from app.offline.benchmark import make_frames, run_cases
from app.engine_options import add_engine_options, make_engine, parse_size
from app.paths import SAMPLE_IMAGE
from engines.backends.registry import ENGINES

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("bench",
                       description="Warm up, then time end-to-end inference on frames made from the bundled "
                                   "sample image. Several backends (comma-separated) run interleaved in one "
                                   "process; ratios are against the first.")
    add_engine_options(p)
    p.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH", help="frame size (640x480)")
    p.add_argument("--batch", type=int, default=1, help="frames per call (1)")
    p.add_argument("--iterations", type=int, default=200, help="timed calls per case (200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls first (10)")
    p.add_argument("--faces", default=None,
                   help="comma-separated face counts to force through the embedding head, e.g. 1,5,10,20 "
                        "(default: whatever the detector finds)")
    p.add_argument("--versus", default="", metavar="ENGINE[,ENGINE]",
                   help="other engines to time in the same run, interleaved, on their best backend, "
                        "e.g. uniface,mtcnn-dlib (ratios are against the first engine)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.errors import UserError
    from app.imageio import load_image

    if args.batch < 1 or args.iterations < 1:
        raise UserError("--batch and --iterations must be at least 1")
    faces_list = [None] if not args.faces else [int(v) for v in args.faces.split(",")]
    backends = args.backend.split(",")
    others = [name for name in args.versus.split(",") if name]
    unknown = [name for name in others if name not in ENGINES]
    if unknown:
        raise UserError(f"--versus: unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    engines = [make_engine(args, backend=b, background_build=False) for b in backends]
    for name in others:
        versus = argparse.Namespace(**{**vars(args), "engine": name, "backend": "auto"})
        if name != "uniface":
            versus.weights = None
        engines.append(make_engine(versus, background_build=False))
    frames = make_frames(load_image(SAMPLE_IMAGE), args.size, args.batch)
    try:
        cases = run_cases(engines, frames, faces_list, args.iterations, args.warmup)
    finally:
        for e in engines:
            e.close()
    base = cases[0]
    info = engines[0].info
    result = {
        "engine": info.engine,
        "backend": info.backend,
        "device": info.device,
        "model_id": info.model_id,
        "random_weights": info.random_weights,
        "size": f"{args.size[0]}x{args.size[1]}",
        "input_size": None if info.input_size is None else f"{info.input_size[0]}x{info.input_size[1]}",
        "batch": args.batch,
        **{k: v for k, v in base.summary().items() if k in ("fps", "latency_ms", "iterations", "detected")},
        "cases": [dict(c.summary(), ratio_to_first=round(c.p50 / base.p50, 3)) for c in cases],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    if info.random_weights:
        print("note: RANDOM WEIGHTS (no trained model): speed is real, detections are not")
    print(f"engine {info.engine}, model {info.model_id}, frames {result['size']} -> input {result['input_size']}, "
          f"batch {args.batch}")
    for c in result["cases"]:
        faces = "detected" if c["faces"] is None else f"{c['faces']} forced"
        print(f"  {c['engine']:<10} {c['backend']:<18} {c['device']:<7} faces {faces:<10} p50 {c['latency_ms']['p50']:7.2f} ms  "
              f"p95 {c['latency_ms']['p95']:7.2f} ms  {c['fps']:8.1f} img/s  x{c['ratio_to_first']:.2f} vs first")
    return 0
