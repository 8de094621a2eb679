"""Creating engines by name: `create_engine("uniface", "auto")` picks the best runnable backend."""
from __future__ import annotations

import logging
from typing import Callable

from engines.engine import FaceEngine
from engines.errors import EngineNotCached, EngineUnavailable

log = logging.getLogger(__name__)

ENGINES = ("uniface", "cascade", "mtcnn-dlib")


def _unavailable_unless_importable(module: str):
    """A loader's ImportError (a missing package) becomes `EngineUnavailable` naming `module`."""
    def wrap(load: Callable[[], Callable[..., FaceEngine]]) -> Callable[[], Callable[..., FaceEngine]]:
        def checked() -> Callable[..., FaceEngine]:
            try:
                return load()
            except ImportError as exc:
                raise EngineUnavailable(f"{module} cannot be imported: {exc}") from exc
        return checked
    return wrap


@_unavailable_unless_importable("engines.backends.tensorrt_backend")
def _tensorrt():
    from engines.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend


@_unavailable_unless_importable("engines.backends.onnxruntime_backend")
def _onnxruntime():
    from engines.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend


@_unavailable_unless_importable("engines.backends.torch_backend")
def _torch():
    from engines.backends.torch_backend import TorchBackend

    return TorchBackend


@_unavailable_unless_importable("engines.cascade")
def _cascade():
    from engines.cascade import CascadeEngine

    return CascadeEngine


@_unavailable_unless_importable("engines.teachers.mtcnn_dlib")
def _mtcnn_dlib():
    from engines.teachers.mtcnn_dlib import MtcnnDlibEngine

    return MtcnnDlibEngine


# The product's engines, in plain dicts: name -> a loader of the engine class (its module is
# imported only when asked for). The single-shot network's backends:
UNIFACE_BACKENDS: dict[str, Callable[[], Callable[..., FaceEngine]]] = {
    "tensorrt": _tensorrt,
    "onnxruntime": _onnxruntime,
    "torch": _torch,
}
# the two-network engines: name -> (their one backend, loader). The cascade (YuNet + SFace) is the
# product's accurate engine (engines/cascade.py); mtcnn-dlib, the earlier teachers, stays available.
CASCADES: dict[str, tuple[str, Callable[[], Callable[..., FaceEngine]]]] = {
    "cascade": ("opencv+onnxruntime", _cascade),
    "mtcnn-dlib": ("dlib", _mtcnn_dlib),
}
# `auto` tries these in order: the fastest first, CPU last
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", "cuda"),
    ("onnxruntime", "cuda"),
    ("torch", "cuda"),
    ("onnxruntime", "cpu"),
    ("torch", "cpu"),
)


def backend_names(engine: str = "uniface") -> list[str]:
    """Backend names a user may ask for, `auto` first."""
    return ["auto", *UNIFACE_BACKENDS] if engine == "uniface" else ["auto", CASCADES[engine][0]]


def create_engine(engine: str = "uniface", backend: str = "auto", device: str | None = None, *,
                  background_build: bool = True, **kw) -> FaceEngine:
    """A ready `FaceEngine`.

    engine: "uniface" (single-shot), "cascade" (YuNet + SFace) or "mtcnn-dlib" (MTCNN + dlib).
    backend: a name from `backend_names()`; "auto" tries `AUTO_ORDER` and logs each skip.
    device: "cpu", "cuda" or "cuda:N" (None: the backend's best).
    background_build: with "auto", a backend that could run after a long build (TensorRT with
        no cached engine) is built in a background thread while the next best backend serves;
        the returned `HotSwapEngine` switches when it is ready. False: skip it.
    kw: config, weights, cache_dir, input_size, passed to uniface backends.
    """
    if engine in CASCADES:
        own_backend, load = CASCADES[engine]
        if backend not in ("auto", own_backend):
            raise ValueError(f"the {engine} engine runs on {own_backend}; backend {backend!r} does not apply")
        return load()()
    if engine != "uniface":
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if backend != "auto":
        if backend not in UNIFACE_BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(backend_names())}")
        return UNIFACE_BACKENDS[backend]()(device=device or default_device(backend), **kw)
    reasons = []
    to_build: tuple[str, str] | None = None  # the best backend that needs a build first
    for name, dev in AUTO_ORDER:
        if device is not None and not dev.startswith(device.split(":")[0]):
            continue
        try:
            if name == "tensorrt":
                eng = UNIFACE_BACKENDS[name]()(device=device or dev, build=False, **kw)
            else:
                eng = UNIFACE_BACKENDS[name]()(device=device or dev, **kw)
        except EngineNotCached as exc:
            reasons.append(f"{name}/{dev}: {exc}")
            to_build = to_build or (name, device or dev)
            continue
        except EngineUnavailable as exc:
            reasons.append(f"{name}/{dev}: {exc}")
            log.debug("auto: %s on %s unavailable: %s", name, dev, exc)
            continue
        skipped = "; ".join(reasons) if reasons else "nothing faster was tried"
        log.info("auto backend: %s on %s (skipped: %s)", name, dev, skipped)
        if to_build is not None and background_build:
            return _swap_when_built(eng, *to_build, kw)
        return eng
    raise EngineUnavailable("no backend can run here: " + "; ".join(reasons))


def _swap_when_built(fallback: FaceEngine, name: str, device: str, kw: dict) -> FaceEngine:
    """Serve with `fallback` now; build `name` in the background and switch to it when ready."""
    from engines.wrappers.hot_swap import HotSwapEngine

    cls = UNIFACE_BACKENDS[name]()

    def factory(progress):
        return cls(device=device, build=True, on_progress=progress.update, cancel=progress.cancel, **kw)

    log.info("auto backend: serving with %s on %s while the %s engine builds in the background "
             "(minutes, once per GPU and model); frames switch to it when it is ready",
             fallback.info.backend, fallback.info.device, name)
    return HotSwapEngine(fallback=fallback, factory=factory, preferred_name=name)


def default_device(backend: str) -> str:
    """CUDA when this backend can use a GPU here, CPU otherwise."""
    if backend == "tensorrt":
        return "cuda"
    try:
        if backend == "onnxruntime":
            import onnxruntime

            return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
