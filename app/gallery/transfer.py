"""Gallery export files: writing one safely, reading one back, and what an import did.

An export is a standalone copy of the gallery database (crops included) in rollback-journal
mode, so it is one file a user can mail or back up; `Gallery.export` / `Gallery.import_from`
use these pieces.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from engines.errors import UserError
from app.gallery.schema import FORMAT_NAME, SCHEMA_VERSION
from app.storage import classify_os_error, classify_sqlite_error, probe_folder
from app.gallery.validate import Rejection, clean_name, crop_problem, name_key, vector_problem


@dataclass(slots=True)
class ImportReport:
    """What `Gallery.import_from` did."""

    added: list[str] = field(default_factory=list)  # new identities
    merged: list[str] = field(default_factory=list)  # existing identities that got samples
    renamed: dict[str, str] = field(default_factory=dict)  # imported name -> name used here
    samples: int = 0  # samples added
    duplicates_skipped: int = 0  # samples already present (merge of the same export twice)
    rejected: list[Rejection] = field(default_factory=list)  # samples the checks left out
    dry_run: bool = False  # nothing was written: this is what an import would do

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "merged": self.merged,
            "renamed": self.renamed,
            "samples": self.samples,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": [r.to_dict() for r in self.rejected],
            "dry_run": self.dry_run,
        }


class ImportRejected(UserError):
    """An import refused because some samples failed the checks; nothing was written."""

    def __init__(self, message: str, report: ImportReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True, slots=True)
class ExportedSample:
    """One face sample as an export file holds it."""

    export_id: int  # its id inside the export (named in rejections)
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


@dataclass(frozen=True, slots=True)
class ExportedIdentity:
    """One identity of an export file, its name exactly as stored."""

    name: str
    samples: list[ExportedSample]


def write_export(path: str | os.PathLike, overwrite: bool, copy_into: Callable[[str], None]) -> Path:
    """Write an export to `path` (mode 0600) through a temporary file that replaces it only
    once complete and synced. `copy_into(tmp)` writes the database copy (VACUUM INTO)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists: choose another file name or delete it first")
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist: create it or choose another path")
    probe_folder(path.parent, "export")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    leftovers = [tmp, tmp.with_name(tmp.name + "-journal")]  # SQLite's rollback journal beside it
    for p in leftovers:
        p.unlink(missing_ok=True)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(tmp, 0o600)
        copy_into(str(tmp))
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            out.execute("PRAGMA journal_mode=DELETE")  # a plain file: readable without -wal/-shm
        finally:
            out.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        for p in leftovers:
            p.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise classify_sqlite_error(exc, tmp, f"cannot write the export {path}") from exc
        if isinstance(exc, OSError):
            raise classify_os_error(exc, path) from exc
        raise
    return path


def read_export(path: Path) -> list[ExportedIdentity]:
    """Identities and their samples in an exported gallery file, in file order, exactly as
    stored (names and samples are checked by `check_export`). The file itself must pass
    SQLite's integrity check and carry a schema version this Unisight reads."""
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
        version = meta.get("schema_version")
        try:
            version_number = int(str(version))
        except ValueError:
            raise UserError(f"{path} is a damaged gallery export (schema version {version!r} is not a number): "
                            "export it again") from None
        if version_number > SCHEMA_VERSION:
            raise UserError(f"{path} was written by a newer Unisight (schema {version}): upgrade Unisight")
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
        if problems != ["ok"]:
            # SQLite's report is several lines under a "*** in database main ***" heading
            lines = [ln.strip() for p in problems for ln in str(p).splitlines() if ln.strip() and "***" not in ln]
            first = lines[0] if lines else "no detail"
            raise UserError(f"{path} fails SQLite's integrity check ({first}): nothing was imported; "
                            "export it again from the original gallery")
        out: list[ExportedIdentity] = []
        for ident, name in conn.execute("SELECT id, name FROM identities ORDER BY id").fetchall():
            samples = []
            for row in conn.execute(
                "SELECT id, enrolled_model, crop_jpeg, face_x1, face_y1, face_x2, face_y2, quality, source, created "
                "FROM samples WHERE identity_id=? ORDER BY id", (ident,)).fetchall():
                embs = conn.execute("SELECT model_id, vector FROM embeddings WHERE sample_id=? ORDER BY model_id",
                                    (row[0],)).fetchall()
                samples.append(ExportedSample(export_id=row[0], enrolled_model=row[1], crop_jpeg=row[2],
                                              box=tuple(row[3:7]), quality=row[7], source=row[8], created=row[9],
                                              embeddings=embs))
            out.append(ExportedIdentity(name=name, samples=samples))
        return out
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path} is damaged ({exc}): export it again") from exc
    except UnicodeDecodeError as exc:  # found by fuzzing: a text column holding bytes that are not UTF-8
        raise UserError(f"{path} is damaged (text that is not UTF-8 at byte {exc.start} of a value): "
                        "export it again") from exc
    finally:
        conn.close()


