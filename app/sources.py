"""Where frames come from: cameras, video files, network streams and a synthetic camera.

Every source is a `VideoSource`: `open()`, then `read()` until it returns None, then `close()`.
`read()` stamps each frame with its index, media time and capture time. Sources report their
state (connecting, live, reconnecting, ended, failed) to listeners as `SourceEvent`s.

Live sources (camera, URL) reconnect on their own with exponential backoff when reads fail;
`read()` blocks through the outage and returns the first frame after it. Files end. A damaged
file is read up to the damage, then reported as `failed` with `truncated = True`.

Threading: `read()`, `open()` and `close()` belong to one thread (the capture thread);
`interrupt()` may be called from any thread and makes a blocked `read()` give up soon.
Credentials in URLs never reach a log line or an event: see `mask_url`.
"""
from __future__ import annotations

import enum
import logging
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

from engines.errors import UserError
from app.types import Frame

log = logging.getLogger("unisight.sources")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt", "http", "https")
FILE_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv")
SECRET_QUERY_KEYS = {"password", "passwd", "pass", "pwd", "token", "access_token", "key", "api_key",
                     "apikey", "secret", "auth", "signature", "sig"}


class SourceState(str, enum.Enum):
    IDLE = "idle"  # not opened yet (never reported)
    CONNECTING = "connecting"
    LIVE = "live"  # delivering frames (files too)
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a file or finite source reached its end
    FAILED = "failed"  # could not open, gave up reconnecting, or the file is damaged


@dataclass(slots=True)
class SourceEvent:
    """A state change of one source; `message` says why (credentials masked)."""

    source_id: str
    state: SourceState
    message: str
    time: float  # time.monotonic()
    frames: int  # frames read so far


@dataclass(slots=True)
class SourceInfo:
    """What is known about a source; fields are None until known (most need `open()`)."""

    name: str  # for display and logs: a path, a camera index or a masked URL
    kind: str  # "camera", "file", "stream", "synthetic"
    realtime: bool  # frames arrive on the source's own clock: drop the oldest when busy
    fps: float | None = None
    rate: Fraction | None = None  # the exact nominal frame rate when the container gives one
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None  # as the container header says (files)
    time_base: Fraction | None = None  # media time unit of the video stream (PyAV sources)
    duration: float | None = None  # seconds (files)
    loop: bool = False


StateListener = Callable[[SourceEvent], None]


class SourceError(UserError):
    """A source that cannot be opened: the message says which and why."""


def mask_url(url: str) -> str:
    """`url` with its password and secret query values replaced by `***`:
    `rtsp://user:pw@host/x` -> `rtsp://user:***@host/x`. Non-URLs come back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> list[str]:
    """The literal secret strings in `url`, to scrub them from error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_QUERY_KEYS and v]
    return found


class Backoff:
    """Delays between reconnection attempts: `initial` doubling up to `maximum` seconds, each
    shortened by a random fraction up to `jitter` so many cameras do not retry in step."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0, factor: float = 2.0, jitter: float = 0.25,
                 rng: random.Random | None = None):
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt (grows with each call until `reset`)."""
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0


class VideoSource(ABC):
    """A stream of `Frame`s with a state. Use as `with source: for frame in source: ...`."""

    def __init__(self, source_id: str, info: SourceInfo):
        self.source_id = source_id
        self.info = info
        self.frames_read = 0
        self.error: str | None = None  # why the source failed, when it did
        self.truncated = False  # a file that ended early because of damage
        self._state = SourceState.IDLE
        self._listeners: list[StateListener] = []
        self._interrupted = threading.Event()

    @property
    def state(self) -> SourceState:
        return self._state

    def add_listener(self, listener: StateListener) -> None:
        """Call `listener(event)` on each state change, from the thread that reads."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def interrupt(self) -> None:
        """Make a blocked `read()` (backoff, pacing) return None soon. Any thread."""
        self._interrupted.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    @abstractmethod
    def open(self) -> None:
        """Connect or open; raises `SourceError` (a `UserError`) when that is impossible."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None when the source ended, failed or was interrupted."""

    @abstractmethod
    def close(self) -> None:
        """Release the device, file or connection. Idempotent."""

    def _set_state(self, state: SourceState, message: str = "") -> None:
        if state == self._state:
            return
        self._state = state
        event = SourceEvent(self.source_id, state, self._scrub(message), time.monotonic(), self.frames_read)
        if state in (SourceState.RECONNECTING, SourceState.FAILED):
            level = logging.WARNING
        else:  # an operator cares when a camera comes and goes, not when a file opens
            level = logging.INFO if self.info.kind in ("camera", "stream") else logging.DEBUG
        log.log(level, "source %s (%s): %s%s", self.source_id, self.info.name, state.value,
                f": {event.message}" if event.message else "")
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the video; it is logged, not hidden
                log.exception("state listener of source %s failed", self.source_id)

    def _scrub(self, text: str) -> str:
        return text

    def _frame(self, image: np.ndarray, media_time: float | None) -> Frame:
        frame = Frame(image=image, index=self.frames_read, media_time=media_time,
                      capture_time=time.monotonic(), source_id=self.source_id)
        self.frames_read += 1
        return frame

    def __enter__(self) -> "VideoSource":
        if self._state == SourceState.IDLE:
            self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame


