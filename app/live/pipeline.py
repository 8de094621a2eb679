"""The threaded pipeline: capture -> inference -> output, plain threads joined by mailboxes.

    source A ─ capture thread ─┐ box A
    source B ─ capture thread ─┤ box B ── inference thread ── out box ── output thread ── on_result
                                 (newest frame of each source,           (or `results` for a
                                  one `engine.infer` batch, analyzers)    reader such as the GUI)

Realtime sources (cameras, streams, paced files) feed a drop-oldest `Mailbox`, so the newest
frame is always the next one processed and latency cannot build up; other files feed a
lossless `Channel` and every frame is processed in order. Errors in any stage are reported
through `on_error` (and kept in `errors`): a source failing ends only that source, an error
in inference or output stops the pipeline. Source state events go to `on_state`.

Callbacks run in pipeline threads: `on_result` in the output thread, `on_state` in the
source's capture thread, `on_error` in the failing thread. Keep them short.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from app.live.mailbox import Channel, Closed, Mailbox, wait_any
from app.sources import ReconnectingSource, SourceEvent, SourceState, VideoSource
from app.live.stats import LatencyWindow, PipelineStats, RateMeter, snapshot
from app.types import Frame, FrameResult
from engines.engine import FaceEngine
from engines.faces import Faces

log = logging.getLogger("unisight.pipeline")

Analyzer = Callable[[Frame, Faces], Faces]


@dataclass(slots=True)
class PipelineError:
    """An error raised in a pipeline stage; `fatal` ones stopped the pipeline."""

    stage: str  # "capture", "inference", "output"
    source_id: str | None
    error: BaseException
    fatal: bool
    time: float  # time.monotonic()

    @property
    def message(self) -> str:
        where = f"{self.stage}" + (f" ({self.source_id})" if self.source_id else "")
        return f"{where}: {type(self.error).__name__}: {self.error}"


class _SourceSlot:
    """One source, its capture thread, its box into inference and its meters."""

    def __init__(self, source: VideoSource, box: Mailbox | Channel, rate_window: float):
        self.source = source
        self.box = box
        self.meter = RateMeter(rate_window)
        self.processed = 0
        self.thread: threading.Thread | None = None


class Pipeline:
    """Runs `engine` on frames from `sources` in three kinds of threads; see the module doc.

    analyzers: applied in order to each frame's faces in the inference thread (tracking and
        recognition plug in here).
    on_result: called with each `FrameResult` in the output thread; without it, results go
        to `self.results` (lossless when any source is; else drop-oldest with one slot per
        source, so the newest result of each source is there to take).
    lossless: None chooses per source (realtime sources drop, files do not); True/False
        forces one policy for all.
    retry_open: a live source (camera, stream) that cannot connect at start keeps retrying
        with backoff (state `reconnecting`) instead of failing.
    on_finished: called once every source has ended and every result was delivered (not
        after `stop()`).
    """

    def __init__(
        self,
        sources: Sequence[VideoSource],
        engine: FaceEngine,
        *,
        analyzers: Sequence[Analyzer] = (),
        on_result: Callable[[FrameResult], None] | None = None,
        on_error: Callable[[PipelineError], None] | None = None,
        on_state: Callable[[SourceEvent], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        lossless: bool | None = None,
        retry_open: bool = True,
        queue_size: int = 4,
        score_threshold: float | None = None,
        max_faces: int | None = None,
        rate_window: float = 2.0,
        latency_window: int = 120,
    ):
        if not sources:
            raise ValueError("a pipeline needs at least one source")
        ids = [s.source_id for s in sources]
        if len(set(ids)) != len(ids):
            raise ValueError(f"source ids must be unique, got {ids}")
        self.engine = engine
        self.analyzers = list(analyzers)
        self.on_result, self.on_error, self.on_state, self.on_finished = on_result, on_error, on_state, on_finished
        self.score_threshold, self.max_faces = score_threshold, max_faces
        self.retry_open = retry_open
        self._input_ready = threading.Condition()
        self._lossless, self._queue_size, self._rate_window = lossless, queue_size, rate_window
        # replaced, never mutated, so other threads may iterate a snapshot without the lock
        self._slots: list[_SourceSlot] = [self._new_slot(source) for source in sources]
        any_lossless = any(isinstance(slot.box, Channel) for slot in self._slots)
        # live: room for one batch (the newest frame of every source), older results dropped
        n = len(self._slots)
        self._out: Mailbox[FrameResult] | Channel[FrameResult] = (
            Channel(max(queue_size, n)) if any_lossless else Mailbox(n))
        self.results: Mailbox[FrameResult] | Channel[FrameResult] | None = None
        if on_result is None:
            self.results = Channel(max(queue_size, n)) if any_lossless else Mailbox(n)
        self.errors: list[PipelineError] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._inference_meter = RateMeter(rate_window)
        self._output_meter = RateMeter(rate_window)
        self._latency = LatencyWindow(latency_window)
        self._lock = threading.Lock()
        self._accepting = True  # the inference thread still takes new sources

    def _new_slot(self, source: VideoSource) -> _SourceSlot:
        keep_all = (not source.info.realtime) if self._lossless is None else self._lossless
        box = Channel(self._queue_size, self._input_ready) if keep_all else Mailbox(1, self._input_ready)
        return _SourceSlot(source, box, self._rate_window)

    # -- control ---------------------------------------------------------------------------
    @property
    def sources(self) -> list[VideoSource]:
        return [slot.source for slot in self._slots]

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> "Pipeline":
        """Start every thread (sources not yet opened are opened in their capture thread)."""
        if self._started:
            raise RuntimeError("a pipeline can be started once; create a new one")
        self._started = True
        for slot in self._slots:
            self._make_capture_thread(slot)
        self._threads.append(threading.Thread(target=self._inference_loop, daemon=True, name="unisight-inference"))
        self._threads.append(threading.Thread(target=self._output_loop, daemon=True, name="unisight-output"))
        for t in list(self._threads):
            t.start()
        return self

    def _make_capture_thread(self, slot: _SourceSlot) -> threading.Thread:
        slot.source.add_listener(self._forward_state)
        slot.thread = threading.Thread(target=_capture_loop, args=(self, slot), daemon=True,
                                       name=f"unisight-capture-{slot.source.source_id}")
        self._threads.append(slot.thread)
        return slot.thread

    def add_source(self, source: VideoSource) -> None:
        """Capture from one more source while the others run on. Raises RuntimeError when the
        pipeline is not running (not started, stopped, or ended because every source ended)
        and ValueError for a source id already in use."""
        with self._lock:
            if not self._started or self._stop.is_set() or not self._accepting:
                raise RuntimeError("sources can only be added to a running pipeline")
            if any(slot.source.source_id == source.source_id for slot in self._slots):
                raise ValueError(f"source id {source.source_id!r} is already in this pipeline")
            slot = self._new_slot(source)
            self._slots = [*self._slots, slot]
            # live results keep one slot per source, so every source's newest result survives a batch
            for box in (self._out, self.results):
                if isinstance(box, Mailbox):
                    box.capacity = max(box.capacity, len(self._slots))
            thread = self._make_capture_thread(slot)
        thread.start()
        with self._input_ready:
            self._input_ready.notify_all()

    def remove_source(self, source_id: str) -> bool:
        """Stop one source, dropping its queued frames, while the others run on; False if it
        is not in this pipeline. Removing the last source ends the pipeline."""
        with self._lock:
            slot = next((s for s in self._slots if s.source.source_id == source_id), None)
            if slot is None:
                return False
            self._slots = [s for s in self._slots if s is not slot]
        slot.source.interrupt()
        slot.box.close(discard=True)
        return True

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop now, dropping queued frames, and join every thread. True when all threads
        ended within `timeout` seconds (a stage stuck inside a call cannot be interrupted)."""
        self._halt()
        return self._join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the natural end (every source ended and every frame delivered).
        True when all threads have ended."""
        return self._join(timeout)

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _halt(self) -> None:
        self._stop.set()
        for slot in self._slots:
            slot.source.interrupt()
            slot.box.close(discard=True)
        self._out.close(discard=True)
        if self.results is not None:
            self.results.close(discard=True)

    def _join(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        for t in self._threads:
            if t is me:
                continue
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive() and t is not me]
        if alive and self._stop.is_set():
            log.warning("pipeline threads still running after stop: %s", ", ".join(alive))
        return not alive

    # -- stages ----------------------------------------------------------------------------
    def _inference_loop(self) -> None:
        active: list[_SourceSlot] = []
        known: set[_SourceSlot] = set()
        try:
            while not self._stop.is_set():
                with self._lock:  # pick up added sources; stop taking them once none is left
                    for slot in self._slots:
                        if slot not in known:
                            known.add(slot)
                            active.append(slot)
                    if not active:
                        self._accepting = False
                        break
                wait_any([s.box for s in active], self._input_ready, timeout=0.25)
                batch: list[tuple[_SourceSlot, Frame]] = []
                for slot in list(active):
                    try:
                        frame = slot.box.get_nowait()
                    except Closed:
                        active.remove(slot)
                        continue
                    if frame is not None:
                        batch.append((slot, frame))
                if batch and not self._stop.is_set():
                    self._infer_batch(batch)
        except Closed:
            pass
        except Exception as exc:
            if not self._stop.is_set():
                self._report("inference", None, exc, fatal=True)
        finally:
            with self._lock:
                self._accepting = False
            self._out.close()

    def _infer_batch(self, batch: list[tuple[_SourceSlot, Frame]]) -> None:
        t0 = time.monotonic()
        faces_list = self.engine.infer([f.image for _, f in batch], self.score_threshold, self.max_faces)
        t1 = time.monotonic()
        if len(faces_list) != len(batch):
            raise RuntimeError(f"engine returned {len(faces_list)} results for {len(batch)} images")
        per_frame = (t1 - t0) / len(batch)
        for (slot, frame), faces in zip(batch, faces_list):
            ta = time.monotonic()
            for analyzer in self.analyzers:
                faces = analyzer(frame, faces)
            tb = time.monotonic()
            result = FrameResult(frame=frame, faces=faces, timings={
                "queue": t0 - frame.capture_time, "inference": t1 - t0, "analyzers": tb - ta})
            slot.processed += 1
            self._inference_meter.tick(per_frame + (tb - ta), now=tb)
            self._out.put(result)

    def _output_loop(self) -> None:
        result: FrameResult | None = None
        try:
            for result in self._out:
                t0 = time.monotonic()
                if self.on_result is not None:
                    self.on_result(result)
                else:
                    self.results.put(result)
                t1 = time.monotonic()
                self._latency.add(t1 - result.frame.capture_time)
                self._output_meter.tick(t1 - t0, now=t1)
        except Closed:
            pass
        except Exception as exc:
            if not self._stop.is_set():
                self._report("output", result.frame.source_id if result is not None else None, exc, fatal=True)
        finally:
            if self.results is not None:
                self.results.close()
            if self.on_finished is not None and not self._stop.is_set():
                try:
                    self.on_finished()
                except Exception:
                    log.exception("on_finished callback failed")

    # -- reporting -------------------------------------------------------------------------
    def _report(self, stage: str, source_id: str | None, exc: BaseException, fatal: bool) -> None:
        err = PipelineError(stage, source_id, exc, fatal, time.monotonic())
        with self._lock:
            self.errors.append(err)
        log.error("pipeline error in %s%s", err.message, " (stopping)" if fatal else "",
                  exc_info=(type(exc), exc, exc.__traceback__) if log.isEnabledFor(logging.DEBUG) else None)
        if self.on_error is not None:
            try:
                self.on_error(err)
            except Exception:
                log.exception("on_error callback failed")
        if fatal:
            self._halt()

    def _forward_state(self, event: SourceEvent) -> None:
        if self.on_state is not None:
            try:
                self.on_state(event)
            except Exception:
                log.exception("on_state callback failed")

    def stats(self) -> PipelineStats:
        """A snapshot of rates, latency and drops; any thread, any time."""
        return snapshot(self._slots, self._inference_meter, self._output_meter, self._latency,
                        (self.results, self._out), len(self.errors), self.running)


def _capture_loop(pipeline: Pipeline, slot: _SourceSlot) -> None:
    """A capture thread: open the source, read frames into its box until it ends or the pipeline stops."""
    source = slot.source
    try:
        if source.state == SourceState.IDLE:
            if pipeline.retry_open and isinstance(source, ReconnectingSource):
                source.open(retry=True)
            else:
                source.open()
        while not pipeline._stop.is_set():
            t0 = time.monotonic()
            frame = source.read()
            if frame is None:
                break
            slot.meter.tick(time.monotonic() - t0)
            slot.box.put(frame)
        if source.state == SourceState.FAILED and not pipeline._stop.is_set():
            pipeline._report("capture", source.source_id, RuntimeError(source.error or "source failed"), fatal=False)
    except Closed:
        pass
    except Exception as exc:
        if not pipeline._stop.is_set():
            pipeline._report("capture", source.source_id, exc, fatal=False)
    finally:
        try:
            source.close()
        except Exception as exc:
            pipeline._report("capture", source.source_id, exc, fatal=False)
        source.remove_listener(pipeline._forward_state)
        slot.box.close()  # end of this source's stream: inference drains what is left
