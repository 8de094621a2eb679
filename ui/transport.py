"""Player controls for the selected source: play/pause, step, step back, seek (files), stop
and start everything, record the annotated view."""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QStyle, QStyleOptionSlider, QWidget

SLIDER_STEPS = 1000


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, sec = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{sec:04.1f}"


class SeekSlider(QSlider):
    """A slider whose groove jumps where it is clicked (QSlider's own click moves one page),
    then drags from there; `clickedTo(value)` says where it jumped."""

    clickedTo = pyqtSignal(int)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.LeftButton and self.isEnabled():
            opt = QStyleOptionSlider()
            self.initStyleOption(opt)
            handle = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderHandle, self)
            if not handle.contains(event.pos()):
                groove = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderGroove, self)
                span = max(1, groove.width() - handle.width())
                x = event.pos().x() - groove.x() - handle.width() // 2
                value = QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), x, span, opt.upsideDown)
                self.setSliderPosition(value)  # the handle is under the cursor now: a press on it drags
                self.clickedTo.emit(value)
        super().mousePressEvent(event)


class TransportBar(QWidget):
    """Signals carry no source id: the window applies them to the selected source."""

    playPause = pyqtSignal()
    step = pyqtSignal()
    stepBack = pyqtSignal()
    seek = pyqtSignal(float)
    loopChanged = pyqtSignal(bool)
    startStop = pyqtSignal()
    record = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.start_stop = QPushButton("■ Stop", self)
        self.start_stop.setToolTip("stop / start every source")
        self.back = QPushButton("◀❚", self)
        self.back.setToolTip("previous frame")
        self.play = QPushButton("❚❚", self)
        self.play.setToolTip("pause / play")
        self.forward = QPushButton("❚▶", self)
        self.forward.setToolTip("next frame")
        self.slider = SeekSlider(Qt.Horizontal, self)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(120)  # a narrow window squeezes the labels, never the slider away
        self.time = QLabel("--:-- / --:--", self)
        self.time.setMinimumWidth(self.time.fontMetrics().horizontalAdvance("00:00.0 / 00:00.0") + 6)
        self.loop = QCheckBox("loop", self)
        self.rec = QPushButton("● Rec", self)
        self.rec.setToolTip("record the annotated view")
        self.rec.setCheckable(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.start_stop, self.back, self.play, self.forward):
            w.setMinimumWidth(44)
            layout.addWidget(w)
        for w, longest in ((self.start_stop, "▶ Start"), (self.rec, "■ Rec")):  # never cut ("Stop a…")
            w.setMinimumWidth(w.fontMetrics().horizontalAdvance(longest) + 20)
        for w in (self.start_stop, self.back, self.play, self.forward, self.rec, self.loop, self.slider):
            w.setFocusPolicy(Qt.NoFocus)  # Space and the arrows are the window's shortcuts, never a button's
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.time)
        layout.addWidget(self.loop)
        layout.addWidget(self.rec)
        self._duration: float | None = None
        self._dragging = False
        self.start_stop.clicked.connect(self.startStop)
        self.back.clicked.connect(self.stepBack)
        self.play.clicked.connect(self.playPause)
        self.forward.clicked.connect(self.step)
        self.rec.clicked.connect(self.record)
        self.loop.toggled.connect(self.loopChanged)
        self.slider.sliderPressed.connect(self._pressed)
        self.slider.sliderReleased.connect(self._released)
        self.slider.actionTriggered.connect(self._action)
        self.slider.clickedTo.connect(self._clicked_to)
        self._jumped_to: int | None = None

    def _pressed(self) -> None:
        self._dragging = True

    def _clicked_to(self, value: int) -> None:
        if self._duration:
            self._jumped_to = value
            self.seek.emit(value / SLIDER_STEPS * self._duration)

    def _released(self) -> None:
        self._dragging = False
        jumped, self._jumped_to = self._jumped_to, None
        if self._duration and self.slider.value() != jumped:  # a click alone has sought already
            self.seek.emit(self.slider.value() / SLIDER_STEPS * self._duration)

    def _action(self, action: int) -> None:
        """A click on the groove or a key press (a drag is handled on release)."""
        if not self._dragging and self._duration and action != QSlider.SliderMove:
            self.seek.emit(self.slider.sliderPosition() / SLIDER_STEPS * self._duration)

    def update_state(self, *, playing: bool, paused: bool, seekable: bool, position: float | None,
                     duration: float | None, loop: bool, recording: bool, has_source: bool) -> None:
        """Show the selected source's state (called a few times a second)."""
        self.start_stop.setText("■ Stop" if playing else "▶ Start")
        self.play.setText("▶" if paused else "❚❚")
        for w in (self.back, self.forward, self.slider, self.loop):
            w.setEnabled(seekable and playing)
        self.play.setEnabled(has_source and playing)
        self.rec.setEnabled(has_source and playing)
        self.rec.setChecked(recording)
        self.rec.setText("■ Rec" if recording else "● Rec")
        self.rec.setToolTip("stop recording" if recording else "record the annotated view")
        self._duration = duration if seekable else None
        if self.loop.isChecked() != loop:
            self.loop.blockSignals(True)
            self.loop.setChecked(loop)
            self.loop.blockSignals(False)
        if seekable and duration and not self._dragging and position is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(min(1.0, position / duration) * SLIDER_STEPS)))
            self.slider.blockSignals(False)
        self.time.setText(f"{clock(position)} / {clock(duration)}" if seekable else "live")
