"""A live session's sources: their entries (spec, kind, state, position), the session's events,
display names, and the player controls that act on them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from engines.errors import UserError
from app.sources.playback import PlayableFile
from app.sources import STREAM_SCHEMES, SourceState, VideoSource, mask_url, open_source


MAX_SOURCES = 4


@dataclass(slots=True)


class SourceEntry:
    """One source as the operator sees it; `source` is replaced each time the pipeline is rebuilt."""

    source_id: str
    spec: str  # what was asked for: a path, a camera index, a URL, "synthetic:..."
    kind: str  # "file", "camera", "stream", "synthetic"
    loop: bool = False
    source: VideoSource | None = None
    state: SourceState = SourceState.IDLE
    message: str = ""
    frozen: bool = False  # a paused live source: frames still flow, the view holds its picture
    next_index: int = 0
    position: float = 0.0  # files: seconds into the file
    paused: bool = False  # files: paused when the pipeline was rebuilt

    @property
    def seekable(self) -> bool:
        return isinstance(self.source, PlayableFile)

    @property
    def fps(self) -> float | None:
        return self.source.info.fps if self.source is not None else None

    @property
    def duration(self) -> float | None:
        return self.source.info.duration if self.source is not None else None

    @property
    def is_paused(self) -> bool:
        if isinstance(self.source, PlayableFile):
            return self.source.paused
        return self.frozen

    @property
    def current_position(self) -> float:
        return self.source.position if isinstance(self.source, PlayableFile) else self.position


@dataclass(slots=True)


class SessionEvent:
    """Something the window should show: a source's state, an error, or a note."""

    kind: str  # "state", "error", "info"
    message: str
    source_id: str | None = None
    state: SourceState | None = None
    fatal: bool = False
    time: float = field(default_factory=time.monotonic)


def source_kind(spec: str) -> str:
    """"camera", "synthetic", "stream" or "file" for a source spec (see `open_source`)."""
    text = spec.strip()
    if text.isdigit():
        return "camera"
    if text.lower().startswith("synthetic:"):
        return "synthetic"
    if "://" in text:
        scheme = urlsplit(text).scheme.lower()
        if scheme == "file":
            return "file"
        if scheme in STREAM_SCHEMES:
            return "stream"
    return "file"


def display_name(spec: str) -> str:
    """A short name for a source: a file's name, "camera 0", a masked URL."""
    kind = source_kind(spec)
    if kind == "camera":
        return f"camera {int(spec)}"
    if kind == "file":
        return Path(urlsplit(spec).path if spec.startswith("file://") else spec).name or spec
    if kind == "synthetic":
        return "synthetic"
    return mask_url(spec)


class PlayerControls:
    """Player controls on a session's sources (files pause, step, seek and loop; live sources freeze their view), and opening a source for an entry. Mixed into LiveSession: uses its entry() and source_factories."""

    # -- player controls (files; live sources freeze their view) -----------------------------
    def pause(self, source_id: str) -> None:
        entry = self.entry(source_id)
        if entry is None:
            return
        if isinstance(entry.source, PlayableFile):
            entry.source.pause()
        else:
            entry.frozen = True

    def resume(self, source_id: str) -> None:
        entry = self.entry(source_id)
        if entry is None:
            return
        entry.frozen = False
        if isinstance(entry.source, PlayableFile):
            entry.source.resume()

    def step(self, source_id: str, frames: int = 1) -> None:
        entry = self.entry(source_id)
        if entry is not None and isinstance(entry.source, PlayableFile):
            entry.source.step(frames)

    def step_back(self, source_id: str) -> None:
        entry = self.entry(source_id)
        if entry is not None and isinstance(entry.source, PlayableFile):
            entry.source.step_back()

    def seek(self, source_id: str, seconds: float) -> None:
        entry = self.entry(source_id)
        if entry is not None and isinstance(entry.source, PlayableFile):
            entry.source.seek(seconds)

    def set_loop(self, source_id: str, loop: bool) -> None:
        entry = self.entry(source_id)
        if entry is None:
            return
        entry.loop = loop
        if isinstance(entry.source, PlayableFile):
            entry.source.loop = loop

    def _open_entry(self, entry: SourceEntry) -> VideoSource | None:
        """A fresh source for `entry` (kept as `entry.source`), or None after reporting why not."""
        try:
            entry.source = self._make_source(entry)
        except UserError as exc:
            entry.state, entry.message = SourceState.FAILED, str(exc)
            self._event(SessionEvent("error", str(exc), entry.source_id, SourceState.FAILED))
            return None
        return entry.source

    def _factory_for(self, spec: str) -> Callable[[str, str], VideoSource] | None:
        return next((f for prefix, f in self.source_factories.items() if spec.startswith(prefix)), None)

    def _make_source(self, entry: SourceEntry) -> VideoSource:
        custom = self._factory_for(entry.spec)
        if custom is not None:
            source = custom(entry.spec, entry.source_id)
            source.frames_read = entry.next_index
            return source
        if entry.kind == "file":
            return PlayableFile(entry.spec, loop=entry.loop, start_at=entry.position, source_id=entry.source_id,
                                first_index=entry.next_index, paused=entry.paused)
        source = open_source(entry.spec, source_id=entry.source_id)
        source.frames_read = entry.next_index
        return source