class _Pacer:
    """Sleeps so that frames leave at their media time (a file played like a camera)."""

    def __init__(self, interrupted: threading.Event):
        self._interrupted = interrupted
        self._origin: tuple[float, float] | None = None  # (wall, media)

    def wait(self, media_time: float | None) -> None:
        if media_time is None:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = (now, media_time)
            return
        due = self._origin[0] + (media_time - self._origin[1])
        if due - now > 1.0 or due - now < -1.0:  # a jump in the media clock: start again from here
            self._origin = (now, media_time)
            return
        if due > now:
            self._interrupted.wait(due - now)


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


class ReconnectingSource(VideoSource):
    """A live source that reconnects with `Backoff` when a read fails.

    Subclasses implement `_connect()` (raise on failure), `_grab() -> (image, media_time)`
    (raise on failure or end) and `_disconnect()`. `max_reconnects` None retries forever.
    """

    def __init__(self, source_id: str, info: SourceInfo, backoff: Backoff | None = None,
                 max_reconnects: int | None = None):
        super().__init__(source_id, info)
        self.backoff = backoff or Backoff()
        self.max_reconnects = max_reconnects
        self.reconnects = 0  # successful reconnections so far
        self._connected = False

    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _grab(self) -> tuple[np.ndarray, float | None]: ...

    @abstractmethod
    def _disconnect(self) -> None: ...

    def open(self, retry: bool = False) -> None:
        """Connect. A failure raises `SourceError`, or with `retry=True` is reported as
        `reconnecting` and retried by `read()` (a camera that is still booting)."""
        self._set_state(SourceState.CONNECTING)
        try:
            self._connect()
        except Exception as exc:
            if self.info.kind == "stream":
                message = self._scrub(f"cannot open stream {self.info.name}: {_av_message(exc)} "
                                      "(is the stream running and the URL right?)")
            else:
                message = self._scrub(f"cannot open {self.info.name}: {_av_message(exc)}")
            if retry:
                self._set_state(SourceState.RECONNECTING, message)
                return
            self.error = message
            self._set_state(SourceState.FAILED, message)
            raise SourceError(message) from exc
        self._connected = True
        self._set_state(SourceState.LIVE)

    def read(self) -> Frame | None:
        attempts = 0
        while not self._interrupted.is_set():
            if self._connected:
                try:
                    image, media_time = self._grab()
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {_av_message(exc)}" if not isinstance(exc, EOFError) else str(exc)
                    self._drop_connection()
                    if self._state == SourceState.RECONNECTING:
                        log.info("source %s: reconnection attempt %d connected, then: %s", self.source_id, attempts,
                                 self._scrub(reason))
                    self._set_state(SourceState.RECONNECTING, reason)
                    continue
                if self._state != SourceState.LIVE:
                    self.reconnects += 1
                    self._set_state(SourceState.LIVE, f"reconnected after {attempts} attempt(s)")
                self.backoff.reset()
                return self._frame(image, media_time)
            if self.max_reconnects is not None and attempts >= self.max_reconnects:
                self.error = f"gave up after {attempts} reconnection attempts"
                self._set_state(SourceState.FAILED, self.error)
                return None
            if self._state != SourceState.RECONNECTING:
                self._set_state(SourceState.RECONNECTING, "not connected")
            if self._interrupted.wait(self.backoff.next()):
                break
            attempts += 1
            try:
                self._connect()
                self._connected = True
            except Exception as exc:
                log.info("source %s: reconnection attempt %d failed: %s", self.source_id, attempts,
                         self._scrub(_av_message(exc)))
        return None

    def _drop_connection(self) -> None:
        self._connected = False
        try:
            self._disconnect()
        except Exception:
            log.exception("source %s: error while disconnecting", self.source_id)

    def close(self) -> None:
        if self._connected:
            self._drop_connection()


