"""The data dir and the database's files: private folders, regular files, read-only opening.

crm-tui never chmods a folder it did not create, refuses a data dir that others could
write to, and never follows a symbolic link onto its database or log. A database this
process may not write is opened read-only: reads work, writes fail with DatabaseReadOnly.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from crm_tui.filekinds import kind_of
from crm_tui.store.errors import DatabaseReadOnly, DataDirRefused, StoreError


def secure_dir(path: Path, what: str = "data dir") -> None:
    """Make sure `path` is a folder only this user can write to. Missing folders (and missing
    parents) are created 0700; an existing one is checked, never chmodded: it may be a
    shared folder that others rely on."""
    _make_private_dirs(path, what)
    problems = check_data_dir(path)
    if problems:
        raise DataDirRefused(f"Refusing the {what} {path}", "; ".join(problems), path)


def _make_private_dirs(path: Path, what: str) -> None:
    """Create `path` and its missing parents, each 0700 whatever the umask (os.makedirs'
    mode does not reach the parents, and the umask can take bits off any of them)."""
    try:
        for folder in reversed(_missing_folders(path)):
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                continue  # another process made it first: not ours to chmod
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise DataDirRefused(
            f"Cannot create the {what} {path}",
            f"{exc.filename or path}: {exc.strerror or exc}; choose a folder you can write"
            " to (CRM_DATA_DIR or --data-dir)",
            path,
        ) from None


def _missing_folders(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist, nearest first (a dangling link exists)."""
    missing: list[Path] = []
    probe = path
    while not (probe.exists() or probe.is_symlink()) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    return missing


def check_data_dir(path: Path) -> list[str]:
    """What makes `path` unsafe to keep crm-tui's files in (symbolic links followed): writable
    by every user, or another user's. A folder that does not exist yet is fine."""
    try:
        real = path.resolve(strict=True)
        info = real.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return [f"{path} is a symbolic link to a folder that does not exist"]
        return []
    except (OSError, RuntimeError) as exc:
        return [f"{path} cannot be checked: {getattr(exc, 'strerror', None) or exc}"]
    shown = str(path) if real == path else f"{path} (a link to {real})"
    if not stat.S_ISDIR(info.st_mode):
        return [f"{shown} is not a folder"]
    problems = []
    if info.st_mode & stat.S_IWOTH:
        problems.append(
            f"{shown} is writable by every user (mode {stat.S_IMODE(info.st_mode):04o}), so"
            " anyone could replace the database; use a folder only you can write to, such"
            " as a new folder inside it (crm-tui creates it 0700)"
        )
    if info.st_uid != os.geteuid():
        problems.append(
            f"{shown} belongs to another user (uid {info.st_uid}; you are {os.geteuid()});"
            " use a folder of your own"
        )
    return problems


def check_file(path: Path) -> str | None:
    """Why `path` may not be used as one of crm-tui's files (it is a symbolic link, which
    could point the database or log at any file, or not a regular file), or None."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    what = kind_of(info.st_mode)
    if what is None:
        return None
    if stat.S_ISLNK(info.st_mode):
        return (
            f"{path} is {what}; crm-tui uses only a regular file there"
            " (move the real file into its place)"
        )
    return f"{path} is {what}, not a regular file; move it away"


def _refuse_unsafe_file(path: Path) -> None:
    problem = check_file(path)
    if problem is not None:
        raise DataDirRefused(f"Refusing {path.name}", problem, path)


def secure_file(path: Path) -> None:
    """Create (if needed) a regular file readable by its owner only, whatever the umask.
    A symbolic link or anything but a regular file is refused, even one swapped in after
    the check (O_NOFOLLOW, then fstat on what was opened)."""
    _refuse_unsafe_file(path)
    flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_unsafe_file(path)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataDirRefused(f"Refusing {path.name}", f"{path} is not a regular file", path)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


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
        _refuse_unsafe_file(candidate)


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
