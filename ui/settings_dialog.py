"""Settings: recognition threshold and minimum face size act while they are moved; engine,
backend, input size and gallery folder take effect on OK (a new engine loads in the
background). The window saves what was accepted (`app.settings`)."""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                             QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from app.paths import default_gallery_dir
from app.gallery.recognition_defaults import default_threshold
from app.settings import ENGINES, INPUT_SIZES, Settings
from engines.backends.registry import backend_names
from ui import folders


class SettingsDialog(QDialog):
    """`thresholdChanged` / `minFaceChanged` fire live; `applied(Settings)` on OK."""

    thresholdChanged = pyqtSignal(object)  # float, or None for the engine's default
    minFaceChanged = pyqtSignal(int)
    applied = pyqtSignal(object)

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings
        engine_default = default_threshold(settings.engine)

        self.use_default = QCheckBox(f"engine default ({engine_default:.2f})", self)
        self.threshold_slider = QSlider(Qt.Horizontal, self)
        self.threshold_slider.setRange(0, 100)
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(2)
        value = settings.threshold if settings.threshold is not None else engine_default
        self.threshold.setValue(value)
        self.threshold_slider.setValue(round(value * 100))
        self.use_default.setChecked(settings.threshold is None)
        self.min_face = QSpinBox(self)
        self.min_face.setRange(0, 1000)
        self.min_face.setSuffix(" px")
        self.min_face.setValue(settings.min_face)
        self.landmarks = QCheckBox("draw the 5 landmarks", self)
        self.landmarks.setChecked(settings.show_landmarks)
        self.engine = QComboBox(self)
        self.engine.addItems(ENGINES)
        self.engine.setCurrentText(settings.engine)
        self.backend = QComboBox(self)
        self.input_size = QComboBox(self)
        self.input_size.addItem("configuration default", None)
        for w, h in INPUT_SIZES:
            self.input_size.addItem(f"{w}x{h}", (w, h))
        self.select_input_size(settings.input_size)
        self.gallery = QLineEdit(settings.gallery_dir or "", self)
        self.gallery.setPlaceholderText(str(default_gallery_dir()))
        browse = QPushButton("…", self)
        browse.setFixedWidth(32)
        self._fill_backends(settings.engine, settings.backend)

        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_slider, 1)
        threshold_row.addWidget(self.threshold)
        threshold_row.addWidget(self.use_default)
        gallery_row = QHBoxLayout()
        gallery_row.addWidget(self.gallery, 1)
        gallery_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Recognition threshold", threshold_row)
        form.addRow("Minimum face height", self.min_face)
        form.addRow("", self.landmarks)
        form.addRow("Engine", self.engine)
        form.addRow("Backend", self.backend)
        form.addRow("Input size", self.input_size)
        form.addRow("Gallery folder", gallery_row)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

        self.threshold_slider.valueChanged.connect(lambda v: self.threshold.setValue(v / 100))
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.use_default.toggled.connect(self._default_toggled)
        self.min_face.valueChanged.connect(self.minFaceChanged)
        self.engine.currentTextChanged.connect(lambda name: self._fill_backends(name, "auto"))
        browse.clicked.connect(self._browse)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self._default_toggled(self.use_default.isChecked(), emit=False)

    def select_input_size(self, size: tuple[int, int] | None) -> None:
        """Show `size` (None: the configuration's) in the input size box."""
        wanted = tuple(size) if size is not None else None
        for i in range(self.input_size.count()):
            data = self.input_size.itemData(i)
            if (tuple(data) if data is not None else None) == wanted:
                self.input_size.setCurrentIndex(i)
                return

    def _fill_backends(self, engine: str, current: str) -> None:
        self.backend.clear()
        self.backend.addItems(backend_names(engine))
        self.backend.setCurrentText(current if current in backend_names(engine) else "auto")
        self.input_size.setEnabled(engine == "uniface")

    def _threshold_moved(self, value: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(value * 100))
        self.threshold_slider.blockSignals(False)
        if not self.use_default.isChecked():
            self.thresholdChanged.emit(float(value))

    def _default_toggled(self, checked: bool, emit: bool = True) -> None:
        self.threshold.setEnabled(not checked)
        self.threshold_slider.setEnabled(not checked)
        if emit:
            self.thresholdChanged.emit(None if checked else float(self.threshold.value()))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Gallery folder", self.gallery.text() or folders.start_in())
        folders.remember(folder)
        if folder:
            self.gallery.setText(folder)

    def chosen(self) -> Settings:
        """The settings as the dialog shows them."""
        return self.original.copy(
            threshold=None if self.use_default.isChecked() else round(float(self.threshold.value()), 3),
            min_face=int(self.min_face.value()),
            show_landmarks=self.landmarks.isChecked(),
            engine=self.engine.currentText(),
            backend=self.backend.currentText(),
            input_size=(tuple(self.input_size.currentData()) if self.input_size.currentData() is not None
                        and self.engine.currentText() == "uniface" else None),
            gallery_dir=self.gallery.text().strip() or None,
        )

    def accept(self) -> None:
        self.applied.emit(self.chosen())
        super().accept()

    def reject(self) -> None:
        """Put back what was moved live."""
        self.thresholdChanged.emit(self.original.threshold)
        self.minFaceChanged.emit(self.original.min_face)
        super().reject()
