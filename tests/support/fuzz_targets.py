"""Fuzz targets for Unisight's input surfaces, shared by tests/app/test_fuzz.py (hypothesis, a
bounded run) and scripts/fuzz.py (longer runs, atheris when installed).

Each target takes arbitrary bytes and must end in a result or a one-line `UserError`; any
other exception is a crash and propagates. Bytes are read as mutations of real seed files
(an image per format, an MP4 and an MKV, a gallery export), so most inputs get past the
first magic-number check and into the parsers.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engines.errors import UserError  # noqa: E402

FUZZ_MAX_PIXELS = 4_000_000  # decoding stays cheap; the size check itself is what is fuzzed
TARGETS = ("image", "video", "import", "settings")


class BadError(AssertionError):
    """A `UserError` that is not one line: the promise is broken even though nothing crashed."""


def one_line(exc: UserError) -> str:
    text = str(exc)
    if not text or "\n" in text:
        raise BadError(f"not a one-line error: {text!r}")
    return "error"


def mutate(seed: bytes, data: bytes) -> bytes:
    """`seed` changed by `data`: the first two bytes pick a cut point, then each 3 bytes
    overwrite one byte (position, value)."""
    if len(data) < 2:
        return seed
    out = bytearray(seed)
    cut = int.from_bytes(data[:2], "little")
    if cut % 4 == 0:  # a quarter of the inputs are truncated
        out = out[: cut * len(out) // 65536]
    for i in range(2, len(data) - 2, 3):
        if not out:
            break
        pos = int.from_bytes(data[i:i + 2], "little") % len(out)
        out[pos] = data[i + 2]
    return bytes(out)


@dataclass
class Seeds:
    """Real files to mutate, made once per process."""

    images: list[bytes]
    videos: list[tuple[str, bytes]]
    export: Path
    workdir: Path

    @classmethod
    def make(cls, workdir: Path | None = None) -> "Seeds":
        from tests.support.colour_faces import COLOURS, ColourFaceEngine, face_sample
        from tests.support.fakes import make_video

        workdir = Path(workdir or tempfile.mkdtemp(prefix="unisight-fuzz-"))
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (24, 32, 3), np.uint8)
        images = [cv2.imencode(ext, image)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".tif", ".webp", ".ppm")]
        images.append(cv2.imencode(".png", np.dstack([image, image[:, :, :1]]))[1].tobytes())
        videos = []
        for fmt, ext in (("mp4", "mp4"), ("matroska", "mkv")):
            path = workdir / f"seed.{ext}"
            make_video(path, frames=8, size=(64, 48), fmt=fmt)
            videos.append((ext, path.read_bytes()))
        from app.gallery.store import Gallery

        engine = ColourFaceEngine()
        with Gallery(workdir / "seed-gallery") as g:
            g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=s) for s in (60, 70)],
                          engine.info.model_id)
            g.add_samples("Bob", [face_sample(engine, COLOURS["bob"], size=60)], engine.info.model_id)
            export = g.export(workdir / "seed.gallery")
        return cls(images=images, videos=videos, export=export, workdir=workdir)


def fuzz_image(data: bytes, seeds: Seeds) -> str:
    """Decode mutated image bytes (one seed per format, or the raw input)."""
    from app.imageio import decode_image

    pick = data[0] % (len(seeds.images) + 1) if data else 0
    raw = data[1:] if pick == len(seeds.images) else mutate(seeds.images[pick], data[1:])
    try:
        image = decode_image(raw, name="fuzz", max_pixels=FUZZ_MAX_PIXELS)
    except UserError as exc:
        return one_line(exc)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return "decoded"


def fuzz_video(data: bytes, seeds: Seeds) -> str:
    """Open and read (up to 20 frames of) a mutated MP4 or MKV."""
    from app.sources import FileSource

    ext, seed = seeds.videos[data[0] % len(seeds.videos)] if data else seeds.videos[0]
    path = seeds.workdir / f"fuzz.{ext}"
    path.write_bytes(mutate(seed, data[1:]))
    source = FileSource(path)
    try:
        source.open()
    except UserError as exc:
        return one_line(exc)
    try:
        frames = 0
        while frames < 20 and source.read() is not None:
            frames += 1
    finally:
        source.close()
    if source.error is not None and "\n" in source.error:
        raise BadError(f"not a one-line source error: {source.error!r}")
    return "truncated" if source.truncated else "read"


def _pieces(body: bytes) -> list[bytes]:
    return [p for p in body.split(b"\xfe")][:12]


def _edit_export(conn: sqlite3.Connection, kind: int, piece: bytes) -> None:
    """One field-level edit of an export, chosen by `kind`, with `piece` as the new value."""
    sample_ids = [r[0] for r in conn.execute("SELECT id FROM samples ORDER BY id")]
    sid = sample_ids[len(piece) % len(sample_ids)] if sample_ids else 0
    text = piece.decode("utf-8", "replace")
    if kind == 0:
        conn.execute("UPDATE identities SET name=? WHERE id=(SELECT MIN(id) FROM identities)", (text,))
    elif kind == 1:
        conn.execute("UPDATE embeddings SET vector=? WHERE sample_id=?", (piece, sid))
    elif kind == 2:  # a right-length vector with the piece's floats (NaN, inf, huge, tiny...)
        floats = np.frombuffer((piece * (512 // max(1, len(piece)) + 1))[:512], "<f4")
        conn.execute("UPDATE embeddings SET vector=? WHERE sample_id=?", (floats.tobytes(), sid))
    elif kind == 3:
        conn.execute("UPDATE samples SET crop_jpeg=? WHERE id=?", (piece or None, sid))
    elif kind == 4:
        vals = struct.unpack("<4f", (piece + bytes(16))[:16])
        conn.execute("UPDATE samples SET face_x1=?, face_y1=?, face_x2=?, face_y2=? WHERE id=?", (*vals, sid))
    elif kind == 5:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (text,))
    elif kind == 6:
        conn.execute("INSERT INTO identities (name, created, updated) VALUES (?, 0, 0)", (text,))
    elif kind == 7:
        conn.execute("DELETE FROM embeddings WHERE sample_id=?", (sid,))
    elif kind == 8:
        conn.execute("UPDATE embeddings SET model_id=? WHERE sample_id=?", (text, sid))
    elif kind == 9:  # a crop that is a mutated copy of another sample's crop
        row = conn.execute("SELECT crop_jpeg FROM samples WHERE crop_jpeg IS NOT NULL LIMIT 1").fetchone()
        if row is not None:
            conn.execute("UPDATE samples SET crop_jpeg=? WHERE id=?", (mutate(row[0], piece), sid))
    elif kind == 10:
        conn.execute("UPDATE samples SET quality=?, source=? WHERE id=?",
                      (struct.unpack("<d", (piece + bytes(8))[:8])[0], text, sid))


def fuzz_import(data: bytes, seeds: Seeds) -> str:
    """Import a damaged export (bytes flipped, or fields edited) into a gallery holding a
    clashing name; then the gallery must still open and match for the engine: no import
    may leave it unusable."""
    from app.gallery.store import Gallery, open_gallery
    from tests.support.colour_faces import COLOURS, ColourFaceEngine, face_sample

    run = Path(tempfile.mkdtemp(dir=seeds.workdir))
    try:
        export = run / "in.gallery"
        mode = data[0] % 3 if data else 1
        if mode == 0:
            export.write_bytes(mutate(seeds.export.read_bytes(), data[1:]))
        else:
            shutil.copy(seeds.export, export)
            conn = sqlite3.connect(export)
            for piece in _pieces(data[1:]):
                try:
                    _edit_export(conn, piece[0] % 11 if piece else 0, piece[1:])
                except sqlite3.Error:  # the edit broke a constraint: the harness skips it
                    pass
            conn.commit()
            conn.close()
        engine = ColourFaceEngine()
        folder = run / "g"
        with Gallery(folder) as g:
            g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=64)], engine.info.model_id)
            try:
                g.import_from(export, on_clash=("merge", "rename", "refuse")[len(data) % 3], skip_rejected=True)
                outcome = "imported"
            except UserError as exc:
                outcome = one_line(exc)
        with open_gallery(folder, engine) as g:  # the property: recognition still works
            m = g.match(engine.embed_colour(COLOURS["alice"])[None], engine.info.model_id)
            # (with --rename an identical "Alice (2)" may make the decision ambiguous: unknown is
            # then right; the similarity to the Alice that was there must still be exact)
            assert np.isfinite(m.identity_similarities).all() and m.similarity_to(0, "Alice") > 0.99, m
        return outcome
    finally:
        shutil.rmtree(run, ignore_errors=True)


def fuzz_settings(data: bytes, seeds: Seeds) -> str:
    """Load a settings file: raw bytes, or JSON built from the input; always a Settings."""
    from app.settings import Settings, load_settings

    path = seeds.workdir / "settings.json"
    if data and data[0] % 2:
        keys = ["engine", "backend", "input_size", "threshold", "min_face", "gallery_dir", "sources", "show_landmarks",
                "other"]
        values: list = [None, True, -1, 0, 3.5, 1e308, "auto", "", [640, 480], [1, 2, 3], {"a": 1}, "x" * 50]
        obj = {keys[b % len(keys)]: values[c % len(values)] for b, c in zip(data[1::2], data[2::2])}
        path.write_text(json.dumps(obj))
    else:
        path.write_bytes(data[1:])
    settings = load_settings(path)
    assert isinstance(settings, Settings)
    return "loaded"


RUNNERS = {"image": fuzz_image, "video": fuzz_video, "import": fuzz_import, "settings": fuzz_settings}
