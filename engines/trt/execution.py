"""One TensorRT execution context per inference thread, with its CUDA stream, device buffers
(sized once for the profile's max batch) and pinned host staging; input shapes and tensor
addresses are set only when they change, and every TensorRT call's return value is checked.
The graph's inputs and outputs and their TensorRT data types are named here."""
from __future__ import annotations

import logging

import numpy as np

from engines.preprocess import RawOutputs
from engines.trt.cuda_memory import DeviceBuffer, HostBuffer, make_output_allocator

log = logging.getLogger("engines.backends.tensorrt_backend")  # the backend's log lines, as before

INPUTS = {"images": "UINT8", "score_threshold": "FLOAT", "max_faces": "INT32"}
OUTPUTS = {"boxes": "FLOAT", "scores": "FLOAT", "landmarks": "FLOAT", "embeddings": "FLOAT", "count": "INT32"}
NUMPY_DTYPES = {"UINT8": np.uint8, "FLOAT": np.float32, "INT32": np.int32, "HALF": np.float16,
                "INT64": np.int64, "BOOL": np.bool_, "INT8": np.int8}


class ThreadContext:
    """One execution context with its stream and buffers; used by one thread only."""

    def __init__(self, backend):  # an engines.backends.tensorrt_backend.TensorRTBackend
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
