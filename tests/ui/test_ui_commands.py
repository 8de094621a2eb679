"""`main.py screenshot`, `main.py gui` options, and the headless fallback of `main.py`."""
import json

import pytest

from main import build_parser, main
from app.paths import SAMPLE_VIDEO
from tests.support.fakes import FakeEngine, make_video
from tests.support.ui_support import wait_threads_gone

pytestmark = pytest.mark.timeout(180)


def test_screenshot_saves_the_window_and_reports_smoothness(qapp, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("app.engine_options.make_engine", lambda args: FakeEngine())
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=90, fps=30, size=(320, 240))
    out = tmp_path / "shot.png"
    code = main(["screenshot", "--source", str(clip), "--out", str(out), "--seconds", "1.5", "--json",
                 "--gallery", str(tmp_path / "gallery"), "--size", "960x600"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["png_kb"] <= 300 and report["window"] == [960, 600]
    assert 0 < report["max_tick_gap_ms"] < 50  # the GUI thread never stalled
    src = report["sources"]["clip.mp4"]
    assert src["source_fps"] == 30.0 and src["display_fps"] > 20
    from PyQt5.QtGui import QImage

    image = QImage(str(out))
    assert (image.width(), image.height()) == (960, 600)
    assert wait_threads_gone() == []


def test_screenshot_refuses_bad_arguments(tmp_path, capsys):
    assert main(["screenshot", "--source", "x.mp4", "--out", str(tmp_path / "a.jpg")]) == 2
    assert "png" in capsys.readouterr().err


def test_gui_accepts_sources_gallery_and_engine_options():
    args = build_parser().parse_args(["gui", "--source", "0", "--source", "clip.mp4", "--gallery", "/g",
                                      "--engine", "cascade", "--loop"])
    assert args.source == ["0", "clip.mp4"] and args.engine == "cascade" and args.loop
    plain = build_parser().parse_args(["gui"])
    assert plain.engine is None and plain.backend is None  # not given: the saved settings decide


def test_main_without_a_display_processes_the_sample_video(tmp_path, monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UNISIGHT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("app.engine_options.make_engine", lambda args: FakeEngine())
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no display")
    video = tmp_path / "data" / "sample-run" / f"{SAMPLE_VIDEO.stem}.annotated.mp4"
    events = tmp_path / "data" / "sample-run" / f"{SAMPLE_VIDEO.stem}.events.jsonl"
    assert f"video:  {video}" in out and f"events: {events}" in out
    assert out.strip().endswith(f"the annotated video and the event log are in {video.parent}")
    assert video.stat().st_size > 10_000 and events.read_text().count('"appearance"') >= 1
