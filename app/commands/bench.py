"""`main.py bench`: end-to-end latency and FPS of an engine (pre/post-processing included)."""
from __future__ import annotations

import argparse
import json
import logging

from app.offline.benchmark import make_face_frames, make_frames, run_cases
from app.engine_options import add_engine_options, make_engine, parse_size
from app.paths import SAMPLE_FACE_BOX, SAMPLE_IMAGE
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
                   help="comma-separated face counts, e.g. 1,5,10,20: each a case of frames holding that many "
                        "copies of the sample's face, run at the engine's own threshold (default: the sample "
                        "as it is)")
    p.add_argument("--force", action="store_true",
                   help="with --faces: force each count through the embedding head of the sample frame instead "
                        "(threshold -1, every detection candidate through NMS: the worst case; for models "
                        "that find no face, such as random weights)")
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
    try:
        faces_list = [int(v) for v in args.faces.split(",")] if args.faces else []
    except ValueError:
        raise UserError(f"--faces takes comma-separated face counts, e.g. 1,5,20, not {args.faces!r}") from None
    if any(n < 1 for n in faces_list):
        raise UserError("--faces: every face count must be at least 1")
    if args.force and not faces_list:
        raise UserError("--force needs --faces: the face counts to force")
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
    sample = load_image(SAMPLE_IMAGE)
    if args.force or not faces_list:  # the sample frame, forced counts go through it
        frames = {None: make_frames(sample, args.size, args.batch)}
    else:
        frames = {n: make_face_frames(sample, SAMPLE_FACE_BOX, n, args.size, args.batch) for n in faces_list}
    try:
        cases = run_cases(engines, frames, args.iterations, args.warmup, forced=faces_list if args.force else None)
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
        faces = ("sample" if c["faces"] is None else f"{c['faces']} forced" if c["forced"]
                 else f"{c['faces']} in view")
        print(f"  {c['engine']:<10} {c['backend']:<18} {c['device']:<7} faces {faces:<10} found {c['detected']:5.1f}  p50 {c['latency_ms']['p50']:7.2f} ms  "
              f"p95 {c['latency_ms']['p95']:7.2f} ms  {c['fps']:8.1f} img/s  x{c['ratio_to_first']:.2f} vs first")
    return 0
