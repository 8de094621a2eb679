"""`main.py build-engine`: build (or find in the cache) the TensorRT engine for this GPU."""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from app.engine_options import parse_input_size
from engines.errors import UserError
from engines.model.config import CONFIG_HELP, SHIPPED_CONFIG, get_config

log = logging.getLogger(__name__)


def _positive_batch(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"max batch must be a whole number, got {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"max batch must be 1..256, got {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "build-engine",
        description="Build the TensorRT engine of the single-shot network for this GPU and TensorRT version, "
        "or report the cached one. Engines are keyed by model, TensorRT, GPU, precision and profile.",
    )
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16",
                   help="fp16 (default): FP16 graph with FP32 inputs/outputs; fp32: exact")
    p.add_argument("--max-batch", type=_positive_batch, default=8, metavar="N",
                   help="largest batch the engine accepts (default 8)")
    p.add_argument("--input-size", type=parse_input_size, default=None, metavar="WxH",
                   help="network input size (default: the configuration's, 640x480)")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")
    p.add_argument("--config", default=SHIPPED_CONFIG, help=CONFIG_HELP)
    p.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped model)")
    p.add_argument("--onnx", type=Path, default=None, help="build from this ONNX file instead")
    p.add_argument("--device", default="cuda:0", help="CUDA device (default cuda:0)")
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="builder workspace limit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.paths import user_cache_dir
    from engines.errors import EngineUnavailable
    from engines.trt.build import BuildCancelled, BuildError, BuildSettings, ensure_engine
    from engines.trt.runtime_module import load_tensorrt, query_gpu

    try:
        cfg = get_config(args.config)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not str(args.device).startswith("cuda"):
        raise UserError(f"TensorRT engines are built for CUDA devices; --device {args.device!r} is not one")
    try:
        index = int(args.device.split(":", 1)[1]) if ":" in args.device else 0
    except ValueError:
        raise UserError(f"--device must look like cuda:0, got {args.device!r}") from None
    cache_dir = user_cache_dir()
    try:
        settings = BuildSettings(
            precision=args.precision, max_batch=args.max_batch, input_size=args.input_size or cfg.input_size,
            max_faces=cfg.max_faces, **({"workspace_mib": args.workspace} if args.workspace else {}),
        )
        trt = load_tensorrt()
        gpu = query_gpu(index)
        trt.check_gpu(gpu)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except EngineUnavailable as exc:
        raise UserError(f"cannot build a TensorRT engine: {exc}") from None
    onnx_path = _onnx(args, cache_dir)  # after the TensorRT/GPU checks: exporting can take a while
    log.info("%s on %s (compute capability %s); engines in %s", trt.label, gpu.name, gpu.sm, cache_dir / "trt")

    result: dict = {}
    cancel = threading.Event()
    last_report = [0.0]

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last_report[0] >= 2.0 or done == total:
            last_report[0] = now
            log.info("build: %s %d/%d", phase, done, total)

    def work() -> None:
        try:
            result["record"] = ensure_engine(onnx_path, cache_dir, settings, trt, gpu, force=args.force,
                                             on_progress=progress, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["error"] = exc

    # The build runs in a worker so Ctrl-C reaches Python here and can cancel it cleanly.
    worker = threading.Thread(target=work, name="build-engine", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        log.warning("cancelling the build (TensorRT stops at its next progress step)")
        worker.join(60.0)
        raise
    error = result.get("error")
    if isinstance(error, BuildCancelled):
        raise UserError("engine build cancelled; nothing was cached")
    if isinstance(error, BuildError):
        raise UserError(f"TensorRT could not build the engine: {error}")
    if isinstance(error, OSError):
        raise UserError(f"cannot write the engine cache in {cache_dir}: {error.strerror or error}")
    if error is not None:
        raise error
    record = result["record"]
    summary = {
        "engine": str(record.path),
        "built": record.built,
        "build_seconds": None if record.build_seconds is None else round(record.build_seconds, 1),
        "onnx": str(onnx_path),
        "tensorrt": trt.label,
        "gpu": gpu.name,
        "compute_capability": gpu.sm,
        "precision": settings.precision,
        "max_batch": settings.max_batch,
        "input_size": f"{settings.input_size[0]}x{settings.input_size[1]}",
    }
    if args.json:
        print(json.dumps(summary))
    else:
        how = f"built in {summary['build_seconds']} s" if record.built else "cached, reused"
        print(f"{record.path} ({how}; {trt.label}, {gpu.name}, {settings.precision}, "
              f"batch<={settings.max_batch}, {summary['input_size']})")
    return 0


def _onnx(args, cache_dir: Path) -> Path:
    if args.onnx is not None:
        if not args.onnx.is_file():
            raise UserError(f"ONNX file not found: {args.onnx}")
        return args.onnx
    if args.weights is not None and not args.weights.exists():
        raise UserError(f"weights file not found: {args.weights}")
    from engines.model.onnx_file import resolve_onnx

    try:
        path, meta = resolve_onnx(args.config, args.weights, cache_dir)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if meta.get("random_weights") == "True":
        log.warning("building an engine for RANDOM WEIGHTS (%s)", meta.get("model_id"))
    return path
