"""Building a TensorRT engine from the Uniface ONNX graph, and finding it in the cache.

`ensure_engine` is the one entry point (CLI `build-engine`, the TensorRT backend on a cache
miss): it keys the engine, returns the cached one when the key matches, otherwise makes the
FP16 graph if asked, builds with progress (and cancel), stores engine + sidecar atomically.

Build details: every ONNX parser error is logged; one optimisation profile covers batch
1..max_batch at a fixed input H x W (opt batch min(max, 8)); the network is strongly typed
wherever the flag exists, so FP16 comes from the FP16 ONNX on every TensorRT flavour and
FP32 is the FP32 ONNX with TF32 off; a workspace limit; the timing cache per TensorRT
version and GPU (not on TensorRT-RTX, where it is a no-op); TensorRT-RTX builds for the
current GPU (the only way its engines cover Turing). After the build the engine's real I/O
dtypes and shapes are logged and kept in the sidecar.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from engines.trt.cache import EngineCache, EngineKey, atomic_write_bytes, read_blob, sha256_file
from engines.trt.fp16 import FP16_CONVERTER_VERSION, contract_feeds
from engines.trt.fp16_check import Fp16Overflow, convert_file
from engines.trt.runtime_module import GpuInfo, TrtModule, load_tensorrt, make_logger, query_gpu

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")
IMAGE_INPUT = "images"
MAX_FACES_INPUT = "max_faces"
DEFAULT_WORKSPACE_MIB = 1024
MAX_BATCH_LIMIT = 256

ProgressCallback = Callable[[str, int, int], None]  # (phase, steps done, steps in phase)


class BuildError(RuntimeError):
    """TensorRT could not parse or build the graph; the message says why."""


class BuildCancelled(Exception):
    """The build was cancelled through its cancel event."""


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """What to build: precision and the optimisation profile."""

    precision: str = "fp16"
    max_batch: int = 8
    input_size: tuple[int, int] = (640, 480)  # (w, h) of the network input
    opt_batch: int | None = None  # None: min(max_batch, 8)
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    max_faces: int | None = None  # upper bound for `max_faces` if TensorRT treats it as a shape input

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 1 <= self.max_batch <= MAX_BATCH_LIMIT:
            raise ValueError(f"max batch must be 1..{MAX_BATCH_LIMIT}, got {self.max_batch}")
        w, h = self.input_size
        if w < 1 or h < 1:
            raise ValueError(f"input size must be positive, got {self.input_size}")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"opt batch must be 1..{self.max_batch}, got {self.opt_batch}")
        if self.workspace_mib < 16:
            raise ValueError(f"workspace must be at least 16 MiB, got {self.workspace_mib}")

    @property
    def min_batch(self) -> int:
        return 1

    @property
    def opt(self) -> int:
        return self.opt_batch or min(self.max_batch, 8)

    def image_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes of the NHWC image input."""
        w, h = self.input_size
        return (self.min_batch, h, w, 3), (self.opt, h, w, 3), (self.max_batch, h, w, 3)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One engine I/O tensor as TensorRT sees it after the build."""

    name: str
    mode: str  # "input" or "output"
    dtype: str  # TensorRT DataType name: UINT8, FLOAT, HALF, INT32, ...
    shape: tuple[int, ...]  # -1 = dynamic
    profile: tuple[tuple[int, ...], ...] | None = None  # (min, opt, max) of dynamic inputs

    def __str__(self) -> str:
        prof = f" profile {list(self.profile[0])}..{list(self.profile[2])}" if self.profile else ""
        return f"{self.mode} {self.name}: {self.dtype} {list(self.shape)}{prof}"


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """Where the engine is and whether this call built it."""

    path: Path
    key: EngineKey
    built: bool
    build_seconds: float | None
    onnx_used: Path  # the graph TensorRT parsed (the FP16 copy for fp16)


def _enum_name(value) -> str:
    return getattr(value, "name", None) or str(value).rsplit(".", 1)[-1]


def describe_engine(engine, trt: TrtModule) -> list[TensorInfo]:
    """Names, directions, dtypes, shapes and profile ranges of an engine's I/O tensors."""
    mod = trt.module
    infos = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == mod.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input and -1 in shape:
            profile = tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
        infos.append(TensorInfo(name, "input" if is_input else "output",
                                _enum_name(engine.get_tensor_dtype(name)), shape, profile))
    return infos


