"""The gallery's SQLite file: created in a private folder (0700) as a private file (0600), WAL
journaling, every change one transaction (a crash loses nothing committed and corrupts
nothing), schema version checked; a gallery that cannot be written (read-only mount, folder or
file, a full disk) is opened for reading and every change refused with the reason.
`Gallery` (store.py) keeps identities and samples in it."""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from app.gallery.schema import DB_NAME, FORMAT_NAME, SCHEMA, SCHEMA_VERSION
from app.paths import default_gallery_dir
from app.storage import (LOW_SPACE_BYTES, StorageError, classify_os_error, classify_sqlite_error, free_bytes,
                         write_problem)
from engines.errors import UserError

log = logging.getLogger("app.gallery.store")


class ModelMismatch(UserError):
    """Gallery samples lack embeddings from the engine's model."""


class DamagedSample(UserError):
    """A stored sample cannot be used (its embedding is not finite, its crop does not decode)."""


class GalleryDatabase:
    """The database of one gallery folder (None: the user's gallery); thread-safe (one lock
    around the connection); use as a context manager."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else default_gallery_dir()
        self._lock = threading.RLock()
        self._generation = 0  # counts committed changes (the matcher's cache key)
        self.path = self.folder / DB_NAME
        self.read_only_reason: str | None = None
        self._conn = self._open()

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

    def __enter__(self) -> "GalleryDatabase":
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
