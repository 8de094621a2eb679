"""Which TensorRT is installed, what that version can do, and which GPU it would run on.

One code path serves every flavour: `load_tensorrt()` imports `tensorrt` (10.x or 11.x) or
`tensorrt_rtx` (TensorRT for RTX: the same Python API under another name) and describes its
capabilities in a `TrtModule`; build and runtime code branch on those flags, never on names.

What differs (NVIDIA docs: "Migrating from TensorRT 10.x to 11.x", TensorRT-RTX "Porting Guide",
"Timing Cache Migration", "Working with Runtime Cache", both support matrices):
  tensorrt 10.x   weak typing still exists; an FP16 ONNX needs the STRONGLY_TYPED network flag
                  so its types are obeyed. Timing cache works.
  tensorrt 11.x   strongly typed only: BuilderFlag.FP16/INT8/... removed, STRONGLY_TYPED accepted
                  and ignored. FP16 comes from the FP16 ONNX. Timing cache works.
  tensorrt_rtx    strongly typed only, no FP16 flag; kernels are JIT-compiled on the user's GPU
                  when the execution context is created, kept in a *runtime* cache (IRuntimeConfig);
                  the timing cache is a deprecated no-op that forces a GPU query, so it is not used;
                  compute capability is chosen at build time (CURRENT = this GPU, also the only way
                  to support Turing); GPUs: 7.5, 8.6, 8.9, 12.x only (no A100/H100/B200).
"""
from __future__ import annotations

import collections
import importlib
import logging
import os
import re
from dataclasses import dataclass, field
from types import ModuleType

from engines.errors import EngineUnavailable

log = logging.getLogger(__name__)
trt_log = logging.getLogger("engines.trt.tensorrt")  # TensorRT's own messages

ENV_MODULE = "UNISIGHT_TRT_MODULE"
MODULE_NAMES = ("tensorrt", "tensorrt_rtx")  # default preference: full TensorRT first
MIN_TENSORRT_MAJOR = 10
# tensorrt-cu13 wheels are built with CUDA 13, which dropped Volta (7.0): Turing and newer.
TENSORRT_MIN_COMPUTE_CAPABILITY = (7, 5)
# TensorRT-RTX support matrix 1.0-1.5: Turing 7.5, Ampere 8.6, Ada 8.9, Blackwell 12.0 (12.1: 1.5+).
RTX_COMPUTE_CAPABILITIES = frozenset({(7, 5), (8, 6), (8, 9), (12, 0), (12, 1)})
INSTALL_HINT = "install the GPU extras: pip install -r requirements-gpu.txt"


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """The CUDA device an engine is built for and runs on."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int = 0  # bytes

    @property
    def sm(self) -> str:
        """Compute capability as text, e.g. '8.6'."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def slug(self) -> str:
        """File-name-safe id: 'nvidia-geforce-rtx-4090-sm89'."""
        name = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "gpu"
        return f"{name}-sm{self.compute_capability[0]}{self.compute_capability[1]}"


@dataclass(frozen=True, slots=True)
class TrtModule:
    """An imported TensorRT flavour and what its version can do."""

    module: ModuleType = field(compare=False, repr=False)
    name: str  # import name: "tensorrt" or "tensorrt_rtx"
    version: str
    major: int
    minor: int
    is_rtx: bool
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    always_strongly_typed: bool  # 11.x and RTX: no weak typing at all
    has_fp16_flag: bool  # BuilderFlag.FP16 exists (10.x only); never used, FP16 comes from the ONNX
    timing_cache: bool  # build-time timing cache worth keeping (not on RTX)
    runtime_cache: bool  # IRuntimeConfig.create_runtime_cache (RTX JIT kernel cache)
    progress_monitor: bool  # IProgressMonitor (build progress and cancel)
    compute_capability_api: bool  # IBuilderConfig.set_compute_capability (RTX)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def network_flags(self) -> int:
        """Flags for `Builder.create_network`: strongly typed wherever the flag exists.

        Required on 10.x for the FP16 ONNX to keep its types; accepted and ignored on 11.x;
        on RTX it only silences a warning.
        """
        if not self.strongly_typed_flag:
            return 0
        return 1 << int(self.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)

    def check_gpu(self, gpu: GpuInfo) -> None:
        """Raise `EngineUnavailable` when this flavour cannot run on `gpu`."""
        cc = tuple(gpu.compute_capability)
        if self.is_rtx:
            if cc not in RTX_COMPUTE_CAPABILITIES:
                raise EngineUnavailable(
                    f"TensorRT-RTX {self.version} does not run on {gpu.name} (compute capability {gpu.sm}); "
                    "it supports RTX GPUs of compute capability 7.5, 8.6, 8.9 and 12.x: "
                    "install tensorrt-cu13 instead (see requirements-gpu.txt)"
                )
        elif cc < TENSORRT_MIN_COMPUTE_CAPABILITY:
            raise EngineUnavailable(
                f"{self.label} needs compute capability 7.5 or newer; {gpu.name} is {gpu.sm}"
            )


