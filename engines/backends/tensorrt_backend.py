"""TensorRT backend: the Uniface engine on an NVIDIA GPU (TensorRT 10/11 or TensorRT-RTX).

The engine comes from `engines.trt.build.ensure_engine` (cached, or built on a miss). Each
inference thread gets its own execution context, CUDA stream, device buffers (sized once
for the profile's max batch) and pinned host staging; input shapes and tensor addresses are
set only when they change, and every TensorRT call's return value is checked. Images go up
as uint8: normalisation is inside the graph.

Device memory comes from a `CudaDevice`: torch CUDA tensors when torch has CUDA, otherwise
cuda-python (`cuda.bindings.runtime`); tests pass a host-memory stand-in.
"""
from __future__ import annotations

import ctypes
import logging
import threading
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.engine import EngineInfo
from engines.errors import EngineNotCached, EngineUnavailable
from engines.backends.uniface import UnifaceBackend
from engines.preprocess import RawOutputs
from engines.model.config import SHIPPED_CONFIG, get_config
from engines.model.detection_threshold import threshold_from_metadata

log = logging.getLogger(__name__)

INPUTS = {"images": "UINT8", "score_threshold": "FLOAT", "max_faces": "INT32"}
OUTPUTS = {"boxes": "FLOAT", "scores": "FLOAT", "landmarks": "FLOAT", "embeddings": "FLOAT", "count": "INT32"}
NUMPY_DTYPES = {"UINT8": np.uint8, "FLOAT": np.float32, "INT32": np.int32, "HALF": np.float16,
                "INT64": np.int64, "BOOL": np.bool_, "INT8": np.int8}


# ---------------------------------------------------------------------------- device memory
@dataclass(slots=True)
class DeviceBuffer:
    """Device memory: its address and whatever keeps it alive."""

    ptr: int
    nbytes: int
    owner: object


@dataclass(slots=True)
class HostBuffer:
    """Host staging memory (page-locked where the device supports it) as a flat uint8 array."""

    array: np.ndarray
    owner: object

    @property
    def ptr(self) -> int:
        return int(self.array.ctypes.data)

    def view(self, dtype, shape) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.array[:n].view(dtype).reshape(shape)


@dataclass(slots=True)
class Stream:
    handle: int  # cudaStream_t as an int, what execute_async_v3 takes
    owner: object


class CudaDevice(ABC):
    """The few CUDA operations the backend needs; all copies are asynchronous on `stream`."""

    kind = "?"
    index = 0

    @abstractmethod
    def alloc(self, nbytes: int) -> DeviceBuffer: ...

    @abstractmethod
    def alloc_host(self, nbytes: int) -> HostBuffer: ...

    @abstractmethod
    def create_stream(self) -> Stream: ...

    @abstractmethod
    def upload(self, dst: DeviceBuffer, src: HostBuffer, nbytes: int, stream: Stream) -> None: ...

    @abstractmethod
    def download(self, dst: HostBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Stream) -> None: ...

    def free(self, buffer) -> None:
        """Release a buffer now (default: its owner is freed by garbage collection)."""


class TorchCudaDevice(CudaDevice):
    """Buffers as torch CUDA tensors, pinned host tensors, a torch CUDA stream."""

    kind = "torch"

    def __init__(self, index: int = 0):
        import torch

        self.torch = torch
        self.index = index
        self.device = torch.device(f"cuda:{index}")

    def alloc(self, nbytes):
        t = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, device=self.device)
        return DeviceBuffer(int(t.data_ptr()), int(nbytes), t)

    def alloc_host(self, nbytes):
        t = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, pin_memory=True)
        return HostBuffer(t.numpy(), t)

    def create_stream(self):
        s = self.torch.cuda.Stream(device=self.device)
        return Stream(int(s.cuda_stream), s)

    def upload(self, dst, src, nbytes, stream):
        with self.torch.cuda.stream(stream.owner):
            dst.owner[:nbytes].copy_(src.owner[:nbytes], non_blocking=True)

    def download(self, dst, src, nbytes, stream):
        with self.torch.cuda.stream(stream.owner):
            dst.owner[:nbytes].copy_(src.owner[:nbytes], non_blocking=True)

    def synchronize(self, stream):
        stream.owner.synchronize()


