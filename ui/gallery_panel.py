"""The gallery: identities with a thumbnail and sample count; rename, merge, delete (with
undo), view samples and remove bad ones (with undo), export and import, enrol from photos.

Every gallery read and write runs on a worker thread; the list is refreshed after each."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PyQt5.QtCore import QSize, Qt, pyqtSignal
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QGridLayout, QInputDialog, QLabel, QListView,
                             QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from app.gallery.store import Gallery, IdentitySummary
from app.gallery.undo import restore, snapshot_identity, snapshot_samples
from ui import folders
from ui.qt_image import to_pixmap
from ui.tasks import TaskRunner

THUMB = 64
Notify = Callable[..., None]  # banner.show_message(text, level, action=..., timeout_ms=...)


class GalleryPanel(QWidget):
    """`gallery()` returns the gallery in use (it changes with the settings). `changed` is
    emitted after any change (the window then re-decides names)."""

    changed = pyqtSignal()
    enrolPhotosRequested = pyqtSignal()
    refreshed = pyqtSignal()

    def __init__(self, gallery: Callable[[], Gallery | None], tasks: TaskRunner, notify: Notify,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._gallery, self._tasks, self._notify = gallery, tasks, notify
        self.identities: list[IdentitySummary] = []
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSelectionMode(QListWidget.SingleSelection)
        self.title = QLabel("Gallery", self)
        buttons = {
            "enrol": QPushButton("Enrol from photos…", self),
            "rename": QPushButton("Rename…", self),
            "merge": QPushButton("Merge into…", self),
            "delete": QPushButton("Delete", self),
            "samples": QPushButton("Samples…", self),
            "export": QPushButton("Export…", self),
            "import": QPushButton("Import…", self),
        }
        self.buttons = buttons
        grid = QGridLayout()
        for k, key in enumerate(("enrol", "samples", "rename", "merge", "delete", "export", "import")):
            grid.addWidget(buttons[key], k // 2, k % 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addLayout(grid)
        buttons["enrol"].clicked.connect(self.enrolPhotosRequested)
        buttons["rename"].clicked.connect(self._ask_rename)
        buttons["merge"].clicked.connect(self._ask_merge)
        buttons["delete"].clicked.connect(lambda: self.current() and self.delete(self.current()))
        buttons["samples"].clicked.connect(lambda: self.current() and self.show_samples(self.current()))
        buttons["export"].clicked.connect(self._ask_export)
        buttons["import"].clicked.connect(self._ask_import)
        self.list.itemDoubleClicked.connect(lambda item: self.show_samples(item.data(Qt.UserRole)))

    # -- reading ---------------------------------------------------------------------------
    def current(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    def names(self) -> list[str]:
        return [i.name for i in self.identities]

    def refresh(self) -> None:
        """Reload identities and thumbnails (worker thread), then redraw the list."""
        gallery = self._gallery()
        if gallery is None:
            self._show([], None)
            return
        self._tasks.submit(lambda: gallery.identities(thumbnails=True), lambda ids: self._show(ids, gallery),
                           self._error, name="gallery-list")

    def _show(self, identities: list[IdentitySummary], gallery: Gallery | None) -> None:
        keep = self.current()
        self.identities = identities
        self.list.clear()
        for ident in identities:
            item = QListWidgetItem(f"{ident.name}\n{ident.sample_count} sample(s)")
            item.setData(Qt.UserRole, ident.name)
            if ident.thumbnail is not None:
                item.setIcon(QIcon(to_pixmap(ident.thumbnail, THUMB)))
            self.list.addItem(item)
            if ident.name == keep:
                self.list.setCurrentItem(item)
        where = f" — {gallery.folder}" if gallery is not None else " — none open"
        count = f"{len(identities)} identit{'y' if len(identities) == 1 else 'ies'}"
        self.title.setText(f"Gallery: {count}{where}")
        self.title.setToolTip(str(gallery.folder) if gallery is not None else "")
        self.refreshed.emit()

    # -- changes ---------------------------------------------------------------------------
    def _run(self, fn, done_text: Callable[[object], str], undo: Callable[[object], Callable[[], None]] | None = None,
             name: str = "gallery") -> None:
        def done(value):
            action = ("Undo", undo(value)) if undo is not None else None
            self._notify(done_text(value), "info", action=action, timeout_ms=12000 if action else 5000)
            self.changed.emit()
            self.refresh()
        self._tasks.submit(fn, done, self._error, name=name)

    def _error(self, exc: BaseException) -> None:
        self._notify(f"gallery: {exc}", "error")
        self.refresh()

    def rename(self, old: str, new: str) -> None:
        gallery = self._gallery()
        self._run(lambda: gallery.rename(old, new), lambda _: f"Renamed {old!r} to {new!r}",
                  undo=lambda _: lambda: self.rename(new, old), name="rename")

    def merge(self, source: str, target: str) -> None:
        gallery = self._gallery()

        def work():
            snap = snapshot_identity(gallery, source)
            ids = {s.id for s in gallery.samples(source)}
            gallery.merge(source, target)
            return snap, ids

        def undo(value):
            snap, ids = value
            return lambda: self._undo_merge(snap, ids)
        self._run(work, lambda v: f"Merged {source!r} into {target!r} ({len(v[0])} samples moved)", undo, "merge")

    def _undo_merge(self, snap, ids) -> None:
        gallery = self._gallery()

        def work():
            for sid in ids:
                gallery.remove_sample(sid)
            return restore(gallery, snap)
        self._run(work, lambda n: f"Merge undone ({n} samples back)", name="undo")

    def delete(self, name: str) -> None:
        """Delete an identity; the banner offers Undo (its samples are put back)."""
        gallery = self._gallery()

        def work():
            snap = snapshot_identity(gallery, name)
            gallery.remove(name)
            return snap
        self._run(work, lambda snap: f"Deleted {name!r} ({len(snap)} samples)",
                  undo=lambda snap: lambda: self._restore(snap), name="delete")

    def remove_samples(self, sample_ids: list[int]) -> None:
        gallery = self._gallery()

        def work():
            snap = snapshot_samples(gallery, sample_ids)
            for sid in sample_ids:
                gallery.remove_sample(sid)
            return snap
        self._run(work, lambda snap: f"Removed {len(snap)} sample(s)", undo=lambda snap: lambda: self._restore(snap),
                  name="remove-samples")

    def _restore(self, snap) -> None:
        gallery = self._gallery()
        self._run(lambda: restore(gallery, snap), lambda n: f"Restored {n} sample(s)", name="undo")

    def export_to(self, path: str | Path) -> None:
        gallery = self._gallery()
        self._run(lambda: gallery.export(path, overwrite=True), lambda p: f"Gallery exported to {p}", name="export")

    def import_from(self, path: str | Path, on_clash: str = "merge") -> None:
        gallery = self._gallery()

        def text(report) -> str:
            return (f"Imported {report.samples} samples: {len(report.added)} new, {len(report.merged)} merged, "
                    f"{report.duplicates_skipped} duplicates skipped")
        self._run(lambda: gallery.import_from(path, on_clash=on_clash), text, name="import")

    # -- dialogs ---------------------------------------------------------------------------
    def _ask_rename(self) -> None:
        old = self.current()
        if old is None:
            return
        new, ok = QInputDialog.getText(self, "Rename identity", f"New name for {old}:", text=old)
        if ok and new.strip() and new.strip() != old:
            self.rename(old, new.strip())

    def _ask_merge(self) -> None:
        source = self.current()
        others = [n for n in self.names() if n != source]
        if source is None or not others:
            return
        target, ok = QInputDialog.getItem(self, "Merge identities",
                                          f"Move every sample of {source} into:", others, 0, False)
        if ok:
            self.merge(source, target)

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export gallery", folders.start_in("gallery-export.db"),
                                              "Gallery export (*.db)")
        folders.remember(path)
        if path:
            self.export_to(path)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import gallery", folders.start_in(),
                                              "Gallery export (*.db);;All files (*)")
        folders.remember(path)
        if path:
            self.import_from(path)

    def show_samples(self, name: str | None) -> "SamplesDialog | None":
        if name is None or self._gallery() is None:
            return None
        dialog = SamplesDialog(name, self._gallery(), self._tasks, self)
        dialog.removeRequested.connect(self.remove_samples)
        dialog.show()
        return dialog


class SamplesDialog(QDialog):
    """The samples of one identity (crop, quality, origin); select bad ones and remove them."""

    removeRequested = pyqtSignal(list)
    loaded = pyqtSignal()

    def __init__(self, name: str, gallery: Gallery, tasks: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Samples of {name}")
        self.list = QListWidget(self)
        self.list.setViewMode(QListView.IconMode)
        self.list.setIconSize(QSize(96, 96))
        self.list.setResizeMode(QListView.Adjust)
        self.list.setSelectionMode(QListWidget.ExtendedSelection)
        self.list.setMinimumSize(560, 320)
        remove = QPushButton("Remove selected", self)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{name}: select samples that are not this person or are poor, then remove.", self))
        layout.addWidget(self.list, 1)
        layout.addWidget(remove)
        layout.addWidget(buttons)
        remove.clicked.connect(self._remove)

        def load():
            out = []
            for s in gallery.samples(name):
                crop = gallery.sample_crop(s.id) if s.has_crop else None
                out.append((s, crop.image if crop is not None else None))
            return out
        tasks.submit(load, self._show, lambda exc: self.list.addItem(f"cannot read samples: {exc}"), name="samples")

    def _show(self, rows) -> None:
        for info, image in rows:
            quality = "?" if info.quality is None else f"{info.quality:.2f}"
            item = QListWidgetItem(f"#{info.id} q {quality}")
            item.setToolTip(f"from {info.source or '?'}; model {info.enrolled_model}")
            item.setData(Qt.UserRole, info.id)
            if image is not None:
                item.setIcon(QIcon(to_pixmap(image, 96)))
            self.list.addItem(item)
        self.loaded.emit()

    def _remove(self) -> None:
        ids = [item.data(Qt.UserRole) for item in self.list.selectedItems()]
        if ids:
            self.removeRequested.emit(ids)
            for item in self.list.selectedItems():
                self.list.takeItem(self.list.row(item))
