"""Video sources on real files made with PyAV, a local HTTP stream, and a flaky live source."""
import functools
import http.server
import logging
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from engines.errors import UserError
from app.sources import (
    Backoff,
    CameraSource,
    FileSource,
    SourceError,
    SourceState,
    StreamSource,
    SyntheticSource,
    mask_url,
    open_source,
)
from tests.support.fakes import flaky_source, make_video, probe


def _states(source):
    events = []
    source.add_listener(events.append)
    return events


def test_file_source_reads_every_frame_with_media_times(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=24, fps=12, size=(96, 64))
    src = open_source(str(path))
    events = _states(src)
    src.open()
    assert (src.info.width, src.info.height, src.info.frame_count) == (96, 64, 24)
    assert src.info.rate == Fraction(12) and src.info.fps == 12.0
    frames = list(src)
    assert [f.index for f in frames] == list(range(24))
    assert np.allclose([f.media_time for f in frames], np.arange(24) / 12)
    assert frames[0].image.shape == (64, 96, 3) and frames[0].image.dtype == np.uint8
    assert all(b.capture_time >= a.capture_time for a, b in zip(frames, frames[1:]))
    assert [e.state for e in events] == [SourceState.CONNECTING, SourceState.LIVE, SourceState.ENDED]
    assert not src.truncated
    src.close()


def test_vfr_media_times_follow_the_file(tmp_path):
    path = tmp_path / "vfr.mp4"
    make_video(path, frames=12, gaps=[33, 50, 17, 100])
    expected = probe(path)
    src = FileSource(path)
    src.open()
    times = [f.media_time for f in src]
    assert [round(t / float(expected["time_base"])) for t in times] == expected["pts"]
    src.close()


def test_rotated_phone_video_comes_out_upright(tmp_path):
    path = tmp_path / "phone.mp4"
    make_video(path, frames=3, size=(64, 32), rotation=90)  # stored landscape, shown turned 90 ccw
    src = FileSource(path)
    src.open()
    frames = list(src)
    assert frames[0].image.shape == (64, 32, 3)
    assert (src.info.width, src.info.height) == (32, 64) and src.rotation == 90
    # the white square along the stored top edge is now along the left edge
    assert frames[0].image[:, :20].max() > 200 and frames[0].image[:, 24:].max() < 200


def test_looping_file_keeps_time_increasing(tmp_path):
    path = tmp_path / "loop.mp4"
    make_video(path, frames=10, fps=10)
    src = open_source(path.as_posix(), loop=True)
    src.open()
    frames = [src.read() for _ in range(25)]
    src.close()
    assert [f.index for f in frames] == list(range(25))
    times = np.array([f.media_time for f in frames])
    assert np.allclose(np.diff(times), 0.1)  # 0.0 ... 2.4 with no jump back at the loop points
    assert src.state == SourceState.LIVE


def test_realtime_file_is_paced_by_media_time(tmp_path):
    path = tmp_path / "paced.mp4"
    make_video(path, frames=6, fps=20)
    src = FileSource(path, realtime=True)
    src.open()
    t0 = time.monotonic()
    assert len(list(src)) == 6
    assert time.monotonic() - t0 >= 0.2  # 5 gaps of 50 ms
    assert src.info.realtime


def test_truncated_file_is_read_up_to_the_damage(tmp_path):
    path = tmp_path / "whole.mp4"
    make_video(path, frames=60, faststart=True)  # index first: the data can be cut
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    src = FileSource(cut)
    events = _states(src)
    src.open()
    frames = list(src)
    assert 0 < len(frames) < 60
    assert src.truncated and src.state == SourceState.FAILED
    assert events[-1].state == SourceState.FAILED and events[-1].message
    src.close()


