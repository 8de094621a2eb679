"""Gallery export files: writing one safely, reading one back, and what an import did.

An export is a standalone copy of the gallery database (crops included) in rollback-journal
mode, so it is one file a user can mail or back up; `Gallery.export` / `Gallery.import_from`
use these pieces.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from app.errors import UserError
from app.gallery_schema import FORMAT_NAME, SCHEMA_VERSION
from engines.faces import EMBEDDING_DIM


@dataclass(slots=True)
class ImportReport:
    """What `Gallery.import_from` did."""

    added: list[str] = field(default_factory=list)  # new identities
    merged: list[str] = field(default_factory=list)  # existing identities that got samples
    renamed: dict[str, str] = field(default_factory=dict)  # imported name -> name used here
    samples: int = 0  # samples added
    duplicates_skipped: int = 0  # samples already present (merge of the same export twice)

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "merged": self.merged,
            "renamed": self.renamed,
            "samples": self.samples,
            "duplicates_skipped": self.duplicates_skipped,
        }


@dataclass(frozen=True, slots=True)
class ExportedSample:
    """One face sample as an export file holds it."""

    enrolled_model: str
    crop_jpeg: bytes | None
    box: tuple[float, float, float, float]  # face box inside the crop
    quality: float | None
    source: str
    created: float
    embeddings: list[tuple[str, bytes]]  # (model_id, 128 float32 little-endian)

    def digest(self) -> bytes:
        """What makes two samples the same (see `sample_digest`)."""
        return sample_digest(self.crop_jpeg, self.embeddings)


def write_export(path: str | os.PathLike, overwrite: bool, copy_into: Callable[[str], None]) -> Path:
    """Write an export to `path` (mode 0600) through a temporary file that replaces it only
    once complete and synced. `copy_into(tmp)` writes the database copy (VACUUM INTO)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists: choose another file name or delete it first")
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist: create it or choose another path")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(tmp, 0o600)
    try:
        copy_into(str(tmp))
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            out.execute("PRAGMA journal_mode=DELETE")  # a plain file: readable without -wal/-shm
        finally:
            out.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_export(path: Path) -> dict[str, list[ExportedSample]]:
    """Identities and their samples in an exported gallery file, checked to be one."""
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file: give the path of a gallery export")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open {path}: {exc}") from exc
    try:
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{path} is not a Unisight gallery export ({exc})") from exc
        if meta.get("format") != FORMAT_NAME:
            raise UserError(f"{path} is not a Unisight gallery export (format {meta.get('format')!r})")
        if int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
            raise UserError(f"{path} was written by a newer Unisight (schema {meta['schema_version']}): upgrade Unisight")
        out: dict[str, list[ExportedSample]] = {}
        for ident, name in conn.execute("SELECT id, name FROM identities ORDER BY id").fetchall():
            samples = []
            for row in conn.execute(
                "SELECT id, enrolled_model, crop_jpeg, face_x1, face_y1, face_x2, face_y2, quality, source, created "
                "FROM samples WHERE identity_id=? ORDER BY id", (ident,)).fetchall():
                embs = conn.execute("SELECT model_id, vector FROM embeddings WHERE sample_id=?", (row[0],)).fetchall()
                for _, vector in embs:
                    if len(vector) != EMBEDDING_DIM * 4:
                        raise UserError(f"{path} holds a damaged embedding (sample {row[0]}): re-export it")
                samples.append(ExportedSample(enrolled_model=row[1], crop_jpeg=row[2], box=tuple(row[3:7]),
                                              quality=row[7], source=row[8], created=row[9], embeddings=embs))
            out[name] = samples
        return out
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path} is damaged ({exc}): export it again") from exc
    finally:
        conn.close()


def sample_digest(crop: bytes | None, embeddings: Sequence[tuple[str, bytes]]) -> bytes:
    """A sample's identity for de-duplication: its crop when it has one, else its embeddings."""
    h = hashlib.sha256()
    if crop is not None:
        h.update(b"crop")
        h.update(crop)
    else:
        for model_id, vector in sorted(embeddings):
            h.update(model_id.encode())
            h.update(vector)
    return h.digest()


def free_name(conn: sqlite3.Connection, name: str) -> str:
    """The first of "name (2)", "name (3)", ... that no identity has."""
    for i in range(2, 10_000):
        candidate = f"{name} ({i})"
        if conn.execute("SELECT 1 FROM identities WHERE name=?", (candidate,)).fetchone() is None:
            return candidate
    raise UserError(f"no free name for {name!r}")
