"""Disk and permission failures on real file systems: a small tmpfs filled to 0 bytes free, a
read-only remount, a read-only folder. Full is worded as full (never "damaged"), read-only
galleries still read, outputs are probed before the work."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from main import main
from app.gallery.enrollment import enrol_crops
from app.gallery.store import DB_NAME, Gallery, open_gallery
from app.storage import StorageError, probe_output
from tests.support.colour_faces import COLOURS, ColourFaceEngine, face_sample
from tests.support.fakes import make_video

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (needs root and mount rights; skipped otherwise), unmounted afterwards."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Write until the file system says ENOSPC (0 bytes free), then free `leave` bytes again."""
    fd = os.open(folder / "filler", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError:
                pass
    finally:
        os.close(fd)
    if leave:
        os.truncate(folder / "filler", max(0, (folder / "filler").stat().st_size - leave))
    st = os.statvfs(folder)
    assert st.f_bavail * st.f_frsize <= leave + 4096


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _gallery(folder: Path, engine: ColourFaceEngine) -> None:
    with Gallery(folder) as g:
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=s) for s in (80, 100)], engine.info.model_id)
        g.add_samples("Bob", [face_sample(engine, COLOURS["bob"])], engine.info.model_id)


class CountingEngine(ColourFaceEngine):
    """The colour engine; counts inference calls and can fill the disk during the last one."""

    def __init__(self, fill_at: int | None = None, disk: Path | None = None):
        super().__init__()
        self.calls, self.fill_at, self.disk = 0, fill_at, disk

    def infer(self, images, score_threshold=None, max_faces=None):
        self.calls += 1
        if self.calls == self.fill_at:
            fill(self.disk)
        return super().infer(images, score_threshold, max_faces)