def make_progress_monitor(trt: TrtModule, on_progress: ProgressCallback | None, cancel: threading.Event | None):
    """An `IProgressMonitor` that logs phases, reports steps and lets `cancel` stop the build.

    None when this TensorRT has no progress monitor (then only log lines show progress).
    TensorRT calls it from several threads; callback errors are logged, never raised into it.
    """
    if not trt.progress_monitor:
        return None
    base = trt.module.IProgressMonitor

    class Monitor(base):
        def __init__(self):
            base.__init__(self)
            self._lock = threading.Lock()
            self._depth: dict[str, int] = {}
            self._steps: dict[str, int] = {}

        def _report(self, phase: str, done: int, total: int) -> None:
            if on_progress is None:
                return
            try:
                on_progress(phase, done, total)
            except Exception:  # noqa: BLE001 - never let a GUI callback break the build
                log.exception("build progress callback failed")

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._steps[phase_name] = int(num_steps)
            log.log(logging.INFO if depth == 0 else logging.DEBUG, "TensorRT build: %s%s (%d steps)",
                    "  " * depth, phase_name, num_steps)
            if depth == 0:
                self._report(phase_name, 0, int(num_steps))

        def step_complete(self, phase_name, step):
            with self._lock:
                depth = self._depth.get(phase_name, 0)
                total = self._steps.get(phase_name, 0)
            if depth == 0:
                self._report(phase_name, min(int(step) + 1, total), total)
            return not (cancel is not None and cancel.is_set())  # False asks TensorRT to stop

        def phase_finish(self, phase_name):
            with self._lock:
                depth = self._depth.pop(phase_name, 0)
                self._steps.pop(phase_name, None)
            log.debug("TensorRT build: %sdone: %s", "  " * depth, phase_name)

    return Monitor()


def _parser_error_text(err) -> str:
    parts = []
    for attr in ("node", "node_name", "node_operator"):
        fn = getattr(err, attr, None)
        if callable(fn):
            try:
                parts.append(f"{attr}={fn()}")
            except Exception:  # noqa: BLE001 - older parsers lack some fields
                pass
    desc = err.desc() if callable(getattr(err, "desc", None)) else str(err)
    return f"{desc} ({', '.join(parts)})" if parts else str(desc)


def _add_profile(builder, network, config, settings: BuildSettings) -> None:
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(int(d) for d in tensor.shape)
        if getattr(tensor, "is_shape_tensor", False):
            # its value shapes the graph (e.g. max_faces feeding TopK): bound the value
            if settings.max_faces is None:
                raise BuildError(f"input {tensor.name!r} is a shape tensor; BuildSettings.max_faces must bound it")
            n = max(1, shape[0]) if shape else 1
            profile.set_shape_input(tensor.name, [1] * n, [settings.max_faces] * n, [settings.max_faces] * n)
            log.info("profile %s (shape input): values 1..%d", tensor.name, settings.max_faces)
            continue
        if -1 not in shape:
            continue
        if tensor.name == IMAGE_INPUT or (len(shape) == 4 and shape[3] == 3):
            mn, opt, mx = settings.image_shapes()
        elif shape.count(-1) == 1 and shape[0] == -1:
            mn, opt, mx = ((b, *shape[1:]) for b in (settings.min_batch, settings.opt, settings.max_batch))
        else:
            raise BuildError(f"input {tensor.name!r} has dynamic dimensions {list(shape)} the profile cannot bound")
        profile.set_shape(tensor.name, mn, opt, mx)
        log.info("profile %s: min %s opt %s max %s", tensor.name, list(mn), list(opt), list(mx))
    if not profile:
        raise BuildError("the optimisation profile is inconsistent (min <= opt <= max violated)")
    if config.add_optimization_profile(profile) < 0:
        raise BuildError("TensorRT rejected the optimisation profile")


def _tensor_line(t) -> str:
    return f"{t.name}: {_enum_name(t.dtype)} {[int(d) for d in t.shape]}"


