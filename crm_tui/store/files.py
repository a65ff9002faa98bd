"""The database's files: the database and its sidecars, checked, then opened read-write or
read-only. A database this process may not write is opened read-only: reads work, writes
fail with DatabaseReadOnly. (Folder and file safety in general: crm_tui/files.py.)
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from crm_tui.files import refuse_unsafe_file, secure_file
from crm_tui.store.errors import DatabaseReadOnly, DataDirRefused, StoreError

#: What SQLite keeps beside a database in WAL mode: its write-ahead log, its shared memory.
SIDECARS = ("-wal", "-shm")


def sidecar(path: Path, suffix: str) -> Path:
    """`crm.sqlite3-wal`, `crm.sqlite3-shm`: the names SQLite gives a database's files."""
    return path.with_name(path.name + suffix)


def _sidecars(path: Path) -> tuple[Path, ...]:
    return tuple(sidecar(path, s) for s in SIDECARS)


def _allowed(path: Path, mode: int) -> bool:
    """os.access for this process's effective user (what the kernel checks on open)."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _writable(path: Path) -> bool:
    return _allowed(path, os.W_OK)


def _not_writable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return f"{path} is on a read-only file system"
        info = path.stat()
    except OSError:
        return f"{path} is not writable by you"
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.geteuid() and mode & stat.S_IWUSR:
        # the mode says yes, the kernel says no: an immutable flag (chattr +i), an ACL
        return f"{path} is not writable, though its mode {mode:04o} allows it (immutable?)"
    return f"{path} is not writable by you (mode {mode:04o})"


def read_only_reason(path: Path) -> str | None:
    """Why this process can only read the database at `path`, or None when it can write.
    SQLite writes beside the database (its write-ahead log and shared-memory index), so
    the folder must be writable too."""
    folder = path.parent
    for candidate in (path, *_sidecars(path)):
        if candidate.exists() and not _writable(candidate):
            return _not_writable(candidate)
    if not _writable(folder):
        reason = _not_writable(folder)
        if not path.exists():
            raise DatabaseReadOnly(
                "Cannot create the database",
                f"{reason}, so {path.name} cannot be created there; choose a data dir you"
                " can write to (CRM_DATA_DIR or --data-dir)",
                path,
            )
        return f"{reason} (SQLite keeps its write-ahead log beside the database)"
    return None


def _uri(path: Path, *params: str) -> str:
    return f"file:{quote(str(path.absolute()))}?" + "&".join(params)


def _sqlite_connect(target: Path | str, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        target, uri=uri, check_same_thread=False, isolation_level=None, timeout=10.0
    )


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def _open_read_only(path: Path, reason: str) -> sqlite3.Connection:
    """A read-only connection. `mode=ro` reads a WAL database when SQLite can open (or
    create) its -shm index; in a read-only folder without one, `immutable=1` is the only
    way in. It skips locking and the write-ahead log, so it is used only when there is no
    log to miss."""
    conn = _sqlite_connect(_uri(path, "mode=ro"), uri=True)
    try:
        _probe(conn)
        return conn
    except sqlite3.OperationalError:
        conn.close()
    wal = _sidecars(path)[0]
    if wal.exists() and wal.stat().st_size > 0:
        raise DatabaseReadOnly(
            "Cannot read the database",
            f"{path}: {reason}, and its write-ahead log {wal.name} holds changes SQLite"
            " cannot read without writing; open it once with write access",
            path,
        )
    conn = _sqlite_connect(_uri(path, "mode=ro", "immutable=1"), uri=True)
    _probe(conn)
    return conn


def refuse_unsafe_files(path: Path) -> None:
    """The database and its -wal and -shm: links, folders, FIFOs and devices are refused
    before anything opens (or blocks on) them."""
    for candidate in (path, *_sidecars(path)):
        refuse_unsafe_file(candidate)


def connect(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """Open the database at `path`: read-write when this process may write it, otherwise
    read-only. Returns the connection and, when read-only, why."""
    refuse_unsafe_files(path)
    if path.exists() and not _allowed(path, os.R_OK):
        raise DataDirRefused("Cannot open the database", f"{path} is not readable by you", path)
    reason = read_only_reason(path)
    if reason is not None:
        return _open_read_only(path, reason), reason
    secure_file(path)
    return _sqlite_connect(path), None


# SQLite's primary result codes for a write the disk refused (SQLITE_FULL; SQLITE_IOERR,
# which is what a write failing with EFBIG or EIO comes back as) and for a read-only file.
_SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_FULL = 10, 8, 13


def named_write_error(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """A failed write as one line naming the database file, or None for other errors."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return StoreError("Cannot write the database", f"{path}: {exc}", path)  # disk full
    if code == _SQLITE_IOERR:
        return StoreError("Cannot write the database", f"{path}: {exc} (is the disk full?)", path)
    if code == _SQLITE_READONLY:
        return DatabaseReadOnly("The database is read-only", f"{path}: {exc}", path)
    return None
