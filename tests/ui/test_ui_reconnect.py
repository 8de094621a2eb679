"""A live source that drops its connection shows the reconnecting state and recovers."""
import pytest

from app.sources import SourceState
from tests.support.fakes import flaky_source
from tests.support.ui_support import no_threads_left_behind, open_window, view_of, wait_frames  # noqa: F401  (no_threads_left_behind: an autouse fixture)

pytestmark = pytest.mark.timeout(120)



def test_a_failing_source_shows_reconnecting_and_recovers(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [])
    made = []

    def factory(spec, source_id):
        # 20 frames, then the connection drops; 40 refused attempts (~1 s) before it comes back
        made.append(flaky_source(sessions=(20, None), failed_connects=40, size=(160, 120), interval=1 / 30,
                                 source_id=source_id))
        return made[-1]
    window.session.source_factories["flaky:"] = factory
    sid = window.add_source("flaky:cam")
    view = view_of(window)
    wait_frames(qtbot, view, 5)
    qtbot.waitUntil(lambda: view.state == SourceState.RECONNECTING, timeout=5000)
    assert "connection lost" in view.message or "OSError" in view.message
    shown = view.frames_shown
    image = view.grab().toImage()  # the state is drawn over the last picture
    centre = image.pixelColor(view.width() // 2, view.height() // 2)
    assert centre.red() < 60 and centre.green() < 60  # the dark strip behind "reconnecting…"
    assert any(level == "warning" and "reconnecting" in text for level, text in window.banner.history)
    qtbot.waitUntil(lambda: view.state == SourceState.LIVE, timeout=10000)
    wait_frames(qtbot, view, 10)
    assert view.frames_shown > shown and made[0].reconnects == 1
    assert any("reconnected" in text for _, text in window.banner.history)
    assert [e.state for e in window.session.entries] == [SourceState.LIVE]
    assert sid == "flaky:cam"
