"""Disk and permission failures told for what they are, and checked before the work.

A full disk, a read-only mount and a permission problem each get their own one-line
message (`StorageError.kind`: "full", "read-only", "permission", "damaged", "io"): a full
disk must never read as a damaged file, which would invite replacing a good one. Output
paths are probed (`probe_output`) before any expensive work so a bad `--events` path fails
in milliseconds, not after the whole video.
"""
from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import stat
from pathlib import Path

from engines.errors import UserError

LOW_SPACE_BYTES = 1 << 20  # below this a write failure is taken to be the full disk
PROBE_BYTES = 4096  # one block: enough to meet a full disk


class StorageError(UserError):
    """A disk or permission failure; `kind` says which."""

    exit_code = 1

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding `path` (or its
    nearest existing parent); None when unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def read_only_mount(path: str | os.PathLike) -> bool:
    """Whether `path` (or its nearest existing parent) is on a read-only mount."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_problem(folder: str | os.PathLike) -> str | None:
    """Why nothing can be written in `folder` ("a read-only file system", "no permission to
    write in it"), or None."""
    if read_only_mount(folder):
        return "it is on a read-only file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "you have no permission to write in it"
    return None


def _full(path, action: str) -> StorageError:
    return StorageError(f"the disk holding {path} is full ({action}): free some space or use another disk; "
                        "nothing was damaged", "full")


def classify_os_error(exc: BaseException, path: str | os.PathLike) -> BaseException:
    """A one-line `StorageError` for an OS-level write failure on `path`; other errors pass through."""
    if isinstance(exc, UserError):
        return exc
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return StorageError(f"no space left on device writing {path}: the disk is full; free some space or "
                            "write elsewhere", "full")
    if code == errno.EDQUOT:
        return StorageError(f"disk quota exceeded writing {path}: free some space or write elsewhere", "full")
    if code == errno.EFBIG:
        return StorageError(f"file too large writing {path}: the file system refused to grow it", "full")
    if code == errno.EROFS:
        return StorageError(f"read-only file system writing {path}: choose a writable place", "read-only")
    if code in (errno.EACCES, errno.EPERM):
        return StorageError(f"permission denied writing {path}: choose a folder you can write to", "permission")
    if isinstance(exc, OSError):
        return StorageError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}", "io")
    return exc


def classify_sqlite_error(exc: sqlite3.Error, path: str | os.PathLike, action: str) -> StorageError:
    """A `StorageError` for a SQLite failure on the database at `path`. Only SQLite's own
    corruption codes (with space to spare) are called damage."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    folder = Path(path).parent
    free = free_bytes(folder)
    low = free is not None and free < LOW_SPACE_BYTES
    if primary == sqlite3.SQLITE_FULL or (low and primary not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)):
        return _full(path, action)
    if primary == sqlite3.SQLITE_READONLY or read_only_mount(folder):
        why = "it is on a read-only file system" if read_only_mount(folder) else "it is read-only"
        return StorageError(f"{action} {path}: {why}; nothing was changed", "read-only")
    if primary in (sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH) or (
            primary == sqlite3.SQLITE_CANTOPEN and not os.access(folder, os.W_OK | os.X_OK)):
        return StorageError(f"{action} {path}: permission denied: check the permissions of {folder}", "permission")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StorageError(f"gallery {path} is damaged or not a gallery ({exc}): restore it from an export", "damaged")
    return StorageError(f"{action} {path}: {exc} (a disk or file system error; the file itself may be fine)", "io")


def probe_output(path: str | os.PathLike, what: str) -> None:
    """Check that `path` can be written, before the work that produces it: a few kB are
    written and synced in its folder (or to it, for a device such as /dev/full), then
    removed. Raises `StorageError` (full, read-only, permission) or `UserError`."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise classify_os_error(exc, path) from exc
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"the {what} {path} is a folder: give a file name")
    if mode is not None and stat.S_ISCHR(mode):
        try:  # a character device takes the write as is: /dev/null swallows it, /dev/full refuses
            with open(path, "wb", buffering=0) as f:
                f.write(b"\n")
        except OSError as exc:
            raise classify_os_error(exc, path) from exc
        return
    if mode is not None and not stat.S_ISREG(mode):
        return  # a FIFO or socket: writing would be read by someone
    probe_folder(path.parent, what)


def probe_folder(folder: str | os.PathLike, what: str) -> None:
    """Check that files can be created and written in `folder` (which must exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder {folder} for the {what} does not exist: create it or choose another")
    probe = folder / f".unisight-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, bytes(PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise classify_os_error(exc, folder) from exc
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def create_private(path: str | os.PathLike) -> None:
    """Create (or empty) `path` readable and writable by the user only, whatever the umask:
    for outputs that hold faces (videos, event logs, crops), like the gallery."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a new user-only file at `path` (see `create_private`), synced."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_folder(folder: str | os.PathLike) -> None:
    """Create `folder` (and parents) user-only when missing; an existing folder is the user's
    choice and keeps its permissions."""
    folder = Path(folder)
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)
    except FileExistsError:
        if not folder.is_dir():
            raise UserError(f"{folder} is a file, not a folder: choose a folder for the crops") from None
    except OSError as exc:
        raise classify_os_error(exc, folder) from exc
