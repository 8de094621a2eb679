"""The gallery: enrolled identities, their face samples and embeddings, and the matcher.

On disk: one folder (0700) holding `gallery.db` (0600), SQLite in WAL mode. Every change is
one transaction, so a crash loses nothing committed and corrupts nothing. Face crops are
stored inside the database as JPEG, so an export is one self-contained file.

Embeddings are kept per model: each sample may hold one embedding per `model_id`. Matching
uses only the embeddings of the caller's model; when samples lack one, `match` refuses
(unless told to skip them) and `ensure_model(engine)` re-embeds them from their stored crops.

Matching takes, per identity, the best cosine similarity over its samples ("max"; "mean"
matches against each identity's mean embedding instead). A face is named when the best
identity reaches the threshold and beats the second best by the margin.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from engines.errors import UserError
from app.gallery.face_crop import FaceCrop, encode_jpeg, thumbnail
from app.gallery.schema import DB_NAME, FORMAT_NAME, SCHEMA, SCHEMA_VERSION
from app.gallery.transfer import (ImportRejected, ImportReport, check_export, free_name, read_export, sample_digest,
                                  write_export)
from app.gallery.validate import MAX_CROP_PIXELS, MAX_NAME_LENGTH, clean_name, vector_problem  # noqa: F401
from app.paths import default_gallery_dir
from app.storage import (LOW_SPACE_BYTES, StorageError, classify_os_error, classify_sqlite_error, free_bytes,
                         write_problem)
from app.gallery.recognition_defaults import DEFAULT_MARGIN, FALLBACK_THRESHOLD
from engines.faces import EMBEDDING_DIM

log = logging.getLogger(__name__)

REEMBED_MIN_IOU = 0.3  # the face found in a stored crop must overlap the stored face box


class ModelMismatch(UserError):
    """Gallery samples lack embeddings from the engine's model."""


class DamagedSample(UserError):
    """A stored sample cannot be used (its embedding is not finite, its crop does not decode)."""


class _DryRun(Exception):
    """Rolls back a dry-run import's transaction."""


@dataclass(slots=True)
class NewSample:
    """A face to store: its embedding from `model_id`'s engine and the crop it came from."""

    embedding: np.ndarray  # (128,) float32
    crop: FaceCrop | None = None
    quality: float | None = None
    source: str = ""  # where it came from: a file name, "camera 0 track 12", ...


@dataclass(slots=True)
class IdentitySummary:
    """One row of `Gallery.identities()`."""

    id: int
    name: str
    sample_count: int
    created: float
    updated: float
    thumbnail: np.ndarray | None = None  # BGR 96x96 of the best-quality sample


@dataclass(slots=True)
class SampleInfo:
    """One row of `Gallery.samples()`."""

    id: int
    name: str
    quality: float | None
    source: str
    created: float
    enrolled_model: str
    model_ids: list[str]
    has_crop: bool


@dataclass(slots=True)
class Matches:
    """Gallery decisions for n query embeddings against k identities."""

    names: list[str | None]  # decided name per query (None = unknown)
    similarities: np.ndarray  # (n,) best identity similarity (NaN when the gallery is empty)
    best: np.ndarray  # (n,) index into `identity_names` of the nearest identity (-1 = none)
    second_similarities: np.ndarray  # (n,) second-best identity similarity (NaN = none)
    identity_names: tuple[str, ...]  # the k identities compared against
    identity_similarities: np.ndarray  # (n, k) similarity of each query to each identity

    def similarity_to(self, i: int, name: str | None) -> float:
        """Similarity of query i to identity `name` (NaN when unknown or not in the gallery)."""
        if name is None:
            return float("nan")
        try:
            j = self.identity_names.index(name)
        except ValueError:
            return float("nan")
        return float(self.identity_similarities[i, j])


@dataclass(slots=True)
class _Matcher:
    """An immutable snapshot of one model's embeddings, ready for a matrix product."""

    matrix: np.ndarray  # (m, 128) unit rows, grouped by identity
    starts: np.ndarray  # (k,) first row of each identity
    names: tuple[str, ...]  # (k,)
    missing: list[tuple[int, str]]  # samples (id, identity name) with no embedding for this model