class CudaPythonDevice(CudaDevice):
    """Buffers from cuda-python's runtime API (`cuda.bindings.runtime`), freed explicitly."""

    kind = "cuda-python"

    def __init__(self, index: int = 0):
        from cuda.bindings import runtime as cudart

        self.cudart = cudart
        self.index = index
        self._check(cudart.cudaSetDevice(index), "cudaSetDevice")

    def _check(self, result, what: str):
        err = result[0]
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"CUDA error in {what}: {err}")
        return result[1] if len(result) > 1 else None

    def alloc(self, nbytes):
        ptr = self._check(self.cudart.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        return DeviceBuffer(int(ptr), int(nbytes), ("device", ptr))

    def alloc_host(self, nbytes):
        n = max(int(nbytes), 1)
        ptr = self._check(self.cudart.cudaMallocHost(n), "cudaMallocHost")
        array = np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(int(ptr)))
        return HostBuffer(array, ("host", ptr))

    def create_stream(self):
        s = self._check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")
        return Stream(int(s), s)

    def upload(self, dst, src, nbytes, stream):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner), "cudaMemcpyAsync H2D")

    def download(self, dst, src, nbytes, stream):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner), "cudaMemcpyAsync D2H")

    def synchronize(self, stream):
        self._check(self.cudart.cudaStreamSynchronize(stream.owner), "cudaStreamSynchronize")

    def free(self, buffer):
        if isinstance(buffer, Stream):
            self.cudart.cudaStreamDestroy(buffer.owner)
            return
        where, ptr = buffer.owner
        (self.cudart.cudaFree if where == "device" else self.cudart.cudaFreeHost)(ptr)


def open_cuda_device(index: int = 0) -> CudaDevice:
    """torch's CUDA when it has one, else cuda-python; EngineUnavailable without a CUDA GPU."""
    reasons = []
    try:
        import torch

        if torch.cuda.is_available() and index < torch.cuda.device_count():
            return TorchCudaDevice(index)
        reasons.append(f"torch {torch.__version__} sees no CUDA device {index}")
    except ImportError:
        reasons.append("torch not installed")
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        reasons.append("cuda-python not installed")
    else:
        err, count = cudart.cudaGetDeviceCount()
        if err == cudart.cudaError_t.cudaSuccess and index < count:
            return CudaPythonDevice(index)
        reasons.append(f"cuda-python: {err}")
    raise EngineUnavailable("TensorRT needs a CUDA GPU: " + "; ".join(reasons))


# ------------------------------------------------------------------------ output allocator
def make_output_allocator(trt, device: CudaDevice):
    """An `IOutputAllocator` for outputs whose shape TensorRT knows only while running."""
    base = trt.module.IOutputAllocator

    class OutputAllocator(base):
        def __init__(self):
            base.__init__(self)
            self.buffer: DeviceBuffer | None = None
            self.shape: tuple[int, ...] | None = None

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            size = max(int(size), 1)
            if self.buffer is None or self.buffer.nbytes < size:
                old = self.buffer
                self.buffer = device.alloc(max(size, 2 * old.nbytes if old else size))
                if old is not None:
                    device.free(old)
            return self.buffer.ptr

        def reallocate_output(self, tensor_name, memory, size, alignment):
            return self.reallocate_output_async(tensor_name, memory, size, alignment, None)

        def notify_shape(self, tensor_name, shape):
            self.shape = tuple(int(d) for d in shape)

    return OutputAllocator()


