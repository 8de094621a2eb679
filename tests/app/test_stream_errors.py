"""A dead stream: the URL is kept (credentials masked), the message says it is a stream, and
every command says so at once instead of after the work; `soak` says why it failed."""
from __future__ import annotations

import socket
import time

import pytest

import app.commands.process as process_command
import app.commands.soak as soak_command
from main import main
from engines.errors import UserError
from app.live.soak import run_soak
from app.sources import FileSource, StreamSource
from tests.support.fakes import FakeEngine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def dead_url():
    """An RTSP URL with credentials on a local port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"rtsp://admin:hunter2@127.0.0.1:{port}/live?token=abc123", port


def _no_engine(*args, **kwargs):
    raise AssertionError("the engine must not be loaded for a dead stream")


def test_process_a_dead_stream_keeps_the_url_and_fails_before_the_engine(dead_url, tmp_path, monkeypatch, capsys):
    url, port = dead_url
    monkeypatch.setattr(process_command, "make_engine", _no_engine)
    t0 = time.perf_counter()
    code = main(["process", url, "--no-video", "--events", str(tmp_path / "e.jsonl")])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and took < 5.0
    assert err[-1] == (f"error: cannot open stream rtsp://admin:***@127.0.0.1:{port}/live?token=*** : "
                       "Connection refused (is the stream running and the URL right?)").replace(" :", ":")
    assert not any("hunter2" in line or "abc123" in line for line in err)
    assert "(check the path)" not in err[-1] and list(tmp_path.iterdir()) == []


def test_file_source_on_a_url_speaks_of_a_stream(dead_url):
    url, port = dead_url
    source = FileSource(url)
    with pytest.raises(UserError) as exc:
        source.open()
    assert str(exc.value).startswith(f"cannot open stream rtsp://admin:***@127.0.0.1:{port}/live?token=***")
    assert "hunter2" not in str(exc.value) and "video file" not in str(exc.value)


def test_screenshot_and_soak_on_a_dead_stream_fail_at_once(dead_url, tmp_path, monkeypatch, capsys):
    url, port = dead_url
    import app.engine_options as engine_process

    monkeypatch.setattr(engine_process, "make_engine_for_gui", _no_engine)
    monkeypatch.setattr(soak_command, "make_engine", _no_engine)
    for argv in (["screenshot", "--source", url, "--out", str(tmp_path / "s.png"), "--seconds", "3"],
                 ["soak", "--source", url, "--minutes", "1", "--warmup", "0"]):
        t0 = time.perf_counter()
        code = main(argv)
        took = time.perf_counter() - t0
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and took < 5.0, (argv, err)  # was 123 s for screenshot
        assert err[-1].startswith(f"error: cannot open stream rtsp://admin:***@127.0.0.1:{port}/live"), err


def test_soak_report_says_why_it_failed(dead_url):
    url, port = dead_url
    report = run_soak(StreamSource(url, max_reconnects=None), FakeEngine(), seconds=1.5, warmup=0.0,
                      sample_every=0.5)
    d = report.to_dict()
    assert d["passed"] is False and d["frames"] == 0 and d["errors"] == []
    assert d["reasons"] == [f"no frame was processed: the source reconnecting: cannot open stream "
                            f"rtsp://admin:***@127.0.0.1:{port}/live?token=***: Connection refused "
                            "(is the stream running and the URL right?)"]
