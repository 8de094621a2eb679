"""TensorRT backend: the Uniface engine on an NVIDIA GPU (TensorRT 10/11 or TensorRT-RTX), a thin
adapter over `engines/trt/`.

The engine comes from `engines.trt.build.ensure_engine` (cached, or built on a miss). Each
inference thread gets its own execution context (`engines.trt.execution.ThreadContext`: CUDA
stream, device buffers, pinned host staging, shapes and addresses set only when they change).
Images go up as uint8: normalisation is inside the graph. Device memory comes from a
`CudaDevice` (`engines.trt.cuda_memory`).
"""
from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

import numpy as np

from engines.engine import EngineInfo
from engines.errors import EngineNotCached, EngineUnavailable
from engines.backends.uniface import UnifaceBackend
from engines.preprocess import RawOutputs
from engines.model.config import SHIPPED_CONFIG, get_config
from engines.model.detection_threshold import threshold_from_metadata
from engines.trt.cuda_memory import CudaDevice, open_cuda_device
from engines.trt.execution import INPUTS, OUTPUTS, ThreadContext

log = logging.getLogger(__name__)


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
        self._contexts: weakref.WeakSet[ThreadContext] = weakref.WeakSet()
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

    def _thread_context(self) -> ThreadContext:
        ctx = getattr(self._tls, "ctx", None)
        if ctx is None:
            if self.engine is None:
                raise RuntimeError("the TensorRT backend is closed")
            ctx = ThreadContext(self)
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
