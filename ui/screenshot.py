"""Drive the real window offscreen for a while, measure how smoothly it ran, save a PNG of it
(the Qt half of `main.py screenshot`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from PyQt5.QtCore import QEventLoop, Qt, QTimer
from PyQt5.QtGui import QImage

from engines.errors import UserError


@dataclass(slots=True)
class ScreenshotRequest:
    """What to play and what to save."""

    sources: list[tuple[str, bool]]  # (spec, loop)
    out: Path
    seconds: float
    starts: list[float] = field(default_factory=list)  # seek positions: none, one for all, or one per source
    min_frames: int = 0
    tab: int = 0  # side panel index to show
    size: tuple[int, int] = (1280, 760)
    max_kb: int = 300


def take_screenshot(settings, engine, request: ScreenshotRequest) -> tuple[str, dict]:
    """Open the window on `request.sources`, play, measure, save; returns (how saved, figures)."""
    from ui.app import application
    from ui.main_window import MainWindow

    app = application()
    starts = request.starts
    window = MainWindow(settings, sources=request.sources, engine=engine, persist=False)
    window.resize(*request.size)
    window.show()
    try:
        window.start()
        if not _wait(lambda: window.session is not None, 120):
            raise UserError("the engine or gallery did not load: " + window.banner.text())
        expected = len(request.sources)
        if not _wait(lambda: len(window.grid.views) == expected and all(
                v.frames_shown > 0 for v in window.grid.views.values()), 120):
            raise UserError("no frame reached the window: " + window.banner.text())
        for k, sid in enumerate(window.grid.views):
            if starts:
                window.session.seek(sid, starts[k] if len(starts) > 1 else starts[0])
        _wait(lambda: False, 0.5)  # let a seek land and the first paint settle
        figures = _measure(window, request.seconds, request.min_frames)
        window.activity.refresh_events()
        _wait(lambda: window.tasks.busy == 0, 10)
        window.activity.refresh_events()
        window.tabs.setCurrentIndex(request.tab)
        _wait(lambda: False, 0.3)
        saved = _save(window.grab().toImage(), request.out, request.max_kb)
    finally:
        window.shutdown()
        window.deleteLater()
        app.processEvents()
    return saved, figures


def _wait(predicate, seconds: float) -> bool:
    """Run the Qt event loop until `predicate()` or `seconds` pass; returns the predicate."""
    deadline = time.monotonic() + seconds
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)

    def check():
        if predicate() or time.monotonic() >= deadline:
            loop.quit()
    poll.timeout.connect(check)
    poll.start()
    if not predicate():
        loop.exec_()
    poll.stop()
    return bool(predicate())


def _measure(window, seconds: float, min_frames: int = 0) -> dict:
    """Play `seconds` with fresh tick-gap figures; frame counts are taken before and after.
    `min_frames`: then keep playing until every view showed that many new frames."""
    def counts():
        stats = window.session.stats()
        return {sid: (view.frames_shown, stats.sources[sid].captured if stats and sid in stats.sources else 0,
                      stats.sources[sid].processed if stats and sid in stats.sources else 0)
                for sid, view in window.grid.views.items()}

    before = counts()
    window.pump.meter.reset()
    t0 = time.monotonic()
    _wait(lambda: False, seconds)
    if min_frames > 0:
        _wait(lambda: all(v.frames_shown - before[sid][0] >= min_frames for sid, v in window.grid.views.items()),
              300)
    elapsed = time.monotonic() - t0
    after = counts()
    metrics = window.activity.metrics()
    for sid, s in metrics["sources"].items():
        b, a = before.get(sid, (0, 0, 0)), after.get(sid, (0, 0, 0))
        s["display_fps"] = round((a[0] - b[0]) / elapsed, 2)
        s["capture_fps"] = round((a[1] - b[1]) / elapsed, 2)
        s["processed_fps"] = round((a[2] - b[2]) / elapsed, 2)
    metrics["seconds"] = round(elapsed, 2)
    return metrics


def _save(image, path: Path, max_kb: int) -> str:
    """Save `image` as PNG within `max_kb` when possible: full colour, else 256 colours, else
    smaller. Returns how it was saved."""
    if not image.save(str(path), "PNG", 0):
        raise UserError(f"cannot write {path}")
    if path.stat().st_size <= max_kb * 1024:
        return "full colour"
    indexed = image.convertToFormat(QImage.Format_Indexed8, Qt.DiffuseDither)
    indexed.save(str(path), "PNG", 0)
    scale = 1.0
    while path.stat().st_size > max_kb * 1024 and scale > 0.5:
        scale -= 0.1
        smaller = image.scaled(int(image.width() * scale), int(image.height() * scale), Qt.KeepAspectRatio,
                               Qt.SmoothTransformation).convertToFormat(QImage.Format_Indexed8, Qt.DiffuseDither)
        smaller.save(str(path), "PNG", 0)
    return "256 colours" + (f", scaled {scale:.1f}" if scale < 1.0 else "")
