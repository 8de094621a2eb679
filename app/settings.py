"""The operator's settings: a dataclass, validated, kept as JSON under the user data folder.

No Qt here: the window, the `gui` and `screenshot` commands and tests share this module.
Unknown keys in the file are ignored and a damaged file falls back to the defaults (with a
log line), so a settings file can never stop the window from opening.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from app.paths import user_data_dir
from engines.backends.registry import ENGINES
from engines.model.config import MIN_INPUT_SIZE

log = logging.getLogger(__name__)

SETTINGS_NAME = "settings.json"
INPUT_SIZES = ((640, 480), (480, 352), (320, 256), (800, 608), (960, 736))


@dataclass(slots=True)
class Settings:
    """What the operator chose; `None` means "the engine's or the program's default"."""

    threshold: float | None = None  # cosine similarity to name a face (None: the engine's calibrated one)
    min_face: int = 24  # faces lower than this (pixels) are drawn grey and neither tracked nor named
    engine: str = "uniface"
    backend: str = "auto"
    input_size: tuple[int, int] | None = None  # network input (w, h); None: the configuration's
    gallery_dir: str | None = None  # None: the user's default gallery
    sources: list[str] = field(default_factory=list)  # the sources open when the window last closed
    show_landmarks: bool = True

    def __post_init__(self) -> None:
        if self.threshold is not None:
            self.threshold = float(self.threshold)
            if not -1.0 <= self.threshold <= 1.0:
                raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}")
        self.min_face = int(self.min_face)
        if not 0 <= self.min_face <= 2000:
            raise ValueError(f"min_face must be 0..2000 pixels, got {self.min_face}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError("backend must be a name such as auto or onnxruntime")
        if self.input_size is not None:
            w, h = (int(v) for v in self.input_size)
            min_w, min_h = MIN_INPUT_SIZE
            if w % 32 or h % 32 or w < min_w or h < min_h:
                raise ValueError(f"input size must be multiples of 32, at least {min_w}x{min_h}, got {w}x{h}")
            self.input_size = (w, h)
        if self.gallery_dir is not None:
            self.gallery_dir = str(self.gallery_dir)
        self.sources = [str(s) for s in self.sources][:4]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        """Settings from a dict; unknown keys are ignored, bad values raise `ValueError`."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if kw.get("input_size") is not None:
            kw["input_size"] = tuple(kw["input_size"])
        return cls(**kw)

    def engine_changed(self, other: "Settings") -> bool:
        """Whether going from `other` to this needs a new engine."""
        return (self.engine, self.backend, self.input_size) != (other.engine, other.backend, other.input_size)

    def copy(self, **changes) -> "Settings":
        return replace(self, **changes)


def settings_path() -> Path:
    """Where the settings live: `user_data_dir()/settings.json` (UNISIGHT_DATA moves it)."""
    return user_data_dir() / SETTINGS_NAME


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The saved settings, or the defaults when there are none or the file is damaged."""
    path = Path(path) if path is not None else settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("settings file %s cannot be read (%s): using the defaults", path, exc)
        return Settings()
    if not isinstance(data, dict):
        log.warning("settings file %s holds no settings object: using the defaults", path)
        return Settings()
    try:
        return Settings.from_dict(data)
    except (TypeError, ValueError) as exc:
        log.warning("settings file %s has a bad value (%s): using the defaults", path, exc)
        return Settings()


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings atomically (temporary file, then rename); returns the path."""
    path = Path(path) if path is not None else settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    try:
        tmp.write_text(json.dumps(settings.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def apply_engine_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with the engine options given on a command line (None = not given)."""
    changes = {}
    for key in ("engine", "backend", "input_size"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    return settings.copy(**changes) if changes else settings


__all__ = ["Settings", "load_settings", "save_settings", "settings_path", "apply_engine_args",
           "ENGINES", "INPUT_SIZES"]
