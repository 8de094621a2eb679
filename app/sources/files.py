"""Video files (and FFmpeg inputs such as lavfi) decoded by PyAV, frames in order; a damaged or
cut file is read up to the damage."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from app.types import Frame
from app.sources.base import (SourceError, SourceInfo, SourceState, VideoSource, _av_message, _Pacer, _secrets_of,
                              mask_url)


class FileSource(VideoSource):
    """A video file (or an FFmpeg input such as lavfi) decoded by PyAV, frames in order.

    loop: start again at the end; media time keeps increasing across loops.
    realtime: deliver frames at their media time (and let the pipeline drop when busy).
    autorotate: turn frames upright when the file says so (phone videos); `info.width` and
        `info.height` are then the upright size from the first frame on.
    """

    def __init__(self, path: str | Path, *, loop: bool = False, realtime: bool = False,
                 source_id: str | None = None, format: str | None = None, options: dict | None = None,
                 autorotate: bool = True):
        self.path = str(path)
        self.autorotate = autorotate
        self.rotation = 0  # counter-clockwise degrees applied to the frames
        self._format = format
        self._options = dict(options or {})
        kind = "synthetic" if format == "lavfi" else "file"
        name = mask_url(self.path)
        self._secrets = _secrets_of(self.path)
        super().__init__(source_id or name, SourceInfo(name=name, kind=kind, realtime=realtime, loop=loop))
        self._container = None
        self._stream = None
        self._frames: Iterator | None = None
        self._loop_offset = 0.0
        self._decoded_this_pass = 0
        self._pacer = _Pacer(self._interrupted)
        self.last_pts: int | None = None  # pts of the last frame read, in `info.time_base`
        self.last_duration: int | None = None  # its duration in `info.time_base` (0/None = unknown)
        self.start_pts: int | None = None  # the video stream's start and duration, `info.time_base`
        self.duration_pts: int | None = None
        self.expected_end: float | None = None  # media time the video should reach (header / tags)
        self._end_tolerance = 0.0  # seconds short of it that still count as whole
        self._last_time: float | None = None

    def _scrub(self, text: str) -> str:
        text = text.replace(self.path, self.info.name)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def open(self) -> None:
        self._set_state(SourceState.CONNECTING)
        if self._format is None and "://" not in self.path:
            p = Path(self.path)
            if not p.exists():
                self._fail(f"video not found: {self.path}")
                raise SourceError(f"video not found: {self.path} (check the path)")
            if p.is_dir():
                self._fail(f"{self.path} is a directory")
                raise SourceError(f"{self.path} is a directory, not a video file: give a file such as clip.mp4")
        try:
            self._open_container()
        except SourceError as exc:
            self._fail(str(exc))
            raise
        self._set_state(SourceState.LIVE)

    def _open_container(self) -> None:
        import av

        remote = self._format is None and "://" in self.path
        try:
            container = av.open(self.path, format=self._format, options=self._options or None,
                                timeout=(10.0, 5.0) if remote else None)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if remote:  # a URL: say so, keep it (masked), and speak of a stream, not a file
                raise SourceError(self._scrub(f"cannot open stream {self.info.name}: {_av_message(exc)}"
                                              " (is the stream running and the URL right?)")) from exc
            raise SourceError(self._scrub(f"cannot open video {self.info.name}: {_av_message(exc)}"
                                          " (is it a complete, readable video file?)")) from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.info.name} has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if cc is None:  # found by fuzzing: a stream whose codec FFmpeg does not know
            container.close()
            raise SourceError(f"{self.info.name}: its video stream uses an unknown codec, or the file is damaged")
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.info.fps = float(rate) if rate else None
        self.info.rate = Fraction(rate) if rate else None
        self.info.width, self.info.height = cc.width or None, cc.height or None
        self.info.frame_count = stream.frames or None
        self.start_pts, self.duration_pts = stream.start_time, stream.duration
        self.info.time_base = stream.time_base
        if stream.duration is not None and stream.time_base is not None:
            self.info.duration = float(stream.duration * stream.time_base)
        elif container.duration:
            self.info.duration = container.duration / 1_000_000
        self.expected_end, self._end_tolerance = _expected_end(container, stream, self.info.fps)
        self._container, self._stream = container, stream
        self._frames = container.decode(stream)
        self._decoded_this_pass = 0

    def read(self) -> Frame | None:
        import av

        while self._frames is not None and not self._interrupted.is_set():
            try:
                av_frame = next(self._frames)
            except StopIteration:
                if self._at_end():
                    return None
                continue
            except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as exc:
                self.truncated = True
                self._fail(f"read error after {self.frames_read} frames: {_av_message(exc)}")
                self._close_container()
                return None
            self._decoded_this_pass += 1
            pts = av_frame.pts if av_frame.pts is not None else av_frame.dts
            tb = self.info.time_base
            if pts is not None and tb is not None:
                media = float(pts * tb)
            elif self.info.fps:
                media = self._decoded_this_pass / self.info.fps
            else:
                media = None
            self.last_pts, self.last_duration = pts, av_frame.duration
            if media is not None:
                self._last_time = media
                media += self._loop_offset
            if self.info.realtime:
                self._pacer.wait(media)
            return self._frame(self._upright(av_frame), media)
        return None

    def _upright(self, av_frame) -> np.ndarray:
        """The frame as BGR, turned the way the file asks it to be shown (phone videos)."""
        image = av_frame.to_ndarray(format="bgr24")
        if not self.autorotate:
            return image
        turn = (av_frame.rotation or 0) % 360  # counter-clockwise degrees, from the display matrix
        if turn == 0:
            return image
        code = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}.get(turn)
        if code is None:  # not a quarter turn: leave it
            return image
        self.rotation = turn
        image = cv2.rotate(image, code)
        self.info.width, self.info.height = image.shape[1], image.shape[0]
        return image

    def _at_end(self) -> bool:
        """Handle the end of one pass; True when reading is over."""
        expected = self.info.frame_count
        if self._format is None and expected and self._decoded_this_pass < expected and self._ends_early():
            self.truncated = True
            self._fail(f"file ends early: {self._decoded_this_pass} of {expected} frames decoded")
            self._close_container()
            return True
        if self._format is None and not expected and self._ends_before_expected_end():
            self.truncated = True
            self._fail(f"file ends early: frames decoded up to {self._last_time:.2f} s of the "
                       f"{self.expected_end:.2f} s its header promises")
            self._close_container()
            return True
        if self.info.loop and self._decoded_this_pass > 0:
            first = self._first_time_of_pass()
            step = (float(self.last_duration * self.info.time_base) if self.last_duration and self.info.time_base
                    else (1.0 / self.info.fps if self.info.fps else 0.0))
            if self._last_time is not None:
                self._loop_offset += self._last_time + step - first
            self._close_container()
            try:
                self._open_container()
            except SourceError as exc:
                self._fail(str(exc))
                return True
            return False
        self._close_container()
        self._set_state(SourceState.ENDED, f"{self.frames_read} frames")
        return True

    def _ends_early(self) -> bool:
        """Did decoding stop well before the end the header promises? (Fewer frames alone can
        be an edit list dropping some; a cut file also stops short in time.)"""
        if self.start_pts is None or not self.duration_pts or self.last_pts is None:
            return True
        frame = self.last_duration or (1 / (self.info.rate or 30)) / self.info.time_base
        return self.last_pts + frame < self.start_pts + self.duration_pts - 1.5 * frame

    def _ends_before_expected_end(self) -> bool:
        """For containers that give no frame count (MKV, WebM, ...): did the decoded video
        stop short of the duration the header or the stream's tags promise?"""
        if self.expected_end is None or self._last_time is None:
            return False
        frame = (float(self.last_duration * self.info.time_base) if self.last_duration and self.info.time_base
                 else 1.0 / (self.info.fps or 30))
        return self._last_time + frame < self.expected_end - max(1.5 * frame, self._end_tolerance)

    def _first_time_of_pass(self) -> float:
        start = self._stream.start_time if self._stream is not None else None
        if start is not None and self.info.time_base is not None:
            return float(start * self.info.time_base)
        return 0.0

    def _fail(self, message: str) -> None:
        self.error = message
        self._set_state(SourceState.FAILED, message)

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container, self._stream, self._frames = None, None, None

    def close(self) -> None:
        self._close_container()


def _expected_end(container, stream, fps: float | None) -> tuple[float | None, float]:
    """The media time (s) the video stream should end at, and how far short still counts as
    whole: the stream's start + duration, else its DURATION tag (Matroska: the end time), else
    the container's start + duration (which covers every stream: with audio beside the video it
    gets 2 s of slack)."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
    if stream.duration and tb is not None:
        return start + float(stream.duration * tb), 0.0
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:  # FFmpeg's Matroska muxer writes the stream's end time here (its last pts + duration)
        try:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec), 0.0
        except ValueError:
            pass
    if container.duration:
        c_start = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        slack = 0.0 if len(container.streams) == 1 else 2.0
        return c_start + container.duration / 1_000_000, slack
    return None, 0.0
