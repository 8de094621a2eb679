"""Recording the annotated view of one source to a video file, from a thread of its own.

The pipeline's output thread only offers results (`offer` never waits: when the encoder
falls behind, frames are dropped and counted), so recording cannot slow the live view.
Frames are stamped in milliseconds from the first recorded frame (media time when the
source has one), so the file plays at the speed the scene happened.
"""
from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path

from app.live.mailbox import Channel, Closed
from app.render import FrameAnnotator
from app.types import FrameResult
from app.video_writer import VideoWriter

log = logging.getLogger("unisight.recorder")

_MS = Fraction(1, 1000)


class Recorder:
    """Draws boxes, landmarks and labels on each offered frame and encodes it to `path`."""

    def __init__(self, path: str | Path, source_id: str, fps: float | None = None, queue: int = 8,
                 annotator: FrameAnnotator | None = None):
        self.path = Path(path)
        self.source_id = source_id
        self.fps = fps or 30.0
        self.frames = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self._annotator = annotator or FrameAnnotator()
        self._box: Channel[FrameResult] = Channel(queue)
        self._writer: VideoWriter | None = None
        self._t0: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"unisight-record-{source_id}", daemon=True)
        self._thread.start()

    def offer(self, result: FrameResult) -> None:
        """Queue a frame for recording without waiting (dropped when the queue is full)."""
        try:
            if not self._box.put(result, timeout=0):
                self.dropped += 1
        except Closed:
            pass

    def _run(self) -> None:
        try:
            for result in self._box:
                image = self._annotator.annotate(result.frame.image.copy(), result.faces)
                t = result.frame.media_time if result.frame.media_time is not None else result.frame.capture_time
                if self._t0 is None:
                    self._t0 = t
                    self._writer = VideoWriter(self.path, width=image.shape[1], height=image.shape[0], fps=self.fps,
                                               time_base=_MS)
                self._writer.write(image, round((t - self._t0) * 1000))
                self.frames += 1
        except BaseException as exc:  # kept for `stop` to report; the live view goes on
            self.error = exc
            log.error("recording %s failed: %s", self.path, exc)
            self._box.close(discard=True)

    def stop(self, timeout: float = 10.0) -> Path | None:
        """Finish the file; returns its path (None when nothing was recorded). Raises the
        error that stopped the recording, if one did."""
        self._box.close()
        self._thread.join(timeout)
        writer, self._writer = self._writer, None
        if self.error is not None:
            if writer is not None:
                writer.abort()
            raise self.error
        if writer is None:
            return None
        return writer.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
