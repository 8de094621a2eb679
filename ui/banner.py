"""A non-blocking message strip at the top of the window, instead of modal message boxes:
errors stay until closed, notes fade after a few seconds, an optional action (Undo,
Retry) sits beside the text."""
from __future__ import annotations

from typing import Callable

from PyQt5.QtCore import QEvent, QTimer
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

STYLES = {
    "error": "background:#7a1f1f; color:white;",
    "warning": "background:#8a5a00; color:white;",
    "info": "background:#1f4f7a; color:white;",
}


LEVELS = {"info": 0, "warning": 1, "error": 2}


class Banner(QFrame):
    """`show_message(text, level, action=(label, callback), timeout_ms=...)`.

    It floats over the top of its parent (the window's central widget) instead of taking a
    row of the layout, so showing it never pushes the video down. A lesser message (a note)
    never covers a shown error or warning: it goes to `history` only."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.level = "info"
        self.history: list[tuple[str, str]] = []  # (level, text), newest last
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._action = QPushButton(self)
        self._action.hide()
        self._close = QPushButton("✕", self)
        self._close.setFlat(True)
        self._close.setFixedWidth(28)
        self._close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self._label, 1)
        layout.addWidget(self._action)
        layout.addWidget(self._close)
        self._callback: Callable[[], None] | None = None
        self._action.clicked.connect(self._run_action)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()
        if parent is not None:
            parent.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.parent() and event.type() == QEvent.Resize and self.isVisible():
            self._place()
        return False

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = parent.width()
        self.setGeometry(0, 0, width, self.heightForWidth(width) if self.hasHeightForWidth()
                         else self.sizeHint().height())
        self.raise_()

    def text(self) -> str:
        return self._label.text()

    def show_message(self, text: str, level: str = "error", action: tuple[str, Callable[[], None]] | None = None,
                     timeout_ms: int | None = None) -> None:
        """Show `text` (replacing what was shown); errors stay until closed unless a timeout is given."""
        if self.isVisible() and LEVELS.get(level, 0) < LEVELS.get(self.level, 0):
            self.history.append((level, text))
            del self.history[:-100]
            return
        self.level = level
        self.history.append((level, text))
        del self.history[:-100]
        self._label.setText(text)
        self.setStyleSheet(f"Banner {{ {STYLES.get(level, STYLES['info'])} }} QLabel {{ color:white; }}")
        if action is not None:
            self._action.setText(action[0])
            self._callback = action[1]
            self._action.show()
        else:
            self._callback = None
            self._action.hide()
        if timeout_ms is None:
            timeout_ms = 0 if level == "error" else 6000
        self._timer.stop()
        if timeout_ms:
            self._timer.start(timeout_ms)
        self.show()
        self._place()

    def _run_action(self) -> None:
        callback, self._callback = self._callback, None
        self.hide()
        if callback is not None:
            callback()
