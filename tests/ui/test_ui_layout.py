"""Layout at desk sizes and the smaller operator complaints: the banner floats, 1024 x 600
fits, a missing file's error stays visible, Open greys out at 4 sources, recording names,
a threshold belongs to its engine, a failed engine switch shows what still runs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PyQt5.QtCore import QPoint

from tests.support.ui_support import (  # noqa: F401  (no_threads_left_behind: an autouse fixture)
    SYNTHETIC, no_threads_left_behind, open_window, view_of, wait_frames)
from tests.support.paths import SAMPLE_VIDEO

pytestmark = pytest.mark.timeout(120)


def test_banner_floats_and_the_window_is_usable_at_1024_by_600(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [str(SAMPLE_VIDEO)])
    window.resize(1024, 600)
    view = view_of(window)
    wait_frames(qtbot, view, 3)
    qtbot.wait(100)
    top = window.grid.mapTo(window, QPoint(0, 0)).y()
    window.notify("something went wrong " * 3, "error")
    qtbot.wait(50)
    assert window.banner.isVisible() and window.banner.y() == 0
    assert window.grid.mapTo(window, QPoint(0, 0)).y() == top  # the banner did not push the video down
    transport = window.transport
    assert transport.slider.width() >= 120
    for w in (transport.start_stop, transport.back, transport.play, transport.forward, transport.rec, transport.time):
        assert w.width() >= w.fontMetrics().horizontalAdvance(w.text()) + 6, w.text()  # the text is not cut
    assert transport.loop.width() >= transport.loop.sizeHint().width()
    assert view.width() >= 600 and view.height() >= 300
    window.close()


def test_a_missing_file_given_at_start_leaves_its_error_visible(qtbot, tmp_path):
    missing = tmp_path / "nowhere.mp4"
    window = open_window(qtbot, tmp_path, [SYNTHETIC, str(missing)])
    assert window.banner.isVisible() and window.banner.level == "error"
    assert "video not found" in window.banner.text() and "nowhere.mp4" in window.banner.text()
    window.notify("a passing note", "info")  # a note does not cover the error
    assert "video not found" in window.banner.text()
    window.close()


def test_recordings_are_named_after_the_clip_without_its_extension():
    from ui.controllers import recording_path

    assert recording_path("clip.mp4", when=0).name.startswith("clip-19700101-")
    assert recording_path("camera 0", when=0).name.startswith("camera_0-")


def test_threshold_belongs_to_its_engine_and_a_failed_switch_shows_what_runs(qtbot, tmp_path, monkeypatch):
    from engines.engine import EngineInfo
    from engines.errors import EngineUnavailable
    from tests.support.fakes import FakeEngine

    def fake_make_engine(args):
        if args.backend == "torch":
            raise EngineUnavailable("torch is not installed here")
        engine = FakeEngine()
        engine.info = EngineInfo(engine=args.engine, backend=args.backend, device="cpu", model_id="fake-1")
        return engine
    monkeypatch.setattr("app.engine_options.make_engine", fake_make_engine)
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    wait_frames(qtbot, view_of(window), 2)
    window.preferences.apply_settings(dataclasses.replace(window.settings, threshold=0.5))
    assert window.settings.threshold == 0.5
    with qtbot.waitSignal(window.reconfigured, timeout=10000):
        window.preferences.apply_settings(dataclasses.replace(window.settings, engine="cascade", backend="auto"))
    assert window.settings.engine == "cascade" and window.settings.threshold is None  # cascade's own
    qtbot.waitUntil(lambda: window.session.engine.info.engine == "cascade", timeout=10000)  # swapped in
    before = window.settings
    window.preferences.apply_settings(dataclasses.replace(before, engine="uniface", backend="torch"))
    qtbot.waitUntil(lambda: "engine not started" in window.banner.text(), timeout=10000)
    assert window.settings == before  # the settings show what still runs, not what failed
    assert "still running cascade" in window.banner.text()
    window.close()