class Gallery:
    """Identities and face samples in `folder/gallery.db`; thread-safe; use as a context manager.

    threshold: minimum cosine similarity to name a face; margin: how much the best identity
    must beat the second; aggregate: "max" over an identity's samples or its "mean" embedding.
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        *,
        threshold: float = FALLBACK_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        aggregate: str = "max",
    ):
        if aggregate not in ("max", "mean"):
            raise ValueError(f"aggregate must be 'max' or 'mean', got {aggregate!r}")
        self.folder = Path(folder) if folder is not None else default_gallery_dir()
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.aggregate = aggregate
        self._lock = threading.RLock()
        self._generation = 0
        self._matchers: dict[str, tuple[int, _Matcher]] = {}
        self._data_version: int | None = None
        self.path = self.folder / DB_NAME
        self.read_only_reason: str | None = None
        self._conn = self._open()

    # ----------------------------------------------------------------- opening
    def _open(self) -> sqlite3.Connection:
        _prepare_private_folder(self.folder)
        self.read_only_reason = _read_only_reason(self.folder, self.path)
        if self.read_only_reason is not None:
            return self._open_read_only()
        _touch_private(self.path)
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise UserError(f"gallery {self.path} cannot use WAL journaling (got {mode}): put it on a local disk")
            conn.execute("PRAGMA synchronous=FULL")  # enrolments are rare: make each commit durable
            if conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='meta'").fetchone()[0] == 0:
                with self._tx(conn):  # a new gallery; an existing one is only read when opened
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO meta VALUES ('format', ?), ('schema_version', ?)",
                                 (FORMAT_NAME, str(SCHEMA_VERSION)))
            self._check_version(conn)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            error = classify_sqlite_error(exc, self.path, "cannot open the gallery")
            wal = self.path.with_name(DB_NAME + "-wal")
            if error.kind == "full" and self.path.exists() and not (wal.exists() and wal.stat().st_size > 0):
                # SQLite cannot make its shared-memory file on a full disk; with every commit
                # already in the main file, reading it alone is exact. Changes are refused.
                log.warning("%s", error)
                self.read_only_reason = "the disk is full"
                return self._open_read_only()
            raise error from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        for suffix in ("-wal", "-shm"):  # SQLite copies the database's mode; make sure
            side = self.path.with_name(DB_NAME + suffix)
            if side.exists():
                _tighten(side, 0o600)
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """Open a gallery that cannot be written (read-only mount, folder or file): reading
        works, every change is refused by `_tx` with the reason."""
        if not self.path.exists():
            raise StorageError(f"no gallery in {self.folder} and none can be created there: "
                               f"{self.read_only_reason}", "read-only")
        uri = self.path.resolve().as_uri()
        conn = None
        # mode=ro needs the -shm file or a folder it can be made in; immutable=1 reads the
        # file alone (nothing can write it meanwhile: the folder or the mount refuses writes)
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(uri + query, uri=True, timeout=10.0, isolation_level=None,
                                       check_same_thread=False)
                self._check_version(conn)
                return conn
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                error = exc
        raise classify_sqlite_error(error, self.path, "cannot open the gallery") from error

    def _check_version(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            version = int(row[0]) if row is not None else None
        except ValueError:
            version = None
        if version is None:
            raise StorageError(f"gallery {self.path} is damaged or not a gallery (no schema version): "
                               "restore it from an export", "damaged")
        if version > SCHEMA_VERSION:
            raise UserError(f"gallery {self.path} was written by a newer Unisight (schema {version}): upgrade Unisight")

    @property
    def read_only(self) -> bool:
        """True when the gallery can only be read (see `read_only_reason`)."""
        return self.read_only_reason is not None

    def check_writable(self, action: str = "saving to the gallery") -> None:
        """Raise `StorageError` now when a change could not be saved (read-only, or a full
        disk), so the caller can stop before any expensive work."""
        if self.read_only_reason is not None:
            raise StorageError(f"gallery {self.folder} is read-only ({self.read_only_reason}): {action} needs "
                               "a writable gallery; nothing was changed", "read-only")
        free = free_bytes(self.folder)
        if free is not None and free < LOW_SPACE_BYTES:
            raise StorageError(f"the disk holding gallery {self.folder} is full ({free // 1024} kB free): "
                               f"{action} needs space; free some and try again; nothing was changed", "full")

    def close(self) -> None:
        """Close the database (SQLite checkpoints the WAL)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it."""
        with self._lock:
            if self.read_only_reason is not None:
                self.check_writable("changing it")
            conn = conn or self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # full disk, I/O error: worded for what it is
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise classify_sqlite_error(exc, self.path, "cannot save to the gallery") from exc
            self._generation += 1

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the gallery is closed")
        return self._conn

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._live().execute(sql, params).fetchall()

    # ---------------------------------------------------------------- reading
    def names(self) -> list[str]:
        """Identity names, sorted case-insensitively."""
        return [r[0] for r in self._query("SELECT name FROM identities ORDER BY name COLLATE NOCASE")]

    def __contains__(self, name: str) -> bool:
        return self._identity_id(name) is not None

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM identities")[0][0])

    def identities(self, thumbnails: bool = False) -> list[IdentitySummary]:
        """Every identity with its sample count (and a thumbnail of its best sample)."""
        rows = self._query(
            "SELECT i.id, i.name, COUNT(s.id), i.created, i.updated FROM identities i "
            "LEFT JOIN samples s ON s.identity_id = i.id GROUP BY i.id ORDER BY i.name COLLATE NOCASE"
        )
        out = [IdentitySummary(id=r[0], name=r[1], sample_count=r[2], created=r[3], updated=r[4]) for r in rows]
        if thumbnails:
            for ident in out:
                best = self._query(
                    "SELECT id FROM samples WHERE identity_id=? AND crop_jpeg IS NOT NULL "
                    "ORDER BY quality IS NULL, quality DESC, id LIMIT 1", (ident.id,))
                if best:
                    crop = self.sample_crop(best[0][0])
                    if crop is not None:
                        ident.thumbnail = thumbnail(crop.image, crop.box)
        return out

    def samples(self, name: str | None = None) -> list[SampleInfo]:
        """Samples of one identity (or of all), oldest first."""
        where, params = "", ()
        if name is not None:
            where, params = "WHERE s.identity_id = ?", (self._require(name),)
        rows = self._query(
            "SELECT s.id, i.name, s.quality, s.source, s.created, s.enrolled_model, s.crop_jpeg IS NOT NULL, "
            "(SELECT group_concat(model_id, char(10)) FROM embeddings e WHERE e.sample_id = s.id) "
            f"FROM samples s JOIN identities i ON i.id = s.identity_id {where} ORDER BY s.id", params)
        return [
            SampleInfo(id=r[0], name=r[1], quality=r[2], source=r[3], created=r[4], enrolled_model=r[5],
                       has_crop=bool(r[6]), model_ids=sorted((r[7] or "").split("\n")) if r[7] else [])
            for r in rows
        ]

    def has_crop(self, name: str, crop: FaceCrop) -> bool:
        """Whether `name` already has a sample with exactly this crop (the same face saved twice)."""
        ident = self._identity_id(name)
        if ident is None:
            return False
        data = encode_jpeg(crop.image)
        return bool(self._query("SELECT 1 FROM samples WHERE identity_id=? AND crop_jpeg=? LIMIT 1", (ident, data)))

    def sample_crop(self, sample_id: int) -> FaceCrop | None:
        """The stored crop of a sample with its face box (landmarks unknown: NaN), or None."""
        rows = self._query("SELECT crop_jpeg, face_x1, face_y1, face_x2, face_y2 FROM samples WHERE id=?",
                           (int(sample_id),))
        if not rows:
            raise UserError(f"no gallery sample with id {sample_id}: see `main.py gallery list --samples`")
        data, *box = rows[0]
        if data is None:
            return None
        from app.imageio import decode_image

        try:  # the size comes from the header first: a crafted crop cannot cost gigabytes
            image = decode_image(data, name=f"the stored crop of gallery sample {sample_id}", max_pixels=MAX_CROP_PIXELS)
        except UserError as exc:
            raise DamagedSample(f"{exc}; remove the sample with `main.py gallery remove-sample {sample_id}`") from exc
        return FaceCrop(image=image, box=np.array(box, np.float32), landmarks=np.full((5, 2), np.nan, np.float32))

    def sample_embeddings(self, sample_id: int) -> dict[str, np.ndarray]:
        """Every stored embedding of one sample, by model_id."""
        rows = self._query("SELECT model_id, vector FROM embeddings WHERE sample_id=?", (int(sample_id),))
        return {model: np.frombuffer(blob, "<f4").copy() for model, blob in rows}

    def model_ids(self) -> dict[str, int]:
        """How many samples have an embedding from each model."""
        return {r[0]: r[1] for r in self._query("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id")}

    def missing_embeddings(self, model_id: str) -> list[tuple[int, str]]:
        """Samples (id, identity name) that have no embedding from `model_id`."""
        return [(r[0], r[1]) for r in self._query(
            "SELECT s.id, i.name FROM samples s JOIN identities i ON i.id = s.identity_id "
            "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sample_id = s.id AND e.model_id = ?) "
            "ORDER BY s.id", (model_id,))]

    def check_model(self, model_id: str) -> None:
        """Raise `ModelMismatch` when some samples have no embedding from `model_id`."""
        missing = self.missing_embeddings(model_id)
        if missing:
            raise ModelMismatch(
                f"{len(missing)} gallery samples ({_some_names(missing)}) were embedded by another model than "
                f"{model_id}: open the gallery with that engine to re-embed them (open_gallery / `main.py enroll`)"
            )

    # -------------------------------------------------------------- mutations
    def add_identity(self, name: str) -> int:
        """Create an empty identity; returns its id. Refuses an existing name."""
        name = clean_name(name)
        with self._tx() as conn:
            return self._insert_identity(conn, name)

    def add_samples(self, name: str, samples: Sequence[NewSample], model_id: str, create: bool = True) -> list[int]:
        """Store samples for `name` (created if missing and `create`), in one transaction;
        returns the new sample ids."""
        name = clean_name(name)
        if not model_id:
            raise ValueError("model_id is required")
        rows = [_sample_row(s) for s in samples]
        with self._tx() as conn:
            ident = self._identity_id(name, conn)
            if ident is None:
                if not create:
                    raise UserError(f"no identity named {name!r} in the gallery: check `main.py gallery list`")
                ident = self._insert_identity(conn, name)
            now = time.time()
            ids = []
            for vector, crop, box, quality, source in rows:
                cur = conn.execute(
                    "INSERT INTO samples (identity_id, enrolled_model, crop_jpeg, face_x1, face_y1, face_x2, face_y2, "
                    "quality, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ident, model_id, crop, *box, quality, source, now))
                conn.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?)", (cur.lastrowid, model_id, vector, now))
                ids.append(int(cur.lastrowid))
            conn.execute("UPDATE identities SET updated=? WHERE id=?", (now, ident))
        return ids

    def rename(self, old: str, new: str) -> None:
        """Rename an identity; refuses a name that another identity has."""
        new = clean_name(new)
        with self._tx() as conn:
            ident = self._require(old, conn)
            other = self._identity_id(new, conn)
            if other is not None and other != ident:
                raise UserError(f"cannot rename {old!r} to {new!r}: that name exists; use `gallery merge` to combine them")
            conn.execute("UPDATE identities SET name=?, updated=? WHERE id=?", (new, time.time(), ident))

    def merge(self, source: str, target: str) -> int:
        """Move every sample of `source` to `target` and remove `source`; returns samples moved."""
        with self._tx() as conn:
            src, dst = self._require(source, conn), self._require(target, conn)
            if src == dst:
                raise UserError(f"cannot merge {source!r} into itself")
            moved = conn.execute("UPDATE samples SET identity_id=? WHERE identity_id=?", (dst, src)).rowcount
            conn.execute("DELETE FROM identities WHERE id=?", (src,))
            conn.execute("UPDATE identities SET updated=? WHERE id=?", (time.time(), dst))
        return int(moved)

    def remove(self, name: str) -> int:
        """Delete an identity and its samples; returns how many samples went with it."""
        with self._tx() as conn:
            ident = self._require(name, conn)
            count = conn.execute("SELECT COUNT(*) FROM samples WHERE identity_id=?", (ident,)).fetchone()[0]
            conn.execute("DELETE FROM identities WHERE id=?", (ident,))
        return int(count)

    def remove_sample(self, sample_id: int) -> str:
        """Delete one sample; returns the name it belonged to (the identity stays)."""
        with self._tx() as conn:
            row = conn.execute("SELECT s.identity_id, i.name FROM samples s JOIN identities i ON i.id = s.identity_id "
                               "WHERE s.id=?", (int(sample_id),)).fetchone()
            if row is None:
                raise UserError(f"no gallery sample with id {sample_id}: see `main.py gallery list --samples`")
            conn.execute("DELETE FROM samples WHERE id=?", (int(sample_id),))
            conn.execute("UPDATE identities SET updated=? WHERE id=?", (time.time(), row[0]))
        return row[1]

    def set_embeddings(self, model_id: str, vectors: dict[int, np.ndarray]) -> None:
        """Store (or replace) embeddings from `model_id` for existing samples, in one transaction."""
        now = time.time()
        with self._tx() as conn:
            for sample_id, vec in vectors.items():
                conn.execute("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                             (int(sample_id), model_id, _vector_blob(vec), now))

    # ---------------------------------------------------------- model versions
    def ensure_model(self, engine, batch_size: int = 8,
                     progress: Callable[[int, int], None] | None = None) -> int:
        """Give every sample an embedding from `engine`'s model, re-detecting the face in its
        stored crop; returns how many were re-embedded. Raises `ModelMismatch` naming the
        samples that cannot be re-embedded (no crop, or no face found in it); the others
        are stored anyway. `progress(done, total)` is called after each batch."""
        model_id = engine.info.model_id
        missing = self.missing_embeddings(model_id)
        if not missing:
            return 0
        log.info("re-embedding %d gallery samples for model %s", len(missing), model_id)
        failed: list[tuple[int, str, str]] = []
        done = 0
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            crops = []
            for sample_id, name in chunk:
                try:
                    crop = self.sample_crop(sample_id)
                except DamagedSample:
                    failed.append((sample_id, name, "its stored crop is damaged"))
                    continue
                if crop is None:
                    failed.append((sample_id, name, "no stored crop"))
                else:
                    crops.append((sample_id, name, crop))
            if crops:
                results = engine.infer([c.image for _, _, c in crops])
                vectors = {}
                for (sample_id, name, crop), faces in zip(crops, results):
                    vec = _face_in_crop(faces, crop.box)
                    if vec is None:
                        failed.append((sample_id, name, "no face found in the stored crop"))
                    else:
                        vectors[sample_id] = vec
                if vectors:
                    self.set_embeddings(model_id, vectors)
                    done += len(vectors)
            if progress is not None:
                progress(min(start + batch_size, len(missing)), len(missing))
        if failed:
            listed = ", ".join(f"sample {sid} of {name!r} ({why})" for sid, name, why in failed[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise ModelMismatch(
                f"cannot re-embed {len(failed)} gallery samples for model {model_id}: {listed}{more}; "
                "remove them with `main.py gallery remove-sample ID` and enrol those people again"
            )
        return done

    # --------------------------------------------------------------- matching
    def match(self, embeddings: np.ndarray, model_id: str, threshold: float | None = None,
              margin: float | None = None, allow_missing: bool = False) -> Matches:
        """Name each embedding (n, 128) from `model_id`'s engine, or None (unknown).

        Raises `ModelMismatch` when some samples have no embedding from `model_id`, unless
        `allow_missing` (then those samples are left out: the caller must say so)."""
        thr = self.threshold if threshold is None else float(threshold)
        mar = self.margin if margin is None else float(margin)
        q = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        n = len(q)
        matcher = self.matcher(model_id)
        if matcher.missing and not allow_missing:
            raise ModelMismatch(
                f"{len(matcher.missing)} gallery samples ({_some_names(matcher.missing)}) have no embedding from "
                f"model {model_id}: re-embed them with Gallery.ensure_model (open_gallery does it)"
            )
        k = len(matcher.names)
        if n == 0 or k == 0:
            return Matches(names=[None] * n, similarities=np.full(n, np.nan, np.float32), best=np.full(n, -1, np.int64),
                           second_similarities=np.full(n, np.nan, np.float32), identity_names=matcher.names,
                           identity_similarities=np.zeros((n, k), np.float32))
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.maximum(norms, 1e-12)
        sims = q @ matcher.matrix.T  # (n, m)
        per_identity = np.maximum.reduceat(sims, matcher.starts, axis=1) if len(matcher.starts) < sims.shape[1] else sims
        best = np.argmax(per_identity, axis=1)
        rows = np.arange(n)
        best_sim = per_identity[rows, best]
        if k > 1:
            second = np.partition(per_identity, k - 2, axis=1)[:, k - 2]
        else:
            second = np.full(n, np.nan, np.float32)
        gap_ok = np.where(np.isnan(second), True, best_sim - np.nan_to_num(second, nan=-np.inf) >= mar)
        named = (best_sim >= thr) & gap_ok & (norms[:, 0] > 0)
        names = [matcher.names[b] if ok else None for b, ok in zip(best, named)]
        return Matches(names=names, similarities=best_sim.astype(np.float32), best=best.astype(np.int64),
                       second_similarities=second.astype(np.float32), identity_names=matcher.names,
                       identity_similarities=per_identity.astype(np.float32))

    def matcher(self, model_id: str) -> _Matcher:
        """The in-memory matrix for `model_id`, rebuilt after any change (ours or another process's)."""
        with self._lock:
            version = self._live().execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._data_version = version
                self._matchers.clear()
            cached = self._matchers.get(model_id)
            if cached is not None and cached[0] == self._generation:
                return cached[1]
            matcher = self._build_matcher(model_id)
            self._matchers[model_id] = (self._generation, matcher)
            return matcher

    def _build_matcher(self, model_id: str) -> _Matcher:
        rows = self._query(
            "SELECT i.id, i.name, e.vector, s.id FROM embeddings e JOIN samples s ON s.id = e.sample_id "
            "JOIN identities i ON i.id = s.identity_id WHERE e.model_id = ? ORDER BY i.id, s.id", (model_id,))
        # A NaN row would make its identity match nothing, silently: refuse it, whatever wrote it.
        bad = [(r[3], r[1], why) for r in rows if (why := vector_problem(r[2])) is not None]
        if bad:
            sid, name, why = bad[0]
            more = f" (and {len(bad) - 1} more samples)" if len(bad) > 1 else ""
            raise DamagedSample(f"gallery sample {sid} of {name!r} cannot be matched: {why} (model {model_id}){more}; "
                                f"remove it with `main.py gallery remove-sample {sid}` and enrol {name} again")
        missing = self.missing_embeddings(model_id)
        if not rows:
            return _Matcher(np.zeros((0, EMBEDDING_DIM), np.float32), np.zeros(0, np.int64), (), missing)
        ids = np.array([r[0] for r in rows])
        matrix = np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]).astype(np.float32)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        names = tuple(rows[i][1] for i in starts)
        if self.aggregate == "mean":
            matrix = np.add.reduceat(matrix, starts, axis=0)
            starts = np.arange(len(names))
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return _Matcher(matrix=matrix, starts=starts.astype(np.int64), names=names, missing=missing)

    # ---------------------------------------------------------- export/import
    def export(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the whole gallery (identities, samples, crops, every model's embeddings) to one
        SQLite file, readable by the user only; refuses to replace a file unless `overwrite`."""
        def copy_into(tmp: str) -> None:
            with self._lock:
                self._live().execute("VACUUM INTO ?", (tmp,))

        return write_export(path, overwrite, copy_into)

    def import_from(self, path: str | os.PathLike, on_clash: str = "refuse", *, dry_run: bool = False,
                    skip_rejected: bool = False) -> ImportReport:
        """Add the identities of an exported gallery file, in one transaction.

        Everything is checked before anything is written (`gallery_transfer.check_export`):
        when a sample fails, the import is refused (`ImportRejected`, whose report lists every
        rejected sample) unless `skip_rejected`, which imports the rest. `dry_run` does the
        whole import and rolls it back: the report says what would happen.

        on_clash: "refuse" (any name that exists here stops the whole import, nothing added),
        "merge" (their samples join the existing identity; samples already there are skipped) or
        "rename" (imported as "Name (2)", ...)."""
        if on_clash not in ("refuse", "merge", "rename"):
            raise ValueError(f"on_clash must be refuse, merge or rename, got {on_clash!r}")
        incoming, rejected = check_export(read_export(Path(path)), self.model_ids())
        report = ImportReport(rejected=rejected, dry_run=dry_run)
        if rejected and not skip_rejected and not dry_run:
            listed = "; ".join(r.line() for r in rejected[:3])
            more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
            raise ImportRejected(
                f"import refused: {len(rejected)} sample(s) of {path} failed the checks: {listed}{more}; "
                "nothing was imported: add --skip-rejected to import the rest, or --dry-run to list them all", report)
        try:
            with self._tx() as conn:
                self._import_rows(conn, incoming, on_clash, report)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return report

    def _import_rows(self, conn: sqlite3.Connection, incoming: dict, on_clash: str, report: ImportReport) -> None:
        clashes = [name for name in incoming if self._identity_id(name, conn) is not None]
        if clashes and on_clash == "refuse":
            raise UserError(
                f"import refused: {len(clashes)} name(s) already in the gallery ({', '.join(clashes[:10])}); "
                "nothing was imported: add --merge to join their samples to the existing identities "
                "or --rename to import them under new names"
            )
        now = time.time()
        for name, samples in incoming.items():
            target = self._identity_id(name, conn)
            known: set[bytes] = set()
            if target is None:
                target = self._insert_identity(conn, name)
                report.added.append(name)
            elif on_clash == "merge":
                report.merged.append(name)
                known = {sample_digest(crop, embs) for crop, embs in self._sample_contents(conn, target)}
            else:
                new_name = free_name(conn, name)
                target = self._insert_identity(conn, new_name)
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

    def integrity_check(self) -> str:
        """SQLite's own check: "ok" when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    # --------------------------------------------------------------- helpers
    def _identity_id(self, name: str, conn: sqlite3.Connection | None = None) -> int | None:
        with self._lock:
            # the exact name first: one stored before names were cleaned must stay reachable
            row = (conn or self._live()).execute(
                "SELECT id FROM identities WHERE name=? OR name=? ORDER BY name<>?",
                (name, " ".join(name.split()), name)).fetchone()
        return None if row is None else int(row[0])

    def _require(self, name: str, conn: sqlite3.Connection | None = None) -> int:
        ident = self._identity_id(name, conn)
        if ident is None:
            raise UserError(f"no identity named {name!r} in the gallery: check `main.py gallery list`")
        return ident

    def _insert_identity(self, conn: sqlite3.Connection, name: str) -> int:
        if self._identity_id(name, conn) is not None:
            raise UserError(f"an identity named {name!r} already exists: choose another name")
        now = time.time()
        return int(conn.execute("INSERT INTO identities (name, created, updated) VALUES (?, ?, ?)",
                                (name, now, now)).lastrowid)

    def _sample_contents(self, conn: sqlite3.Connection, ident: int) -> list[tuple[bytes | None, list]]:
        out = []
        for sid, crop in conn.execute("SELECT id, crop_jpeg FROM samples WHERE identity_id=?", (ident,)).fetchall():
            embs = conn.execute("SELECT model_id, vector FROM embeddings WHERE sample_id=?", (sid,)).fetchall()
            out.append((crop, embs))
        return out


def open_gallery(path: str | os.PathLike | None, engine=None, *, threshold: float | None = None,
                 margin: float = DEFAULT_MARGIN,
                 progress: Callable[[int, int], None] | None = None) -> Gallery:
    """Open (or create) the gallery at `path` (None = the default folder) for `engine`:
    samples lacking an embedding from the engine's model are re-embedded from their crops,
    and the threshold defaults to the engine's calibrated one."""
    from app.gallery.recognition_defaults import default_threshold

    engine_name = engine.info.engine if engine is not None else None
    gallery = Gallery(path, threshold=threshold if threshold is not None else default_threshold(engine_name),
                      margin=margin)
    if engine is not None:
        try:
            done = gallery.ensure_model(engine, progress=progress)
        except BaseException:
            gallery.close()
            raise
        if done:
            log.info("re-embedded %d gallery samples for %s", done, engine.info.model_id)
        try:
            gallery.matcher(engine.info.model_id)  # the startup check: every row usable (DamagedSample)
        except BaseException:
            gallery.close()
            raise
    return gallery


# ------------------------------------------------------------------ module helpers
def _prepare_private_folder(folder: Path) -> None:
    """Create the gallery folder 0700; refuse a folder that holds other things but no gallery.
    An existing folder only loses group and other permissions, and only when it has any:
    a folder the user made read-only (0500) stays so."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"gallery path {folder} is a file, not a folder: choose a folder")
    if folder.exists():
        if not (folder / DB_NAME).exists() and any(folder.iterdir()):
            raise UserError(f"{folder} holds other files but no gallery: choose an empty or new folder for the gallery")
        _tighten(folder, 0o700)
        return
    try:
        folder.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise classify_os_error(exc, folder) from exc
    os.chmod(folder, 0o700)  # ours, just made: mkdir's mode passed through the umask


def _tighten(path: Path, allowed: int) -> None:
    """Take away the permission bits outside `allowed` (never add any); a file system that
    refuses (read-only) keeps what it has, with a log line."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & ~allowed:
            os.chmod(path, mode & allowed)
    except OSError as exc:
        log.warning("cannot make %s private (%s): left as it is", path, exc.strerror or exc)


def _read_only_reason(folder: Path, db: Path) -> str | None:
    """Why the gallery cannot be written, or None when it can."""
    why = write_problem(folder)
    if why is not None:
        return f"its folder: {why}"
    if db.exists() and not os.access(db, os.W_OK):
        return f"{db.name} is not writable by you"
    return None


def _touch_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask)."""
    if path.exists():
        _tighten(path, 0o600)
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise classify_os_error(exc, path) from exc


def _vector_blob(vec: np.ndarray) -> bytes:
    v = np.asarray(vec, dtype=np.float64).reshape(-1)
    if v.shape != (EMBEDDING_DIM,):
        raise ValueError(f"an embedding must have {EMBEDDING_DIM} values, got {v.shape}")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("an embedding must be finite and non-zero")
    return (v / norm).astype("<f4").tobytes()


def _sample_row(sample: NewSample) -> tuple:
    vector = _vector_blob(sample.embedding)
    crop, box = None, (None, None, None, None)
    if sample.crop is not None:
        crop = encode_jpeg(sample.crop.image)
        box = tuple(float(v) for v in sample.crop.box)
    quality = None if sample.quality is None else float(sample.quality)
    return vector, crop, box, quality, str(sample.source)


def _face_in_crop(faces, box: np.ndarray) -> np.ndarray | None:
    """The embedding of the face that overlaps the stored face box best (IoU >= 0.3)."""
    if faces is None or len(faces) == 0 or faces.embeddings is None:
        return None
    b = np.asarray(box, np.float32)
    x1 = np.maximum(faces.boxes[:, 0], b[0])
    y1 = np.maximum(faces.boxes[:, 1], b[1])
    x2 = np.minimum(faces.boxes[:, 2], b[2])
    y2 = np.minimum(faces.boxes[:, 3], b[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = faces.widths * faces.heights + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / np.maximum(union, 1e-6)
    i = int(np.argmax(iou))
    return faces.embeddings[i] if iou[i] >= REEMBED_MIN_IOU else None


def _some_names(missing: list[tuple[int, str]]) -> str:
    names = sorted({name for _, name in missing})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
