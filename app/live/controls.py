"""What the window asks of a live session besides its sources: recording, enrolment, and the
decision values. Mixed into `LiveSession` (session.py), whose state they use."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from engines.errors import UserError
from app.gallery.store import Gallery
from app.gallery.recognition_defaults import default_threshold
from app.live.recorder import Recorder
from app.live.track_crops import TrackCrop
from app.live.entries import SessionEvent


class RecordingControls:
    """Recording a source's annotated frames. Mixed into LiveSession: uses its entries, lock, control thread and events."""

    # -- recording -------------------------------------------------------------------------
    def start_recording(self, source_id: str, path: str | Path) -> Recorder:
        """Record the annotated frames of a source to `path` (.mp4, .mkv, .mov)."""
        entry = self.entry(source_id)
        if entry is None:
            raise UserError(f"no source {source_id!r}")
        path = Path(path)
        if not path.parent.is_dir():
            raise UserError(f"folder {path.parent} does not exist: choose another file")
        recorder = Recorder(path, source_id, fps=entry.fps)
        with self._lock:
            old = self._recorders.pop(source_id, None)
            self._recorders[source_id] = recorder
        if old is not None:
            self._submit(lambda: self._finish_recording(old))
        return recorder

    def stop_recording(self, source_id: str) -> Recorder | None:
        """Stop feeding the recording of a source; the caller finishes it with `recorder.stop()`
        (it waits for the encoder: not on the GUI thread)."""
        with self._lock:
            return self._recorders.pop(source_id, None)

    def recording(self, source_id: str) -> bool:
        with self._lock:
            return source_id in self._recorders

    def _finish_recording(self, recorder: Recorder) -> None:
        try:
            path = recorder.stop()
            self._event(SessionEvent("info", f"recording saved: {path}", recorder.source_id))
        except Exception as exc:
            self._event(SessionEvent("error", f"recording {recorder.path} failed: {exc}", recorder.source_id))


class EnrolmentControls:
    """Enrolment from the session: crops of a live track, or photos, into the open gallery with the session's engine; names update at once. Call from a worker thread (the engine runs)."""

    def track_crops(self, source_id: str, track_id: int) -> list[TrackCrop]:
        return self.crops.crops(source_id, track_id)

    # -- enrolment (call from a worker thread: the engine runs) -------------------------------
    def enrol_crops(self, name: str, crops: Sequence[np.ndarray], sources: Sequence[str] | None = None,
                    confirm: bool = True):
        """Enrol `name` from face crops (`app.gallery.enrollment.enrol_crops`); names update at once."""
        from app.gallery.enrollment import enrol_crops

        result = enrol_crops(self._require_gallery(), self.engine, name, list(crops), sources, confirm=confirm)
        if result.ok:
            self.refresh_names()
        return result

    def enrol_images(self, name: str, paths: Sequence[str | Path], confirm: bool = True):
        """Enrol `name` from photo files, the largest face of each (`app.gallery.enrollment.enrol_images`)."""
        from app.gallery.enrollment import enrol_images

        result = enrol_images(self._require_gallery(), self.engine, name, list(paths), face="largest",
                              confirm=confirm)
        if result.ok:
            self.refresh_names()
        return result

    def _require_gallery(self) -> Gallery:
        if self.gallery is None:
            raise UserError("no gallery is open: choose a gallery folder in the settings")
        return self.gallery


class DecisionControls:
    """The decision values, acting at once: the recognition threshold (the engine's calibrated one unless chosen) and the minimum face height."""

    # -- decisions -------------------------------------------------------------------------
    def effective_threshold(self) -> float:
        """The threshold in use: the chosen one, else the engine's calibrated one."""
        return self.threshold if self.threshold is not None else default_threshold(self.engine.info.engine)

    def set_threshold(self, threshold: float | None) -> None:
        """Change the recognition threshold; names are decided again from the next frame."""
        self.threshold = threshold
        value = self.effective_threshold()
        rec = self.recognizer
        rec.threshold = value
        if self.gallery is not None:
            self.gallery.threshold = value
        rec.revote()

    def set_min_face(self, pixels: int) -> None:
        """Faces lower than this are neither tracked nor named (drawn as low quality)."""
        self.min_face = max(0, int(pixels))

    def refresh_names(self) -> None:
        """Decide names again from the next frame (after the gallery changed)."""
        self.recognizer.revote()
