"""The selected source: one model object that the source list, the video tiles and the
player controls all follow, so what is highlighted is what Remove, Play and Seek act on."""
from __future__ import annotations

from PyQt5.QtCore import QObject, pyqtSignal


class SourceSelection(QObject):
    """`current` is the selected source id (None: none); `changed(id)` ("" for none) fires
    only when it changes, so views that set it back on its own signal cause no loop."""

    changed = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.current: str | None = None

    def set(self, source_id: str | None) -> None:
        source_id = source_id or None
        if source_id != self.current:
            self.current = source_id
            self.changed.emit(source_id or "")