# ----------------------------------------------------------------------------- per thread
class _ThreadContext:
    """One execution context with its stream and buffers; used by one thread only."""

    def __init__(self, backend: "TensorRTBackend"):
        self.b = backend
        self.device = backend.cuda
        with backend._engine_lock:
            if backend._runtime_cache is not None:
                config = backend.engine.create_runtime_config()
                if not config.set_runtime_cache(backend._runtime_cache):
                    raise RuntimeError("TensorRT-RTX refused the runtime cache")
                self.context = backend.engine.create_execution_context(config)
            else:
                self.context = backend.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = self.device.create_stream()
        self.dev: dict[str, DeviceBuffer] = {}
        self.host: dict[str, HostBuffer] = {}
        self.allocators: dict[str, object] = {}
        self.out_shapes: dict[str, tuple[int, ...]] = {}
        self.batch: int | None = None  # batch size the input shape is set for
        self.scalars: tuple[float, int] | None = None
        w, h = backend.input_size
        self._buffer("images", backend.max_batch * h * w * 3, host=True)
        for name in ("score_threshold", "max_faces"):
            if name in backend.host_inputs:  # a shape tensor: TensorRT reads it from host memory
                self.host[name] = self.device.alloc_host(4)
                self._set_address(name, self.host[name].ptr)
            else:
                self._buffer(name, 4, host=True)

    def _set_address(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, ptr):
            raise RuntimeError(f"TensorRT set_tensor_address({name!r}) failed: {self.b.last_error()}")

    def _buffer(self, name: str, nbytes: int, host: bool) -> None:
        """Device (and host staging) memory of at least `nbytes` for `name`; rebinds if it moved."""
        if name in self.dev and self.dev[name].nbytes >= nbytes:
            return
        if name in self.dev:
            self.device.free(self.dev[name])
        self.dev[name] = self.device.alloc(nbytes)
        self._set_address(name, self.dev[name].ptr)
        if host:
            if name in self.host:
                self.device.free(self.host[name])
            self.host[name] = self.device.alloc_host(nbytes)

    def bind(self, n: int, score_threshold: float, max_faces: int) -> None:
        """Set the input shape, values of host shape inputs, and output buffers, when changed."""
        scalars = (float(score_threshold), int(max_faces))
        if "max_faces" in self.b.host_inputs and self.scalars is not None and scalars[1] != self.scalars[1]:
            self.batch = None  # a shape input changed: output shapes may have changed too
        if scalars != self.scalars:
            self._write_scalars(scalars)
        if n == self.batch:
            return
        w, h = self.b.input_size
        if not self.context.set_input_shape("images", (n, h, w, 3)):
            raise RuntimeError(f"TensorRT set_input_shape('images', {(n, h, w, 3)}) failed: {self.b.last_error()}")
        self.batch = n
        self.out_shapes = {}
        for name in OUTPUTS:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if -1 in shape:
                if name not in self.allocators:
                    alloc = make_output_allocator(self.b.trt, self.device)
                    if not self.context.set_output_allocator(name, alloc):
                        raise RuntimeError(f"TensorRT set_output_allocator({name!r}) failed: {self.b.last_error()}")
                    self.allocators[name] = alloc
                    log.info("output %s has a data-dependent shape %s: using an output allocator", name, shape)
                continue
            self.out_shapes[name] = shape
            nbytes = int(np.prod(shape)) * np.dtype(NUMPY_DTYPES[OUTPUTS[name]]).itemsize
            per_image = nbytes // max(n, 1)
            self._buffer(name, max(nbytes, per_image * self.b.max_batch), host=True)

    def _write_scalars(self, scalars: tuple[float, int]) -> None:
        thr, k = scalars
        self.host["score_threshold"].view(np.float32, (1,))[0] = thr
        self.host["max_faces"].view(np.int32, (1,))[0] = k
        for name in ("score_threshold", "max_faces"):
            if name not in self.b.host_inputs:
                self.device.upload(self.dev[name], self.host[name], 4, self.stream)
        self.scalars = scalars

    def run(self, batch: np.ndarray, score_threshold: float, max_faces: int) -> RawOutputs:
        n = len(batch)
        self.bind(n, score_threshold, max_faces)
        staging = self.host["images"]
        np.copyto(staging.view(np.uint8, batch.shape), batch)
        self.device.upload(self.dev["images"], staging, batch.nbytes, self.stream)
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {self.b.last_error()}")
        views = {}
        for name, kind in OUTPUTS.items():
            dtype = NUMPY_DTYPES[kind]
            if name in self.allocators:
                alloc = self.allocators[name]
                if alloc.shape is None or alloc.buffer is None:
                    raise RuntimeError(f"TensorRT produced no shape for output {name!r}")
                shape, src = alloc.shape, alloc.buffer
                nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
                if name not in self.host or self.host[name].array.nbytes < nbytes:
                    self.host[name] = self.device.alloc_host(nbytes)
            else:
                shape, src = self.out_shapes[name], self.dev[name]
                nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self.device.download(self.host[name], src, nbytes, self.stream)
            views[name] = self.host[name].view(dtype, shape)
        self.device.synchronize(self.stream)
        return RawOutputs(**{name: views[name].copy() for name in OUTPUTS})

    def __del__(self):
        # a thread's context goes when the thread ends (thread-locals are dropped); free its memory
        if getattr(self, "context", None) is not None and getattr(self, "stream", None) is not None:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                pass

    def close(self) -> None:
        if self.context is None:
            return
        try:
            self.device.synchronize(self.stream)
        except Exception:  # noqa: BLE001 - closing after a CUDA error must still free what it can
            log.debug("stream sync on close failed", exc_info=True)
        for buf in [*self.dev.values(), *self.host.values()]:
            self.device.free(buf)
        for alloc in self.allocators.values():
            if alloc.buffer is not None:
                self.device.free(alloc.buffer)
        self.device.free(self.stream)
        self.dev, self.host, self.allocators, self.context = {}, {}, {}, None


