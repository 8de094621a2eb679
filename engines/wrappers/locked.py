"""An engine shared by threads, one call at a time."""
from __future__ import annotations

import threading

from engines.engine import FaceEngine
from engines.faces import Faces


class LockedEngine(FaceEngine):
    """One engine shared by the pipeline and enrolment, one call at a time (TensorRT contexts
    and dlib are not safe to call from two threads at once)."""

    def __init__(self, engine: FaceEngine):
        self.inner = engine
        self.info = engine.info
        self._lock = threading.Lock()

    def infer(self, images, score_threshold=None, max_faces=None) -> list[Faces]:
        with self._lock:
            return self.inner.infer(images, score_threshold, max_faces)

    def close(self) -> None:
        with self._lock:  # waits for a call still running in a pipeline thread that was stopped
            self.inner.close()
