"""The live session behind the window, without Qt: up to four sources sharing one engine,
recognition, crops for enrolment, recordings, and the newest result of each source.

    GUI thread ── add/remove/start/stop/reconfigure ──▶ control thread ── builds ──▶ Pipeline
        ▲                                                                   │ (capture, inference,
        └── take_latest() / drain_events() (polled by a timer) ◀── output ──┘  output threads)

The GUI thread never waits here: structural changes (a source added or removed, a new engine
or gallery) are queued to one control thread, which stops the running `Pipeline` (within 1 s)
and starts a new one over every source (a `Pipeline`'s sources are fixed). Files continue
from where they were; frame indices keep rising so trackers see time going forward. Player
controls (pause, step, seek) and decision values (threshold, minimum face size) act at once.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from engines.errors import UserError
from app.gallery.store import Gallery
from app.live.pipeline import Pipeline, PipelineError
from app.sources.playback import PlayableFile
from app.live.recognition import Appearance, Recognizer
from app.live.recorder import Recorder
from app.sources import SourceEvent, VideoSource, open_source
from app.live.stats import PipelineStats
from app.live.track_crops import TrackCrops
from app.types import Frame, FrameResult
from engines.engine import FaceEngine
from engines.wrappers.locked import LockedEngine
from engines.faces import Faces
from app.live.controls import DecisionControls, EnrolmentControls, RecordingControls
from app.live.entries import MAX_SOURCES, PlayerControls, SessionEvent, SourceEntry, display_name, source_kind

log = logging.getLogger("unisight.live")


class LiveSession(PlayerControls, RecordingControls, EnrolmentControls, DecisionControls):
    """See the module doc. `engine` is shared (wrapped in a `LockedEngine`); `gallery` may be
    None (everyone unknown, no enrolment). The session owns both and closes them."""

    def __init__(self, engine: FaceEngine, gallery: Gallery | None, *, threshold: float | None = None,
                 min_face: int = 0, crops: TrackCrops | None = None, stop_timeout: float = 1.0):
        self.engine = engine if isinstance(engine, LockedEngine) else LockedEngine(engine)
        self.gallery = gallery
        self.threshold = threshold
        self.min_face = int(min_face)
        self.crops = crops or TrackCrops()
        self.stop_timeout = stop_timeout
        self.recognizer = self._new_recognizer()
        # spec prefix -> factory(spec, source_id) for sources `open_source` does not know
        # (a plug-in capture device, a test's fake camera); called at every rebuild
        self.source_factories: dict[str, Callable[[str, str], VideoSource]] = {}
        self.playing = True
        self._entries: dict[str, SourceEntry] = {}
        self._pipeline: Pipeline | None = None
        self._archived: list[Appearance] = []
        self._latest: dict[str, FrameResult] = {}
        self._display_dropped: dict[str, int] = {}
        self._events: deque[SessionEvent] = deque(maxlen=500)
        self._recorders: dict[str, Recorder] = {}
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        self._control = threading.Thread(target=self._control_loop, name="unisight-live-control", daemon=True)
        self._control.start()

    # -- sources ---------------------------------------------------------------------------
    @property
    def entries(self) -> list[SourceEntry]:
        with self._lock:
            return list(self._entries.values())

    def entry(self, source_id: str) -> SourceEntry | None:
        with self._lock:
            return self._entries.get(source_id)

    def add_source(self, spec: str | int, loop: bool = False) -> str:
        """Add a source (camera index, file, URL, "synthetic:..."); returns its id. Raises
        `UserError` for a missing file, a bad spec or a fifth source. Starts it soon."""
        spec = str(spec).strip()
        if not spec:
            raise UserError("empty source: give a camera index, a file path or a URL")
        custom = self._factory_for(spec)
        kind = "custom" if custom is not None else source_kind(spec)
        if custom is not None:
            pass
        elif kind == "file":
            path = Path(urlsplit(spec).path if spec.startswith("file://") else spec).expanduser()
            if not path.is_file():
                raise UserError(f"video not found: {path} (give a file path, a camera index such as 0, or a URL)")
            spec = str(path)
        else:
            open_source(spec)  # checks the spec (synthetic options, URL scheme) without opening
        with self._lock:
            if len(self._entries) >= MAX_SOURCES:
                raise UserError(f"at most {MAX_SOURCES} sources at once: remove one first")
            sid = base = spec if custom is not None else display_name(spec)
            n = 2
            while sid in self._entries:
                sid, n = f"{base} ({n})", n + 1
            self._entries[sid] = SourceEntry(sid, spec, kind, loop=loop)
        self._submit(lambda: self._attach(sid))
        return sid

    def remove_source(self, source_id: str) -> None:
        """Stop and forget a source (its recording, if any, is finished)."""
        with self._lock:
            entry = self._entries.pop(source_id, None)
            self._latest.pop(source_id, None)
            recorder = self._recorders.pop(source_id, None)
        if entry is None:
            return
        if recorder is not None:
            self._submit(lambda: self._finish_recording(recorder))
        self._submit(lambda: self._detach(source_id))

    def start(self) -> None:
        """Play every source (after `stop`)."""
        self.playing = True
        self._submit(self._rebuild)

    def stop(self) -> None:
        """Stop every source (the views keep their last picture); `start` continues."""
        self.playing = False
        self._submit(self._stop_pipeline)

    # -- results ---------------------------------------------------------------------------
    def take_latest(self) -> dict[str, FrameResult]:
        """The newest result of each source since the last call (frozen sources left out)."""
        with self._lock:
            out, self._latest = self._latest, {}
            frozen = [sid for sid, e in self._entries.items() if e.frozen]
        for sid in frozen:
            out.pop(sid, None)
        return out

    def display_dropped(self) -> int:
        """Results replaced before the window took them, all sources together."""
        with self._lock:
            return sum(self._display_dropped.values())

    def drain_events(self) -> list[SessionEvent]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def stats(self) -> PipelineStats | None:
        pipeline = self._pipeline
        return pipeline.stats() if pipeline is not None else None

    def appearances(self) -> list[Appearance]:
        """Every appearance of this session: finished ones, then those still going on."""
        with self._lock:
            archived = list(self._archived)
        return archived + self.recognizer.events()

    # -- engine and gallery ----------------------------------------------------------------
    def reconfigure(self, engine: FaceEngine | None = None, gallery: Gallery | None = None,
                    replace_gallery: bool = False) -> None:
        """Swap the engine and/or the gallery (made ready by the caller, off the GUI thread);
        the old ones are closed. Appearances so far are kept."""
        self._submit(lambda: self._reconfigure(engine, gallery, replace_gallery or gallery is not None))

    def _reconfigure(self, engine, gallery, replace_gallery: bool) -> None:
        self._stop_pipeline()
        self._archive_appearances()
        if engine is not None and engine is not self.engine and engine is not self.engine.inner:
            old_engine, self.engine = self.engine, engine if isinstance(engine, LockedEngine) else LockedEngine(engine)
            old_engine.close()
        if replace_gallery:
            old_gallery, self.gallery = self.gallery, gallery
            if old_gallery is not None and old_gallery is not gallery:
                old_gallery.close()
        self.recognizer = self._new_recognizer()
        self.crops.clear()
        self._event(SessionEvent("info", f"engine {self.engine.info.engine}/{self.engine.info.backend} ready"))
        self._rebuild()

    def _new_recognizer(self) -> Recognizer:
        rec = Recognizer(self.gallery, self.effective_threshold(), engine=self.engine)
        if self.gallery is not None:
            self.gallery.threshold = self.effective_threshold()
        return rec

    def _archive_appearances(self) -> None:
        self.recognizer.finish()
        finished = self.recognizer.events()
        with self._lock:
            self._archived.extend(finished)

    # -- the control thread ----------------------------------------------------------------
    def _submit(self, job: Callable[[], None]) -> None:
        if self._closed:
            return
        with self._idle:
            self._pending += 1
        self._jobs.put(job)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued change was carried out (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _control_loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except Exception as exc:  # reported, never fatal to the session
                log.exception("live session change failed")
                self._event(SessionEvent("error", f"{type(exc).__name__}: {exc}"))
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _stop_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        if not pipeline.stop(self.stop_timeout):
            log.info("a pipeline stage is still finishing a call; it ends on its own")
        with self._lock:
            for entry in self._entries.values():
                src = entry.source
                if src is not None:
                    entry.next_index = max(entry.next_index, src.frames_read)
                    if isinstance(src, PlayableFile):
                        entry.position, entry.paused = src.position, src.paused

    def _rebuild(self) -> None:
        """Stop the pipeline and start a new one over every current source."""
        self._stop_pipeline()
        with self._lock:
            entries = list(self._entries.values())
        if not entries or not self.playing or self._closed:
            return
        sources = [s for s in (self._open_entry(entry) for entry in entries) if s is not None]
        if not sources:
            return
        self._pipeline = Pipeline(sources, self.engine, analyzers=[self._analyze], on_result=self._on_result,
                                  on_error=self._on_error, on_state=self._on_state, retry_open=True)
        self._pipeline.start()

    def _attach(self, source_id: str) -> None:
        """Start one added source in the running pipeline (the others run on), or start a pipeline."""
        with self._lock:
            entry = self._entries.get(source_id)
        if entry is None or not self.playing or self._closed:
            return
        pipeline = self._pipeline
        if pipeline is None:
            self._rebuild()
            return
        if any(s.source_id == source_id for s in pipeline.sources):
            return  # a rebuild since it was added already runs it
        source = self._open_entry(entry)
        if source is None:
            return
        try:
            pipeline.add_source(source)
        except RuntimeError:  # the pipeline ended (every source had ended): start afresh
            self._rebuild()

    def _detach(self, source_id: str) -> None:
        """Stop one removed source; the others run on."""
        pipeline = self._pipeline
        if pipeline is not None and pipeline.remove_source(source_id) and not pipeline.sources:
            self._stop_pipeline()

    # -- pipeline callbacks (pipeline threads) ---------------------------------------------
    def _analyze(self, frame: Frame, faces: Faces) -> Faces:
        rec = self.recognizer
        small = faces.heights < self.min_face if self.min_face > 0 and len(faces) else None
        if small is None or not small.any():
            out = rec(frame, faces)
        else:
            out = _merge_small(faces, small, rec(frame, faces[~small]))
        self.crops.observe(frame, out)
        return out

    def _on_result(self, result: FrameResult) -> None:
        sid = result.frame.source_id
        with self._lock:
            if sid not in self._entries:
                return
            if sid in self._latest:
                self._display_dropped[sid] = self._display_dropped.get(sid, 0) + 1
            self._latest[sid] = result
            recorder = self._recorders.get(sid)
        if recorder is not None:
            recorder.offer(result)

    def _on_state(self, event: SourceEvent) -> None:
        with self._lock:
            entry = self._entries.get(event.source_id)
            if entry is not None:
                entry.state, entry.message = event.state, event.message
        self._event(SessionEvent("state", event.message, event.source_id, event.state))

    def _on_error(self, error: PipelineError) -> None:
        self._event(SessionEvent("error", error.message, error.source_id, fatal=error.fatal))

    def _event(self, event: SessionEvent) -> None:
        with self._lock:
            self._events.append(event)

    # -- shutdown --------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> bool:
        """Stop every thread (pipeline, recordings, control), close engine and gallery.
        Returns True when every thread ended within `timeout`."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        self._submit(self._stop_pipeline)
        self._closed = True
        with self._lock:
            recorders = list(self._recorders.values())
            self._recorders.clear()
        self._jobs.put(None)
        self._control.join(max(0.0, deadline - time.monotonic()))
        for recorder in recorders:
            self._finish_recording(recorder)
        self.engine.close()
        if self.gallery is not None:
            self.gallery.close()
        return not self._control.is_alive()


