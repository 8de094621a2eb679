"""Gallery import checks: nothing an export holds can switch recognition off or break later
commands; the matcher refuses unusable rows whatever wrote them."""
from __future__ import annotations

import json
import sqlite3
import struct
import time
import zlib

import numpy as np
import pytest

from engines.errors import UserError
from app.gallery.store import DB_NAME, DamagedSample, Gallery, open_gallery
from app.gallery.transfer import ImportRejected
from tests.support.colour_faces import COLOURS, ColourFaceEngine, face_sample

NAN_VECTOR = np.full(128, np.nan, "<f4").tobytes()


def _export(tmp_path, name="team.gallery"):
    """A real export: Alice (2 samples), Bob (1)."""
    engine = ColourFaceEngine()
    with Gallery(tmp_path / f"src-{name}") as src:
        src.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=s) for s in (90, 110)], engine.info.model_id)
        src.add_samples("Bob", [face_sample(engine, COLOURS["bob"])], engine.info.model_id)
        return src.export(tmp_path / name), engine


def _edit(path, *statements):
    conn = sqlite3.connect(path)
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def _bob_sample(path) -> int:
    conn = sqlite3.connect(path)
    sid = conn.execute("SELECT s.id FROM samples s JOIN identities i ON i.id=s.identity_id WHERE i.name='Bob'").fetchone()[0]
    conn.close()
    return sid


