"""What every video source shares: its states and events, its info, the `VideoSource` interface,
reconnection backoff, media-time pacing, and URLs with their credentials masked."""
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
from typing import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


def _av_message(exc: BaseException) -> str:
    """A short message for an FFmpeg/OS error (PyAV messages repeat the errno)."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(msg).strip()
