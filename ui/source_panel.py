"""Choosing sources: a camera from those found, a video file, or a stream URL; the list of
open sources with their state; remove. At most four at once."""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                             QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from app.sources.cameras import CameraInfo
from app.live.entries import MAX_SOURCES
from app.sources import FILE_SUFFIXES, SourceState
from ui import folders

STATE_MARK = {
    SourceState.IDLE: "○", SourceState.CONNECTING: "…", SourceState.LIVE: "●",
    SourceState.RECONNECTING: "↻", SourceState.ENDED: "■", SourceState.FAILED: "✕",
}


class SourcePanel(QWidget):
    """Emits `addRequested(spec, loop)`, `removeRequested(source_id)`, `selected(source_id)`.

    The list shows the window's `SourceSelection` (`select`); Remove acts on that selection,
    never on whatever row Qt happens to hold current after the list was rebuilt."""

    addRequested = pyqtSignal(str, bool)
    removeRequested = pyqtSignal(str)
    selected = pyqtSignal(str)
    refreshCameras = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.selected_id: str | None = None
        self.cameras = QComboBox(self)
        self.cameras.addItem("looking for cameras…")
        self.cameras.setEnabled(False)
        self.add_camera = QPushButton("Add camera", self)
        self.add_camera.setEnabled(False)
        self.rescan = QPushButton("↻", self)
        self.rescan.setToolTip("look for cameras again")
        self.rescan.setFixedWidth(32)
        self.open_file = QPushButton("Open video file…", self)
        self.loop = QCheckBox("loop files", self)
        self.url = QLineEdit(self)
        self.url.setPlaceholderText("rtsp://user:pass@host/stream or http://…")
        self.url.setMinimumWidth(80)
        self.cameras.setMinimumWidth(80)
        self.add_url = QPushButton("Add URL", self)
        self.list = QListWidget(self)
        self.remove = QPushButton("Remove source", self)
        self.count = QLabel(self)

        cam_row = QHBoxLayout()
        cam_row.addWidget(self.cameras, 1)
        cam_row.addWidget(self.rescan)
        cam_row.addWidget(self.add_camera)
        file_row = QHBoxLayout()
        file_row.addWidget(self.open_file, 1)
        file_row.addWidget(self.loop)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.add_url)
        form = QFormLayout()
        form.addRow("Camera", cam_row)
        form.addRow("File", file_row)
        form.addRow("Stream", url_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(f"Open sources (up to {MAX_SOURCES}, sharing one engine):", self))
        layout.addWidget(self.list, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count, 1)
        bottom.addWidget(self.remove)
        layout.addLayout(bottom)

        self.add_camera.clicked.connect(self._add_camera)
        self.rescan.clicked.connect(self.refreshCameras)
        self.open_file.clicked.connect(self._open_file)
        self.add_url.clicked.connect(self._add_url)
        self.url.returnPressed.connect(self._add_url)
        self.remove.clicked.connect(self._remove)
        self.list.currentItemChanged.connect(self._current_changed)

    # -- cameras ---------------------------------------------------------------------------
    def set_cameras(self, cameras: list[CameraInfo]) -> None:
        self.cameras.clear()
        for cam in cameras:
            self.cameras.addItem(cam.name, cam.index)
        if not cameras:
            self.cameras.addItem("no camera found")
        self.cameras.setEnabled(bool(cameras))
        self.add_camera.setEnabled(bool(cameras))

    def _add_camera(self) -> None:
        index = self.cameras.currentData()
        if index is not None:
            self.addRequested.emit(str(index), False)

    def _open_file(self) -> None:
        pattern = " ".join(f"*{s}" for s in FILE_SUFFIXES)
        if not self.open_file.isEnabled():
            return  # the window is full (Ctrl+O does nothing then either)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open video files", folders.start_in(),
                                                f"Videos ({pattern});;All files (*)")
        if paths:
            folders.remember(paths[0])
        for path in paths:
            self.addRequested.emit(path, self.loop.isChecked())

    def _add_url(self) -> None:
        text = self.url.text().strip()
        if text:
            self.addRequested.emit(text, False)
            self.url.clear()

    def _remove(self) -> None:
        if self.selected_id is not None:
            self.removeRequested.emit(self.selected_id)

    def _current_changed(self, item, _previous) -> None:
        if item is not None:
            self.selected.emit(item.data(Qt.UserRole))

    # -- the list --------------------------------------------------------------------------
    def set_sources(self, rows: list[tuple[str, str, SourceState, str]]) -> None:
        """(source_id, kind, state, message) per open source, in order."""
        current = self.selected_id
        ids = [r[0] for r in rows]
        existing = [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]
        if ids != existing:
            self.list.blockSignals(True)
            self.list.clear()
            for sid in ids:
                item = QListWidgetItem(sid)
                item.setData(Qt.UserRole, sid)
                self.list.addItem(item)
            self.list.blockSignals(False)
        for i, (sid, kind, state, message) in enumerate(rows):
            item = self.list.item(i)
            item.setText(f"{STATE_MARK.get(state, '?')} {sid}  [{kind}, {state.value}]")
            item.setToolTip(message or state.value)
            if sid == current:
                self.list.blockSignals(True)
                self.list.setCurrentItem(item)
                self.list.blockSignals(False)
        full = len(rows) >= MAX_SOURCES
        for w in (self.add_camera, self.open_file, self.add_url):
            w.setEnabled(not full and (w is not self.add_camera or self.cameras.isEnabled()))
        self.count.setText(f"{len(rows)} of {MAX_SOURCES}")
        self.remove.setEnabled(current is not None and current in ids)

    def current_source(self) -> str | None:
        return self.selected_id

    def select(self, source_id: str) -> None:
        """Show `source_id` ("" or None: nothing) as the selected row."""
        self.selected_id = source_id or None
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.UserRole) == self.selected_id:
                self.list.setCurrentRow(i)
        self.list.blockSignals(False)
        self.remove.setEnabled(self.selected_id is not None)
