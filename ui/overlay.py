"""Drawing faces over the video with QPainter: box (colour by known / doubtful / unknown /
low quality), the 5 landmarks, and a tag with name, similarity (known faces only) and track id.

Drawn in widget coordinates, so lines and text stay crisp at any window size; the colours
and categories are `app.render.Palette`'s, so the window and recorded videos agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from app.render import DEFAULT_PALETTE, KNOWN, LOW_QUALITY, Palette, face_text
from engines.faces import Faces

LANDMARK_COLORS = (QColor(0, 200, 255), QColor(0, 200, 255), QColor(255, 220, 0), QColor(200, 0, 255),
                   QColor(200, 0, 255))


@dataclass(slots=True)
class ViewTransform:
    """Image pixels to widget pixels: widget = image * scale + offset."""

    scale: float
    dx: float
    dy: float

    def point(self, x: float, y: float) -> QPointF:
        return QPointF(x * self.scale + self.dx, y * self.scale + self.dy)

    def rect(self, box) -> QRectF:
        x1, y1, x2, y2 = (float(v) for v in box)
        return QRectF(self.point(x1, y1), self.point(x2, y2))

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.dx) / self.scale, (y - self.dy) / self.scale


def qcolor(bgr: tuple[int, int, int]) -> QColor:
    b, g, r = bgr
    return QColor(r, g, b)


def face_label(faces: Faces, i: int, category: str) -> str:
    """"Name 0.95 #3", "Name? #3" (doubtful), "unknown #7", "small"."""
    name = faces.names[i] if faces.names is not None else None
    small = faces.extra.get("small")
    if name is None and small is not None and bool(small[i]):
        return "small"
    return face_text(faces, i, category)


def face_categories(faces: Faces, palette: Palette) -> list[str]:
    """Palette categories, with faces under the minimum size (not recognised) as low quality."""
    cats = palette.categories(faces)
    small = faces.extra.get("small")
    if small is not None:
        cats = [LOW_QUALITY if bool(small[i]) and c != KNOWN else c for i, c in enumerate(cats)]
    return cats


def draw_faces(painter: QPainter, faces: Faces, t: ViewTransform, *, palette: Palette = DEFAULT_PALETTE,
               landmarks: bool = True, highlight_track: int | None = None) -> None:
    """Draw every face of `faces` (image coordinates) through `t`."""
    if len(faces) == 0:
        return
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing, True)
    font = QFont(painter.font())
    font.setPointSizeF(max(7.0, min(11.0, 9.0 * max(t.scale, 0.8))))
    font.setBold(True)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    cats = face_categories(faces, palette)
    for i, cat in enumerate(cats):
        color = qcolor(getattr(palette, cat))
        rect = t.rect(faces.boxes[i])
        tid = int(faces.track_ids[i]) if faces.track_ids is not None else -1
        width = 3.0 if highlight_track is not None and tid == highlight_track else 2.0
        painter.setPen(QPen(color, width))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(rect)
        if landmarks:
            radius = max(1.5, min(4.0, rect.width() / 40))
            painter.setPen(Qt.NoPen)
            for (x, y), lm_color in zip(faces.landmarks[i], LANDMARK_COLORS):
                painter.setBrush(lm_color)
                painter.drawEllipse(t.point(float(x), float(y)), radius, radius)
        text = face_label(faces, i, cat)
        tw, th = metrics.horizontalAdvance(text) + 8, metrics.height() + 4
        top = rect.top() - th if rect.top() - th >= 0 else rect.bottom()
        tag = QRectF(rect.left(), top, tw, th)
        painter.setPen(Qt.NoPen)
        painter.setBrush(color)
        painter.drawRect(tag)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(tag, Qt.AlignCenter, text)
    painter.restore()