def _merge_small(faces: Faces, small: np.ndarray, named: Faces) -> Faces:
    """`faces` with the results of recognising the faces that are not `small` put back in
    place; small faces get no track, no name and quality 0."""
    n = len(faces)
    big = np.flatnonzero(~small)
    track_ids = np.full(n, -1, np.int64)
    sims = np.full(n, np.nan, np.float32)
    names: list[str | None] = [None] * n
    quality = np.zeros(n, np.float32)
    doubtful = np.zeros(n, bool)
    if named.track_ids is not None:
        track_ids[big] = named.track_ids
    if named.similarities is not None:
        sims[big] = named.similarities
    if named.names is not None:
        for j, i in enumerate(big):
            names[i] = named.names[j]
    if "quality" in named.extra:
        quality[big] = named.extra["quality"]
    if "doubtful" in named.extra:
        doubtful[big] = named.extra["doubtful"]
    extra = dict(faces.extra)
    extra.update(quality=quality, small=small, doubtful=doubtful)
    if "agreement" in named.extra:  # small faces are never offered for enrolment
        agreement = np.full(n, np.nan, np.float32)
        agreement[big] = named.extra["agreement"]
        sure = np.zeros(n, bool)
        sure[big] = named.extra["sure"]
        extra.update(agreement=agreement, sure=sure, agreement_min=named.extra["agreement_min"])
    return replace(faces, track_ids=track_ids, names=names, similarities=sims, extra=extra)
