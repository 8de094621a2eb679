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

The package: `base` (states, events, the interface, backoff, pacing, masked URLs), `files`,
`reconnecting` (cameras and streams), `synthetic`, `cameras` (finding cameras), `playback`
(seeking and stepping a file); `open_source` here picks one for a spec.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from app.sources.base import (FILE_SUFFIXES, STREAM_SCHEMES, Backoff, SourceError, SourceEvent, SourceInfo,
                              SourceState, VideoSource, mask_url)
from app.sources.files import FileSource
from app.sources.reconnecting import CameraSource, ReconnectingSource, StreamSource, low_latency_options
from app.sources.synthetic import SyntheticSource, _parse_synthetic
from engines.errors import UserError

__all__ = ["Backoff", "CameraSource", "FILE_SUFFIXES", "FileSource", "ReconnectingSource", "STREAM_SCHEMES",
           "SourceError", "SourceEvent", "SourceInfo", "SourceState", "StreamSource", "SyntheticSource",
           "VideoSource", "check_stream", "low_latency_options", "mask_url", "open_source"]


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