def _huge_png(side: int = 20_000) -> bytes:
    """A valid, complete 1-bit grey PNG of side x side (all black): ~50 MB of pixels, ~50 kB of file."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes((side + 7) // 8)
    raw = zlib.compress(row * side, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_nan_embedding_is_refused_before_anything_is_written(tmp_path):
    export, engine = _export(tmp_path)
    bob = _bob_sample(export)
    _edit(export, ("UPDATE embeddings SET vector=? WHERE sample_id=?", (NAN_VECTOR, bob)))
    mid = engine.info.model_id
    with Gallery(tmp_path / "dst") as dst:
        dst.add_samples("Carol", [face_sample(engine, COLOURS["carol"])], mid)
        before = dst.samples()
        with pytest.raises(ImportRejected, match=rf"sample {bob} of 'Bob': its embedding holds NaN") as err:
            dst.import_from(export)
        assert "nothing was imported" in str(err.value) and "--skip-rejected" in str(err.value)
        assert [r.to_dict() for r in err.value.report.rejected] == [
            {"name": "Bob", "sample": bob, "reason": f"its embedding holds NaN or infinite values (model {mid})"}]
        assert dst.samples() == before
        # the rest, on request: Alice and Carol still match at 1.000
        report = dst.import_from(export, skip_rejected=True)
        assert report.samples == 2 and sorted(report.added) == ["Alice", "Bob"] and len(report.rejected) == 1
        m = dst.match(np.stack([engine.embed_colour(COLOURS["alice"]), engine.embed_colour(COLOURS["carol"])]), mid)
        assert m.names == ["Alice", "Carol"] and np.all(m.similarities > 0.999)


def test_matcher_refuses_a_non_finite_row_whatever_wrote_it(tmp_path):
    engine = ColourFaceEngine()
    mid = engine.info.model_id
    folder = tmp_path / "g"
    with Gallery(folder) as g:
        g.add_samples("Alice", [face_sample(engine, COLOURS["alice"])], mid)
        [bad] = g.add_samples("Bob", [face_sample(engine, COLOURS["bob"])], mid)
    _edit(folder / DB_NAME, ("UPDATE embeddings SET vector=? WHERE sample_id=?", (NAN_VECTOR, bad)))
    with pytest.raises(DamagedSample, match=rf"sample {bad} of 'Bob' cannot be matched: its embedding holds NaN.*"
                                            rf"gallery remove-sample {bad}"):
        open_gallery(folder, engine)  # the startup check, before any frame
    with Gallery(folder) as g:
        with pytest.raises(DamagedSample):
            g.match(engine.embed_colour(COLOURS["alice"])[None], mid)
        g.remove_sample(bad)
    with open_gallery(folder, engine) as g:
        assert g.match(engine.embed_colour(COLOURS["alice"])[None], mid).names == ["Alice"]


def test_garbage_and_huge_crops_are_refused_at_import_and_named_when_stored(tmp_path):
    export, engine = _export(tmp_path)
    bob = _bob_sample(export)
    conn = sqlite3.connect(export)
    alice_ids = [r[0] for r in conn.execute("SELECT s.id FROM samples s JOIN identities i ON i.id=s.identity_id "
                                            "WHERE i.name='Alice' ORDER BY s.id")]
    conn.close()
    huge = _huge_png()
    _edit(export, ("UPDATE samples SET crop_jpeg=? WHERE id=?", (b"\xff\xd8\xff garbage" * 50, bob)),
          ("UPDATE samples SET crop_jpeg=? WHERE id=?", (huge, alice_ids[0])))
    with Gallery(tmp_path / "dst") as dst:
        t0 = time.perf_counter()
        report = dst.import_from(export, dry_run=True)
        assert time.perf_counter() - t0 < 2.0  # the 20000x20000 crop is refused from its header
        reasons = {r.sample: r.reason for r in report.rejected}
        assert set(reasons) == {bob, alice_ids[0]}
        assert "damaged JPEG" in reasons[bob]
        assert "too large: 20000x20000" in reasons[alice_ids[0]]
        assert report.dry_run and report.samples == 1 and len(dst) == 0  # dry run: nothing written

    # the same crops stored by anything else: named, fast, and re-embedding names them too
    other = ColourFaceEngine(version=2)
    folder = tmp_path / "g"
    with Gallery(folder) as g:
        [a1] = g.add_samples("Alice", [face_sample(engine, COLOURS["alice"])], engine.info.model_id)
        [b1] = g.add_samples("Bob", [face_sample(engine, COLOURS["bob"])], engine.info.model_id)
    _edit(folder / DB_NAME, ("UPDATE samples SET crop_jpeg=? WHERE id=?", (huge, a1)),
          ("UPDATE samples SET crop_jpeg=? WHERE id=?", (b"not an image at all", b1)))
    with Gallery(folder) as g:
        t0 = time.perf_counter()
        with pytest.raises(DamagedSample, match=rf"gallery sample {a1} is too large.*remove-sample {a1}"):
            g.sample_crop(a1)
        assert time.perf_counter() - t0 < 1.0
        with pytest.raises(DamagedSample, match=rf"sample {b1}"):
            g.sample_crop(b1)
        with pytest.raises(UserError, match=rf"sample {a1} of 'Alice' \(its stored crop is damaged\).*"
                                            rf"sample {b1} of 'Bob' \(its stored crop is damaged\)"):
            g.ensure_model(other)


def test_names_are_cleaned_control_characters_and_duplicates_refused(tmp_path):
    export, engine = _export(tmp_path)
    _edit(export, ("UPDATE identities SET name=? WHERE name='Alice'", ("  Alice   Smith ",)),
          ("INSERT INTO identities (name, created, updated) VALUES (?, 0, 0)", ("\x1b[31mEvil\x1b[0m",)),
          ("INSERT INTO identities (name, created, updated) VALUES (?, 0, 0)", ("alice smith",)))
    with Gallery(tmp_path / "dst") as dst:
        with pytest.raises(ImportRejected) as err:
            dst.import_from(export)
        lines = [r.line() for r in err.value.report.rejected]
        assert lines == [
            "identity '\\x1b[31mEvil\\x1b[0m': identity name '\\x1b[31mEvil\\x1b[0m' contains control characters "
            "(0 samples left out)",
            "identity 'alice smith': the export holds another identity named 'Alice Smith' (0 samples left out): "
            "rename one and export again"]
        report = dst.import_from(export, skip_rejected=True)
        assert sorted(report.added) == ["Alice Smith", "Bob"] and report.samples == 3
        assert dst.remove("  Alice Smith ") == 2  # the name as typed with stray spaces still finds it


def test_duplicate_name_keeps_every_sample_or_says_so(tmp_path):
    """11 samples under two spellings of one name: before, one identity's samples vanished silently."""
    engine = ColourFaceEngine()
    mid = engine.info.model_id
    with Gallery(tmp_path / "src") as src:
        src.add_samples("Dana", [face_sample(engine, COLOURS["dave"], size=60 + 5 * i) for i in range(6)], mid)
        src.add_samples("Dana2", [face_sample(engine, COLOURS["dave"], size=62 + 5 * i) for i in range(5)], mid)
        export = src.export(tmp_path / "d.gallery")
    _edit(export, ("UPDATE identities SET name='Dana ' WHERE name='Dana2'", ()))
    with Gallery(tmp_path / "dst") as dst:
        report = dst.import_from(export, dry_run=True)
        assert report.samples == 6
        assert [r.line() for r in report.rejected] == [
            "identity 'Dana ': the export holds another identity named 'Dana' (5 samples left out): "
            "rename one and export again"]


