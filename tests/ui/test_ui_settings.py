"""Settings: the threshold changes decisions at once, the minimum face size, persistence."""
import json

import numpy as np
import pytest

from app.gallery.store import Gallery, NewSample
from app.settings import Settings, load_settings, save_settings
from tests.support.ui_support import (  # noqa: F401  (no_threads_left_behind: an autouse fixture)
    SYNTHETIC, no_threads_left_behind, open_window, unit, view_of, wait_frames)

pytestmark = pytest.mark.timeout(120)



def _enrol_alice_at(folder, cosine: float) -> None:
    """Alice's one sample has cosine `cosine` with the fake engine's face embedding (e0)."""
    e = np.eye(128, dtype=np.float32)
    with Gallery(folder) as g:
        g.add_samples("Alice", [NewSample(embedding=unit(cosine * e[0] + np.sqrt(1 - cosine ** 2) * e[1]))], "fake-1")


def _names(view):
    return view.result.faces.names if view.result is not None else None


def test_changing_the_threshold_in_settings_changes_decisions_at_once(qtbot, tmp_path):
    _enrol_alice_at(tmp_path / "gallery", 0.8)
    settings = Settings(gallery_dir=str(tmp_path / "gallery"), threshold=0.7)
    window = open_window(qtbot, tmp_path, [SYNTHETIC], settings=settings)
    view = view_of(window)
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=10000)
    assert view.result.faces.similarities[0] == pytest.approx(0.8, abs=1e-4)
    dialog = window.preferences.open_settings()
    assert not dialog.use_default.isChecked() and dialog.threshold.value() == pytest.approx(0.7)
    dialog.threshold_slider.setValue(90)  # dragging the slider acts while the dialog is open
    qtbot.waitUntil(lambda: _names(view) == [None], timeout=3000)
    wait_frames(qtbot, view, 3)
    assert window.session.recognizer.threshold == pytest.approx(0.9)
    dialog.threshold.setValue(0.75)
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=3000)
    dialog.threshold.setValue(0.85)
    qtbot.waitUntil(lambda: _names(view) == [None], timeout=3000)
    dialog.accept()  # OK keeps it, and it is remembered
    qtbot.waitUntil(lambda: (tmp_path / "settings.json").exists(), timeout=3000)
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["threshold"] == 0.85
    assert load_settings(tmp_path / "settings.json").threshold == 0.85


def test_cancel_puts_the_threshold_back(qtbot, tmp_path):
    _enrol_alice_at(tmp_path / "gallery", 0.8)
    window = open_window(qtbot, tmp_path, [SYNTHETIC],
                         settings=Settings(gallery_dir=str(tmp_path / "gallery"), threshold=0.7))
    view = view_of(window)
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=10000)
    dialog = window.preferences.open_settings()
    dialog.threshold.setValue(0.95)
    qtbot.waitUntil(lambda: _names(view) == [None], timeout=3000)
    dialog.reject()
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=3000)
    assert not (tmp_path / "settings.json").exists()


def test_faces_below_the_minimum_size_are_neither_tracked_nor_named(qtbot, tmp_path):
    _enrol_alice_at(tmp_path / "gallery", 1.0)
    window = open_window(qtbot, tmp_path, [SYNTHETIC], settings=Settings(gallery_dir=str(tmp_path / "gallery")))
    view = view_of(window)
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=10000)
    dialog = window.preferences.open_settings()
    dialog.min_face.setValue(150)  # the fake face is 96 px high
    qtbot.waitUntil(lambda: _names(view) == [None], timeout=3000)
    faces = view.result.faces
    assert faces.track_ids[0] == -1 and bool(faces.extra["small"][0])
    from ui.overlay import face_label

    assert face_label(faces, 0, "low_quality") == "small"
    dialog.min_face.setValue(40)
    qtbot.waitUntil(lambda: _names(view) == ["Alice"], timeout=3000)
    dialog.close()


def test_a_new_engine_from_the_settings_takes_over(qtbot, tmp_path, monkeypatch):
    from tests.support.fakes import FakeEngine
    from engines.engine import EngineInfo

    made = []

    def fake_make_engine(args):
        engine = FakeEngine(faces_per_image=2)
        engine.info = EngineInfo(engine=args.engine, backend="numpy", device="cpu", model_id="fake-1")
        made.append(args)
        return engine
    monkeypatch.setattr("app.engine_options.make_engine", fake_make_engine)
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    view = view_of(window)
    wait_frames(qtbot, view, 3)
    assert len(view.result.faces) == 1
    dialog = window.preferences.open_settings()
    dialog.engine.setCurrentText("cascade")
    assert dialog.backend.currentText() == "auto" and not dialog.input_size.isEnabled()
    assert dialog.backend.findText("opencv+onnxruntime") >= 0
    dialog.engine.setCurrentText("uniface")
    dialog.select_input_size((480, 352))
    assert dialog.input_size.currentText() == "480x352"
    with qtbot.waitSignal(window.reconfigured, timeout=10000):
        dialog.accept()
    assert made[-1].engine == "uniface" and made[-1].input_size == (480, 352)
    qtbot.waitUntil(lambda: view.result is not None and len(view.result.faces) == 2, timeout=10000)
    qtbot.waitUntil(lambda: "uniface/numpy" in window.status_label.text(), timeout=3000)


def test_settings_file_round_trip_and_damage(tmp_path):
    path = tmp_path / "s.json"
    assert load_settings(path) == Settings()
    s = Settings(threshold=0.8, min_face=40, engine="cascade", input_size=(480, 352), gallery_dir="/g")
    save_settings(s, path)
    assert load_settings(path) == s
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text(json.dumps({"threshold": 7, "future_key": 1}))
    assert load_settings(path) == Settings()  # a bad value: the defaults, never a crash
    path.write_text(json.dumps({"min_face": 30, "future_key": 1}))
    assert load_settings(path).min_face == 30
    with pytest.raises(ValueError):
        Settings(input_size=(500, 300))
