"""Shot-change (scene cut) detection: a face on one side of a cut is never the same track as a
face on the other side, however well the boxes overlap.

Two signals between consecutive frames of one source must both say "another picture":
- colour: the hue x saturation histogram distance (16 x 8 bins on a 160 x 90 thumbnail; half
  the L1 distance, 0 = same colours, 1 = none shared) at least `threshold`. On the sample
  clip the three cuts score 0.39, 0.50 and 0.54 and no other frame pair exceeds 0.16 (a
  camera move, a singer's arm across the frame);
- layout: the correlation of the two 32 x 18 grey thumbnails (mean removed, unit length)
  below `max_correlation`. The sample clip's cuts correlate 0.01, 0.14 and 0.27, its other
  frame pairs 0.69 or more; a flat picture that only changes colour (the test videos of
  tests/fakes.make_video, a light switched on) keeps its layout (0.8) and is no cut.
About 0.3 ms per 640 x 360 frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_THUMB = (160, 90)
_BINS = [16, 8]
_RANGES = [0, 180, 0, 256]


@dataclass(slots=True)
class ShotChangeConfig:
    """threshold: histogram distance (0-1) at which two consecutive frames are different shots."""

    threshold: float = 0.3
    max_correlation: float = 0.5  # ... and grey layouts correlating less than this

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"the shot-change threshold must be in (0, 1], got {self.threshold}")
        if not -1 <= self.max_correlation <= 1:
            raise ValueError(f"max_correlation must be in [-1, 1], got {self.max_correlation}")


def colour_signature(image: np.ndarray) -> np.ndarray:
    """The hue-saturation histogram of a BGR image, normalised to sum 1."""
    small = cv2.resize(image, _THUMB, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, _BINS, _RANGES).ravel()
    return hist / max(float(hist.sum()), 1.0)


def layout_signature(image: np.ndarray) -> np.ndarray:
    """The grey 32 x 18 thumbnail, mean removed, unit length (zeros for a flat picture)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two signatures: 0 (same colours) to 1 (nothing shared)."""
    return 0.5 * float(np.abs(a - b).sum())


class ShotChangeDetector:
    """Feed it one source's frames in order; `update` says whether a new shot starts."""

    def __init__(self, config: ShotChangeConfig | None = None):
        self.config = config or ShotChangeConfig()
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.last_distance = 0.0  # colour distance to the previous frame
        self.last_correlation = 1.0  # layout correlation with the previous frame

    def update(self, image: np.ndarray) -> bool:
        """True when `image` starts a new shot (never for the first frame)."""
        signature = (colour_signature(image), layout_signature(image))
        previous, self._previous = self._previous, signature
        if previous is None:
            self.last_distance, self.last_correlation = 0.0, 1.0
            return False
        self.last_distance = signature_distance(previous[0], signature[0])
        self.last_correlation = float(previous[1] @ signature[1])
        return self.last_distance >= self.config.threshold and self.last_correlation < self.config.max_correlation

    def reset(self) -> None:
        """Forget the previous frame (after a seek: the next frame starts a shot of its own)."""
        self._previous = None