def test_crop_less_sample_of_another_model_cannot_poison_the_gallery(tmp_path):
    engine = ColourFaceEngine()
    with Gallery(tmp_path / "src") as src:
        [sid] = src.add_samples("Eve", [face_sample(engine, COLOURS["carol"])], "someone-elses-model")
        src.add_samples("Frank", [face_sample(engine, COLOURS["bob"])], engine.info.model_id)
        export = src.export(tmp_path / "e.gallery")
    _edit(export, ("UPDATE samples SET crop_jpeg=NULL WHERE id=?", (sid,)))
    folder = tmp_path / "dst"
    with Gallery(folder) as dst:
        dst.add_samples("Carol", [face_sample(engine, COLOURS["carol"])], engine.info.model_id)
        report = dst.import_from(export, skip_rejected=True)
        assert [(r.name, r.sample) for r in report.rejected] == [("Eve", sid)]
        assert f"no embedding from {engine.info.model_id}" in report.rejected[0].reason
    with open_gallery(folder, engine) as g:  # before: every later command failed
        assert g.match(engine.embed_colour(COLOURS["bob"])[None], engine.info.model_id).names == ["Frank"]


def test_damaged_export_files_are_refused_with_one_line(tmp_path):
    export, _ = _export(tmp_path)
    _edit(export, ("UPDATE meta SET value='abc' WHERE key='schema_version'", ()))
    with Gallery(tmp_path / "dst") as dst:
        with pytest.raises(UserError, match=r"schema version 'abc' is not a number"):
            dst.import_from(export)
    export2, _ = _export(tmp_path, "two.gallery")
    # an index that no longer agrees with its table: SQLite's integrity check catches it
    _edit(export2, ("PRAGMA writable_schema=ON", ()),
          ("UPDATE sqlite_master SET sql='CREATE INDEX samples_by_identity ON samples(quality)' "
           "WHERE name='samples_by_identity'", ()))
    with Gallery(tmp_path / "dst") as dst:
        with pytest.raises(UserError, match=r"fails SQLite's integrity check.*nothing was imported") as exc:
            dst.import_from(export2)
        assert "\n" not in str(exc.value) and "***" not in str(exc.value)  # SQLite's report is several lines
        assert len(dst) == 0
    # found by fuzzing: a name that is not UTF-8 raised UnicodeDecodeError
    export3, _ = _export(tmp_path, "three.gallery")
    _edit(export3, ("UPDATE identities SET name=CAST(x'41ff80' AS TEXT) WHERE name='Bob'", ()))
    with Gallery(tmp_path / "dst") as dst:
        with pytest.raises(UserError, match=r"is damaged \(.*UTF-8"):
            dst.import_from(export3)
        assert len(dst) == 0


def test_import_command_lists_rejections_and_dry_run(tmp_path, capsys):
    from main import main

    export, engine = _export(tmp_path)
    bob = _bob_sample(export)
    _edit(export, ("UPDATE embeddings SET vector=? WHERE sample_id=?", (NAN_VECTOR, bob)))
    folder = tmp_path / "g"
    Gallery(folder).close()
    code = main(["gallery", "import", str(export), "--gallery", str(folder)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0] == f"rejected: sample {bob} of 'Bob': its embedding holds NaN or infinite values (model {engine.info.model_id})"
    assert err[1].startswith("error: import refused: 1 sample(s)") and len(err) == 2
    code = main(["gallery", "import", str(export), "--gallery", str(folder), "--dry-run", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["dry_run"] and out["samples"] == 2 and out["rejected"][0]["sample"] == bob
    with Gallery(folder) as g:
        assert len(g) == 0
    code = main(["gallery", "import", str(export), "--gallery", str(folder), "--skip-rejected"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("imported 2 samples") and f"rejected: sample {bob} of 'Bob'" in out
    # a name with an escape sequence already in a gallery is listed escaped, not obeyed
    with Gallery(folder) as g:
        g._live().execute("UPDATE identities SET name=? WHERE name='Alice'", ("\x1b[2JAlice",))
    main(["gallery", "list", "--gallery", str(folder)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2JAlice" in out
