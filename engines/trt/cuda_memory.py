"""CUDA memory for the TensorRT runtime: device and pinned host buffers, streams, and the
`CudaDevice` that makes them: torch CUDA tensors when torch has CUDA, otherwise cuda-python
(`cuda.bindings.runtime`); tests pass a host-memory stand-in. Also TensorRT's output allocator
(outputs whose size is known only after the run)."""
from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from engines.errors import EngineUnavailable


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
