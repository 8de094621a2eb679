"""Offline `process`: exact frame count/timing, audio remux, event logs, damaged input, full disk."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest

import app.commands.process as process_command
from main import main
from engines.errors import UserError
from app.offline.events import read_events
from app.offline.process import process_video
from tests.support.fakes import FakeEngine, make_video, probe
from tests.support.paths import REPO

pytestmark = pytest.mark.timeout(120)


def test_output_matches_input_frames_rate_timing_and_audio(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=45, fps=30, size=(160, 120), audio=True)
    out, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    summary = process_video(src, FakeEngine(faces_per_image=2), output=out, events=events, progress=False)
    a, b = probe(src), probe(out)
    assert b["frames"] == a["frames"] == 45 and b["frames_header"] == 45
    assert b["average_rate"] == a["average_rate"] == 30
    assert b["pts"] == a["pts"] and b["time_base"] == a["time_base"] and b["duration"] == a["duration"]
    assert b["streams"] == ["video", "audio"] and b["audio_codec"] == "aac"
    assert b["audio_packets"] == a["audio_packets"] > 0  # copied packet for packet
    assert summary.frames == 45 and summary.faces == 90 and summary.tracks == 2 and summary.audio
    assert summary.identities == [] and not summary.truncated
    assert summary.realtime_factor == pytest.approx(summary.fps / 30)
    records = read_events(events)
    assert len(records) == 2
    for r in records:
        assert r["name"] is None and r["first_frame"] == 0 and r["last_frame"] == 44
        assert r["first_time"] == 0 and r["last_time"] == pytest.approx(44 / 30, abs=1e-3)
    assert sorted(r["track_id"] for r in records) == [1, 2]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    first = _first_frame(out)
    assert (first[:, :, 1] > 150).sum() > 50  # boxes were drawn (green known / red unknown / grey)


def _first_frame(path):
    import av

    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="bgr24")


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    src = tmp_path / "vfr.mp4"
    make_video(src, frames=30, gaps=[33, 50, 17, 100], size=(96, 64))
    out = tmp_path / "out.mp4"
    process_video(src, FakeEngine(), output=out, progress=False)
    a, b = probe(src), probe(out)
    assert b["pts"] == a["pts"] and b["average_rate"] == a["average_rate"] and b["duration"] == a["duration"]
    assert b["streams"] == ["video"]


def test_rotated_input_is_written_upright(tmp_path):
    src = tmp_path / "phone.mp4"
    make_video(src, frames=8, size=(96, 64), rotation=-90)
    out = tmp_path / "out.mp4"
    process_video(src, FakeEngine(), output=out, progress=False)
    frame = _first_frame(out)
    assert frame.shape == (96, 64, 3)  # portrait, with no display matrix left to apply
    assert probe(out)["frames"] == 8


def test_csv_events_and_crops(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=20, size=(160, 120))
    events, crops = tmp_path / "log" / "events.csv", tmp_path / "log" / "crops"
    events.parent.mkdir()
    summary = process_video(src, FakeEngine(), events=events, crops_dir=crops, progress=False)
    assert summary.output is None and summary.tracks == 1
    rows = read_events(events)
    assert len(rows) == 1 and rows[0]["first_frame"] == 0 and rows[0]["last_frame"] == 19
    assert rows[0]["name"] is None and "embedding" not in rows[0]
    assert rows[0]["model_id"] == FakeEngine().info.model_id  # which model's embeddings made the call
    crop = cv2.imread(str(events.parent / rows[0]["crop"]))
    assert crop is not None and crop.shape[0] >= 100


def test_truncated_input_is_processed_up_to_the_damage(tmp_path):
    whole = tmp_path / "whole.mp4"
    make_video(whole, frames=60, size=(96, 64), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    out = tmp_path / "out.mp4"
    summary = process_video(cut, FakeEngine(), output=out, progress=False)
    assert summary.truncated and summary.error
    assert 0 < summary.frames < 60 and summary.expected_frames == 60
    got = probe(out)
    assert got["frames"] == summary.frames
    assert got["pts"] == probe(whole)["pts"][: summary.frames]


def test_full_disk_is_a_clear_error(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=10, size=(96, 64))
    with pytest.raises(UserError, match="no space left on device writing /dev/full"):
        process_video(src, FakeEngine(), output="/dev/full", progress=False)
    events = tmp_path / "events.jsonl"  # /dev/full under a name the event log accepts
    events.symlink_to("/dev/full")
    with pytest.raises(UserError, match="no space left on device writing .*events.jsonl"):
        process_video(src, FakeEngine(), events=events, progress=False)


def test_write_failure_leaves_no_partial_file(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes the real write fail part way through."""
    src = tmp_path / "in.mp4"
    make_video(src, frames=60, size=(160, 120))
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO)!r})
        from engines.errors import UserError
        from app.offline.process import process_video
        from tests.support.fakes import FakeEngine
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))
        try:
            process_video({str(src)!r}, FakeEngine(), output={str(outdir / 'out.mp4')!r}, progress=False)
        except UserError as exc:
            print(exc)
            sys.exit(2)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "file too large writing" in res.stdout
    assert list(outdir.iterdir()) == []  # neither the output nor its temporary file


