"""Enrolling a person: the candidate faces (crops of a live track, an unknown group, or photo
files) with a mark each and the reason it passes or fails (hover), a name typed or picked from
the gallery, and the outcome of `app.gallery.enrollment` (added, refused with the reason, look-alike
warnings) shown in place. Faces that would be refused start unticked. A look-alike stops the
first Save before anything is written ("Save anyway" enrols); faces already enrolled are
unticked and locked, so a second Save never stores them twice.

The enrolment itself (face detection and embedding, SQLite) runs on a worker thread."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from PyQt5.QtCore import QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPainter, QPixmap
from PyQt5.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QListView, QListWidget,
                             QListWidgetItem, QPlainTextEdit, QVBoxLayout, QWidget)

from app.gallery.enrollment import EnrolmentResult
from ui.qt_image import to_pixmap
from ui.tasks import TaskRunner

THUMB = 112


@dataclass(slots=True)
class Candidate:
    """One face offered for enrolment."""

    payload: Any  # what the enrol function receives: a BGR crop or a photo path
    caption: str
    image: np.ndarray | None = None  # BGR picture to show (None: a photo not read yet)
    problems: list[str] | None = None  # enrolment problems; None = checked when saved
    label: str = ""  # the sample's "source" text in the gallery
    reason: str = ""  # why it passes or fails, shown on hover
    extra: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.problems


def marked_icon(image: np.ndarray | None, usable: bool | None) -> QIcon:
    """A thumbnail with a green tick (passes the checks), a red cross (would be refused) or
    nothing (not checked yet)."""
    pix = to_pixmap(image, THUMB) if image is not None else QPixmap(THUMB, THUMB)
    if image is None:
        pix.fill(QColor(60, 60, 60))
    if usable is not None:
        p = QPainter(pix)
        p.setRenderHint(QPainter.Antialiasing)
        p.setBrush(QColor(40, 160, 60) if usable else QColor(200, 40, 40))
        p.setPen(Qt.NoPen)
        p.drawEllipse(pix.width() - 26, 4, 22, 22)
        p.setPen(QColor(255, 255, 255))
        p.drawText(pix.width() - 26, 4, 22, 22, Qt.AlignCenter, "✓" if usable else "✕")
        p.end()
    return QIcon(pix)


class EnrolDialog(QDialog):
    """`enrol(name, payloads, labels, confirm=...) -> EnrolmentResult` runs on a worker;
    `enrolled(name)` is emitted when something was added."""

    enrolled = pyqtSignal(str)

    def __init__(self, title: str, candidates: Sequence[Candidate], names: Sequence[str],
                 enrol: Callable[[str, list, list], EnrolmentResult], tasks: TaskRunner,
                 parent: QWidget | None = None, suggested: str = ""):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.candidates = list(candidates)
        self._enrol = enrol
        self._tasks = tasks
        self.result: EnrolmentResult | None = None
        self.error: BaseException | None = None
        self.busy = False
        self._confirmed: tuple | None = None  # the request whose look-alike warning was shown

        self.items = QListWidget(self)
        self.items.setViewMode(QListView.IconMode)
        self.items.setIconSize(QSize(THUMB, THUMB))
        self.items.setResizeMode(QListView.Adjust)
        self.items.setMovement(QListView.Static)
        self.items.setSpacing(6)
        self.items.setMinimumSize(4 * (THUMB + 24), THUMB + 60)
        for cand in self.candidates:
            item = QListWidgetItem(marked_icon(cand.image, None if cand.problems is None else cand.usable),
                                   cand.caption)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if cand.problems is None or cand.usable else Qt.Unchecked)
            item.setToolTip(cand.reason or ("passes the enrolment checks" if cand.problems == [] else
                            "; ".join(cand.problems) if cand.problems else "checked when saved"))
            self.items.addItem(item)

        self.name = QComboBox(self)
        self.name.setEditable(True)
        self.name.addItems(list(names))
        self.name.setEditText(suggested)
        self.name.lineEdit().setPlaceholderText("type a new name or pick an identity to add samples to")
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(110)
        self.report.setPlaceholderText("Ticked faces are enrolled. ✓ passes the quality checks; ✕ would be "
                                       "refused (hover for why).")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Close, self)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        row = QHBoxLayout()
        row.addWidget(QLabel("Name:", self))
        row.addWidget(self.name, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.items, 1)
        layout.addLayout(row)
        layout.addWidget(self.report)
        layout.addWidget(self.buttons)

    def checked(self) -> list[Candidate]:
        return [c for i, c in enumerate(self.candidates) if self.items.item(i).checkState() == Qt.Checked]

    def save(self) -> None:
        """Enrol the ticked faces under the typed name (on a worker thread)."""
        name = self.name.currentText().strip()
        chosen = self.checked()
        if not name:
            self.report.setPlainText("Type a name first.")
            return
        if not chosen:
            self.report.setPlainText("Tick at least one face.")
            return
        self.busy = True
        self.buttons.setEnabled(False)
        self.report.setPlainText(f"Enrolling {name} from {len(chosen)} face(s)…")
        payloads = [c.payload for c in chosen]
        labels = [c.label or c.caption for c in chosen]
        request = (name.casefold(), tuple(labels))
        confirm = request == self._confirmed
        self._request = request
        self._tasks.submit(lambda: self._enrol(name, payloads, labels, confirm=confirm), self._done, self._failed,
                           name="enrol")

    def _done(self, result: EnrolmentResult) -> None:
        self.busy = False
        self.result = result
        self.buttons.setEnabled(True)
        save = self.buttons.button(QDialogButtonBox.Save)
        if result.needs_confirmation:  # nothing written: show why and let the operator decide
            self._confirmed = self._request
            save.setText("Save anyway")
            self.report.setPlainText("\n".join(["Not saved yet:", *result.warnings,
                                                "Press Save anyway to enrol them, or change the name or the ticks."]))
            return
        self._confirmed = None
        save.setText("Save")
        self.report.setPlainText("\n".join(result.summary_lines()))
        for i, cand in enumerate(self.candidates):  # mark what the checks decided
            label = cand.label or cand.caption
            refused = next((r.reason for r in result.refused if r.source == label), None)
            if any(a.source == label for a in result.added):
                item = self.items.item(i)
                item.setIcon(marked_icon(cand.image, True))
                item.setToolTip(f"enrolled as {result.name}")
                item.setCheckState(Qt.Unchecked)  # saved: a second Save does not send it again
                item.setFlags(item.flags() & ~Qt.ItemIsUserCheckable & ~Qt.ItemIsEnabled)
            elif refused is not None:
                self.items.item(i).setIcon(marked_icon(cand.image, False))
                self.items.item(i).setToolTip(refused)
        if result.ok:
            self.enrolled.emit(result.name)
            if not result.refused and not result.warnings:
                self.accept()

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.error = exc
        self.buttons.setEnabled(True)
        self.report.setPlainText(f"Not enrolled: {exc}")