def test_unreadable_files_give_one_line_errors(tmp_path):
    path = tmp_path / "whole.mp4"
    make_video(path, frames=30)  # index at the end: a cut file cannot even be opened
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(SourceError, match="cannot open video .*cut.mp4"):
        FileSource(cut).open()
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(UserError, match="cannot open video"):
        FileSource(tmp_path / "notes.mp4").open()
    with pytest.raises(UserError, match="video not found"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(UserError, match="directory"):
        open_source(str(tmp_path))
    with pytest.raises(UserError, match="empty video source"):
        open_source("")
    with pytest.raises(UserError, match="unsupported URL scheme"):
        open_source("gopher://host/x")


def test_open_source_parses_specs(tmp_path):
    assert isinstance(open_source("0"), CameraSource) and open_source(3).index == 3
    s = open_source("rtsp://admin:hunter2@10.1.2.3:554/live?channel=1")
    assert isinstance(s, StreamSource)
    assert "hunter2" not in s.info.name and "hunter2" not in s.source_id
    assert s.options["rtsp_transport"] == "tcp" and s.options["fflags"] == "nobuffer"
    assert s.options["timeout"] == "5000000" and s.info.realtime
    assert isinstance(open_source("https://example.com/videos/clip.mp4"), FileSource)
    assert isinstance(open_source("http://example.com/live"), StreamSource)
    syn = open_source("synthetic:size=160x120,fps=50,frames=3,count=1,realtime=0")
    assert isinstance(syn, SyntheticSource) and (syn.info.width, syn.info.height) == (160, 120)
    with pytest.raises(UserError, match="unknown synthetic option"):
        open_source("synthetic:colour=red")


def test_mask_url_hides_passwords_and_secret_parameters():
    assert mask_url("rtsp://user:pa:ss@cam.local:554/s1") == "rtsp://user:***@cam.local:554/s1"
    assert mask_url("rtsp://user@cam/s") == "rtsp://user@cam/s"
    masked = mask_url("http://cam/video.cgi?user=admin&password=secret&token=abc&res=hd")
    assert "secret" not in masked and "abc" not in masked and "res=hd" in masked and "user=admin" in masked
    assert mask_url("/videos/a.mp4") == "/videos/a.mp4"
    assert mask_url("0") == "0"


def test_backoff_doubles_to_the_maximum_with_jitter():
    b = Backoff(initial=0.5, maximum=10.0, jitter=0.25)
    delays = [b.next() for _ in range(8)]
    bases = [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert all(0.75 * base <= d <= base for d, base in zip(delays, bases))
    b.reset()
    assert b.next() <= 0.5


def test_flaky_live_source_reconnects_and_reports_states_in_order():
    src = flaky_source(sessions=(3, 2, None), failed_connects=2)
    events = _states(src)
    src.open()
    frames = [src.read() for _ in range(8)]
    assert [f.index for f in frames] == list(range(8))
    assert [e.state for e in events] == [
        SourceState.CONNECTING, SourceState.LIVE,
        SourceState.RECONNECTING, SourceState.LIVE,
        SourceState.RECONNECTING, SourceState.LIVE,
    ]
    assert "connection lost" in events[2].message
    assert src.reconnects == 2
    assert src.connect_calls == 1 + 2 * 3  # each outage: two refusals, then success
    src.close()


def test_live_source_gives_up_after_max_reconnects_and_stops_on_interrupt():
    src = flaky_source(sessions=(1,), failed_connects=100, max_reconnects=3)
    events = _states(src)
    src.open()
    assert src.read() is not None
    assert src.read() is None
    assert events[-1].state == SourceState.FAILED and "3 reconnection attempts" in events[-1].message

    slow = flaky_source(sessions=(1,), failed_connects=10**6)
    slow.backoff = Backoff(initial=5.0, maximum=5.0)
    slow.open()
    slow.read()
    threading.Timer(0.1, slow.interrupt).start()
    t0 = time.monotonic()
    assert slow.read() is None  # waiting 5 s for the next attempt, interrupted at 0.1 s
    assert time.monotonic() - t0 < 1.0


def test_missing_camera_is_a_clear_error():
    cam = CameraSource(97)
    events = _states(cam)
    with pytest.raises(SourceError, match="camera 97"):
        cam.open()
    assert events[-1].state == SourceState.FAILED


def test_synthetic_source_pastes_the_given_face_where_it_says():
    face = np.zeros((40, 40, 3), np.uint8)
    face[:, :, 2] = 200
    face[10:30, 10:30] = (10, 220, 30)
    src = SyntheticSource(width=160, height=120, fps=100, frames=5, faces=[face], realtime=False)
    src.open()
    side = max(16, 120 // 3)
    for frame in src:
        x1, y1, x2, y2 = src.face_boxes[0].astype(int)
        assert (x2 - x1, y2 - y1) == (side, side)
        assert np.array_equal(frame.image[y1:y2, x1:x2], face)  # resized to 40 = same size here
    assert src.state == SourceState.ENDED and src.frames_read == 5


def test_synthetic_testsrc_through_lavfi():
    src = open_source("synthetic:testsrc,size=64x48,fps=10,frames=4,realtime=0")
    src.open()
    frames = list(src)
    assert len(frames) == 4 and frames[0].image.shape == (48, 64, 3)
    assert np.allclose([f.media_time for f in frames], [0, 0.1, 0.2, 0.3])
    assert frames[0].image.std() > 10  # the colour bars, not a blank frame


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(2)


@pytest.mark.timeout(60)
def test_http_stream_reconnects_at_its_end_and_masks_credentials(tmp_path, http_server, caplog):
    # `fflags=nobuffer` drops what stream probing read: like a live stream, give it keyframes often
    make_video(tmp_path / "live.ts", frames=100, fps=25, size=(64, 48), fmt="mpegts", gop=10)
    url = f"http://viewer:topsecret@127.0.0.1:{http_server.server_address[1]}/live.ts"
    src = StreamSource(url, backoff=Backoff(initial=0.01, maximum=0.05), open_timeout=5, read_timeout=5)
    events = _states(src)
    frames = []
    with caplog.at_level(logging.DEBUG, logger="unisight.sources"):
        src.open()
        while len(frames) < 600 and sum(e.state == SourceState.LIVE for e in events) < 2:
            frames.append(src.read())  # the server's file ends: the stream "drops" and comes back
        frames += [src.read() for _ in range(5)]
    src.close()
    assert all(f is not None for f in frames)
    assert [e.state for e in events] == [SourceState.CONNECTING, SourceState.LIVE, SourceState.RECONNECTING,
                                         SourceState.LIVE]
    assert src.reconnects == 1
    times = [f.media_time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))  # continues after the reconnection
    text = " ".join(e.message for e in events) + caplog.text + src.info.name + src.source_id
    assert "topsecret" not in text and "viewer:***@" in src.info.name
