"""A stand-in for the `tensorrt` / `tensorrt_rtx` Python modules, for tests without a GPU.

`make_module(version, name)` returns a module object with the part of TensorRT's Python API
that Unisight calls, with TensorRT's conventions: False/None returns instead of exceptions,
errors sent to the ILogger, pybind-style base classes (ILogger, IProgressMonitor,
IOutputAllocator) that subclasses must initialise. Versions differ like the real ones:
10.x has BuilderFlag.FP16 (weak typing) and needs STRONGLY_TYPED; 11.x has no FP16 flag;
tensorrt_rtx has no FP16 flag, a runtime cache, and compute-capability selection.

The ONNX parser really loads and checks the file (onnx), the builder really validates the
optimisation profile, and an "engine" runs the ONNX graph it was built from with ONNX Runtime,
reading its inputs from and writing its outputs to the raw addresses the backend bound.
`FakeCudaDevice` provides those addresses from host memory.

Knobs: `module.faults` (fail parse/build/execute/set_input_shape, unsupported ops, outputs
with data-dependent shapes, inputs TensorRT treats as shape tensors); counters: `module.stats`.
"""
from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
from collections import Counter

import numpy as np
import onnx

from engines.trt.cuda_memory import CudaDevice, DeviceBuffer, HostBuffer, Stream
from engines.trt.runtime_module import GpuInfo

MAGIC = b"FAKETRT1"


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


ONNX_TO_TRT = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
               onnx.TensorProto.INT32: DataType.INT32, onnx.TensorProto.INT64: DataType.INT64,
               onnx.TensorProto.UINT8: DataType.UINT8, onnx.TensorProto.BOOL: DataType.BOOL}
NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32,
      DataType.INT64: np.int64, DataType.UINT8: np.uint8, DataType.BOOL: np.bool_}


def read_memory(ptr: int, dtype, shape) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * max(n, 1)).from_address(ptr))[:n]
    return raw.view(dtype).reshape(shape).copy()


