"""A face engine in a child process, for engines whose native calls hold Python's GIL.

dlib's calls (the mtcnn-dlib engine's embedder) keep the GIL for ~85 ms each, so while that
engine runs in a thread of the window's process, the GUI thread cannot run either
(measured: 183 ms gaps between GUI ticks). Run in a child process, the engine only costs
the window the pickling of each frame (~1 ms for 640x360). ONNX Runtime, PyTorch and OpenCV's DNN
release the GIL during inference and stay in-process (the cascade, YuNet + SFace: 25-30 ms
longest GUI gaps, `main.py screenshot --engine cascade --json`).
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Callable, Sequence

import numpy as np

from engines.engine import FaceEngine
from engines.errors import EngineUnavailable
from engines.faces import Faces

log = logging.getLogger("unisight.engine_process")

# dlib and MTCNN-in-torch hold the GIL for long stretches; YuNet (OpenCV) and SFace (ONNX
# Runtime) release it, so the cascade runs in a thread like the single-shot network
GIL_HOLDING_ENGINES = frozenset({"mtcnn-dlib"})
MAX_RESTARTS = 3  # crashes within RESTART_WINDOW seconds before the engine is given up
RESTART_WINDOW = 60.0


def _serve(conn, factory: Callable[..., FaceEngine], engine: str, backend: str, device: str | None, kw: dict) -> None:
    """The child: create the engine with `factory` (the registry's `create_engine`), then answer
    ("infer", images, threshold, max_faces) until ("close",) or the parent goes away."""
    try:
        eng = factory(engine, backend, device=device, **kw)
    except (EngineUnavailable, ValueError) as exc:  # cannot run here, or a bad name: the user's to fix
        conn.send(("unavailable", str(exc)))
        return
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", eng.info))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "close":
                return
            _, images, score_threshold, max_faces = message
            try:
                conn.send(("ok", eng.infer(images, score_threshold, max_faces)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        eng.close()


class ProcessEngine(FaceEngine):
    """`factory(engine, backend, device=device, **kw)` (the registry's `create_engine`) run in a
    child process; same interface.
    Calls are serialised; `close()` ends the child. A child that dies (a native crash, the OOM
    killer) is started again and the call retried, up to MAX_RESTARTS times a minute."""

    def __init__(self, engine: str, backend: str = "auto", device: str | None = None, start_timeout: float = 120.0,
                 *, factory: Callable[..., FaceEngine], **kw):
        self._factory = factory  # a module-level function: the spawned child imports it by name
        self._args = (engine, backend, device, kw)
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc = None
        self._crashes: list[float] = []
        self.restarts = 0
        self._spawn()

    def _spawn(self) -> None:
        engine, backend, device, kw = self._args
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Qt and threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._factory, engine, backend, device, kw), daemon=True,
                                 name=f"unisight-engine-{engine}")
        self._proc.start()
        child.close()
        if not self._conn.poll(self._start_timeout):
            self._kill()
            raise EngineUnavailable(f"the {engine} engine did not start within {self._start_timeout:.0f} s")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self._kill()
            raise EngineUnavailable(f"the {engine} engine process died while starting") from None
        if kind != "ready":
            self._kill()
            raise EngineUnavailable(payload) if kind == "unavailable" else RuntimeError(payload)
        self.info = payload

    def infer(self, images: Sequence[np.ndarray], score_threshold: float | None = None,
              max_faces: int | None = None) -> list[Faces]:
        message = ("infer", [np.ascontiguousarray(i) for i in images], score_threshold, max_faces)
        with self._lock:
            if self._proc is None:
                raise RuntimeError("the engine process was closed")
            try:
                kind, payload = self._call(message)
            except (EOFError, OSError) as exc:
                self._restart_after(exc)
                try:
                    kind, payload = self._call(message)
                except (EOFError, OSError) as again:
                    self._kill()
                    raise RuntimeError(f"the {self._args[0]} engine process died twice on one call ({again})") \
                        from None
        if kind != "ok":
            raise RuntimeError(payload)
        return payload

    def _call(self, message: tuple) -> tuple[str, object]:
        self._conn.send(message)
        return self._conn.recv()

    def _restart_after(self, exc: BaseException) -> None:
        """The child died: start a new one, unless it keeps dying (then raise)."""
        pid = self._proc.pid
        self._kill()
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < RESTART_WINDOW] + [now]
        if len(self._crashes) > MAX_RESTARTS:
            raise RuntimeError(f"the {self._args[0]} engine process {pid} ended unexpectedly ({exc}), "
                               f"{len(self._crashes)} times in a minute: given up")
        log.warning("the %s engine process %s ended unexpectedly (%s); starting a new one", self._args[0], pid, exc)
        try:
            self._spawn()
        except EngineUnavailable as start_error:
            raise RuntimeError(f"the {self._args[0]} engine process ended and could not be restarted: "
                               f"{start_error}") from None
        self.restarts += 1

    def close(self) -> None:
        with self._lock:
            if self._proc is None:
                return
            try:
                self._conn.send(("close",))
            except (OSError, BrokenPipeError):
                pass
            self._proc.join(5.0)
            self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        self._conn.close()