class CameraSource(ReconnectingSource):
    """A local camera by index through OpenCV. Media time = seconds since first opened."""

    def __init__(self, index: int, *, width: int | None = None, height: int | None = None, fps: float | None = None,
                 source_id: str | None = None, backoff: Backoff | None = None, max_reconnects: int | None = None):
        super().__init__(source_id or str(index), SourceInfo(name=f"camera {index}", kind="camera", realtime=True),
                         backoff, max_reconnects)
        self.index = index
        self._want = (width, height, fps)
        self._cap: cv2.VideoCapture | None = None
        self._t0: float | None = None

    def _connect(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"camera {self.index} did not open (is it connected and free?)")
        width, height, fps = self._want
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        self.info.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.info.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.info.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        self._cap = cap

    def _grab(self) -> tuple[np.ndarray, float | None]:
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        if not ok or image is None:
            raise OSError(f"camera {self.index} returned no frame")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return image, now - self._t0

    def _disconnect(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class StreamSource(ReconnectingSource):
    """An RTSP/RTMP/HTTP/UDP stream through PyAV, tuned for low latency.

    open_timeout / read_timeout (seconds) bound how long a dead peer can block a read.
    Media time stays increasing across reconnections (a restarted stream starts at 0 again).
    """

    def __init__(self, url: str, *, options: dict | None = None, open_timeout: float = 10.0,
                 read_timeout: float = 5.0, source_id: str | None = None, backoff: Backoff | None = None,
                 max_reconnects: int | None = None):
        self.url = url
        masked = mask_url(url)
        super().__init__(source_id or masked, SourceInfo(name=masked, kind="stream", realtime=True),
                         backoff, max_reconnects)
        self._secrets = _secrets_of(url)
        self.options = {**low_latency_options(url, read_timeout), **(options or {})}
        self.timeouts = (open_timeout, read_timeout)
        self._container = None
        self._frames: Iterator | None = None
        self._time_offset = 0.0
        self._last_time: float | None = None
        self._pass_first: float | None = None

    def _scrub(self, text: str) -> str:
        text = text.replace(self.url, self.info.name)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _connect(self) -> None:
        import av

        container = av.open(self.url, options=self.options, timeout=self.timeouts)
        if not container.streams.video:
            container.close()
            raise OSError("the stream has no video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.info.fps = float(rate) if rate else self.info.fps
        self.info.width, self.info.height = stream.codec_context.width or None, stream.codec_context.height or None
        self.info.time_base = stream.time_base
        self._container, self._frames = container, container.decode(stream)
        # the new connection's clock restarts: continue from where the last one stopped
        if self._last_time is not None:
            step = 1.0 / self.info.fps if self.info.fps else 0.0
            self._time_offset = self._last_time + step
        self._pass_first = None

    def _grab(self) -> tuple[np.ndarray, float | None]:
        try:
            av_frame = next(self._frames)
        except StopIteration:
            raise EOFError("stream ended") from None
        t = av_frame.time
        media = None
        if t is not None:
            if self._pass_first is None:
                self._pass_first = t
            media = self._time_offset + (t - self._pass_first)
            self._last_time = media
        return av_frame.to_ndarray(format="bgr24"), media

    def _disconnect(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container, self._frames = None, None


def check_stream(spec: str) -> None:
    """Connect to `spec` once when it is a stream URL, and disconnect: a dead stream is then a
    one-line `SourceError` at once (URL kept, credentials masked) instead of a live view
    retrying in the background. Anything else is left alone."""
    text = str(spec).strip()
    if "://" not in text or urlsplit(text).scheme.lower() not in STREAM_SCHEMES:
        return
    source = open_source(text)
    if not isinstance(source, StreamSource):
        return
    try:
        source.open()
    finally:
        source.close()


def low_latency_options(url: str, read_timeout: float = 5.0) -> dict[str, str]:
    """FFmpeg options for a live URL: no input buffering, TCP for RTSP, a socket timeout."""
    scheme = urlsplit(url).scheme.lower()
    micros = str(int(read_timeout * 1_000_000))
    opts = {"fflags": "nobuffer", "flags": "low_delay"}
    if scheme in ("rtsp", "rtsps"):
        opts.update({"rtsp_transport": "tcp", "timeout": micros})
    elif scheme in ("http", "https", "tcp", "rtmp", "rtmps"):
        opts["rw_timeout"] = micros
    return opts


class SyntheticSource(VideoSource):
    """A generated camera: a textured background with faces moving across it.

    faces: BGR face images to paste (a real detector finds them); None draws simple cartoon
    faces (enough for boxes in the GUI, not for a detector). frames: stop after this many
    (None = endless). realtime: deliver at `fps`, like a camera.
    """

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, frames: int | None = None,
                 faces: Sequence[np.ndarray] | None = None, count: int = 2, realtime: bool = True,
                 seed: int = 0, source_id: str = "synthetic"):
        if width < 32 or height < 32 or fps <= 0:
            raise UserError(f"synthetic source needs size >= 32x32 and fps > 0, got {width}x{height} @ {fps}")
        info = SourceInfo(name="synthetic", kind="synthetic", realtime=realtime, fps=fps, width=width,
                          height=height, frame_count=frames, time_base=None)
        super().__init__(source_id, info)
        rng = np.random.default_rng(seed)
        self._limit = frames
        side = max(16, min(width, height) // 3)
        self._sprites = [cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in faces] if faces else \
            [_cartoon_face(side, rng) for _ in range(max(1, count))]
        n = len(self._sprites) if faces else max(1, count)
        self._pos = rng.uniform([0, 0], [width - side, height - side], size=(n, 2))
        self._vel = rng.uniform(-1, 1, size=(n, 2)) * (min(width, height) / fps / 3)
        self._side = side
        self._last_pos = np.floor(self._pos).astype(int)
        yy, xx = np.mgrid[0:height, 0:width]
        bg = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                       np.full_like(xx, 96)], axis=-1).astype(np.uint8)
        self._background = cv2.addWeighted(bg, 0.6, rng.integers(0, 255, bg.shape, dtype=np.uint8), 0.4, 0)
        self._pacer = _Pacer(self._interrupted)
        self._open = False

    def open(self) -> None:
        self._set_state(SourceState.CONNECTING)
        self._open = True
        self._set_state(SourceState.LIVE)

    @property
    def face_boxes(self) -> np.ndarray:
        """Where the faces of the last frame were drawn: (n, 4) x1 y1 x2 y2."""
        return np.concatenate([self._last_pos, self._last_pos + self._side], axis=1).astype(np.float32)

    def read(self) -> Frame | None:
        if not self._open or self._interrupted.is_set():
            return None
        if self._limit is not None and self.frames_read >= self._limit:
            self._set_state(SourceState.ENDED, f"{self.frames_read} frames")
            return None
        media = self.frames_read / self.info.fps
        if self.info.realtime:
            self._pacer.wait(media)
        image = self._background.copy()
        h, w = image.shape[:2]
        self._last_pos = np.floor(self._pos).astype(int)
        for sprite, (x, y) in zip(self._sprites, self._last_pos):
            image[y:y + self._side, x:x + self._side] = sprite
        self._pos += self._vel
        for axis, limit in ((0, w - self._side), (1, h - self._side)):
            out = (self._pos[:, axis] < 0) | (self._pos[:, axis] > limit)
            self._vel[out, axis] *= -1
            self._pos[:, axis] = np.clip(self._pos[:, axis], 0, limit)
        return self._frame(image, media)

    def close(self) -> None:
        self._open = False


def _cartoon_face(side: int, rng: np.random.Generator) -> np.ndarray:
    """A skin-toned oval with eyes, nose and mouth on a plain square."""
    img = np.full((side, side, 3), rng.integers(40, 90), np.uint8)
    c = side // 2
    skin = tuple(int(v) for v in rng.integers([90, 130, 170], [140, 180, 230]))
    cv2.ellipse(img, (c, c), (int(side * 0.36), int(side * 0.46)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    eye_y, dx = int(side * 0.40), int(side * 0.15)
    for x in (c - dx, c + dx):
        cv2.circle(img, (x, eye_y), max(2, side // 18), (40, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, (c, int(side * 0.45)), (c, int(side * 0.60)), (60, 80, 120), max(1, side // 40), cv2.LINE_AA)
    cv2.ellipse(img, (c, int(side * 0.70)), (int(side * 0.13), int(side * 0.05)), 0, 0, 180, (50, 50, 150),
                max(1, side // 30), cv2.LINE_AA)
    return img


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


def _av_message(exc: BaseException) -> str:
    """A short message for an FFmpeg/OS error (PyAV messages repeat the errno)."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(msg).strip()


def _parse_synthetic(spec: str) -> VideoSource:
    """`synthetic:` options, comma-separated: size=WxH, fps=N, frames=N, count=N, face=PATH,
    realtime=0|1, seed=N, pattern=faces|testsrc."""
    body = spec.split(":", 1)[1]
    opts: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        if "=" not in item:
            if item in ("testsrc", "faces"):
                opts["pattern"] = item
                continue
            raise UserError(f"bad synthetic option {item!r}: use key=value, e.g. synthetic:size=640x480,fps=30")
        key, value = item.split("=", 1)
        opts[key.strip()] = value.strip()
    try:
        width, height = (int(v) for v in opts.pop("size", "640x480").lower().split("x"))
        fps = float(opts.pop("fps", "30"))
        frames = int(opts["frames"]) if "frames" in opts else None
        opts.pop("frames", None)
        count = int(opts.pop("count", "2"))
        realtime = opts.pop("realtime", "1") not in ("0", "false", "no")
        seed = int(opts.pop("seed", "0"))
    except ValueError as exc:
        raise UserError(f"bad synthetic source {spec!r}: {exc} (e.g. synthetic:size=640x480,fps=30,frames=100)") from exc
    pattern = opts.pop("pattern", "faces")
    face_path = opts.pop("face", None)
    if opts:
        raise UserError(f"unknown synthetic option(s) {', '.join(sorted(opts))}: "
                        "known are size, fps, frames, count, face, realtime, seed, pattern")
    if pattern == "testsrc":
        graph = f"testsrc=size={width}x{height}:rate={fps:g}"
        if frames is not None:
            graph += f":duration={frames / fps:.6f}"
        return FileSource(graph, format="lavfi", realtime=realtime, source_id="synthetic")
    if pattern != "faces":
        raise UserError(f"unknown synthetic pattern {pattern!r}: use faces or testsrc")
    faces = None
    if face_path:
        from app.imageio import load_image

        faces = [load_image(face_path)]
    return SyntheticSource(width=width, height=height, fps=fps, frames=frames, faces=faces, count=count,
                           realtime=realtime, seed=seed)


def open_source(spec: str | int, loop: bool = False, *, realtime: bool | None = None,
                source_id: str | None = None) -> VideoSource:
    """A source for `spec`, not yet opened.

    "0" or 0 -> camera 0; "rtsp://..." and other URLs -> a reconnecting stream (an http(s)
    URL of a video file is read as a file); "synthetic:..." -> a generated camera (see
    `_parse_synthetic`); anything else -> a video file (`loop` repeats it; `realtime` paces
    it at its own speed). Raises `UserError` for a missing file.
    """
    if isinstance(spec, int):
        return CameraSource(spec, source_id=source_id)
    text = str(spec).strip()
    if not text:
        raise UserError("empty video source: give a camera index, a file path or a URL")
    if text.isdigit():
        return CameraSource(int(text), source_id=source_id)
    if text.lower().startswith("synthetic:"):
        source = _parse_synthetic(text)
        if source_id:
            source.source_id = source_id
        return source
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "file":
        text = urlsplit(text).path
        scheme = ""
    if scheme in STREAM_SCHEMES:
        path = urlsplit(text).path.lower()
        if scheme in ("http", "https") and path.endswith(FILE_SUFFIXES):
            return FileSource(text, loop=loop, realtime=bool(realtime), source_id=source_id or mask_url(text))
        return StreamSource(text, source_id=source_id)
    if scheme:
        raise UserError(f"unsupported URL scheme {scheme!r} in {mask_url(text)}: use one of {', '.join(STREAM_SCHEMES)}")
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(f"video not found: {path} (give a file path, a camera index such as 0, or a URL)")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a video file")
    return FileSource(path, loop=loop, realtime=bool(realtime), source_id=source_id)
