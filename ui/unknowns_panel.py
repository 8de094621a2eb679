"""Unknown people seen in this run, grouped by `app.offline.unknowns.cluster_unknowns`, each with
its best face, how often and when it was seen, one click away from enrolment."""
from __future__ import annotations

from PyQt5.QtCore import QSize, pyqtSignal
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.offline.unknowns import UnknownGroup
from ui.qt_image import to_pixmap
from ui.transport import clock

THUMB = 64


class UnknownsPanel(QWidget):
    """`set_groups(groups)` shows them; `enrolRequested(group)` when one is chosen."""

    enrolRequested = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.groups: list[UnknownGroup] = []
        self.title = QLabel("Unknown people: none yet", self)
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.enrol = QPushButton("Enrol selected…", self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.enrol)
        self.enrol.clicked.connect(self._enrol_current)
        self.list.itemDoubleClicked.connect(lambda item: self._enrol_row(self.list.row(item)))

    def set_groups(self, groups: list[UnknownGroup]) -> None:
        row = self.list.currentRow()
        self.groups = list(groups)
        self.list.clear()
        for k, g in enumerate(self.groups, 1):
            sources = ", ".join(g.sources)
            item = QListWidgetItem(f"Unknown {k}: {g.count} appearance(s), {g.frames} frames\n"
                                   f"{clock(g.first_time)}–{clock(g.last_time)} on {sources}")
            crop = g.representative.best_crop
            if crop is not None:
                item.setIcon(QIcon(to_pixmap(crop, THUMB)))
            item.setToolTip("double-click to enrol this person")
            self.list.addItem(item)
        if 0 <= row < self.list.count():
            self.list.setCurrentRow(row)
        people = len(self.groups)
        self.title.setText(f"Unknown people in this run: {people}" if people else "Unknown people: none yet")

    def _enrol_current(self) -> None:
        self._enrol_row(self.list.currentRow())

    def _enrol_row(self, row: int) -> None:
        if 0 <= row < len(self.groups):
            self.enrolRequested.emit(self.groups[row])
