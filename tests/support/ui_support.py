"""Helpers for the window tests: open a real `MainWindow` offscreen on a fake engine, wait for
frames, and check that no thread outlives the window."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.settings import Settings
from tests.support.fakes import FakeEngine

SYNTHETIC = "synthetic:size=320x240,fps=30,count=1"


def unisight_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("unisight-")]


def wait_threads_gone(timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while unisight_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    return unisight_threads()


def open_window(qtbot, tmp_path, sources, *, engine=None, settings: Settings | None = None):
    """A started window on `sources` with a fake engine and a gallery in `tmp_path`."""
    from ui.main_window import MainWindow

    settings = settings or Settings(gallery_dir=str(tmp_path / "gallery"))
    window = MainWindow(settings, sources=sources, engine=engine or FakeEngine(),
                        settings_file=tmp_path / "settings.json")
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    with qtbot.waitSignal(window.ready, timeout=15000):
        window.start()
    return window


def view_of(window, index: int = 0):
    return list(window.grid.views.values())[index]


def wait_frames(qtbot, view, n: int = 3, timeout: int = 10000) -> None:
    start = view.frames_shown
    qtbot.waitUntil(lambda: view.frames_shown >= start + n, timeout=timeout)


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(autouse=True)
def no_threads_left_behind():
    """Every window test ends with no Unisight thread left running (import it into the test module)."""
    yield
    assert wait_threads_gone() == []