# --------------------------------------------------------------------------------- backend
class TensorRTBackend(UnifaceBackend):
    """The Uniface graph as a TensorRT engine (FP16 by default), built or loaded from the cache.

    config/weights: which network (as for the other backends); onnx_path overrides both.
    cache_dir: the app cache folder (engines in cache_dir/trt/); required.
    device: "cuda" or "cuda:N". precision: "fp16" or "fp32". max_batch: profile maximum.
    build: build the engine when the cache misses (False: EngineUnavailable instead).
    on_progress(phase, done, total) / cancel: build progress and cancellation.
    trt / cuda: a `TrtModule` and `CudaDevice` to use instead of detecting them (tests).
    """

    def __init__(
        self,
        config: str = SHIPPED_CONFIG,
        weights: Path | None = None,
        cache_dir: Path | None = None,
        device: str = "cuda",
        input_size: tuple[int, int] | None = None,
        *,
        precision: str = "fp16",
        max_batch: int = 8,
        onnx_path: Path | None = None,
        build: bool = True,
        force_build: bool = False,
        workspace_mib: int | None = None,
        on_progress=None,
        cancel: threading.Event | None = None,
        trt=None,
        cuda: CudaDevice | None = None,
    ):
        from engines.trt import build as trt_build
        from engines.trt.cache import EngineCache, read_blob
        from engines.trt.runtime_module import load_tensorrt, make_logger

        if not str(device).startswith("cuda"):
            raise EngineUnavailable(f"TensorRT runs on CUDA devices only, not {device!r}")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        self.trt = trt or load_tensorrt()
        self.cuda = cuda or open_cuda_device(index)
        gpu = self._gpu_info(index)
        self.trt.check_gpu(gpu)
        if cache_dir is None:
            raise EngineUnavailable("the TensorRT backend needs a cache folder for its engines")
        cfg = None
        try:
            cfg = get_config(config)
        except (ImportError, ValueError):
            if onnx_path is None:
                raise
        if onnx_path is None:
            from engines.model.onnx_file import resolve_onnx

            onnx_path, meta = resolve_onnx(config, weights, cache_dir)
        else:
            from engines.model.onnx_file import onnx_metadata

            meta = onnx_metadata(Path(onnx_path))
        model_id, random_weights = meta.get("model_id", Path(onnx_path).stem), meta.get("random_weights") == "True"
        detection_threshold = threshold_from_metadata(meta, f"the metadata of {onnx_path}")
        size = tuple(input_size or (cfg.input_size if cfg else (640, 480)))
        settings = trt_build.BuildSettings(
            precision=precision, max_batch=max_batch, input_size=size,
            max_faces=cfg.max_faces if cfg else None,
            **({"workspace_mib": workspace_mib} if workspace_mib else {}),
        )
        self._mod_logger = make_logger(self.trt)
        self._tensorrt_runtime = self.trt.module.Runtime(self._mod_logger)
        cache = EngineCache(cache_dir)

        def get_engine(force: bool):
            try:
                if not build:
                    key = trt_build.engine_key(onnx_path, _sha(onnx_path), settings, self.trt, gpu)
                    if force or cache.lookup(key) is None:
                        raise EngineNotCached(
                            f"no TensorRT engine cached for {Path(onnx_path).name} ({precision}, batch {max_batch},"
                            f" {size[0]}x{size[1]}): run `main.py build-engine`")
                    return key, cache.read(key)
                record = trt_build.ensure_engine(onnx_path, cache_dir, settings, self.trt, gpu, force=force,
                                                 on_progress=on_progress, cancel=cancel)
                return record.key, cache.read(record.key)
            except trt_build.BuildError as exc:
                raise EngineUnavailable(str(exc)) from exc

        key, plan = get_engine(force_build)
        engine = self._tensorrt_runtime.deserialize_cuda_engine(plan) if plan else None
        if engine is None:
            cache.invalidate(key, f"{self.trt.label} could not load it ({self.last_error() or 'checksum'})")
            key, plan = get_engine(True)
            engine = self._tensorrt_runtime.deserialize_cuda_engine(plan) if plan else None
            if engine is None:
                raise EngineUnavailable(f"{self.trt.label} cannot load the engine it just built: {self.last_error()}")
        self.engine = engine
        self.key = key
        self.io = {t.name: t for t in trt_build.describe_engine(engine, self.trt)}
        self._check_contract(size, max_batch)
        self.max_batch = max_batch
        self.host_inputs = {n for n in ("score_threshold", "max_faces") if engine.is_shape_inference_io(n)}
        k = self.io["scores"].shape[1]
        if k < 0:
            if cfg is None:
                raise EngineUnavailable("the engine's face count K is dynamic and no model config gives it")
            k = cfg.max_faces
        self._engine_lock = threading.Lock()
        self._contexts: weakref.WeakSet[_ThreadContext] = weakref.WeakSet()
        self._tls = threading.local()
        self._runtime_cache = None
        self._runtime_cache_path = None
        if self.trt.runtime_cache:
            self._runtime_cache_path = cache.runtime_cache_path(key)
            self._load_runtime_cache(read_blob(self._runtime_cache_path))
        info = EngineInfo(
            engine="uniface", backend="tensorrt", device=f"cuda:{index}", model_id=model_id,
            random_weights=random_weights, input_size=size,
        )
        super().__init__(info, max_faces=k, score_threshold=detection_threshold)
        self.precision = precision
        log.info("TensorRT backend ready: %s, %s on %s (%s), K=%d, batch<=%d",
                 self.trt.label, precision.upper(), gpu.name, self.cuda.kind, k, max_batch)

    def _gpu_info(self, index: int):
        from engines.trt.runtime_module import query_gpu

        gpu = getattr(self.cuda, "gpu", None)
        return gpu if gpu is not None else query_gpu(index)

    def _load_runtime_cache(self, blob: bytes) -> None:
        config = self.engine.create_runtime_config()
        cache = config.create_runtime_cache()
        if blob and not cache.deserialize(blob):
            log.warning("TensorRT-RTX runtime cache %s is stale: starting empty", self._runtime_cache_path)
            cache.reset()
        self._runtime_cache = cache

    def last_error(self) -> str:
        """TensorRT's most recent error messages, for exceptions."""
        return "; ".join(list(self._mod_logger.errors)[-3:]) or "no message from TensorRT"

    def _check_contract(self, size: tuple[int, int], max_batch: int) -> None:
        problems = []
        for name, kind in {**INPUTS, **OUTPUTS}.items():
            t = self.io.get(name)
            if t is None:
                problems.append(f"missing {name}")
            elif t.dtype != kind:
                problems.append(f"{name} is {t.dtype}, expected {kind}")
        if not problems:
            w, h = size
            prof = self.io["images"].profile
            if prof is None or prof[2][1:] != (h, w, 3) or prof[2][0] < max_batch:
                problems.append(f"images profile {prof} does not cover batch {max_batch} at {w}x{h}")
        if problems:
            raise EngineUnavailable("engine does not match the Uniface graph contract: " + "; ".join(problems))

    def _thread_context(self) -> _ThreadContext:
        ctx = getattr(self._tls, "ctx", None)
        if ctx is None:
            if self.engine is None:
                raise RuntimeError("the TensorRT backend is closed")
            ctx = _ThreadContext(self)
            self._tls.ctx = ctx
            self._contexts.add(ctx)
        return ctx

    def _run(self, batch: np.ndarray, score_threshold: float, max_faces: int) -> RawOutputs:
        if len(batch) > self.max_batch:
            parts = [self._run(batch[i:i + self.max_batch], score_threshold, max_faces)
                     for i in range(0, len(batch), self.max_batch)]
            return RawOutputs(*(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("boxes", "scores", "landmarks", "embeddings", "count")))
        return self._thread_context().run(batch, score_threshold, max_faces)

    def close(self) -> None:
        """Free every context's buffers and save the TensorRT-RTX runtime cache."""
        from engines.trt.cache import atomic_write_bytes

        for ctx in list(self._contexts):
            ctx.close()
        self._contexts = weakref.WeakSet()
        self._tls = threading.local()
        if self._runtime_cache is not None and self._runtime_cache_path is not None:
            try:
                atomic_write_bytes(self._runtime_cache_path, memoryview(self._runtime_cache.serialize()))
            except OSError as exc:
                log.warning("could not save the TensorRT-RTX runtime cache: %s", exc)
            self._runtime_cache = None
        self.engine = None


def _sha(path: Path) -> str:
    from engines.trt.cache import sha256_file

    return sha256_file(path)
