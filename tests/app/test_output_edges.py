"""Edges of offline processing: truncated containers without a frame count, SIGTERM, one-frame
clips, header-size refusal for every image format, user-only outputs that hold faces."""
from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import app.commands.process as process_command
from main import main
from engines.errors import UserError
from app.offline.events import read_events
from app.imageio import decode_image
from app.offline.process import process_video
from app.sources import FileSource
from tests.support.fakes import FakeEngine, make_video
from tests.support.paths import REPO, SAMPLE_VIDEO

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("fmt,ext,codec", [("matroska", "mkv", "libx264"), ("webm", "webm", "libvpx")])
def test_half_a_container_without_frame_count_is_truncated(tmp_path, monkeypatch, capsys, fmt, ext, codec):
    whole = tmp_path / f"whole.{ext}"
    make_video(whole, frames=120, size=(96, 64), fmt=fmt, codec=codec)
    src = FileSource(whole)
    src.open()
    n = sum(1 for _ in iter(src.read, None))
    assert n == 120 and not src.truncated  # a whole file is not flagged
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    monkeypatch.setattr(process_command, "make_engine", lambda args: FakeEngine())
    code = main(["process", str(cut), "--out", str(tmp_path / "o.mp4"), "--json", "--no-progress"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 1 and summary["truncated"] is True and 0 < summary["frames"] < 120
    assert "file ends early: frames decoded up to" in summary["error"] and "of the 4.00 s" in summary["error"]
    assert "damaged" in captured.err


def test_the_sample_clip_remuxed_to_mkv_is_whole_and_its_half_is_not(tmp_path):
    """The bundled clip's video starts at 0.85 s: the Matroska DURATION tag is its end time."""
    import av

    from app.paths import SAMPLE_VIDEO

    mkv = tmp_path / "clip.mkv"
    with av.open(str(SAMPLE_VIDEO)) as src, av.open(str(mkv), "w", format="matroska") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux():
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    source = FileSource(mkv)
    source.open()
    assert sum(1 for _ in iter(source.read, None)) == 275 and not source.truncated
    half = tmp_path / "half.mkv"
    half.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    source = FileSource(half)
    source.open()
    frames = sum(1 for _ in iter(source.read, None))
    assert source.truncated and 100 < frames < 200 and "of the 10.03 s its header promises" in source.error


def test_whole_videos_with_audio_are_not_called_truncated(tmp_path):
    for fmt, ext in (("matroska", "mkv"), ("mp4", "mp4"), ("mov", "mov")):
        path = tmp_path / f"a.{ext}"
        make_video(path, frames=50, size=(96, 64), fmt=fmt, audio=True)
        summary = process_video(path, FakeEngine(), events=tmp_path / f"{ext}.jsonl", progress=False)
        assert summary.frames == 50 and not summary.truncated, ext


def test_sigterm_during_process_leaves_no_partial_file(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=300, size=(96, 64))
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import app.commands.process as cmd
        from main import main
        from tests.support.fakes import FakeEngine
        cmd.make_engine = lambda args: FakeEngine(delay=0.02)
        sys.exit(main(["process", {str(src)!r}, "--out", {str(outdir / 'o.mp4')!r},
                       "--events", {str(outdir / 'e.jsonl')!r}, "--no-progress"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".o.partial-") for p in outdir.iterdir()):  # writing has begun
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "terminated", err
    assert list(outdir.iterdir()) == []


def test_one_frame_video_gives_its_events(tmp_path):
    src = tmp_path / "one.mp4"
    make_video(src, frames=1, size=(320, 240))
    events = tmp_path / "e.jsonl"
    summary = process_video(src, FakeEngine(faces_per_image=3), events=events, progress=False)
    records = read_events(events)
    assert summary.frames == 1 and summary.tracks == 3 and len(records) == 3
    assert all(r["first_frame"] == r["last_frame"] == 0 for r in records)
    # a one-frame false detection inside a longer clip still never becomes an event
    src2 = tmp_path / "long.mp4"
    make_video(src2, frames=10, size=(320, 240))

    class Blink(FakeEngine):
        def infer(self, images, score_threshold=None, max_faces=None):
            out = super().infer(images, score_threshold, max_faces)
            return out if len(self.calls) == 5 else [type(out[0]).empty() for _ in images]

    summary = process_video(src2, Blink(), events=tmp_path / "e2.jsonl", progress=False)
    assert summary.tracks == 0


def _tiff_header(width: int, height: int, body: bytes) -> bytes:
    """A valid little-endian bilevel TIFF, deflate-compressed, one strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 1), (259, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(body))]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    return out + b"\x00\x00\x00\x00" + body


def test_huge_images_are_refused_from_the_header_in_every_format(tmp_path):
    side = 20_000
    tiff = _tiff_header(side, side, zlib.compress(bytes(side // 8) * side, 9))
    small = _tiff_header(64, 48, zlib.compress(bytes(8) * 48))
    assert decode_image(small).shape == (48, 64, 3)  # the crafted TIFF is a real one
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="too large: 20000x20000"):
        decode_image(tiff, name="huge.tif")
    assert time.perf_counter() - t0 < 0.5  # was 9 s and 2.4 GB
    # WebP (VP8X canvas), PPM, BMP: the size is read from the header
    webp = bytearray(cv2.imencode(".webp", np.zeros((8, 8, 4), np.uint8))[1].tobytes())
    assert webp[12:16] in (b"VP8X", b"VP8L")
    big_webp = bytearray(b"RIFF" + bytes(4) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes(4)
                         + (side - 1).to_bytes(3, "little") + (side - 1).to_bytes(3, "little"))
    for data in (bytes(big_webp), b"P6\n# big\n20000 20000\n255\n" + bytes(100),
                 b"BM" + bytes(16) + struct.pack("<ii", side, side) + bytes(40)):
        t0 = time.perf_counter()
        with pytest.raises(UserError, match="too large: 20000x20000"):
            decode_image(data)
        assert time.perf_counter() - t0 < 0.5
    with pytest.raises(UserError, match="not a JPEG, PNG, BMP, TIFF, WebP, PNM image"):
        decode_image(b"GIF89a" + bytes(100))


def test_outputs_that_hold_faces_are_user_only_whatever_the_umask(tmp_path):
    src = tmp_path / "in.mp4"
    make_video(src, frames=10, size=(160, 120))
    old = os.umask(0)
    try:
        out, events, crops = tmp_path / "o.mp4", tmp_path / "e.jsonl", tmp_path / "crops"
        process_video(src, FakeEngine(faces_per_image=2), output=out, events=events, crops_dir=crops,
                      progress=False)
        files = [out, events, *crops.iterdir()]
        assert len(files) == 4
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert stat.S_IMODE(crops.stat().st_mode) == 0o700
        from app.live.recorder import Recorder  # live recordings

        from app.types import Frame, FrameResult
        from engines.faces import Faces

        rec = Recorder(tmp_path / "rec.mkv", "cam0", fps=10)
        for i in range(5):
            frame = Frame(image=np.zeros((64, 96, 3), np.uint8), index=i, media_time=i / 10,
                          capture_time=time.monotonic(), source_id="cam0")
            rec._box.put(FrameResult(frame=frame, faces=Faces.empty()))  # waits: every frame recorded
        assert rec.stop() == tmp_path / "rec.mkv" and rec.frames == 5
        assert stat.S_IMODE((tmp_path / "rec.mkv").stat().st_mode) == 0o600
    finally:
        os.umask(old)