def write_memory(ptr: int, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    ctypes.memmove(ptr, array.ctypes.data, array.nbytes)


def make_module(version: str = "11.4.0.106", name: str = "tensorrt", progress_monitor: bool = True) -> types.ModuleType:
    """A fresh fake TensorRT module of this version and flavour (`tensorrt` or `tensorrt_rtx`)."""
    major = int(version.split(".")[0])
    rtx = name == "tensorrt_rtx"
    mod = types.ModuleType(name)
    mod.__version__ = version
    mod.faults = types.SimpleNamespace(
        fail_parse=False, unsupported_ops=set(), fail_build=False, fail_execute=False,
        fail_set_input_shape=False, fail_set_address=False, dynamic_outputs=set(), shape_tensor_inputs=set(),
        cancel_after_steps=None,
    )
    mod.stats = Counter()
    mod.last = types.SimpleNamespace(network_flags=None, config=None, engine=None)
    mod.DataType = DataType
    for member in DataType:
        setattr(mod, member.name.lower() if member.name != "HALF" else "float16", member)
    mod.float32 = DataType.FLOAT

    class TensorIOMode(enum.Enum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    mod.TensorIOMode = TensorIOMode
    mod.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1}, start=0)
    builder_flags = ["TF32", "REFIT", "DEBUG", "GPU_FALLBACK", "STRIP_PLAN"]
    if major == 10 and not rtx:
        builder_flags += ["FP16", "BF16", "INT8", "OBEY_PRECISION_CONSTRAINTS"]
    mod.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags, start=0)
    mod.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "TACTIC_SHARED_MEMORY"], start=0)
    if rtx:
        mod.ComputeCapability = enum.IntEnum("ComputeCapability", ["NONE", "CURRENT", "SM75", "SM80", "SM86",
                                                                   "SM89", "SM120"], start=0)

    class _Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    Severity = _Severity

    class ILogger:
        Severity = _Severity

        def __init__(self):
            self._base_initialised = True

        def log(self, severity, msg):  # pragma: no cover - overridden
            raise NotImplementedError

    class Logger(ILogger):
        def __init__(self, min_severity=Severity.WARNING):
            super().__init__()
            self.messages = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

    mod.ILogger, mod.Logger = ILogger, Logger

    def emit(logger, severity, msg):
        if not getattr(logger, "_base_initialised", False):
            raise TypeError("ILogger subclass did not call ILogger.__init__")  # pybind11 says so too
        logger.log(severity, msg)

    if progress_monitor:
        class IProgressMonitor:
            def __init__(self):
                self._base_initialised = True

        mod.IProgressMonitor = IProgressMonitor

    class IOutputAllocator:
        def __init__(self):
            self._base_initialised = True

    mod.IOutputAllocator = IOutputAllocator

    # ------------------------------------------------------------------ network and parser
    class ITensor:
        def __init__(self, name, dtype, shape, is_shape_tensor=False):
            self.name, self.dtype, self.shape, self.is_shape_tensor = name, dtype, tuple(shape), is_shape_tensor

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags = flags
            self.inputs, self.outputs, self.onnx_bytes = [], [], None

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

        def get_flag(self, flag):
            return bool(self.flags & (1 << int(flag)))

    class ParserError:
        def __init__(self, desc, node=-1, node_name="", op=""):
            self._desc, self._node, self._name, self._op = desc, node, node_name, op

        def code(self):
            return 8 if self._op else 1

        def desc(self):
            return self._desc

        def node(self):
            return self._node

        def node_name(self):
            return self._name

        def node_operator(self):
            return self._op

        def __str__(self):
            return f"In node {self._node} ({self._op}): {self._desc}"

    def dims(value_info):
        return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.logger, self.errors = network, logger, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return self.errors[i]

        def clear_errors(self):
            self.errors = []

        def parse_from_file(self, path):
            mod.stats["parse"] += 1
            try:
                model = onnx.load(str(path))
                onnx.checker.check_model(model)
            except Exception as exc:  # noqa: BLE001 - the real parser reports, never raises
                self.errors.append(ParserError(f"failed to load ONNX: {exc}"))
                return False
            if mod.faults.fail_parse:
                self.errors.append(ParserError("Assertion failed: injected parse failure"))
            for i, node in enumerate(model.graph.node):
                if node.op_type in mod.faults.unsupported_ops:
                    self.errors.append(ParserError(f"No importer registered for op: {node.op_type}", i,
                                                   node.name or node.output[0], node.op_type))
            if self.errors:
                return False
            inits = {t.name for t in model.graph.initializer}
            self.network.inputs = [ITensor(v.name, ONNX_TO_TRT[v.type.tensor_type.elem_type], dims(v),
                                           v.name in mod.faults.shape_tensor_inputs)
                                   for v in model.graph.input if v.name not in inits]
            self.network.outputs = [ITensor(v.name, ONNX_TO_TRT[v.type.tensor_type.elem_type], dims(v))
                                    for v in model.graph.output]
            self.network.onnx_bytes = model.SerializeToString()
            return True

    mod.OnnxParser, mod.INetworkDefinition, mod.ITensor = OnnxParser, INetworkDefinition, ITensor

    # ------------------------------------------------------------------ builder
    class IOptimizationProfile:
        def __init__(self):
            self.shapes, self.values, self.valid = {}, {}, True

        def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's parameter names
            mn, op, mx = tuple(min), tuple(opt), tuple(max)
            if not (len(mn) == len(op) == len(mx)) or any(a > b for a, b in zip(mn, op)) or any(
                    a > b for a, b in zip(op, mx)):
                self.valid = False
                raise ValueError(f"inconsistent profile for {name}")
            self.shapes[name] = (mn, op, mx)

        def set_shape_input(self, name, min, opt, max):  # noqa: A002
            self.values[name] = (tuple(min), tuple(opt), tuple(max))

        def __bool__(self):
            return self.valid

    class ITimingCache:
        def __init__(self, entries, origin):
            self.entries, self.origin = dict(entries), origin

        def serialize(self):
            return b"FAKETC" + json.dumps({"origin": self.origin, "entries": self.entries}).encode()

        def combine(self, other, ignore_mismatch):
            self.entries.update(other.entries)
            return True

    class IBuilderConfig:
        def __init__(self):
            self.pools, self.flags = {}, {mod.BuilderFlag.TF32}
            self.profiles, self.timing_cache, self.progress_monitor = [], None, None
            self.num_compute_capabilities, self.compute_capabilities = 0, {}

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def get_memory_pool_limit(self, pool):
            return self.pools.get(pool, 0)

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.flags.discard(flag)

        def get_flag(self, flag):
            return flag in self.flags

        def add_optimization_profile(self, profile):
            if not profile:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, blob):
            mod.stats["create_timing_cache"] += 1
            blob = bytes(blob)
            if blob.startswith(b"FAKETC"):
                data = json.loads(blob[6:])
                return ITimingCache(data["entries"], data["origin"])
            return ITimingCache({}, f"{name} {version}")

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache.origin != f"{name} {version}" and not ignore_mismatch:
                return False
            self.timing_cache = cache
            return True

        def get_timing_cache(self):
            return self.timing_cache

        if rtx:
            def set_compute_capability(self, cc, index):
                self.compute_capabilities[index] = cc
                return True

    class Builder:
        def __init__(self, logger):
            emit(logger, Severity.INFO, "[MemUsageChange] Init CUDA: CPU +0, GPU +0, now: fake")
            self.logger = logger

        def create_network(self, flags=0):
            mod.last.network_flags = flags
            return INetworkDefinition(flags)

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            mod.stats["build"] += 1
            mod.last.config = config
            strongly = network.get_flag(mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED) or major >= 11 or rtx
            profile = config.profiles[0] if config.profiles else None
            for t in network.inputs:
                if t.is_shape_tensor:
                    if profile is None or t.name not in profile.values:
                        emit(self.logger, Severity.ERROR, f"shape input {t.name} has no profile values")
                        return None
                elif -1 in t.shape:
                    if profile is None or t.name not in profile.shapes:
                        emit(self.logger, Severity.ERROR, "Network has dynamic or shape inputs, but no "
                                                          f"optimization profile has been defined for {t.name}.")
                        return None
                    for s in profile.shapes[t.name]:
                        if len(s) != len(t.shape) or any(d != -1 and d != v for d, v in zip(t.shape, s)):
                            emit(self.logger, Severity.ERROR, f"profile {s} does not fit {t.name} {t.shape}")
                            return None
            monitor = config.progress_monitor
            if monitor is not None:
                if not getattr(monitor, "_base_initialised", False):
                    raise TypeError("IProgressMonitor subclass did not call IProgressMonitor.__init__")
                monitor.phase_start("Building engine", None, 3)
                for step in range(3):
                    monitor.phase_start("Tactic timing", "Building engine", 2)
                    monitor.step_complete("Tactic timing", 0)
                    monitor.step_complete("Tactic timing", 1)
                    monitor.phase_finish("Tactic timing")
                    stop = mod.faults.cancel_after_steps is not None and step + 1 >= mod.faults.cancel_after_steps
                    if not monitor.step_complete("Building engine", step) or stop:
                        monitor.phase_finish("Building engine")
                        emit(self.logger, Severity.ERROR, "Engine build was cancelled by the progress monitor")
                        return None
                monitor.phase_finish("Building engine")
            if mod.faults.fail_build:
                emit(self.logger, Severity.ERROR, "Error Code 10: Internal Error (Could not find any implementation)")
                return None
            if config.timing_cache is not None:
                config.timing_cache.entries[str(len(network.onnx_bytes))] = "tactic"
            header = {
                "module": name, "version": version, "strongly_typed": bool(strongly),
                "profile": {k: [list(s) for s in v] for k, v in profile.shapes.items()} if profile else {},
                "shape_inputs": sorted(t.name for t in network.inputs if t.is_shape_tensor),
                "compute_capabilities": [int(c) for c in config.compute_capabilities.values()],
                "inputs": [[t.name, int(t.dtype), list(t.shape)] for t in network.inputs],
                "outputs": [[t.name, int(t.dtype), list(t.shape)] for t in network.outputs],
            }
            blob = json.dumps(header).encode()
            return MAGIC + len(blob).to_bytes(4, "little") + blob + network.onnx_bytes

    mod.Builder, mod.IBuilderConfig, mod.IOptimizationProfile, mod.ITimingCache = (
        Builder, IBuilderConfig, IOptimizationProfile, ITimingCache)

    # ------------------------------------------------------------------ runtime
    class IRuntimeCache:
        def __init__(self):
            self.kernels = {}

        def serialize(self):
            return b"FAKERC" + json.dumps(self.kernels).encode()

        def deserialize(self, blob):
            blob = bytes(blob)
            if not blob.startswith(b"FAKERC"):
                return False
            self.kernels = json.loads(blob[6:])
            return True

        def reset(self):
            self.kernels = {}
            return True

    class IRuntimeConfig:
        def __init__(self):
            self.runtime_cache = None

        def set_execution_context_allocation_strategy(self, strategy=0):
            pass

        if rtx:
            def create_runtime_cache(self):
                return IRuntimeCache()

            def set_runtime_cache(self, cache):
                self.runtime_cache = cache
                return True

            def get_runtime_cache(self):
                return self.runtime_cache

    mod.IRuntimeConfig = IRuntimeConfig
    if rtx:
        mod.IRuntimeCache = IRuntimeCache

    class ICudaEngine:
        def __init__(self, header, onnx_bytes, logger):
            import onnxruntime as ort

            from engines.trt.fp16_check import simulate_fp16_storage

            self.header, self.logger = header, logger
            model = onnx.load_from_string(onnx_bytes)
            if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
                model = simulate_fp16_storage(model)  # FP16 storage as TensorRT keeps it (ORT would upcast)
            self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            self.io = [(n, DataType(d), tuple(s), True) for n, d, s in header["inputs"]]
            self.io += [(n, DataType(d), tuple(s), False) for n, d, s in header["outputs"]]
            self.by_name = {n: (d, s, is_in) for n, d, s, is_in in self.io}

        num_io_tensors = property(lambda self: len(self.io))
        device_memory_size_v2 = property(lambda self: 1 << 20)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def get_tensor_mode(self, n):
            return TensorIOMode.INPUT if self.by_name[n][2] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, n):
            return self.by_name[n][0]

        def get_tensor_shape(self, n):
            shape = self.by_name[n][1]
            if n in mod.faults.dynamic_outputs:
                shape = (shape[0], -1, *shape[2:])
            return shape

        def get_tensor_profile_shape(self, n, index):
            return [tuple(s) for s in self.header["profile"][n]]

        def is_shape_inference_io(self, n):
            return n in self.header["shape_inputs"]

        def create_runtime_config(self):
            return IRuntimeConfig()

        def create_execution_context(self, config=None):
            mod.stats["contexts"] += 1
            if rtx and config is not None and config.runtime_cache is not None:
                cache = config.runtime_cache
                key = "uniface-kernels"
                mod.stats["jit_cache_hits" if key in cache.kernels else "jit_compiles"] += 1
                cache.kernels[key] = "sass"
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine):
            self.engine = engine
            self.shapes = {n: s for n, (_, s, is_in) in engine.by_name.items() if is_in and -1 not in s}
            self.addresses, self.allocators, self._shape_cache = {}, {}, {}

        def set_input_shape(self, n, shape):
            mod.stats["set_input_shape"] += 1
            shape = tuple(int(d) for d in shape)
            mn, _, mx = (tuple(s) for s in self.engine.header["profile"].get(n, ([], [], [])))
            ok = len(shape) == len(mn) and all(a <= d <= b for a, d, b in zip(mn, shape, mx))
            if mod.faults.fail_set_input_shape or not ok:
                emit(self.engine.logger, Severity.ERROR, f"setInputShape: {n} {shape} is outside the profile")
                return False
            self.shapes[n] = shape
            return True

        def set_tensor_address(self, n, ptr):
            mod.stats["set_tensor_address"] += 1
            if mod.faults.fail_set_address or not isinstance(ptr, int) or ptr == 0 or n not in self.engine.by_name:
                emit(self.engine.logger, Severity.ERROR, f"setTensorAddress: invalid address for {n}")
                return False
            self.addresses[n] = ptr
            return True

        def set_output_allocator(self, n, allocator):
            if not getattr(allocator, "_base_initialised", False):
                raise TypeError("IOutputAllocator subclass did not call IOutputAllocator.__init__")
            self.allocators[n] = allocator
            return True

        def _feeds(self, zeros=False):
            feeds = {}
            for n, (dtype, _, is_in) in self.engine.by_name.items():
                if not is_in:
                    continue
                shape = self.shapes[n]
                if zeros:
                    feeds[n] = np.zeros(shape, NP[dtype])
                    if n == "max_faces":
                        feeds[n][:] = 1 << 20
                else:
                    feeds[n] = read_memory(self.addresses[n], NP[dtype], shape)
            return feeds

        def get_tensor_shape(self, n):
            dtype, shape, is_in = self.engine.by_name[n]
            if is_in:
                return self.shapes.get(n, shape)
            if n in mod.faults.dynamic_outputs:
                return (self.shapes["images"][0], -1, *shape[2:])
            key = tuple(sorted(self.shapes.items()))
            if key not in self._shape_cache:  # TensorRT's shape inference: static given the inputs
                outs = self.engine.session.run(None, self._feeds(zeros=True))
                self._shape_cache[key] = {o.name: r.shape for o, r in zip(self.engine.session.get_outputs(), outs)}
            return self._shape_cache[key][n]

        def execute_async_v3(self, stream_handle):
            mod.stats["execute"] += 1
            missing = [n for n, (_, _, is_in) in self.engine.by_name.items()
                       if n not in self.addresses and n not in self.allocators]
            if mod.faults.fail_execute or missing or not isinstance(stream_handle, int):
                emit(self.engine.logger, Severity.ERROR, f"enqueueV3: failed (unbound tensors {missing})")
                return False
            outs = self.engine.session.run(None, self._feeds())
            for o, result in zip(self.engine.session.get_outputs(), outs):
                result = result.astype(NP[self.engine.by_name[o.name][0]], copy=False)
                if o.name in self.allocators:
                    alloc = self.allocators[o.name]
                    ptr = alloc.reallocate_output_async(o.name, self.addresses.get(o.name, 0), result.nbytes, 256,
                                                        stream_handle)
                    write_memory(int(ptr), result)
                    alloc.notify_shape(o.name, result.shape)
                else:
                    write_memory(self.addresses[o.name], result)
            return True

    class Runtime:
        def __init__(self, logger):
            emit(logger, Severity.VERBOSE, "runtime created")
            self.logger = logger

        def deserialize_cuda_engine(self, plan):
            mod.stats["deserialize"] += 1
            plan = bytes(plan)
            if not plan.startswith(MAGIC):
                emit(self.logger, Severity.ERROR, "1: [runtime.cpp::parsePlan] Error Code 1: Serialization "
                                                  "(Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.)")
                return None
            size = int.from_bytes(plan[8:12], "little")
            header = json.loads(plan[12:12 + size])
            if (header["module"], header["version"]) != (name, version):
                emit(self.logger, Severity.ERROR, "Serialization (Version tag does not match. Note: Current Version: "
                                                  f"{version}, Serialized Engine Version: {header['version']})")
                return None
            engine = ICudaEngine(header, plan[12 + size:], self.logger)
            mod.last.engine = engine
            return engine

    mod.Runtime, mod.ICudaEngine, mod.IExecutionContext = Runtime, ICudaEngine, IExecutionContext
    return mod


