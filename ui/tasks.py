"""Work that must not run on the GUI thread (engines, enrolment, gallery reads and writes,
file export), run on plain threads; results come back to the GUI thread by a queued signal."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from PyQt5.QtCore import QObject, pyqtSignal

log = logging.getLogger("unisight.ui.tasks")


class TaskRunner(QObject):
    """`submit(fn, on_done, on_error)`: `fn()` runs on a new thread; `on_done(result)` or
    `on_error(exception)` then run on the GUI thread. `wait(timeout)` joins them all."""

    _finished = pyqtSignal(object, object, object, object)  # thread, callback, value, error

    def __init__(self, parent: QObject | None = None, on_error: Callable[[BaseException], None] | None = None):
        super().__init__(parent)
        self.default_on_error = on_error
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._finished.connect(self._deliver)

    def submit(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None, name: str = "task") -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(fn, on_done, on_error), name=f"unisight-task-{name}",
                                  daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _run(self, fn, on_done, on_error) -> None:
        thread = threading.current_thread()
        try:
            value = fn()
        except BaseException as exc:  # delivered to the GUI thread, which shows it
            if not isinstance(exc, Exception) or on_error is None and self.default_on_error is None:
                log.error("background task %s failed", thread.name, exc_info=exc)
            self._emit(thread, on_error or self.default_on_error, None, exc)
        else:
            self._emit(thread, on_done, value, None)

    def _emit(self, thread, callback, value, error) -> None:
        try:
            self._finished.emit(thread, callback, value, error)
        except RuntimeError:  # the runner was deleted with its window: nobody to tell
            pass
        finally:
            with self._lock:
                self._threads.discard(thread)

    def _deliver(self, thread, callback, value, error) -> None:
        if callback is None:
            return
        try:
            callback(error if error is not None else value)
        except Exception:
            log.exception("callback of background task %s failed", thread.name)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._threads)

    def wait(self, timeout: float = 5.0) -> bool:
        """Join every task thread; True when none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return True
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not any(t.is_alive() for t in self._threads)