def build_serialized_engine(
    onnx_path: Path,
    settings: BuildSettings,
    trt: TrtModule,
    timing_cache_path: Path | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> bytes:
    """Parse `onnx_path` and build a serialized engine (the ONNX already has the wanted precision).

    Raises BuildError (parse or build failure, with TensorRT's messages) or BuildCancelled.
    """
    mod = trt.module
    logger = make_logger(trt)
    builder = mod.Builder(logger)
    if not builder:
        raise BuildError("TensorRT could not create a builder (is the CUDA driver working?)")
    network = builder.create_network(trt.network_flags())
    parser = mod.OnnxParser(network, logger)
    log.info("parsing %s with %s", onnx_path, trt.label)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [_parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
    for i, text in enumerate(errors, 1):
        log.error("ONNX parser error %d/%d: %s", i, len(errors), text)
    if not ok or errors:
        first = errors[0] if errors else "no details"
        raise BuildError(f"TensorRT could not parse {Path(onnx_path).name}: {len(errors)} error(s), first: {first}")
    for i in range(network.num_inputs):
        log.info("network input  %s", _tensor_line(network.get_input(i)))
    for i in range(network.num_outputs):
        log.info("network output %s", _tensor_line(network.get_output(i)))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(mod.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    if settings.precision == "fp32" and hasattr(mod.BuilderFlag, "TF32"):
        config.clear_flag(mod.BuilderFlag.TF32)  # fp32 means fp32: no TF32 tensor-core shortcuts
    if trt.compute_capability_api:
        config.num_compute_capabilities = 1
        config.set_compute_capability(mod.ComputeCapability.CURRENT, 0)
    _add_profile(builder, network, config, settings)

    timing_cache = None
    if timing_cache_path is not None and trt.timing_cache:
        blob = read_blob(timing_cache_path)
        timing_cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(timing_cache, False):
            log.warning("timing cache %s does not fit this TensorRT/GPU: starting a new one", timing_cache_path)
            timing_cache = config.create_timing_cache(b"")
            config.set_timing_cache(timing_cache, False)
        else:
            log.info("timing cache %s (%d bytes)", timing_cache_path.name, len(blob))
    monitor = make_progress_monitor(trt, on_progress, cancel)
    if monitor is not None:
        config.progress_monitor = monitor

    started = time.monotonic()
    log.info("building the %s engine with %s (this can take minutes)", settings.precision.upper(), trt.label)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        if cancel is not None and cancel.is_set():
            raise BuildCancelled("engine build cancelled")
        detail = "; ".join(logger.errors) or "no error message from TensorRT"
        raise BuildError(f"TensorRT could not build the engine: {detail}")
    log.info("engine built in %.1f s (%.1f MB)", time.monotonic() - started, len(memoryview(plan)) / 1e6)
    if timing_cache is not None:
        atomic_write_bytes(timing_cache_path, memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(plan))


def inspect_plan(plan: bytes, trt: TrtModule) -> list[TensorInfo]:
    """Deserialise a freshly built plan and describe its real I/O (BuildError if it won't load)."""
    runtime = trt.module.Runtime(make_logger(trt))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise BuildError("the engine just built cannot be deserialised")
    return describe_engine(engine, trt)


def engine_key(onnx_path: Path, onnx_sha256: str, settings: BuildSettings, trt: TrtModule, gpu: GpuInfo) -> EngineKey:
    """The cache key of an engine built from `onnx_path` with these settings here."""
    w, h = settings.input_size
    return EngineKey(
        onnx_name=Path(onnx_path).stem,
        onnx_sha256=onnx_sha256,
        precision=settings.precision,
        fp16_converter=FP16_CONVERTER_VERSION if settings.precision == "fp16" else 0,
        trt_module=trt.name,
        trt_version=trt.version,
        gpu_name=gpu.name,
        compute_capability=gpu.sm,
        min_batch=settings.min_batch,
        opt_batch=settings.opt,
        max_batch=settings.max_batch,
        input_width=w,
        input_height=h,
    )


def ensure_engine(
    onnx_path: Path,
    cache_dir: Path,
    settings: BuildSettings,
    trt: TrtModule | None = None,
    gpu: GpuInfo | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> EngineRecord:
    """The engine for `onnx_path` and `settings`: from the cache, or built now and cached.

    cache_dir: the app's cache folder (engines go to `cache_dir/trt/`).
    force: rebuild even when a matching engine is cached.
    Raises EngineUnavailable (no TensorRT/GPU), BuildError, BuildCancelled.
    """
    onnx_path = Path(onnx_path)
    trt = trt or load_tensorrt()
    gpu = gpu or query_gpu()
    trt.check_gpu(gpu)
    cache = EngineCache(cache_dir)
    key = engine_key(onnx_path, sha256_file(onnx_path), settings, trt, gpu)
    if not force:
        path = cache.lookup(key)
        if path is not None:
            log.info("using cached TensorRT engine %s", path)
            return EngineRecord(path, key, built=False, build_seconds=None, onnx_used=onnx_path)

    source = onnx_path
    if settings.precision == "fp16":
        source = cache.fp16_onnx_path(key.onnx_name, key.onnx_sha256, FP16_CONVERTER_VERSION, settings.input_size)
        if force or not source.exists():
            try:
                convert_file(onnx_path, source, calibration=contract_feeds(settings.input_size))
            except Fp16Overflow as exc:
                raise BuildError(f"{exc}; build with --precision fp32") from exc
    timing = cache.timing_cache_path(trt.name, trt.version, gpu.name, gpu.sm) if trt.timing_cache else None
    started = time.monotonic()
    plan = build_serialized_engine(source, settings, trt, timing, on_progress, cancel)
    seconds = time.monotonic() - started
    io = inspect_plan(plan, trt)
    for info in io:
        log.info("engine %s", info)
    extra = {
        "io": [asdict(i) for i in io],
        "onnx_used": source.name,
        "settings": asdict(settings),
        "strongly_typed": trt.strongly_typed_flag or trt.always_strongly_typed,
    }
    path = cache.store(key, plan, seconds, extra=extra)
    return EngineRecord(path, key, built=True, build_seconds=seconds, onnx_used=source)
