"""Serve frames with an engine that is ready now while a better one is prepared, then switch.

Building a TensorRT engine takes minutes on a cache miss. `HotSwapEngine` answers every
`infer` with the fallback (e.g. ONNX Runtime) while a background thread runs the factory of
the preferred engine; when that engine is ready (and has passed a warm-up frame) the next
`infer` call switches to it atomically, and the fallback is closed once no call uses it.
If preparing fails, it keeps serving with the fallback and says why.

    engine = HotSwapEngine(
        fallback=OnnxRuntimeBackend(config=SHIPPED_CONFIG, cache_dir=cache),
        factory=lambda progress: TensorRTBackend(config=SHIPPED_CONFIG, cache_dir=cache,
                                                 on_progress=progress.update, cancel=progress.cancel),
    )
    engine.status()  # for the GUI: state, active backend, build phase and fraction, error
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from engines.engine import EngineInfo, FaceEngine
from engines.faces import Faces
from engines.model.config import SHIPPED_CONFIG

log = logging.getLogger("engines.backends.hot_swap")  # its log lines, as before

PREPARING, READY, SWITCHED, FAILED, CANCELLED = "preparing", "ready", "switched", "failed", "cancelled"


@dataclass(slots=True)
class BuildProgress:
    """Progress of the preferred engine's preparation; the factory reports into it."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, phase: str, done: int, total: int) -> None:
        """Called by the factory (from any thread): phase name, steps done, steps in it."""
        with self._lock:
            self.phase, self.done, self.total = str(phase), int(done), int(total)

    def snapshot(self) -> tuple[str, float | None]:
        """(phase, fraction of the phase done or None when unknown)."""
        with self._lock:
            return self.phase, (self.done / self.total if self.total > 0 else None)


@dataclass(frozen=True, slots=True)
class SwapStatus:
    """What the GUI shows about the swap."""

    state: str  # preparing, ready, switched, failed, cancelled
    active: str  # backend serving frames now
    preferred: str  # backend being prepared
    phase: str  # current build phase
    fraction: float | None  # of the phase, None when unknown
    elapsed: float  # seconds since preparing started (until it ended)
    error: str | None = None


EngineFactory = Callable[[BuildProgress], FaceEngine]