def test_full_disk_reads_as_full_not_damaged_and_reading_still_works(small_disk, capsys):
    engine = ColourFaceEngine()
    folder = small_disk / "g"
    _gallery(folder, engine)
    before = md5(folder / DB_NAME)
    fill(small_disk)
    # reading commands work on a full disk: the gallery opens read-only
    assert main(["gallery", "list", "--gallery", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "Alice  (2 samples" in out and "is damaged" not in err
    with open_gallery(folder, engine) as g:
        assert g.read_only and g.read_only_reason == "the disk is full"
        assert g.match(engine.embed_colour(COLOURS["bob"])[None], engine.info.model_id).names == ["Bob"]
    # a change: a one-line "full" error, exit 1, the gallery untouched
    assert main(["gallery", "rename", "Bob", "Robert", "--gallery", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full" in err and "is damaged" not in err and "restore" not in err
    # enrolment stops before any inference
    counting = CountingEngine()
    with Gallery(folder) as g:
        with pytest.raises(StorageError, match="read-only \\(the disk is full\\).*enrolling Carol") as exc:
            enrol_crops(g, counting, "Carol", [np.zeros((120, 120, 3), np.uint8)])
    assert exc.value.kind == "read-only" and counting.calls == 0
    # export onto the full disk: a clear error, nothing left behind
    assert main(["gallery", "export", str(small_disk / "team.gallery"), "--gallery", str(folder)]) == 1
    assert "no space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "g"]
    assert md5(folder / DB_NAME) == before
    # space again: everything works, nothing was lost
    (small_disk / "filler").unlink()
    assert main(["gallery", "rename", "Bob", "Robert", "--gallery", str(folder)]) == 0
    with Gallery(folder) as g:
        assert g.names() == ["Alice", "Robert"] and g.integrity_check() == "ok"


def test_disk_filling_during_enrolment_keeps_the_report(small_disk):
    engine = CountingEngine(fill_at=1, disk=small_disk)
    folder = small_disk / "g"
    _gallery(folder, ColourFaceEngine())
    crops = [face_sample(ColourFaceEngine(), COLOURS["carol"], size=s).crop.image for s in (90, 100)]
    with Gallery(folder) as g:
        result = enrol_crops(g, engine, "Carol", crops)
        assert engine.calls >= 2  # the disk filled during the first inference, after the check
        assert not result.ok and result.unsaved == ["crop 1", "crop 2"] and result.added == []
        assert "is full" in result.error and "is damaged" not in result.error
        lines = result.summary_lines()
        assert lines[-1].startswith("Carol: nothing saved: ") and "not saved crop 1" in lines[0]
        assert g.names() == ["Alice", "Bob"]
    (small_disk / "filler").unlink()
    with Gallery(folder) as g:
        assert g.integrity_check() == "ok" and [i.sample_count for i in g.identities()] == [2, 1]


def test_export_that_runs_out_of_space_leaves_nothing(small_disk, tmp_path):
    engine = ColourFaceEngine()
    folder = tmp_path / "g"  # the gallery on the big disk, the export onto the small one
    with Gallery(folder) as g:
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=60 + 4 * i) for i in range(30)],
                      engine.info.model_id)
    target = small_disk / "out"
    target.mkdir()
    fill(small_disk, leave=12 * 1024)  # passes the probe, not the whole export
    with Gallery(folder) as g:
        with pytest.raises(StorageError) as exc:
            g.export(target / "alice.gallery")
    assert exc.value.kind == "full" and "is damaged" not in str(exc.value)
    assert list(target.iterdir()) == []  # no .tmp, no .tmp-journal


def test_events_on_a_full_or_read_only_disk_fail_before_the_video(small_disk, tmp_path, capsys):
    video = tmp_path / "in.mp4"
    make_video(video, frames=30, size=(96, 64))
    out_dir = small_disk / "out"
    out_dir.mkdir()
    fill(small_disk)
    for args in (["--no-video", "--events", str(out_dir / "e.jsonl")],
                 ["--events", str(tmp_path / "e.jsonl"), "--out", str(out_dir / "v.mp4")],
                 ["--events", str(tmp_path / "e.jsonl"), "--crops", str(out_dir / "crops"), "--no-video"]):
        t0 = time.perf_counter()
        code = main(["process", str(video), "--no-progress", *args])
        took = time.perf_counter() - t0
        err = capsys.readouterr().err
        assert code == 1 and took < 2.0, (args, err)
        assert "no space left on device" in err and err.count("\n") == 1
    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    t0 = time.perf_counter()
    code = main(["process", str(video), "--no-progress", "--no-video", "--events", str(out_dir / "e.jsonl")])
    assert code == 1 and time.perf_counter() - t0 < 2.0
    assert "read-only file system writing" in capsys.readouterr().err
    with pytest.raises(StorageError, match="no space left on device writing /dev/full"):
        probe_output(Path("/dev/full"), "event log")
    probe_output(Path("/dev/null"), "event log")


def test_read_only_mount_gallery_reads_and_refuses_changes(small_disk, tmp_path, capsys):
    engine = ColourFaceEngine()
    folder = small_disk / "g"
    _gallery(folder, engine)
    os.chmod(folder, 0o755)  # as a user might have; on a read-only mount it must stay so
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert main(["gallery", "list", "--gallery", str(folder)]) == 0
    assert "Bob  (1 sample" in capsys.readouterr().out
    with open_gallery(folder, engine) as g:
        assert g.read_only and "read-only file system" in g.read_only_reason
        assert g.match(engine.embed_colour(COLOURS["alice"])[None], engine.info.model_id).names == ["Alice"]
    assert main(["gallery", "export", str(tmp_path / "copy.gallery"), "--gallery", str(folder)]) == 0
    capsys.readouterr()
    assert main(["gallery", "remove", "Bob", "--gallery", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "is read-only (its folder: it is on a read-only file system)" in err and "nothing was changed" in err
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    with Gallery(tmp_path / "copy-dst") as g:  # the export made from the read-only gallery is whole
        assert g.import_from(tmp_path / "copy.gallery").samples == 3


def test_a_folder_the_user_made_read_only_is_never_chmodded(tmp_path, capsys):
    engine = ColourFaceEngine()
    folder = tmp_path / "g"
    _gallery(folder, engine)
    os.chmod(folder, 0o500)
    os.chmod(folder / DB_NAME, 0o400)
    try:
        assert main(["gallery", "list", "--gallery", str(folder)]) == 0
        assert "Alice" in capsys.readouterr().out
        assert stat.S_IMODE(folder.stat().st_mode) == 0o500
        assert stat.S_IMODE((folder / DB_NAME).stat().st_mode) == 0o400
        if os.geteuid() != 0:  # root writes anyway; a user gets the read-only gallery
            with Gallery(folder) as g:
                assert g.read_only
                with pytest.raises(StorageError, match="read-only"):
                    g.remove("Bob")
    finally:
        os.chmod(folder, 0o700)
