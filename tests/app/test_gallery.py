"""Gallery: on-disk store (permissions, crash safety), edits, export/import, model versions, matching."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines.errors import UserError
from app.gallery.store import DB_NAME, Gallery, ModelMismatch, NewSample, open_gallery
from tests.support.colour_faces import COLOURS, ColourFaceEngine, face_sample
from tests.support.paths import REPO

HELPER = REPO / "tests" / "support" / "gallery_crash_helper.py"


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------ storage
def test_folder_and_files_are_private_even_with_a_permissive_umask(tmp_path):
    engine = ColourFaceEngine()
    old = os.umask(0)
    try:
        folder = tmp_path / "g"
        with Gallery(folder) as g:
            g.add_samples("Alice", [face_sample(engine, COLOURS["alice"])], engine.info.model_id)
            files = sorted(p.name for p in folder.iterdir())
            assert DB_NAME in files and f"{DB_NAME}-wal" in files
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            for p in folder.iterdir():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
            export = g.export(tmp_path / "alice.gallery")
            assert stat.S_IMODE(export.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_existing_loose_gallery_is_tightened_and_foreign_folder_refused(tmp_path):
    folder = tmp_path / "g"
    Gallery(folder).close()
    os.chmod(folder, 0o755)
    os.chmod(folder / DB_NAME, 0o644)
    Gallery(folder).close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / DB_NAME).stat().st_mode) == 0o600
    busy = tmp_path / "documents"
    busy.mkdir()
    (busy / "letter.txt").write_text("hello")
    with pytest.raises(UserError, match="other files but no gallery"):
        Gallery(busy)
    assert sorted(p.name for p in busy.iterdir()) == ["letter.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        Gallery(tmp_path / "afile")


def test_damaged_database_gives_a_user_error(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="damaged or not a gallery"):
        Gallery(folder)


def test_sigkill_during_enrolment_loses_nothing_committed(tmp_path):
    folder = tmp_path / "g"
    committed: list[str] = []
    # kill at several moments into the next enrolment (it takes a few ms: 4 crops, one commit)
    for round_, (kill_after, delay) in enumerate([(3, 0.0), (11, 0.001), (6, 0.002), (9, 0.004), (5, 0.007)]):
        proc = subprocess.Popen([sys.executable, str(HELPER), str(folder), str(round_ * 10_000)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            for _ in range(kill_after):
                line = proc.stdout.readline().strip()
                assert line.startswith("committed "), line
                committed.append(line.split()[1])
            time.sleep(delay)  # the child is now in the middle of its next enrolment
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            # enrolments it finished and reported while this process slept (a busy machine)
            committed += [line.split()[1] for line in proc.stdout.read().splitlines()
                          if line.startswith("committed ")]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with Gallery(folder) as g:
            assert g.integrity_check() == "ok"
            conn = sqlite3.connect(folder / DB_NAME)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
            names = set(g.names())
            assert set(committed) <= names
            # at most the one enrolment in flight can have landed unreported, and only whole
            assert len(names - set(committed)) <= round_ + 1
            assert all(i.sample_count == 4 for i in g.identities())
            g.check_model("crash-model")


# ------------------------------------------------------------------ edits
def test_rename_merge_remove_and_remove_sample(tmp_path):
    engine = ColourFaceEngine()
    mid = engine.info.model_id
    with Gallery(tmp_path / "g") as g:
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], source="a1.jpg")], mid)
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=90, source="a2.jpg")], mid)
        g.add_samples("Al", [face_sample(engine, COLOURS["alice"], size=120, source="al.jpg")], mid)
        g.add_samples("Bob", [face_sample(engine, COLOURS["bob"], source="b.jpg")], mid)
        assert [(i.name, i.sample_count) for i in g.identities()] == [("Al", 1), ("Alice", 2), ("Bob", 1)]

        with pytest.raises(UserError, match="already exists"):
            g.add_identity("alice")  # names are case-insensitive
        with pytest.raises(UserError, match="that name exists"):
            g.rename("Bob", "ALICE")
        g.rename("Bob", "Robert")
        g.rename("Robert", "robert")  # a case change of the same identity is fine
        assert g.names() == ["Al", "Alice", "robert"]

        assert g.merge("Al", "Alice") == 1
        assert [(i.name, i.sample_count) for i in g.identities()] == [("Alice", 3), ("robert", 1)]
        with pytest.raises(UserError, match="into itself"):
            g.merge("Alice", "alice")
        with pytest.raises(UserError, match="no identity named 'Zed'"):
            g.merge("Zed", "Alice")

        sample = next(s for s in g.samples("Alice") if s.source == "a2.jpg")
        assert g.remove_sample(sample.id) == "Alice"
        assert sorted(s.source for s in g.samples("Alice")) == ["a1.jpg", "al.jpg"]
        with pytest.raises(UserError, match="no gallery sample"):
            g.remove_sample(sample.id)

        assert g.remove("robert") == 1
        assert g.names() == ["Alice"]
        assert len(g.samples()) == 2
        # the matcher follows every edit
        query = engine.embed_colour(COLOURS["alice"])[None]
        assert g.match(query, mid).names == ["Alice"]
        thumbs = g.identities(thumbnails=True)
        assert thumbs[0].thumbnail.shape == (96, 96, 3)
        with pytest.raises(UserError, match="cannot be empty"):
            g.add_identity("   ")


# ------------------------------------------------------------------ export / import
def test_export_import_round_trip_and_clashes(tmp_path):
    engine = ColourFaceEngine()
    mid = engine.info.model_id
    with Gallery(tmp_path / "src") as src:
        src.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=s) for s in (90, 110)], mid)
        src.add_samples("Bob", [face_sample(engine, COLOURS["bob"])], mid)
        export = src.export(tmp_path / "team.gallery")
        with pytest.raises(UserError, match="already exists"):
            src.export(export)
        before = export.read_bytes()
        src.export(export, overwrite=True)
        assert export.stat().st_size > 0 and len(before) > 0
        src_samples = {(s.name, s.source, s.quality) for s in src.samples()}
        src_crop = src.sample_crop(src.samples("Alice")[0].id)

    with Gallery(tmp_path / "dst") as dst:
        report = dst.import_from(export)
        assert sorted(report.added) == ["Alice", "Bob"] and report.samples == 3
        assert {(s.name, s.source, s.quality) for s in dst.samples()} == src_samples
        crop = dst.sample_crop(dst.samples("Alice")[0].id)
        np.testing.assert_array_equal(crop.image, src_crop.image)
        np.testing.assert_allclose(crop.box, src_crop.box)
        m = dst.match(np.stack([engine.embed_colour(COLOURS["alice"]), engine.embed_colour(COLOURS["bob"])]), mid)
        assert m.names == ["Alice", "Bob"]

        # importing again: refused, nothing changes
        with pytest.raises(UserError, match=r"import refused: 2 name\(s\).*--merge.*--rename"):
            dst.import_from(export)
        assert [(i.name, i.sample_count) for i in dst.identities()] == [("Alice", 2), ("Bob", 1)]

        # merge: the same samples are recognised and not doubled
        dst.add_samples("Carol", [face_sample(engine, COLOURS["carol"])], mid)
        report = dst.import_from(export, on_clash="merge")
        assert sorted(report.merged) == ["Alice", "Bob"] and report.samples == 0 and report.duplicates_skipped == 3
        assert [(i.name, i.sample_count) for i in dst.identities()] == [("Alice", 2), ("Bob", 1), ("Carol", 1)]

        # rename: imported beside the existing ones
        report = dst.import_from(export, on_clash="rename")
        assert report.renamed == {"Alice": "Alice (2)", "Bob": "Bob (2)"}
        assert dst.names() == ["Alice", "Alice (2)", "Bob", "Bob (2)", "Carol"]

    not_gallery = tmp_path / "notes.db"
    conn = sqlite3.connect(not_gallery)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with Gallery(tmp_path / "dst") as dst:
        with pytest.raises(UserError, match="not a Unisight gallery export"):
            dst.import_from(not_gallery)
        (tmp_path / "junk.bin").write_bytes(os.urandom(4096))
        with pytest.raises(UserError, match="not a Unisight gallery export"):
            dst.import_from(tmp_path / "junk.bin")
        with pytest.raises(UserError, match="does not exist"):
            dst.import_from(tmp_path / "missing.gallery")
        assert len(dst) == 5


# ------------------------------------------------------------------ model versions
def test_model_change_is_detected_and_reembedded_from_crops(tmp_path):
    v1, v2 = ColourFaceEngine(version=1), ColourFaceEngine(version=2)
    folder = tmp_path / "g"
    with open_gallery(folder, v1) as g:
        g.add_samples("Alice", [face_sample(v1, COLOURS["alice"], size=s) for s in (80, 120)], v1.info.model_id)
        g.add_samples("Bob", [face_sample(v1, COLOURS["bob"])], v1.info.model_id)

    q2 = np.stack([v2.embed_colour(COLOURS["alice"]), v2.embed_colour(COLOURS["bob"])])
    # old-model vectors are useless for the new model: cosine to the right person is low
    assert float(v1.embed_colour(COLOURS["alice"]) @ v2.embed_colour(COLOURS["alice"])) < 0.8
    with Gallery(folder) as g:
        with pytest.raises(ModelMismatch, match="3 gallery samples.*fake-colour-v2"):
            g.match(q2, v2.info.model_id)
        with pytest.raises(ModelMismatch):
            g.check_model(v2.info.model_id)
        assert g.match(q2, v2.info.model_id, allow_missing=True).names == [None, None]

    progress = []
    with open_gallery(folder, v2, progress=lambda done, total: progress.append((done, total))) as g:
        assert progress[-1] == (3, 3)
        assert g.model_ids() == {"fake-colour-v1": 3, "fake-colour-v2": 3}
        m = g.match(q2, v2.info.model_id)
        assert m.names == ["Alice", "Bob"]
        assert np.all(m.similarities > 0.99)
        # both models stay usable: switching back costs nothing
        calls = v1.calls
        assert g.ensure_model(v1) == 0 and v1.calls == calls
        # a sample whose crop holds no findable face cannot be re-embedded: clear error, others kept
        g.add_samples("Nocrop", [NewSample(embedding=v2.embed_colour(COLOURS["dave"]))], v2.info.model_id)
    v3 = ColourFaceEngine(version=3)
    with pytest.raises(ModelMismatch, match=r"cannot re-embed 1 gallery samples.*'Nocrop' \(no stored crop\).*remove-sample"):
        open_gallery(folder, v3)
    with Gallery(folder) as g:
        assert g.model_ids()["fake-colour-v3"] == 3
        assert [name for _, name in g.missing_embeddings("fake-colour-v3")] == ["Nocrop"]


# ------------------------------------------------------------------ matching
def test_threshold_and_margin_decide_unknown(tmp_path):
    rng = np.random.default_rng(0)
    base = [unit(rng.normal(size=128)) for _ in range(3)]
    with Gallery(tmp_path / "g", threshold=0.8, margin=0.05) as g:
        for name, b in zip(["A", "B", "C"], base):
            g.add_samples(name, [NewSample(embedding=b + 0.03 * rng.normal(size=128)) for _ in range(3)], "m")
        m = g.match(np.stack(base), "m")
        assert m.names == ["A", "B", "C"]
        assert np.all(m.similarities > 0.9) and np.all(m.second_similarities < 0.5)
        assert m.similarity_to(0, "B") == pytest.approx(float(m.identity_similarities[0, 1]))

        stranger = unit(rng.normal(size=128))
        m = g.match(stranger[None], "m")
        assert m.names == [None] and m.similarities[0] < 0.4

        # halfway between A and B: similar to both, above the threshold, but no margin
        a, b = base[0], unit(base[1] - (base[1] @ base[0]) * base[0])
        between = unit(a + b)
        m = g.match(between[None], "m")
        assert m.similarities[0] > 0.6 and abs(m.similarities[0] - m.second_similarities[0]) < 0.05
        assert m.names == [None]
        assert g.match(between[None], "m", threshold=0.5, margin=0.0).names[0] in ("A", "B")
        # a query a bit closer to B clears the margin at a low threshold
        nearer_b = unit(a + 1.4 * b)
        assert g.match(nearer_b[None], "m", threshold=0.5, margin=0.05).names == ["B"]
        # threshold: scale the distance until the similarity is just below / above it
        for t, expected in ((0.70, "A"), (0.95, None)):
            q = unit(0.8 * a + 0.6 * unit(rng.normal(size=128)))
            assert g.match(q[None], "m", threshold=t).names == [expected]
        # per-identity max over samples: a sample far from the others still matches its owner
        g.add_samples("A", [NewSample(embedding=stranger)], "m")
        assert g.match(stranger[None], "m").names == ["A"]

    with Gallery(tmp_path / "empty") as g:
        m = g.match(np.stack(base), "m")
        assert m.names == [None] * 3 and np.all(np.isnan(m.similarities))
        assert g.match(np.zeros((0, 128)), "m").names == []


def test_mean_aggregate_and_changes_from_another_process(tmp_path):
    rng = np.random.default_rng(1)
    a = unit(rng.normal(size=128))
    with Gallery(tmp_path / "g", aggregate="mean") as g, Gallery(tmp_path / "g") as other:
        g.add_samples("A", [NewSample(embedding=a + 0.02 * rng.normal(size=128)) for _ in range(4)], "m")
        assert g.match(a[None], "m").names == ["A"]
        # another connection (as another process would) adds B: the matcher notices
        b = unit(rng.normal(size=128))
        other.add_samples("B", [NewSample(embedding=b)], "m")
        assert g.match(b[None], "m").names == ["B"]
        other.remove("A")
        assert g.match(a[None], "m").names == [None]


# ------------------------------------------------------------------ the `gallery` command
def _main(capsys, *argv):
    from main import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_gallery_command_edits_and_round_trips(tmp_path, capsys):
    engine = ColourFaceEngine()
    mid = engine.info.model_id
    folder = tmp_path / "g"
    code, out, _ = _main(capsys, "gallery", "list", "--gallery", str(folder))
    assert code == 0 and "no gallery at" in out and not folder.exists()  # listing creates nothing
    code, _, err = _main(capsys, "gallery", "remove", "Bob", "--gallery", str(folder))
    assert code == 2 and err.startswith("error: no gallery at")
    with Gallery(folder) as g:
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], source=f"a{i}.jpg") for i in range(2)], mid)
        g.add_samples("Bob", [face_sample(engine, COLOURS["bob"], source="b.jpg")], mid)
        g.add_samples("Robert", [face_sample(engine, COLOURS["bob"], source="r.jpg")], mid)

    code, out, _ = _main(capsys, "gallery", "list", "--samples", "--json", "--gallery", str(folder))
    listing = json.loads(out)
    assert code == 0 and [(i["name"], i["samples"]) for i in listing["identities"]] == [("Alice", 2), ("Bob", 1), ("Robert", 1)]
    assert listing["models"] == {mid: 4} and len(listing["samples"]) == 4
    # options before the action work too
    code, out, _ = _main(capsys, "gallery", "--gallery", str(folder), "--json", "list")
    assert code == 0 and len(json.loads(out)["identities"]) == 3
    code, out, _ = _main(capsys, "gallery", "merge", "Robert", "Bob", "--gallery", str(folder))
    assert code == 0 and out.strip() == "merged 'Robert' into 'Bob' (1 samples moved)"
    code, _, _ = _main(capsys, "gallery", "rename", "Bob", "Bobby", "--gallery", str(folder))
    assert code == 0
    first_alice = next(s["id"] for s in listing["samples"] if s["source"] == "a0.jpg")
    code, out, _ = _main(capsys, "gallery", "remove-sample", str(first_alice), "--gallery", str(folder))
    assert code == 0 and out.strip() == f"removed sample {first_alice} of 'Alice'"
    code, _, err = _main(capsys, "gallery", "rename", "Nobody", "X", "--gallery", str(folder))
    assert code == 2 and err.strip() == "error: no identity named 'Nobody' in the gallery: check `main.py gallery list`"

    export = tmp_path / "out.gallery"
    assert _main(capsys, "gallery", "export", str(export), "--gallery", str(folder))[0] == 0
    code, _, err = _main(capsys, "gallery", "export", str(export), "--gallery", str(folder))
    assert code == 2 and "already exists" in err
    other = tmp_path / "other"
    code, out, _ = _main(capsys, "gallery", "import", str(export), "--json", "--gallery", str(other))
    assert code == 0 and sorted(json.loads(out)["added"]) == ["Alice", "Bobby"]
    code, _, err = _main(capsys, "gallery", "import", str(export), "--gallery", str(other))
    assert code == 2 and "import refused" in err and "--merge" in err
    code, out, _ = _main(capsys, "gallery", "import", str(export), "--rename", "--json", "--gallery", str(other))
    assert json.loads(out)["renamed"] == {"Alice": "Alice (2)", "Bobby": "Bobby (2)"}
    code, _, _ = _main(capsys, "gallery", "remove", "Alice (2)", "--gallery", str(other))
    with Gallery(other) as g:
        assert [(i.name, i.sample_count) for i in g.identities()] == [("Alice", 1), ("Bobby", 2), ("Bobby (2)", 2)]
        m = g.match(np.stack([engine.embed_colour(COLOURS["alice"]), engine.embed_colour(COLOURS["bob"])]), mid)
        assert m.names[0] == "Alice" and m.names[1] is None  # Bobby and Bobby (2) tie: no margin, unknown
