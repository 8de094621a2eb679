"""Live sources that reconnect with backoff when reads fail: cameras (OpenCV) and network
streams (PyAV, low-latency options)."""
from __future__ import annotations

import logging
import time
from abc import abstractmethod
from typing import Iterator
from urllib.parse import urlsplit

import cv2
import numpy as np

from app.types import Frame
from app.sources.base import Backoff, SourceError, SourceInfo, SourceState, VideoSource, _av_message, _secrets_of, mask_url

log = logging.getLogger("unisight.sources")


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
