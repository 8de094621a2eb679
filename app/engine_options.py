"""Asking for a face engine: the command-line options every command that runs one shares, the
`EngineRequest` that the command line and the window's settings both build, and the one place
that turns a request into an engine (`make_engine`; `make_engine_for_gui` for the window)."""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from engines.engine import FaceEngine
from engines.errors import EngineUnavailable, UserError
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


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """Which engine to make (the `--engine ...` options). The detection threshold is given per
    call (`infer`) and the recognition threshold is the gallery's: neither makes an engine."""

    engine: str = "uniface"
    backend: str = "auto"
    device: str | None = None
    config: str = SHIPPED_CONFIG
    weights: Path | None = None
    input_size: tuple[int, int] | None = None

    @classmethod
    def from_args(cls, args) -> "EngineRequest":
        """From a command line parsed with `add_engine_options` (an `EngineRequest` passes as is)."""
        if isinstance(args, cls):
            return args
        return cls(engine=args.engine, backend=args.backend, device=getattr(args, "device", None),
                   config=getattr(args, "config", SHIPPED_CONFIG), weights=getattr(args, "weights", None),
                   input_size=getattr(args, "input_size", None))

    @classmethod
    def from_settings(cls, settings, device: str | None = None, config: str = SHIPPED_CONFIG,
                      weights: Path | None = None) -> "EngineRequest":
        """From the window's settings (`app.settings.Settings`: engine, backend, input size)."""
        return cls(engine=settings.engine, backend=settings.backend, device=device, config=config, weights=weights,
                   input_size=settings.input_size)


def make_engine(args: "EngineRequest | argparse.Namespace", backend: str | None = None, background_build: bool = True):
    """The engine a request (or the command line's options) asks for; unavailable backends
    become a `UserError`.

    background_build: with `--backend auto`, build a missing TensorRT engine in the background
    and switch to it when ready (long-running commands); False for one-shot commands, which
    take the best backend that is ready now.
    """
    from engines.backends.registry import create_engine

    args = EngineRequest.from_args(args)
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


def make_engine_for_gui(args: "EngineRequest | argparse.Namespace") -> FaceEngine:
    """`make_engine`, except that engines holding the GIL run in a child process
    (`engines.wrappers.child_process`) so the window stays smooth."""
    from engines.backends.registry import create_engine
    from engines.wrappers.child_process import GIL_HOLDING_ENGINES, ProcessEngine

    args = EngineRequest.from_args(args)
    if args.engine not in GIL_HOLDING_ENGINES:
        return make_engine(args)
    try:
        return ProcessEngine(args.engine, args.backend, args.device, factory=create_engine)
    except EngineUnavailable as exc:
        raise UserError(str(exc)) from None
