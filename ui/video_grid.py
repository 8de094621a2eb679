"""Up to four live views in a grid: 1 view fills it, 2 side by side, 3-4 in two rows."""
from __future__ import annotations

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QGridLayout, QWidget

from ui.video_view import VideoView


class VideoGrid(QWidget):
    """Holds one `VideoView` per source id; clicking a view selects it (`selected` signal)."""

    selected = pyqtSignal(str)
    faceClicked = pyqtSignal(str, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.views: dict[str, VideoView] = {}
        self.current: str | None = None
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)

    def add_view(self, source_id: str) -> VideoView:
        view = VideoView(source_id, self)
        view.clicked.connect(self.select)
        view.faceClicked.connect(self.faceClicked)
        self.views[source_id] = view
        self._relayout()
        if self.current is None:
            self.select(source_id)
        return view

    def remove_view(self, source_id: str) -> None:
        view = self.views.pop(source_id, None)
        if view is None:
            return
        self._layout.removeWidget(view)
        view.deleteLater()
        if self.current == source_id:
            self.current = None
            if self.views:
                self.select(next(iter(self.views)))
            else:
                self.selected.emit("")
        self._relayout()

    def select(self, source_id: str) -> None:
        if source_id not in self.views or source_id == self.current:
            return
        self.current = source_id
        for sid, view in self.views.items():
            view.set_flags(selected=(sid == source_id and len(self.views) > 1))
        self.selected.emit(source_id)

    def _relayout(self) -> None:
        for view in self.views.values():
            self._layout.removeWidget(view)
        columns = 1 if len(self.views) <= 1 else 2
        for k, view in enumerate(self.views.values()):
            self._layout.addWidget(view, k // columns, k % columns)
        for sid, view in self.views.items():
            view.set_flags(selected=(sid == self.current and len(self.views) > 1))
