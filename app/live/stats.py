"""Pipeline measurements: per-stage rates over a moving window, latency percentiles, drops.

Meters are written by one pipeline thread and read by any (the GUI, the CLI), so each one
guards its state with a lock; reading makes a snapshot (`PipelineStats`), never a live view.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from app.live.mailbox import Mailbox


class RateMeter:
    """Events per second over the last `window` seconds, plus a total count and busy time."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self._times: deque[float] = deque()
        self._busy: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0
        self.busy_total = 0.0
        self._first: float | None = None

    def tick(self, busy: float = 0.0, now: float | None = None) -> None:
        """Record one event that took `busy` seconds of work."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first is None:
                self._first = now
            self._times.append(now)
            self._busy.append(busy)
            self.count += 1
            self.busy_total += busy
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
            self._busy.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window ending now (over the time since the first event
        while that is shorter). Counting over elapsed time, not between the first and last
        event, keeps bursts (a batch of frames at once) from reading as huge rates and lets a
        stalled stage fall towards 0. 0 with fewer than two events ever."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if self.count < 2 or self._first is None:
                return 0.0
            span = min(self.window, now - self._first)
            return len(self._times) / span if span > 0 else 0.0

    def busy_ms(self) -> float:
        """Mean work time per event in the window, milliseconds."""
        with self._lock:
            return 1000.0 * sum(self._busy) / len(self._busy) if self._busy else 0.0

    def mean_busy_ms(self) -> float:
        """Mean work time per event since the start, milliseconds."""
        with self._lock:
            return 1000.0 * self.busy_total / self.count if self.count else 0.0


class LatencyWindow:
    """The last `size` latencies (seconds) and their percentiles."""

    def __init__(self, size: int = 120):
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        """The q-th percentile in milliseconds, None before the first value."""
        with self._lock:
            if not self._values:
                return None
            return 1000.0 * float(np.percentile(np.fromiter(self._values, float), q))


@dataclass(slots=True)
class StageStats:
    """One pipeline stage: frames per second over the moving window, frames in total, and
    the mean time spent working per frame (ms; the rest of the time it waited), over the
    window and since the start."""

    fps: float
    count: int
    busy_ms: float
    mean_busy_ms: float = 0.0


@dataclass(slots=True)
class SourceStats:
    """One source: its state, frames captured, and frames dropped before inference."""

    source_id: str
    state: str
    captured: int
    dropped: int
    capture_fps: float
    processed: int


@dataclass(slots=True)
class PipelineStats:
    """A snapshot of the whole pipeline, safe to keep and show."""

    stages: dict[str, StageStats] = field(default_factory=dict)  # "capture", "inference", "output"
    sources: dict[str, SourceStats] = field(default_factory=dict)
    latency_p50_ms: float | None = None  # capture time -> result delivered, last N frames
    latency_p95_ms: float | None = None
    dropped_results: int = 0  # results replaced in the result mailbox before anyone read them
    errors: int = 0
    running: bool = False

    @property
    def dropped(self) -> int:
        """Frames dropped between capture and inference, all sources together."""
        return sum(s.dropped for s in self.sources.values())

    def fps(self, stage: str) -> float:
        """The rate of one stage (0 when unknown)."""
        s = self.stages.get(stage)
        return s.fps if s else 0.0

    def overlay_lines(self) -> list[str]:
        """Short lines for a stats overlay."""
        lines = [
            f"capture {self.fps('capture'):.1f} fps | inference {self.fps('inference'):.1f} fps"
            f" | output {self.fps('output'):.1f} fps"
        ]
        lat = "-" if self.latency_p50_ms is None else f"{self.latency_p50_ms:.0f} ms"
        lines.append(f"latency p50 {lat} | dropped {self.dropped}")
        return lines


def snapshot(slots, inference_meter: RateMeter, output_meter: RateMeter, latency: LatencyWindow, result_boxes,
             errors: int, running: bool) -> PipelineStats:
    """A pipeline's rates, latency and drops from its meters: `slots` (one per source: source,
    meter, box, processed), and the result boxes whose drops count (mailboxes drop, channels do not)."""
    now = time.monotonic()
    sources = {}
    cap_fps = cap_count = 0
    cap_busy, cap_total = [], 0.0
    for slot in slots:
        s = slot.source
        fps = slot.meter.rate(now)
        cap_fps += fps
        cap_count += slot.meter.count
        cap_busy.append(slot.meter.busy_ms())
        cap_total += slot.meter.busy_total
        sources[s.source_id] = SourceStats(s.source_id, s.state.value, slot.meter.count, slot.box.dropped,
                                           fps, slot.processed)
    return PipelineStats(
        stages={
            "capture": StageStats(cap_fps, cap_count, sum(cap_busy) / len(cap_busy),
                                  1000.0 * cap_total / cap_count if cap_count else 0.0),
            "inference": StageStats(inference_meter.rate(now), inference_meter.count,
                                    inference_meter.busy_ms(), inference_meter.mean_busy_ms()),
            "output": StageStats(output_meter.rate(now), output_meter.count,
                                 output_meter.busy_ms(), output_meter.mean_busy_ms()),
        },
        sources=sources,
        latency_p50_ms=latency.percentile_ms(50),
        latency_p95_ms=latency.percentile_ms(95),
        dropped_results=sum(box.dropped for box in result_boxes if isinstance(box, Mailbox)),
        errors=errors,
        running=running,
    )
