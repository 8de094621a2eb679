"""A video file the operator steers like a player: pause, step, seek, loop, hold at the end.

`PlayableFile` is a `FileSource` played at its own speed (realtime). Its media time is the
position in the file, 0 at the first frame (the stream's start time, 0.85 s in the sample
clip, is taken off; loops start again at 0), so an event's time is where to seek to see it
and the clock never reads past the duration.
At the end of a file that does not loop it holds the last frame (state `ended`) instead of
ending the capture thread, so a seek or "play" starts it again.

Threading: `pause`, `resume`, `step`, `seek` may be called from any thread; they only set
requests that `read()` (the capture thread) carries out, so PyAV is used by one thread only.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from app.sources.base import SourceState, _Pacer
from app.sources.files import FileSource
from app.types import Frame

log = logging.getLogger("unisight.playback")

_WAIT = 0.1  # seconds between checks of the interrupt flag while paused or held


class PlayableFile(FileSource):
    """A file source with player controls; see the module doc.

    loop: start again at the beginning at the end.
    start_at: seconds into the file to start from (a source re-created at its old position).
    first_index: the index of the first frame delivered (keeps indices rising when a
        source is re-created, so trackers see time going forward).
    """

    def __init__(self, path: str | Path, *, loop: bool = False, start_at: float = 0.0,
                 source_id: str | None = None, first_index: int = 0, paused: bool = False):
        super().__init__(path, loop=False, realtime=True, source_id=source_id)
        self.loop = loop
        self.frames_read = int(first_index)
        self._ctl = threading.Condition()
        self._paused = paused
        self._steps = 1 if paused else 0  # a paused start still shows its first frame
        self._seek_to: float | None = start_at if start_at > 0 else None
        self._skip_until: float | None = None
        self._held = False
        self.position: float = max(0.0, start_at)  # media time of the last frame delivered

    # -- controls (any thread) -----------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def held(self) -> bool:
        """At the end of the file, waiting for a seek or play."""
        return self._held

    def pause(self) -> None:
        with self._ctl:
            self._paused = True
            self._ctl.notify_all()

    def resume(self) -> None:
        """Play on; at the end of the file, play from the start."""
        with self._ctl:
            self._paused = False
            self._steps = 0
            if self._held:
                self._seek_to = 0.0
            self._ctl.notify_all()

    def step(self, frames: int = 1) -> None:
        """Pause (if playing) and deliver the next `frames` frames."""
        with self._ctl:
            self._paused = True
            self._steps += max(0, int(frames))
            self._ctl.notify_all()

    def step_back(self) -> None:
        """Pause and show the frame before the current one."""
        fps = self.info.fps or 30.0
        self.pause()
        self.seek(max(0.0, self.position - 1.0 / fps))

    def seek(self, seconds: float) -> None:
        """Go to `seconds` into the file; a paused file shows the frame there."""
        duration = self.info.duration
        t = max(0.0, float(seconds))
        if duration:  # the last frame starts one frame before the end: a seek past it shows it
            t = min(t, max(0.0, duration - 1.0 / (self.info.fps or 30.0)))
        with self._ctl:
            self._seek_to = t
            if self._paused:
                self._steps = max(self._steps, 1)
            self._ctl.notify_all()

    def interrupt(self) -> None:
        super().interrupt()
        with self._ctl:
            self._ctl.notify_all()

    # -- the capture thread --------------------------------------------------------------
    def _frame(self, image, media_time: float | None) -> Frame:
        if media_time is not None:
            media_time = max(0.0, media_time - self._first_time_of_pass())
        return super()._frame(image, media_time)

    def read(self) -> Frame | None:
        while not self._interrupted.is_set():
            with self._ctl:
                target = None
                while not self._interrupted.is_set():
                    if self._seek_to is not None:
                        target, self._seek_to = self._seek_to, None
                        break
                    if not self._paused or self._steps > 0:
                        break
                    self._ctl.wait(_WAIT)
                if self._interrupted.is_set():
                    return None
                stepping = target is None and self._paused and self._steps > 0
                if stepping:
                    self._steps -= 1
            if target is not None:
                if not self._seek(target):
                    return None
                continue
            if stepping:
                self._pacer = _Pacer(self._interrupted)  # a step shows its frame now
            frame = self._read_from_position()
            if frame is None:
                return None
            self.position = frame.media_time if frame.media_time is not None else self.position
            return frame
        return None

    def _read_from_position(self) -> Frame | None:
        """The next frame, skipping (unpaced) those before a seek target."""
        frame = super().read()
        if self._skip_until is None:
            return frame
        target, self._skip_until = self._skip_until, None
        half = 0.5 / (self.info.fps or 30.0)
        self.info.realtime = False
        try:
            while frame is not None and frame.media_time is not None and frame.media_time < target - half:
                frame = super().read()
        finally:
            self.info.realtime = True
            self._pacer = _Pacer(self._interrupted)
        return frame

    def _seek(self, seconds: float) -> bool:
        """Move the decoder to `seconds` (this thread); False when the file cannot be read."""
        if self._container is None:
            try:
                self._open_container()
            except Exception as exc:  # the file went away or broke: report, do not raise in the pipeline
                self._fail(f"cannot reopen for seeking: {exc}")
                return False
        tb = self.info.time_base
        stream = self._stream
        if tb is None or stream is None:
            return True
        start = stream.start_time or 0
        self._container.seek(start + int(seconds / tb), stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(stream)
        self._decoded_this_pass = 0
        self._skip_until = seconds
        self._pacer = _Pacer(self._interrupted)
        if self._held or self.state != SourceState.LIVE:
            self._held = False
            self._set_state(SourceState.LIVE, f"seek to {seconds:.2f} s")
        return True

    def _at_end(self) -> bool:
        """End of the file: loop, or hold the last frame until a seek (True = reading is over)."""
        expected = self.info.frame_count
        if expected and self._decoded_this_pass < expected and self._ends_early():
            return super()._at_end()  # a damaged file: FileSource reports it as failed
        if self.loop and self._decoded_this_pass > 0:
            return not self._seek(0.0)
        self._held = True
        self._set_state(SourceState.ENDED, f"{self.frames_read} frames")
        with self._ctl:
            while not self._interrupted.is_set() and self._seek_to is None:
                self._ctl.wait(_WAIT)
            if self._interrupted.is_set():
                return True
            target, self._seek_to = self._seek_to, None
        return not self._seek(target)
