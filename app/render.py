"""Drawing faces on frames: one small annotator per element, each with its own style.

Every annotator's `annotate(image, faces)` draws **in place** on a BGR uint8 image and
returns that same array; the module-level `annotate()` copies first unless told otherwise.
Colours say what the face is: known (named), doubtful (named, but the latest frame
disagreed: the name is held in question), unknown (recognition ran, no match) or low quality
(small or unsure face that was not named: a match was unlikely anyway). Only a known face
shows a similarity: an unknown face's best similarity ("unknown 0.91") reads like a
confident match, so it is left to detail views.
OpenCV's fonts are ASCII only: names are transliterated ("José" -> "Jose").
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol, Sequence

import cv2
import numpy as np

from engines.faces import Faces

Color = tuple[int, int, int]  # BGR

KNOWN, DOUBTFUL, UNKNOWN, LOW_QUALITY = "known", "doubtful", "unknown", "low_quality"


@dataclass(slots=True)
class Palette:
    """Colours by face category, and what counts as low quality."""

    known: Color = (80, 200, 60)  # green
    doubtful: Color = (0, 165, 255)  # amber
    unknown: Color = (40, 60, 230)  # red
    low_quality: Color = (160, 160, 160)  # grey
    min_score: float = 0.6  # below this detection score an unnamed face is low quality
    min_size: float = 24.0  # ... and below this box side in pixels

    def categories(self, faces: Faces) -> list[str]:
        """KNOWN, DOUBTFUL, UNKNOWN or LOW_QUALITY for each face."""
        sides = np.minimum(faces.widths, faces.heights)
        doubtful = faces.extra.get("doubtful")
        out = []
        for i in range(len(faces)):
            if faces.names is not None and faces.names[i] is not None:
                out.append(DOUBTFUL if doubtful is not None and bool(doubtful[i]) else KNOWN)
            elif faces.scores[i] < self.min_score or sides[i] < self.min_size:
                out.append(LOW_QUALITY)
            else:
                out.append(UNKNOWN)
        return out

    def colors(self, faces: Faces) -> list[Color]:
        return [getattr(self, c) for c in self.categories(faces)]


DEFAULT_PALETTE = Palette()


class Annotator(Protocol):
    def annotate(self, image: np.ndarray, faces: Faces) -> np.ndarray: ...


class BoxAnnotator:
    """A rectangle around each face in its category colour."""

    def __init__(self, palette: Palette = DEFAULT_PALETTE, thickness: int = 2):
        self.palette, self.thickness = palette, thickness

    def annotate(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        boxes = np.round(faces.boxes).astype(np.int32)
        for (x1, y1, x2, y2), color in zip(boxes, self.palette.colors(faces)):
            cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), color, self.thickness, cv2.LINE_AA)
        return image


class LandmarkAnnotator:
    """The 5 landmarks as dots: eyes, nose, mouth corners, each in its own colour."""

    COLORS: tuple[Color, ...] = ((255, 200, 0), (255, 200, 0), (0, 220, 255), (255, 0, 200), (255, 0, 200))

    def __init__(self, radius: int | None = None, colors: Sequence[Color] = COLORS):
        self.radius, self.colors = radius, tuple(colors)

    def annotate(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        for lms, side in zip(faces.landmarks, np.minimum(faces.widths, faces.heights)):
            r = self.radius or int(np.clip(side / 40, 1, 4))
            for (x, y), color in zip(lms, self.colors):
                cv2.circle(image, (int(round(x)), int(round(y))), r, color, -1, cv2.LINE_AA)
        return image


def face_text(faces: Faces, i: int, category: str, *, similarity: bool = True, track: bool = True,
              ascii_only: bool = False) -> str:
    """The tag of face `i`: "Name 0.97 #3" (known), "Name? #3" (doubtful), "unknown #7",
    "low quality"; a similarity only for known faces."""
    name = faces.names[i] if faces.names is not None else None
    if name is not None and ascii_only:
        name = ascii_text(name)
    if category in (KNOWN, DOUBTFUL) and name is not None:
        parts = [name + ("?" if category == DOUBTFUL else "")]
        if (similarity and category == KNOWN and faces.similarities is not None
                and np.isfinite(faces.similarities[i])):
            parts.append(f"{faces.similarities[i]:.2f}")
    else:
        parts = ["low quality" if category == LOW_QUALITY else "unknown"]
    if track and faces.track_ids is not None and faces.track_ids[i] >= 0:
        parts.append(f"#{int(faces.track_ids[i])}")
    return " ".join(parts)


class LabelAnnotator:
    """A filled tag above each box: name (or "unknown"), similarity of known faces, track id."""

    def __init__(self, palette: Palette = DEFAULT_PALETTE, font_scale: float = 0.5, thickness: int = 1,
                 text_color: Color = (255, 255, 255), show_similarity: bool = True, show_track: bool = True):
        self.palette, self.font_scale, self.thickness = palette, font_scale, thickness
        self.text_color, self.show_similarity, self.show_track = text_color, show_similarity, show_track
        self.font = cv2.FONT_HERSHEY_SIMPLEX

    def text(self, faces: Faces, i: int) -> str:
        """The label of face `i`."""
        return face_text(faces, i, self.palette.categories(faces)[i], similarity=self.show_similarity,
                         track=self.show_track, ascii_only=True)

    def annotate(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        h, w = image.shape[:2]
        cats = self.palette.categories(faces)
        for i, cat in enumerate(cats):
            color = getattr(self.palette, cat)
            text = face_text(faces, i, cat, similarity=self.show_similarity, track=self.show_track, ascii_only=True)
            (tw, th), base = cv2.getTextSize(text, self.font, self.font_scale, self.thickness)
            x1, y1, _, y2 = faces.boxes[i]
            x = int(np.clip(round(x1), 0, max(0, w - tw - 4)))
            top = int(round(y1)) - th - base - 4
            if top < 0:  # no room above: put the tag under the box
                top = min(h - th - base - 4, int(round(y2)))
            top = max(0, top)
            cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), color, -1)
            cv2.putText(image, text, (x + 2, top + th + 2), self.font, self.font_scale, self.text_color,
                        self.thickness, cv2.LINE_AA)
        return image


class StatsAnnotator:
    """Lines of text in a darkened panel in the top-left corner (fps, latency, drops)."""

    def __init__(self, font_scale: float = 0.5, color: Color = (255, 255, 255), alpha: float = 0.55):
        self.font_scale, self.color, self.alpha = font_scale, color, alpha
        self.font = cv2.FONT_HERSHEY_SIMPLEX

    def annotate(self, image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
        if not lines:
            return image
        lines = [ascii_text(line) for line in lines]
        sizes = [cv2.getTextSize(line, self.font, self.font_scale, 1) for line in lines]
        line_h = max(th + base for (_, th), base in sizes) + 4
        pw = min(image.shape[1], max(tw for (tw, _), _ in sizes) + 12)
        ph = min(image.shape[0], line_h * len(lines) + 8)
        panel = image[:ph, :pw]
        panel[:] = (panel.astype(np.uint16) * int(round((1 - self.alpha) * 256)) >> 8).astype(np.uint8)
        for k, line in enumerate(lines):
            y = 4 + line_h * (k + 1) - 4
            cv2.putText(image, line, (6, y), self.font, self.font_scale, self.color, 1, cv2.LINE_AA)
        return image


class FrameAnnotator:
    """Boxes, landmarks and labels together (the product's default look)."""

    def __init__(self, palette: Palette = DEFAULT_PALETTE, landmarks: bool = True, labels: bool = True):
        self.annotators: list[Annotator] = [BoxAnnotator(palette)]
        if landmarks:
            self.annotators.append(LandmarkAnnotator())
        if labels:
            self.annotators.append(LabelAnnotator(palette))
        self.stats = StatsAnnotator()

    def annotate(self, image: np.ndarray, faces: Faces, stats_lines: Sequence[str] | None = None) -> np.ndarray:
        """Draw in place on `image` and return it."""
        for annotator in self.annotators:
            image = annotator.annotate(image, faces)
        if stats_lines:
            image = self.stats.annotate(image, stats_lines)
        return image


_DEFAULT = FrameAnnotator()


def annotate(image: np.ndarray, faces: Faces, *, stats_lines: Sequence[str] | None = None,
             copy: bool = True) -> np.ndarray:
    """`image` with faces (and optional stats lines) drawn; on a copy unless `copy=False`."""
    out = image.copy() if copy else image
    if not out.flags.writeable or not out.flags.c_contiguous:
        out = np.ascontiguousarray(out).copy()
    return _DEFAULT.annotate(out, faces, stats_lines)


def ascii_text(text: str) -> str:
    """`text` with accents removed and other non-ASCII characters as '?' (OpenCV fonts)."""
    stripped = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return "".join(ch if ord(ch) < 128 else "?" for ch in stripped)