def install(monkeypatch, version: str = "11.4.0.106", name: str = "tensorrt", **kw) -> types.ModuleType:
    """Put a fake module into `sys.modules[name]` for this test (and hide the other flavour)."""
    mod = make_module(version, name, **kw)
    monkeypatch.setitem(sys.modules, name, mod)
    other = "tensorrt_rtx" if name == "tensorrt" else "tensorrt"
    monkeypatch.setitem(sys.modules, other, None)  # None in sys.modules makes `import other` fail
    monkeypatch.delenv("UNISIGHT_TRT_MODULE", raising=False)
    return mod


class FakeCudaDevice(CudaDevice):
    """Host memory posing as device memory: real addresses, synchronous copies, counted."""

    kind = "fake-cuda"

    def __init__(self, gpu: GpuInfo | None = None):
        self.index = 0
        self.gpu = gpu or GpuInfo(0, "NVIDIA GeForce RTX 4090", (8, 9), 24 << 30)
        self.stats = Counter()
        self.live: dict[int, np.ndarray] = {}

    def alloc(self, nbytes):
        self.stats["alloc"] += 1
        array = np.zeros(max(int(nbytes), 1), np.uint8)
        self.live[int(array.ctypes.data)] = array
        return DeviceBuffer(int(array.ctypes.data), int(nbytes), array)

    def alloc_host(self, nbytes):
        self.stats["alloc_host"] += 1
        return HostBuffer(np.zeros(max(int(nbytes), 1), np.uint8), None)

    def create_stream(self):
        self.stats["streams"] += 1
        return Stream(1000 + self.stats["streams"], None)

    def upload(self, dst, src, nbytes, stream):
        assert nbytes <= dst.nbytes and nbytes <= src.array.nbytes
        self.stats["upload"] += 1
        ctypes.memmove(dst.ptr, src.ptr, nbytes)

    def download(self, dst, src, nbytes, stream):
        assert nbytes <= src.nbytes and nbytes <= dst.array.nbytes
        self.stats["download"] += 1
        ctypes.memmove(dst.ptr, src.ptr, nbytes)

    def synchronize(self, stream):
        self.stats["sync"] += 1

    def free(self, buffer):
        if isinstance(buffer, DeviceBuffer):
            self.stats["free"] += 1
            self.live.pop(buffer.ptr, None)