def test_bad_requests_fail_before_writing(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=5, size=(64, 48))
    with pytest.raises(UserError, match="input video itself"):
        process_video(src, FakeEngine(), output=src, progress=False)
    with pytest.raises(UserError, match="event log format"):
        process_video(src, FakeEngine(), output=tmp_path / "o.mp4", events=tmp_path / "e.txt", progress=False)
    with pytest.raises(UserError, match="use a name ending in"):
        process_video(src, FakeEngine(), output=tmp_path / "o.gif", progress=False)
    with pytest.raises(UserError, match="folder .* does not exist"):
        process_video(src, FakeEngine(), output=tmp_path / "no" / "o.mp4", progress=False)
    with pytest.raises(UserError, match="video not found"):
        process_video(tmp_path / "missing.mp4", FakeEngine(), output=tmp_path / "o.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_cli_json_summary_progress_and_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(process_command, "make_engine", lambda args: FakeEngine())  # the network is not under test
    src = tmp_path / "in.mp4"
    make_video(src, frames=30, size=(96, 64), audio=True)
    out, events = tmp_path / "o.mp4", tmp_path / "e.jsonl"
    rc = main(["process", str(src), "--out", str(out), "--events", str(events), "--json"])
    captured = capsys.readouterr()
    assert rc == 0
    summary = json.loads(captured.out)
    for key in ("frames", "faces", "tracks", "identities", "fps", "realtime_factor", "output", "events"):
        assert key in summary
    assert summary["frames"] == 30 and summary["tracks"] == 1 and summary["output"] == str(out)
    assert "30/30" in captured.err  # the progress bar

    whole = tmp_path / "whole.mp4"
    make_video(whole, frames=60, size=(96, 64), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    rc = main(["process", str(cut), "--out", str(tmp_path / "cut_out.mp4"), "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1 and json.loads(captured.out)["truncated"] is True
    assert (tmp_path / "cut_out.mp4").exists() and "damaged" in captured.err

    assert main(["process", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: video not found")
    assert main(["process", str(src), "--no-video"]) == 2
    assert main(["process", str(src), "--gallery", str(tmp_path / "nogallery"), "--out", str(out)]) == 2
    assert "no gallery in" in capsys.readouterr().err


def test_shared_clip_keeps_every_frame(tmp_path, shared_data):
    src = shared_data / "video" / "short_hamilton_clip.mp4"
    if not src.exists():
        pytest.skip("short_hamilton_clip.mp4 not in ../shared/data/video")
    out = tmp_path / "out.mp4"
    summary = process_video(src, FakeEngine(faces_per_image=3), output=out, preset="ultrafast", progress=False)
    a, b = probe(src), probe(out)
    assert b["frames"] == a["frames"] == summary.frames
    assert b["average_rate"] == a["average_rate"] and b["pts"] == a["pts"]
    assert b["audio_packets"] == a["audio_packets"]
