"""Writing annotated video: H.264 (libx264, yuv420p) through PyAV, audio copied as is.

Timing is kept exactly: frames are written with the input's own timestamps (pts) in the
input's time base, and each packet's duration is the gap to the next frame (the last one's
is given by the caller), so frame count, frame rate and VFR timing match the input.
B-frames are off (`bf=0`): decode order is then presentation order, which keeps those
durations exact, and encoding is cheaper.

Files are written under a hidden temporary name in the target folder and renamed on
`close()`; on any failure the temporary file is removed, so a file at the target path is
always complete. Devices and pipes (`/dev/null`, a FIFO) are written directly.
"""
from __future__ import annotations

import logging
import os
import secrets
import stat
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from engines.errors import UserError
from app.storage import create_private

log = logging.getLogger("unisight.video_writer")

CONTAINER_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_PRESET = "ultrafast"  # CRF keeps the quality; faster presets only cost file size (about 2.4x veryfast)
DEFAULT_CRF = 23


class VideoWriter:
    """Encode BGR frames into `path`.

    fps: the nominal frame rate (stored in the stream header).
    time_base: the unit of the `pts` given to `write` (default 1/fps, pts = frame number).
    audio_from: a media file whose first audio stream is copied (remuxed, not re-encoded),
        interleaved with the video by time. Missing or unsupported audio is skipped with a
        log line; `audio_copied` says whether it was kept.
    threads: x264 threads (0 = FFmpeg's choice).
    """

    def __init__(self, path: str | Path, *, width: int, height: int, fps: Fraction | float,
                 time_base: Fraction | None = None, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 threads: int = 0, audio_from: str | Path | None = None):
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        self._direct = _is_special_file(self.path)
        if not self._direct and suffix not in CONTAINER_SUFFIXES:
            raise UserError(f"cannot write video {self.path}: use a name ending in "
                            f"{', '.join(CONTAINER_SUFFIXES)}")
        parent = self.path.parent
        if not self._direct and not parent.is_dir():
            raise UserError(f"output folder {parent} does not exist: create it or choose another --out")
        fps = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.time_base = time_base or (1 / fps)
        self.width, self.height = width + width % 2, height + height % 2  # 4:2:0 needs even sides
        self.frames = 0
        self.audio_copied = False
        self.audio_packets = 0
        self._tmp = self.path if self._direct else parent / f".{self.path.stem}.partial-{secrets.token_hex(4)}{suffix}"
        self._closed = False
        self._pending = None  # last encoded packet, muxed once the next one gives its duration
        self._last_pts: int | None = None
        self._prev_gap: int | None = None
        self._audio_in = self._audio_stream_in = self._audio_out = self._audio_iter = None
        self._audio_next = None
        fmt = CONTAINER_SUFFIXES.get(suffix, "mp4")
        try:
            if not self._direct:
                create_private(self._tmp)  # faces: user-only, like the gallery (FFmpeg keeps the mode)
            self._container = av.open(str(self._tmp), "w", format=fmt)
            stream = self._container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.time_base = self.time_base
            stream.codec_context.time_base = self.time_base
            stream.codec_context.thread_count = threads
            stream.options = {"preset": preset, "crf": str(crf), "bf": "0"}
            self._video = stream
            if audio_from is not None:
                self._open_audio(Path(audio_from))
        except Exception as exc:
            self._cleanup()
            _reraise(exc, self.path)

    def _open_audio(self, source: Path) -> None:
        import av

        try:
            audio_in = av.open(str(source))
        except (av.error.FFmpegError, OSError) as exc:
            log.warning("no audio copied: cannot open %s: %s", source, exc)
            return
        if not audio_in.streams.audio:
            audio_in.close()
            return
        stream_in = audio_in.streams.audio[0]
        codec = stream_in.codec_context.name
        if codec not in self._container.supported_codecs:
            log.warning("audio not copied: %s audio cannot go into %s", codec, self.path.suffix)
            audio_in.close()
            return
        self._audio_out = self._container.add_stream_from_template(stream_in)
        self._audio_in, self._audio_stream_in = audio_in, stream_in
        self._audio_iter = audio_in.demux(stream_in)
        self.audio_copied = True

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Encode one BGR uint8 frame at `pts` (in `time_base`; default: the frame number)."""
        import av

        if self._closed:
            raise RuntimeError("writer is closed")
        if pts is None:
            pts = self.frames if self.time_base == 1 / self.fps else round(self.frames / self.fps / self.time_base)
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            image = _fit(image, self.width, self.height)
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:  # damaged timestamps: keep them rising
            log.debug("pts %d after %d: moved to %d", pts, self._last_pts, self._last_pts + 1)
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = pts
        frame.time_base = self.time_base
        try:
            for packet in self._video.encode(frame):
                self._mux_video(packet)
            self._pump_audio(float(pts * self.time_base))
        except Exception as exc:
            self.abort()
            _reraise(exc, self.path)
        self.frames += 1

    def _mux_video(self, packet) -> None:
        if self._pending is not None:
            gap = packet.pts - self._pending.pts
            if gap > 0:
                self._pending.duration = gap
                self._prev_gap = gap
            self._container.mux(self._pending)
        self._pending = packet

    def _pump_audio(self, until: float | None) -> None:
        """Mux audio packets up to media time `until` (None = all that is left)."""
        import av

        if self._audio_iter is None:
            return
        tb = self._audio_stream_in.time_base
        try:
            while True:
                if self._audio_next is None:
                    self._audio_next = next(self._audio_iter)
                packet = self._audio_next
                if packet.dts is None:  # demuxer flush packet
                    self._audio_next = None
                    continue
                if until is not None and packet.pts is not None and float(packet.pts * tb) > until:
                    return
                packet.stream = self._audio_out
                self._container.mux(packet)
                self.audio_packets += 1
                self._audio_next = None
        except StopIteration:
            self._close_audio_input()
        except (av.error.InvalidDataError, av.error.EOFError) as exc:
            log.warning("audio copy stopped at damaged input: %s", exc)
            self._close_audio_input()

    def _close_audio_input(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
        self._audio_in = self._audio_iter = self._audio_next = None

    def close(self, last_duration: int | None = None) -> Path:
        """Flush, finish the file and move it to `path`. `last_duration` is the display time
        of the last frame in `time_base` units (default: the gap before it). Returns `path`."""
        if self._closed:
            return self.path
        try:
            for packet in self._video.encode(None):
                self._mux_video(packet)
            if self._pending is not None:
                dur = last_duration if last_duration and last_duration > 0 else self._prev_gap
                if dur is None:
                    dur = max(1, round(1 / self.fps / self.time_base))
                self._pending.duration = int(dur)
                self._container.mux(self._pending)
                self._pending = None
            self._pump_audio(None)
            self._container.close()
            self._closed = True
            if not self._direct:
                os.replace(self._tmp, self.path)
        except Exception as exc:
            self.abort()
            _reraise(exc, self.path)
        return self.path

    def abort(self) -> None:
        """Give up: close everything and remove the partial file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        self._close_audio_input()
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # the container is being thrown away; its error was already raised
                pass
        if not self._direct:
            try:
                self._tmp.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove partial file %s: %s", self._tmp, exc)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad (odd sides) or resize `image` to the stream's size."""
    h, w = image.shape[:2]
    if w <= width and h <= height and width - w <= 1 and height - h <= 1:
        return cv2.copyMakeBorder(image, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _is_special_file(path: Path) -> bool:
    """A device, pipe or socket: written in place, never renamed over."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _reraise(exc: BaseException, path: Path) -> None:
    """Raise `exc` as a `UserError` when it is a known write failure, else unchanged."""
    err = as_user_error(exc, path)
    if err is exc:
        raise exc
    raise err from exc


def as_user_error(exc: BaseException, path: Path) -> BaseException:
    """A one-line `UserError` for an OS-level write failure; other errors pass through."""
    from app.storage import classify_os_error

    return classify_os_error(exc, path)
