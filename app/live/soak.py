"""Soak run: the live pipeline on a live source for a long time, watching threads and memory.

The whole live path runs (capture → inference + tracking + recognition → drawing), results
are taken as a GUI would (newest only) and finished appearances are drained as an event log
would. After a warm-up the process's resident memory and thread count are sampled; growth
from the first sample to the last is what leaks look like.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import psutil

from app.live.pipeline import Pipeline
from app.live.recognition import Recognizer
from app.render import FrameAnnotator
from app.sources import VideoSource
from app.types import FrameResult

log = logging.getLogger("unisight.soak")


@dataclass(slots=True)
class SoakSample:
    """One reading of the process during the run."""

    seconds: float  # since the start of the run
    rss_mb: float
    threads: int  # Python threads
    os_threads: int  # every thread of the process, native pools included
    frames: int  # frames through inference so far
    inference_fps: float
    dropped: int


@dataclass(slots=True)
class SoakReport:
    """What the run saw; `passed` says whether growth stayed within the limits."""

    seconds: float
    warmup_seconds: float
    frames: int
    faces: int
    appearances: int
    dropped: int
    errors: list[str]
    rss_start_mb: float  # first sample after the warm-up
    rss_end_mb: float
    rss_max_mb: float
    threads_before: int  # before the pipeline started
    threads_start: int
    threads_end: int  # last sample while running
    threads_max: int
    threads_after: int  # after the pipeline stopped
    os_threads_start: int
    os_threads_end: int
    max_rss_growth_mb: float
    samples: list[SoakSample] = field(default_factory=list)
    source_problem: str | None = None  # the source's last failure or reconnection message

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    @property
    def thread_growth(self) -> int:
        return self.threads_end - self.threads_start

    @property
    def reasons(self) -> list[str]:
        """Why the run failed, one line per broken limit (empty when it passed)."""
        out = [f"pipeline error: {e}" for e in self.errors]
        if self.frames <= 0:
            why = f": the source {self.source_problem}" if self.source_problem else ""
            out.append(f"no frame was processed{why}")
        if self.thread_growth > 0:
            out.append(f"Python threads grew while running ({self.threads_start} -> {self.threads_end})")
        if self.threads_after > self.threads_before:
            out.append(f"threads left after stopping ({self.threads_before} before, {self.threads_after} after)")
        if self.os_threads_end > self.os_threads_start:
            out.append(f"OS threads grew ({self.os_threads_start} -> {self.os_threads_end})")
        if self.rss_growth_mb >= self.max_rss_growth_mb:
            out.append(f"memory grew {self.rss_growth_mb:.1f} MB (limit {self.max_rss_growth_mb:g})")
        return out

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self, with_samples: bool = False) -> dict:
        d = asdict(self)
        if not with_samples:
            d.pop("samples")
        d.update(rss_growth_mb=round(self.rss_growth_mb, 2), thread_growth=self.thread_growth, passed=self.passed,
                 reasons=self.reasons)
        for key in ("seconds", "rss_start_mb", "rss_end_mb", "rss_max_mb"):
            d[key] = round(d[key], 2)
        return d


def run_soak(source: VideoSource, engine, *, seconds: float, warmup: float = 30.0, sample_every: float = 10.0,
             max_rss_growth_mb: float = 50.0, recognizer: Recognizer | None = None,
             on_sample: Callable[[SoakSample], None] | None = None) -> SoakReport:
    """Run the live pipeline on `source` for `seconds` (after `warmup`) and report growth."""
    process = psutil.Process()
    recognizer = recognizer or Recognizer(None, engine=engine)
    annotator = FrameAnnotator()
    counts = {"faces": 0, "appearances": 0}
    errors: list[str] = []
    threads_before = threading.active_count()
    problem: list[str] = []

    def on_state(event) -> None:
        if event.state.value in ("reconnecting", "failed") and event.message:
            problem[:] = [f"{event.state.value}: {event.message}"]

    source.add_listener(on_state)

    def on_result(result: FrameResult) -> None:
        annotator.annotate(result.frame.image, result.faces)  # the drawing a viewer would do
        counts["faces"] += len(result.faces)

    pipeline = Pipeline([source], engine, analyzers=[recognizer], on_result=on_result,
                        on_error=lambda e: errors.append(e.message))
    samples: list[SoakSample] = []

    def take_sample() -> None:
        stats = pipeline.stats()
        sample = SoakSample(
            seconds=round(time.monotonic() - started, 1), rss_mb=process.memory_info().rss / 2**20,
            threads=threading.active_count(), os_threads=process.num_threads(),
            frames=stats.stages["inference"].count, inference_fps=round(stats.fps("inference"), 1),
            dropped=stats.dropped)
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample)

    started = time.monotonic()
    pipeline.start()
    try:
        end = started + warmup + seconds
        next_sample = started + warmup
        while time.monotonic() < end and pipeline.running:
            time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
            counts["appearances"] += len(recognizer.pop_finished())  # an event log drains these
            if time.monotonic() >= next_sample:
                take_sample()
                next_sample += sample_every
        if not samples:  # it ended during the warm-up: one reading still tells the story
            take_sample()
    finally:
        final = pipeline.stats()
        pipeline.stop()
    if time.monotonic() < started + warmup + seconds and not errors:
        errors.append("the pipeline stopped before the end of the run")
    recognizer.finish()
    counts["appearances"] += len(recognizer.pop_finished())
    return SoakReport(
        seconds=time.monotonic() - started, warmup_seconds=warmup, frames=final.stages["inference"].count,
        faces=counts["faces"], appearances=counts["appearances"], dropped=final.dropped, errors=errors,
        rss_start_mb=samples[0].rss_mb, rss_end_mb=samples[-1].rss_mb,
        rss_max_mb=max(s.rss_mb for s in samples), threads_before=threads_before,
        threads_start=samples[0].threads, threads_end=samples[-1].threads,
        threads_max=max(s.threads for s in samples), threads_after=threading.active_count(),
        os_threads_start=samples[0].os_threads, os_threads_end=samples[-1].os_threads,
        max_rss_growth_mb=max_rss_growth_mb, samples=samples, source_problem=problem[0] if problem else None)
