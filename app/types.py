"""Data that crosses the pipeline's threads."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.faces import Faces


@dataclass(slots=True)
class Frame:
    """One decoded frame and where/when it came from."""

    image: np.ndarray  # BGR uint8 (h, w, 3)
    index: int  # frame number within its source, from 0
    media_time: float | None  # seconds in the media's own clock (None for cameras without one)
    capture_time: float  # time.monotonic() when the frame was captured/decoded
    source_id: str = "0"


@dataclass(slots=True)
class FrameResult:
    """A frame with its faces and how long each stage took (seconds)."""

    frame: Frame
    faces: Faces
    timings: dict[str, float] = field(default_factory=dict)