def _version_numbers(version: str) -> tuple[int, int]:
    parts = re.findall(r"\d+", version)
    if not parts:
        raise ValueError(f"unparseable version {version!r}")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def describe_module(module: ModuleType, name: str) -> TrtModule:
    """Capabilities of an imported TensorRT module (real or a test stand-in)."""
    version = str(getattr(module, "__version__", "0"))
    major, minor = _version_numbers(version)
    is_rtx = name == "tensorrt_rtx"
    if not is_rtx and major < MIN_TENSORRT_MAJOR:
        raise EngineUnavailable(f"TensorRT {version} is too old: Unisight needs TensorRT 10 or 11 ({INSTALL_HINT})")
    flags = getattr(module, "NetworkDefinitionCreationFlag", None)
    builder_flags = getattr(module, "BuilderFlag", None)
    config_cls = getattr(module, "IBuilderConfig", None)
    runtime_config = getattr(module, "IRuntimeConfig", None)
    return TrtModule(
        module=module,
        name=name,
        version=version,
        major=major,
        minor=minor,
        is_rtx=is_rtx,
        strongly_typed_flag=flags is not None and hasattr(flags, "STRONGLY_TYPED"),
        always_strongly_typed=is_rtx or major >= 11,
        has_fp16_flag=builder_flags is not None and hasattr(builder_flags, "FP16"),
        timing_cache=not is_rtx and config_cls is not None and hasattr(config_cls, "create_timing_cache"),
        runtime_cache=runtime_config is not None and hasattr(runtime_config, "create_runtime_cache"),
        progress_monitor=hasattr(module, "IProgressMonitor"),
        compute_capability_api=hasattr(module, "ComputeCapability")
        and config_cls is not None
        and hasattr(config_cls, "set_compute_capability"),
    )


def load_tensorrt(preferred: str | None = None) -> TrtModule:
    """Import the first usable TensorRT flavour.

    Order: `$UNISIGHT_TRT_MODULE` if set (only that one), else `preferred`, else tensorrt then
    tensorrt_rtx. Raises `EngineUnavailable` saying what was tried and why each failed.
    """
    forced = os.environ.get(ENV_MODULE, "").strip()
    if forced:
        if forced not in MODULE_NAMES:
            raise EngineUnavailable(f"{ENV_MODULE}={forced!r}: choose one of {', '.join(MODULE_NAMES)}")
        names = [forced]
    elif preferred:
        if preferred not in MODULE_NAMES:
            raise ValueError(f"unknown TensorRT module {preferred!r}; choose from {', '.join(MODULE_NAMES)}")
        names = [preferred, *(n for n in MODULE_NAMES if n != preferred)]
    else:
        names = list(MODULE_NAMES)
    reasons = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            reasons.append(f"{name}: not installed" if exc.name == name else f"{name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a broken install (missing libnvinfer) must not crash `auto`
            reasons.append(f"{name}: import failed: {type(exc).__name__}: {exc}")
            continue
        try:
            trt = describe_module(module, name)
        except (EngineUnavailable, ValueError) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        log.debug("using %s", trt.label)
        return trt
    raise EngineUnavailable(f"no usable TensorRT ({'; '.join(reasons)}); {INSTALL_HINT}")


def query_gpu(index: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device `index`, via torch or cuda-python.

    Raises `EngineUnavailable` when there is no CUDA device (or no way to ask).
    """
    reasons = []
    try:
        import torch
    except ImportError:
        reasons.append("torch not installed")
    else:
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if index >= count:
                raise EngineUnavailable(f"CUDA device {index} does not exist ({count} found)")
            props = torch.cuda.get_device_properties(index)
            return GpuInfo(index, props.name, (props.major, props.minor), int(props.total_memory))
        reasons.append(f"torch {torch.__version__} sees no CUDA device")
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        reasons.append("cuda-python not installed")
    else:
        err, count = cudart.cudaGetDeviceCount()
        if err == cudart.cudaError_t.cudaSuccess and count > index:
            err, props = cudart.cudaGetDeviceProperties(index)
            if err == cudart.cudaError_t.cudaSuccess:
                name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
                return GpuInfo(index, name.rstrip("\0"), (props.major, props.minor), int(props.totalGlobalMem))
        reasons.append(f"cuda-python: {err}, {count if err == cudart.cudaError_t.cudaSuccess else 0} device(s)")
    raise EngineUnavailable("no CUDA GPU found (" + "; ".join(reasons) + ")")


def make_logger(trt: TrtModule):
    """A TensorRT `ILogger` that forwards to Python logging and remembers the last errors."""
    mod = trt.module
    severity = mod.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,  # TensorRT's INFO is chatty: memory use, tactic counts
        severity.VERBOSE: logging.DEBUG - 5,
    }

    class PythonLogger(mod.ILogger):
        def __init__(self):
            mod.ILogger.__init__(self)  # pybind11 trampolines need the base initialised
            self.errors: collections.deque[str] = collections.deque(maxlen=20)

        def log(self, sev, msg):
            level = levels.get(sev, logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(str(msg))
            trt_log.log(level, "%s", msg)

    return PythonLogger()
