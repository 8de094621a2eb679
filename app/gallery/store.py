"""The gallery store: enrolled identities, their face samples and embeddings.

On disk (`database.py`): one folder (0700) holding `gallery.db` (0600), SQLite in WAL mode.
Every change is one transaction, so a crash loses nothing committed and corrupts nothing. Face
crops are stored inside the database as JPEG, so an export is one self-contained file.

Embeddings are kept per model: each sample may hold one embedding per `model_id`. Matching
uses only the embeddings of the caller's model; when samples lack one, `match` refuses
(unless told to skip them) and `ensure_model(engine)` re-embeds them from their stored crops
(`reembed.py`). The decision itself (threshold, margin, "max" or "mean" per identity) is
`matcher.py`'s; exports and imports are `transfer.py`'s.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from app.gallery.database import DamagedSample, GalleryDatabase, ModelMismatch
from app.gallery.face_crop import FaceCrop, encode_jpeg, thumbnail
from app.gallery.matcher import EmbeddingMatrix, Matches, build_matrix, match_embeddings, some_names
from app.gallery.recognition_defaults import DEFAULT_MARGIN, FALLBACK_THRESHOLD
from app.gallery.reembed import reembed_missing
from app.gallery.schema import DB_NAME  # noqa: F401  (the file name, for the commands and tests)
from app.gallery.transfer import ImportReport, export_gallery, import_gallery
from app.gallery.validate import MAX_CROP_PIXELS, MAX_NAME_LENGTH, clean_name, vector_problem  # noqa: F401
from engines.errors import UserError
from engines.faces import EMBEDDING_DIM

log = logging.getLogger(__name__)


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


class Gallery(GalleryDatabase):
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
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.aggregate = aggregate
        self._matchers: dict[str, tuple[int, EmbeddingMatrix]] = {}
        self._data_version: int | None = None
        super().__init__(folder)

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
                f"{len(missing)} gallery samples ({some_names(missing)}) were embedded by another model than "
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
        return reembed_missing(self, engine, batch_size, progress)

    # --------------------------------------------------------------- matching
    def match(self, embeddings: np.ndarray, model_id: str, threshold: float | None = None,
              margin: float | None = None, allow_missing: bool = False) -> Matches:
        """Name each embedding (n, 128) from `model_id`'s engine, or None (unknown).

        Raises `ModelMismatch` when some samples have no embedding from `model_id`, unless
        `allow_missing` (then those samples are left out: the caller must say so)."""
        thr = self.threshold if threshold is None else float(threshold)
        mar = self.margin if margin is None else float(margin)
        q = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        matcher = self.matcher(model_id)
        if matcher.missing and not allow_missing:
            raise ModelMismatch(
                f"{len(matcher.missing)} gallery samples ({some_names(matcher.missing)}) have no embedding from "
                f"model {model_id}: re-embed them with Gallery.ensure_model (open_gallery does it)"
            )
        return match_embeddings(matcher, q, thr, mar)

    def matcher(self, model_id: str) -> EmbeddingMatrix:
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

    def _build_matcher(self, model_id: str) -> EmbeddingMatrix:
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
        return build_matrix(rows, self.aggregate, missing)

    # ---------------------------------------------------------- export/import
    def export(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the whole gallery to one private SQLite file (`transfer.export_gallery`)."""
        return export_gallery(self, path, overwrite)

    def import_from(self, path: str | os.PathLike, on_clash: str = "refuse", *, dry_run: bool = False,
                    skip_rejected: bool = False) -> ImportReport:
        """Add the identities of an exported gallery file, in one transaction (see
        `transfer.import_gallery`: every sample checked first; on_clash refuse, merge or rename)."""
        return import_gallery(self, path, on_clash, dry_run=dry_run, skip_rejected=skip_rejected)

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


