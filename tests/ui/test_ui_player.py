"""Player and sources: one selection followed by the list and the tiles, Remove acts on it
(with Undo), click-to-seek, media time from 0, keyboard shortcuts and their Help list."""
from __future__ import annotations

from pathlib import Path

import pytest
from PyQt5.QtCore import QPoint, Qt
from PyQt5.QtGui import QKeySequence

from app.sources.playback import PlayableFile
from tests.support.ui_support import (  # noqa: F401  (no_threads_left_behind: an autouse fixture)
    SYNTHETIC, no_threads_left_behind, open_window, view_of, wait_frames)
from tests.support.paths import SAMPLE_VIDEO

pytestmark = pytest.mark.timeout(120)


def _row_of(panel, source_id):
    return next(i for i in range(panel.list.count()) if panel.list.item(i).data(Qt.UserRole) == source_id)


def test_remove_source_acts_on_the_selected_one_chosen_either_way(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [SYNTHETIC, str(SAMPLE_VIDEO)])
    panel, grid = window.sources_panel, window.grid
    synthetic, clip = list(grid.views)
    for view in grid.views.values():
        wait_frames(qtbot, view, 2)
    # pick the synthetic tile with the mouse: the list follows
    qtbot.mouseClick(grid.views[synthetic], Qt.LeftButton, pos=QPoint(5, 5))
    assert window.selection.current == synthetic == grid.current == panel.selected_id
    assert panel.list.currentRow() == _row_of(panel, synthetic)
    window._refresh_sources()  # the list is rebuilt every few ticks: the selection survives it
    assert panel.list.currentRow() == _row_of(panel, synthetic)
    qtbot.mouseClick(panel.remove, Qt.LeftButton)
    assert list(grid.views) == [clip] and window.session.entry(synthetic) is None  # the synthetic one went
    assert "removed " + synthetic in window.banner.text()
    # Undo brings it back
    window.banner._action.click()
    qtbot.waitUntil(lambda: len(grid.views) == 2, timeout=5000)
    restored = [sid for sid in grid.views if sid != clip][0]
    wait_frames(qtbot, grid.views[restored], 2)
    # now pick the clip in the list: the tiles follow, and Delete removes the clip
    panel.list.setCurrentRow(_row_of(panel, clip))
    assert window.selection.current == clip == grid.current
    assert grid.views[clip].selected and not grid.views[restored].selected
    window.shortcut_actions["Delete"].trigger()
    assert list(grid.views) == [restored] and window.session.entry(clip) is None
    assert window.selection.current == restored == panel.selected_id
    window.close()


def test_click_on_the_slider_groove_seeks_there_and_the_clock_starts_at_zero(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [str(SAMPLE_VIDEO)])
    view = view_of(window)
    wait_frames(qtbot, view, 3)
    assert view.result.frame.media_time < 1.0  # the clip's first frame is at 0.85 s in the file
    window.shortcut_actions["Space"].trigger()  # pause
    qtbot.waitUntil(lambda: window.session.entry(view.source_id).is_paused, timeout=3000)
    slider = window.transport.slider
    qtbot.wait(500)  # the pause has settled (the source's pipeline slot is rebuilt)
    qtbot.waitUntil(lambda: slider.isEnabled() and bool(window.transport._duration), timeout=3000)
    duration = window.session.entry(view.source_id).duration
    seeks = []
    window.transport.seek.connect(seeks.append)
    qtbot.mouseClick(slider, Qt.LeftButton, pos=QPoint(slider.width() * 3 // 4, slider.height() // 2))  # 3/4 along
    assert len(seeks) == 1  # one seek per click (press and release do not both seek)
    expected = seeks[0]
    assert 0.6 < expected / duration < 0.9  # jumped there, not one page (1%)
    qtbot.waitUntil(lambda: abs(view.result.frame.media_time - expected) < 0.1, timeout=5000)
    # the end of the file: the clock never reads past the duration
    window.transport.seek.emit(duration)
    qtbot.waitUntil(lambda: view.result.frame.media_time > duration - 0.2, timeout=5000)
    qtbot.wait(300)
    position, total = window.transport.time.text().split(" / ")
    assert position <= total, window.transport.time.text()
    assert view.result.frame.media_time <= duration
    # arrows step, Space plays on
    index = view.result.frame.index
    window.shortcut_actions["Left"].trigger()
    qtbot.waitUntil(lambda: view.result.frame.index != index, timeout=5000)
    window.close()


def test_playable_file_media_time_is_zero_at_the_first_frame():
    source = PlayableFile(SAMPLE_VIDEO)
    source.open()
    try:
        first = source.read()
        assert first.media_time == 0.0
        source.seek(source.info.duration)
        last = source.read()
        assert 0 < last.media_time <= source.info.duration
    finally:
        source.close()


def test_shortcuts_and_their_help_and_no_button_takes_space(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [str(SAMPLE_VIDEO)])
    from ui.window_controls import SHORTCUTS

    for key, _ in SHORTCUTS:
        assert window.shortcut_actions[key].shortcut() == QKeySequence(key)
    dialog = window.toolbar.show_shortcuts()
    text = dialog.findChildren(type(window.status_label))[0].text()
    assert all(key in text for key, _ in SHORTCUTS)
    dialog.close()
    transport = window.transport
    assert all(w.focusPolicy() == Qt.NoFocus for w in (transport.back, transport.play, transport.forward))
    view = view_of(window)
    wait_frames(qtbot, view, 2)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    transport.back.setFocus()  # it could not take focus, so Space still goes to the window
    qtbot.keyClick(window, Qt.Key_Space)
    qtbot.waitUntil(lambda: window.session.entry(view.source_id).is_paused, timeout=3000)
    qtbot.keyClick(window, Qt.Key_Space)
    qtbot.waitUntil(lambda: not window.session.entry(view.source_id).is_paused, timeout=3000)
    window.close()
