"""One source's live view: the newest frame scaled to the widget (aspect kept), faces drawn
over it, and the source's state (reconnecting, ended, paused, recording) on top.

Painting only scales an image that is already decoded and draws a few shapes: no decoding,
inference or disk access happens here.
"""
from __future__ import annotations

from PyQt5.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

from app.render import DEFAULT_PALETTE, Palette
from app.sources import SourceState
from app.types import FrameResult
from ui.overlay import ViewTransform, draw_faces
from ui.qt_image import to_qimage

STATE_TEXT = {
    SourceState.CONNECTING: ("connecting…", QColor(230, 200, 60)),
    SourceState.RECONNECTING: ("reconnecting…", QColor(255, 150, 0)),
    SourceState.ENDED: ("ended", QColor(180, 180, 180)),
    SourceState.FAILED: ("failed", QColor(240, 70, 70)),
}


class VideoView(QWidget):
    """Shows `set_result`'s frame and faces. Clicking a face emits `faceClicked(source_id,
    track_id)` (track -1: not yet confirmed); any click emits `clicked(source_id)`."""

    clicked = pyqtSignal(str)
    faceClicked = pyqtSignal(str, int)

    def __init__(self, source_id: str, parent: QWidget | None = None, palette: Palette = DEFAULT_PALETTE):
        super().__init__(parent)
        self.source_id = source_id
        self.palette_ = palette
        self.result: FrameResult | None = None
        self.state = SourceState.CONNECTING
        self.message = ""
        self.paused = False
        self.recording = False
        self.selected = False
        self.show_landmarks = True
        self.highlight_track: int | None = None
        self.frames_shown = 0
        self._image = None
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(160, 90)
        self.setAttribute(Qt.WA_OpaquePaintEvent, True)
        self.setMouseTracking(False)

    def sizeHint(self) -> QSize:
        return QSize(640, 360)

    # -- data ------------------------------------------------------------------------------
    def set_result(self, result: FrameResult) -> None:
        """Show this frame and its faces at the next paint."""
        self.result = result
        self._image = to_qimage(result.frame.image)
        self.frames_shown += 1
        self.update()

    def set_state(self, state: SourceState, message: str = "") -> None:
        if (state, message) != (self.state, self.message):
            self.state, self.message = state, message
            self.update()

    def set_flags(self, *, paused: bool | None = None, recording: bool | None = None,
                  selected: bool | None = None) -> None:
        changed = False
        for name, value in (("paused", paused), ("recording", recording), ("selected", selected)):
            if value is not None and getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        if changed:
            self.update()

    # -- geometry --------------------------------------------------------------------------
    def transform(self) -> ViewTransform | None:
        """Image to widget coordinates for the frame shown (None before the first frame)."""
        if self._image is None:
            return None
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        return ViewTransform(scale, (self.width() - iw * scale) / 2, (self.height() - ih * scale) / 2)

    def face_at(self, x: float, y: float) -> int | None:
        """Index of the face under widget point (x, y), the smallest box when several."""
        t = self.transform()
        if t is None or self.result is None:
            return None
        ix, iy = t.to_image(x, y)
        boxes = self.result.faces.boxes
        hits = [i for i, (x1, y1, x2, y2) in enumerate(boxes) if x1 <= ix <= x2 and y1 <= iy <= y2]
        if not hits:
            return None
        return min(hits, key=lambda i: (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))

    def face_centre(self, index: int) -> QPointF:
        """Widget point at the centre of face `index` (for tests and keyboard users)."""
        t = self.transform()
        x1, y1, x2, y2 = self.result.faces.boxes[index]
        return t.point((x1 + x2) / 2, (y1 + y2) / 2)

    def mousePressEvent(self, event) -> None:
        self.clicked.emit(self.source_id)
        if event.button() == Qt.LeftButton:
            i = self.face_at(event.x(), event.y())
            if i is not None:
                tids = self.result.faces.track_ids
                self.faceClicked.emit(self.source_id, int(tids[i]) if tids is not None else -1)
        super().mousePressEvent(event)

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(16, 16, 16))
        t = self.transform()
        if t is not None:
            target = QRectF(t.dx, t.dy, self._image.width() * t.scale, self._image.height() * t.scale)
            p.setRenderHint(QPainter.SmoothPixmapTransform, abs(t.scale - 1.0) > 0.01)
            p.drawImage(target, self._image)
            draw_faces(p, self.result.faces, t, palette=self.palette_, landmarks=self.show_landmarks,
                       highlight_track=self.highlight_track)
        self._paint_labels(p, t is None)
        if self.selected:
            p.setPen(QPen(QColor(60, 140, 255), 3))
            p.setBrush(Qt.NoBrush)
            p.drawRect(QRectF(self.rect()).adjusted(1.5, 1.5, -1.5, -1.5))
        p.end()

    def _paint_labels(self, p: QPainter, empty: bool) -> None:
        font = QFont(self.font())
        font.setPointSizeF(9.5)
        p.setFont(font)
        title = self.source_id + ("  ● REC" if self.recording else "") + ("  ❚❚ paused" if self.paused else "")
        box = QRectF(6, 6, self.width() - 12, 22)
        p.fillRect(QRectF(4, 4, p.fontMetrics().horizontalAdvance(title) + 12, 22), QColor(0, 0, 0, 150))
        p.setPen(QColor(255, 90, 90) if self.recording else QColor(235, 235, 235))
        p.drawText(box, Qt.AlignLeft | Qt.AlignVCenter, title)
        text, color = STATE_TEXT.get(self.state, (None, None))
        if text is None and empty:
            text, color = "waiting for the first frame…", QColor(200, 200, 200)
        if text is None:
            return
        big = QFont(font)
        big.setPointSizeF(16)
        big.setBold(True)
        p.setFont(big)
        detail = f"{text}\n{self.message}" if self.message else text
        area = QRectF(0, self.height() / 2 - 40, self.width(), 80)
        p.fillRect(area, QColor(0, 0, 0, 160))
        p.setPen(color)
        p.drawText(area, Qt.AlignCenter | Qt.TextWordWrap, detail)