class HotSwapEngine(FaceEngine):
    """A `FaceEngine` that starts on `fallback` and moves to what `factory` makes.

    fallback: a ready engine that serves until the switch.
    factory: builds the preferred engine in a background thread; gets a `BuildProgress`
        to report into and whose `cancel` event it should honour.
    preferred_name: shown in status and logs until the engine exists.
    warmup: run one blank frame through the new engine before switching to it.
    """

    def __init__(
        self,
        fallback: FaceEngine,
        factory: EngineFactory,
        preferred_name: str = "tensorrt",
        warmup: bool = True,
        start: bool = True,
        on_switch: Callable[[FaceEngine, FaceEngine], None] | None = None,
    ):
        self._active = fallback
        self._factory = factory
        self._preferred_name = preferred_name
        self._warmup = warmup
        self._on_switch = on_switch
        self.progress = BuildProgress()
        self._lock = threading.Lock()
        self._ready: FaceEngine | None = None
        self._users: Counter[int] = Counter()  # in-flight infer calls per engine id
        self._retired: list[FaceEngine] = []  # replaced engines waiting for their last call
        self._state = PREPARING
        self._error: str | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._done = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._prepare, name=f"prepare-{preferred_name}", daemon=True)
        if start:
            self.start()

    # -- FaceEngine
    @property
    def info(self) -> EngineInfo:
        return self._active.info

    def infer(
        self,
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
        max_faces: int | None = None,
    ) -> list[Faces]:
        engine = self._acquire()
        try:
            return engine.infer(images, score_threshold=score_threshold, max_faces=max_faces)
        finally:
            self._release(engine)

    def close(self) -> None:
        """Cancel preparing, wait briefly for the builder thread, close every engine held."""
        self.progress.cancel.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                log.warning("%s preparation did not stop within 10 s; leaving it to finish", self._preferred_name)
        with self._lock:
            self._closed = True
            engines = [self._active, *([self._ready] if self._ready else []), *self._retired]
            self._ready, self._retired = None, []
        for engine in engines:
            engine.close()

    # -- swap state
    def start(self) -> None:
        """Start preparing the preferred engine (once)."""
        if not self._thread.is_alive() and not self._done.is_set():
            self._started = time.monotonic()
            self._thread.start()

    def status(self) -> SwapStatus:
        phase, fraction = self.progress.snapshot()
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return SwapStatus(
                state=self._state,
                active=self._active.info.backend,
                preferred=self._preferred_name,
                phase=phase,
                fraction=fraction,
                elapsed=end - self._started,
                error=self._error,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until preparing has ended (ready, failed or cancelled); False on timeout."""
        return self._done.wait(timeout)

    def _acquire(self) -> FaceEngine:
        with self._lock:
            if self._ready is not None:
                self._switch_locked()
            engine = self._active
            self._users[id(engine)] += 1
            return engine

    def _release(self, engine: FaceEngine) -> None:
        with self._lock:
            self._users[id(engine)] -= 1
            idle = self._users[id(engine)] <= 0
            if idle:
                del self._users[id(engine)]
            retire = idle and any(e is engine for e in self._retired)
            if retire:
                self._retired = [e for e in self._retired if e is not engine]
        if retire:
            engine.close()

    def _switch_locked(self) -> None:
        old, new = self._active, self._ready
        self._active, self._ready = new, None
        self._state = SWITCHED
        log.info("switched from %s to %s after %.1f s", old.info.backend, new.info.backend,
                 time.monotonic() - self._started)
        if self._users[id(old)] > 0:
            self._retired.append(old)  # closed by the last call still using it
        else:
            threading.Thread(target=old.close, name="close-fallback", daemon=True).start()
        if self._on_switch is not None:
            try:
                self._on_switch(old, new)
            except Exception:  # noqa: BLE001 - a GUI callback must not break inference
                log.exception("on_switch callback failed")

    def _prepare(self) -> None:
        engine = None
        try:
            engine = self._factory(self.progress)
            if self.progress.cancel.is_set():
                raise _Cancelled()
            active = self._active.info
            if engine.info.model_id != active.model_id:
                raise RuntimeError(f"it runs model {engine.info.model_id}, not {active.model_id}: "
                                   "its embeddings would not match the gallery")
            if self._warmup:
                self.progress.update("warm-up", 0, 1)
                w, h = engine.info.input_size or active.input_size or (640, 480)
                engine.infer([np.zeros((h, w, 3), np.uint8)])
                self.progress.update("warm-up", 1, 1)
        except BaseException as exc:  # noqa: BLE001 - any failure means: keep the fallback
            if engine is not None:
                engine.close()
            cancelled = isinstance(exc, _Cancelled) or self.progress.cancel.is_set()
            with self._lock:
                self._state = CANCELLED if cancelled else FAILED
                self._error = None if cancelled else f"{type(exc).__name__}: {exc}"
                self._ended = time.monotonic()
                active = self._active.info.backend
            if cancelled:
                log.info("preparing %s was cancelled; staying on %s", self._preferred_name, active)
            else:
                log.warning("%s could not be prepared (%s); staying on %s", self._preferred_name, self._error, active)
            self._done.set()
            if not isinstance(exc, Exception) and not cancelled:
                raise
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._ready = engine
                self._state = READY
            self._ended = time.monotonic()
        if closed:
            engine.close()
        else:
            log.info("%s is ready after %.1f s; switching at the next frame", engine.info.backend,
                     self._ended - self._started)
        self._done.set()


class _Cancelled(Exception):
    pass
