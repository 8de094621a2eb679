"""The one bridge from the pipeline threads to the GUI thread: a precise timer that takes the
newest result of each source from a latest-frame slot and hands it to the views.

The pipeline never calls into Qt and the GUI thread never waits for the pipeline: a tick
that finds nothing new does nothing. Every tick is timed, so a stall of the GUI thread (any
handler that blocks it) shows up as a long gap between ticks (`TickGapMeter`).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

import numpy as np
from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal

from app.types import FrameResult


class TickGapMeter:
    """Gaps between consecutive ticks of a timer: the longest since `reset`, and recent ones."""

    def __init__(self, window: int = 600):
        self._last: float | None = None
        self._recent: deque[float] = deque(maxlen=window)
        self.max_gap = 0.0
        self.ticks = 0
        self.started: float | None = None

    def reset(self) -> None:
        """Start measuring again from the next tick."""
        self._last = None
        self._recent.clear()
        self.max_gap = 0.0
        self.ticks = 0
        self.started = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._last is not None:
            gap = now - self._last
            self._recent.append(gap)
            self.max_gap = max(self.max_gap, gap)
        else:
            self.started = now
        self._last = now
        self.ticks += 1

    @property
    def max_gap_ms(self) -> float:
        return 1000.0 * self.max_gap

    def recent_max_ms(self) -> float:
        return 1000.0 * max(self._recent) if self._recent else 0.0

    def percentile_ms(self, q: float) -> float:
        return 1000.0 * float(np.percentile(np.fromiter(self._recent, float), q)) if self._recent else 0.0


class FramePump(QObject):
    """Every `interval_ms`, calls `take()` (the session's latest-frame slot) and emits
    `frames` with what it returned when that is not empty."""

    frames = pyqtSignal(dict)  # source_id -> FrameResult
    ticked = pyqtSignal()

    def __init__(self, take: Callable[[], dict[str, FrameResult]] | None = None, interval_ms: int = 15,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.take = take
        self.meter = TickGapMeter()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def _tick(self) -> None:
        self.meter.tick()
        if self.take is not None:
            results = self.take()
            if results:
                self.frames.emit(results)
        self.ticked.emit()
