"""Who appeared when, and on which source: one row per appearance (a confirmed track), kept
in the order first seen. In file mode, clicking a row seeks that video to the appearance."""
from __future__ import annotations

import math

from PyQt5.QtCore import QAbstractTableModel, QModelIndex, Qt, pyqtSignal
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableView, QVBoxLayout, QWidget

from app.live.recognition import Appearance
from ui.transport import clock

COLUMNS = ("time", "name", "similarity", "source", "track", "frames")  # what matters first: the side panel is narrow


class AppearanceModel(QAbstractTableModel):
    """Rows keyed by (source, track); new keys are appended, known rows updated in place."""

    def __init__(self):
        super().__init__()
        self.rows: list[Appearance] = []
        self._index: dict[tuple[str, int], int] = {}

    def set_appearances(self, appearances: list[Appearance]) -> None:
        new = []
        for a in appearances:
            key = (a.source_id, a.track_id)
            row = self._index.get(key)
            if row is None:
                new.append(a)
            else:
                self.rows[row] = a
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(COLUMNS) - 1))
        if new:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(new) - 1)
            for a in new:
                self._index[(a.source_id, a.track_id)] = len(self.rows)
                self.rows.append(a)
            self.endInsertRows()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        a = self.rows[index.row()]
        col = COLUMNS[index.column()]
        if role == Qt.DisplayRole:
            if col == "time":
                return f"{clock(a.first_time)}–{clock(a.last_time)}" + (" …" if a.ongoing else "")
            if col == "source":
                return a.source_id
            if col == "name":
                return a.name if a.name is not None else "unknown"
            if col == "similarity":
                sim = a.best_similarity
                return "" if sim is None or not math.isfinite(sim) else f"{sim:.2f}"
            if col == "track":
                return str(a.track_id)
            if col == "frames":
                return str(a.observations)
        if role == Qt.ForegroundRole and col == "name":
            return QColor(40, 140, 40) if a.name is not None else QColor(190, 50, 50)
        return None


class EventLog(QWidget):
    """Emits `seekRequested(source_id, seconds)` on a row click and `exportRequested()`."""

    seekRequested = pyqtSignal(str, float)
    exportRequested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = AppearanceModel()
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectRows)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)  # sizing to contents re-measures every row each update
        metrics = self.table.fontMetrics()
        # wide enough for the longest text each column shows (measured once, in this font)
        for col, sample in enumerate(("00:00.0–00:00.0 …", "Lin-Manuel Miranda", "similarity", "camera 0 (2)", "track")):
            header.resizeSection(col, metrics.horizontalAdvance(sample) + 18)
        header.setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.summary = QLabel("No appearance yet", self)
        self.summary.setWordWrap(True)
        self.export = QPushButton("Export CSV…", self)
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(self.export)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.table.clicked.connect(self._clicked)
        self.export.clicked.connect(self.exportRequested)

    def set_appearances(self, appearances: list[Appearance]) -> None:
        at_end = self.table.verticalScrollBar().value() >= self.table.verticalScrollBar().maximum() - 2
        self.model.set_appearances(appearances)
        if at_end and not self.table.underMouse():  # never scroll the rows away under the pointer
            self.table.scrollToBottom()
        rows = self.model.rows
        known = sum(1 for a in rows if a.name is not None)
        self.summary.setText(f"{len(rows)} appearances: {known} known, {len(rows) - known} unknown "
                             "(click a row to seek a video there)")

    def _clicked(self, index) -> None:
        a = self.model.rows[index.row()]
        self.seekRequested.emit(a.source_id, float(a.first_time))
