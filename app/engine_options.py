"""Command-line options shared by every command that runs a face engine."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engines.errors import UserError
from app.paths import user_cache_dir
from engines.options import parse_input_size, parse_size  # noqa: F401  (parse_size: for the commands)
from engines.backends.registry import ENGINES
from engines.model.config import CONFIG_HELP, SHIPPED_CONFIG

log = logging.getLogger(__name__)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine, --backend, --device, --config, --weights, --input-size."""
    g = parser.add_argument_group("engine")
    g.add_argument("--engine", choices=list(ENGINES), default="uniface",
                   help="uniface: single-shot network (default); cascade: YuNet + SFace (the accurate one); "
                        "mtcnn-dlib: MTCNN + dlib (the paper's two-network baseline, slow)")
    g.add_argument("--backend", default="auto", help="auto (default), onnxruntime, torch, tensorrt")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's best)")
    g.add_argument("--config", default=SHIPPED_CONFIG, help=CONFIG_HELP)
    g.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped model)")
    g.add_argument("--input-size", type=parse_input_size, default=None, metavar="WxH",
                   help="network input size (default: the configuration's, 640x480)")


def make_engine(args: argparse.Namespace, backend: str | None = None, background_build: bool = True):
    """The engine the options ask for; unavailable backends become a `UserError`.

    background_build: with `--backend auto`, build a missing TensorRT engine in the background
    and switch to it when ready (long-running commands); False for one-shot commands, which
    take the best backend that is ready now.
    """
    from engines.errors import EngineUnavailable
    from engines.backends.registry import create_engine

    if args.weights is not None and not args.weights.exists():
        raise UserError(f"weights file not found: {args.weights}")
    kw = {}
    if args.engine == "uniface":
        kw = dict(config=args.config, weights=args.weights, cache_dir=user_cache_dir(), input_size=args.input_size,
                  background_build=background_build)
    try:
        engine = create_engine(args.engine, backend or args.backend, device=args.device, **kw)
    except (EngineUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None
    if engine.info.random_weights:
        log.warning("running RANDOM WEIGHTS (%s): detections and names are meaningless", engine.info.model_id)
    return engine