def check_export(identities: Sequence[ExportedIdentity],
                 existing_models: Iterable[str]) -> tuple[dict[str, list[ExportedSample]], list[Rejection]]:
    """Split an export into what may be imported (by cleaned name) and what may not.

    A sample is rejected when an embedding is not a finite unit vector of the right length,
    it has no embedding at all, its crop does not decode, is too large or has no face box
    inside it, or it has no crop and lacks an embedding from one of the models the gallery
    will hold (nothing could ever re-embed it). An identity is rejected whole when its name
    is empty, too long, holds control characters, or repeats an earlier name."""
    models = set(existing_models)
    for ident in identities:
        for sample in ident.samples:
            models.update(m for m, _ in sample.embeddings if isinstance(m, str))
    accepted: dict[str, list[ExportedSample]] = {}
    keys: dict[str, str] = {}
    rejected: list[Rejection] = []
    for ident in identities:
        raw = ident.name if isinstance(ident.name, str) else str(ident.name)
        try:
            name = clean_name(ident.name)
        except UserError as exc:
            rejected.append(Rejection(raw, None, f"{exc} ({len(ident.samples)} samples left out)"))
            continue
        key = name_key(name)
        if key in keys:
            rejected.append(Rejection(raw, None, f"the export holds another identity named {keys[key]!r} "
                                                 f"({len(ident.samples)} samples left out): rename one and export again"))
            continue
        keys[key] = name
        good = []
        for sample in ident.samples:
            why = _sample_problem(sample, models)
            if why is None:
                good.append(sample)
            else:
                rejected.append(Rejection(raw, sample.export_id, why))
        accepted[name] = good
    return accepted, rejected


def _sample_problem(sample: ExportedSample, models: set[str]) -> str | None:
    if not sample.embeddings:
        return "it has no embedding"
    for model_id, vector in sample.embeddings:
        if not isinstance(model_id, str) or not model_id:
            return "an embedding names no model"
        why = vector_problem(vector)
        if why is not None:
            return f"{why} (model {model_id})"
    if sample.crop_jpeg is None:
        lacking = sorted(models - {m for m, _ in sample.embeddings})
        if lacking:
            return (f"it has no stored crop and no embedding from {', '.join(lacking)}: "
                    "it could never be matched by that model")
        return None
    return crop_problem(sample.crop_jpeg, sample.box)


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


def import_rows(gallery, conn: sqlite3.Connection, incoming: dict, on_clash: str, report: ImportReport) -> None:
    """Write the checked `incoming` samples into `gallery` inside its open transaction `conn`."""
    clashes = [name for name in incoming if gallery._identity_id(name, conn) is not None]
    if clashes and on_clash == "refuse":
        raise UserError(
            f"import refused: {len(clashes)} name(s) already in the gallery ({', '.join(clashes[:10])}); "
            "nothing was imported: add --merge to join their samples to the existing identities "
            "or --rename to import them under new names"
        )
    now = time.time()
    for name, samples in incoming.items():
        target = gallery._identity_id(name, conn)
        known: set[bytes] = set()
        if target is None:
            target = gallery._insert_identity(conn, name)
            report.added.append(name)
        elif on_clash == "merge":
            report.merged.append(name)
            known = {sample_digest(crop, embs) for crop, embs in gallery._sample_contents(conn, target)}
        else:
            new_name = free_name(conn, name)
            target = gallery._insert_identity(conn, new_name)
            report.renamed[name] = new_name
        for sample in samples:
            if sample.digest() in known:  # only samples that were here before the import count
                report.duplicates_skipped += 1
                continue
            cur = conn.execute(
                "INSERT INTO samples (identity_id, enrolled_model, crop_jpeg, face_x1, face_y1, face_x2, face_y2, "
                "quality, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (target, sample.enrolled_model, sample.crop_jpeg, *sample.box, sample.quality,
                 sample.source, sample.created))
            for model_id, vector in sample.embeddings:
                conn.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?)", (cur.lastrowid, model_id, vector, now))
            report.samples += 1
        conn.execute("UPDATE identities SET updated=? WHERE id=?", (now, target))


def export_gallery(gallery, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the whole gallery (identities, samples, crops, every model's embeddings) to one
    SQLite file, readable by the user only; refuses to replace a file unless `overwrite`."""
    def copy_into(tmp: str) -> None:
        with gallery._lock:
            gallery._live().execute("VACUUM INTO ?", (tmp,))

    return write_export(path, overwrite, copy_into)


class _DryRun(Exception):
    """Rolls back a dry-run import's transaction."""


def import_gallery(gallery, path: str | os.PathLike, on_clash: str = "refuse", *, dry_run: bool = False,
                   skip_rejected: bool = False) -> ImportReport:
    """Add the identities of an exported gallery file, in one transaction.

    Everything is checked before anything is written (`check_export`):
    when a sample fails, the import is refused (`ImportRejected`, whose report lists every
    rejected sample) unless `skip_rejected`, which imports the rest. `dry_run` does the
    whole import and rolls it back: the report says what would happen.

    on_clash: "refuse" (any name that exists here stops the whole import, nothing added),
    "merge" (their samples join the existing identity; samples already there are skipped) or
    "rename" (imported as "Name (2)", ...)."""
    if on_clash not in ("refuse", "merge", "rename"):
        raise ValueError(f"on_clash must be refuse, merge or rename, got {on_clash!r}")
    incoming, rejected = check_export(read_export(Path(path)), gallery.model_ids())
    report = ImportReport(rejected=rejected, dry_run=dry_run)
    if rejected and not skip_rejected and not dry_run:
        listed = "; ".join(r.line() for r in rejected[:3])
        more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
        raise ImportRejected(
            f"import refused: {len(rejected)} sample(s) of {path} failed the checks: {listed}{more}; "
            "nothing was imported: add --skip-rejected to import the rest, or --dry-run to list them all", report)
    try:
        with gallery._tx() as conn:
            import_rows(gallery, conn, incoming, on_clash, report)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return report
