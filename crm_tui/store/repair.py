"""Rebuild a damaged database: keep the broken files, copy every row that still reads into a
fresh database, and put that in the broken one's place.

The copying itself, local CRM first, is store/salvage.py's.

While it works, nothing else may use the file: a connection in EXCLUSIVE locking mode
shuts every other one out until it closes, and the recovered pages are written through it
(SQLite's backup API, one transaction), so a process that waited sees the old file or the
repaired one, never a mix, and never a stale -wal beside a new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_tui.store.artifacts import forget_beside
from crm_tui.store.damage import (
    HEADER_SIZE,
    header_problem,
    is_busy,
    is_damage,
    page_size_of,
    wal_lost,
)
from crm_tui.store.db import Database
from crm_tui.store.errors import DatabaseBusy
from crm_tui.store.files import SIDECARS, sidecar
from crm_tui.store.salvage import (
    TableCount,
    copy_table,
    open_source,
    restore_sequences,
    tables,
)


@dataclass
class RepairReport:
    path: Path
    kept: list[Path] = field(default_factory=list)
    tables: list[TableCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "database": str(self.path),
            "kept": [str(p) for p in self.kept],
            "tables": [t.to_json() for t in self.tables],
            "notes": self.notes,
        }


def repair_database(path: Path, now: datetime | None = None) -> RepairReport:
    """Keep `path` (and its -wal, -shm) as `<name>.broken-<UTC time>`, recover what reads
    into a fresh database and put it in place. Raises DatabaseBusy if anyone has it open."""
    report = RepairReport(path)
    lost_log = wal_lost(path)
    if lost_log:
        report.notes.append(f"not recoverable: {lost_log}")
    stamp = _free_stamp(path, now or datetime.now(UTC))
    fresh = path.with_name(f"{path.name}.repair-{stamp}")
    # as found: the guard's own connection may add an empty -wal
    found = [s for s in ("", *SIDECARS) if sidecar(path, s).exists()]
    guard = exclusive_access(path)
    try:
        report.kept = keep_broken_copy(path, stamp, found)
        scan = path.with_name(f".{path.name}.scan-{stamp}")
        _copy_files(path, scan, [s for s in found if s != "-shm"])
        try:
            _recover(scan, fresh, report)
        finally:
            _remove(scan)
        if guard is not None:
            _restore_through(guard, fresh)
            # the crashed writer's wal-index: the guard never used it, no one else could
            _unlink(sidecar(path, "-shm"))
    except BaseException:
        _remove(fresh)
        raise
    finally:
        if guard is not None:
            guard.close()
    if guard is None:
        _replace(fresh, path)
    else:
        _remove(fresh)
    forget_beside(path)  # built from rows the repair may have lost
    return report


# -- exclusive access ----------------------------------------------------------------------


def _busy(path: Path) -> DatabaseBusy:
    return DatabaseBusy(
        "The database is in use",
        f"{path}: another process has it open (the app, `crm-tui sync --watch`, a script)."
        " Stop it, then run `crm-tui doctor --repair` again.",
        path,
    )


def exclusive_access(path: Path) -> sqlite3.Connection | None:
    """A connection that shuts every other one out until it closes: in EXCLUSIVE locking
    mode a WAL database keeps its lock past COMMIT, and its wal-index in this process. None
    when SQLite cannot read the file at all (nor can anyone else)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=2.0)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not is_damage(exc):
            if is_busy(exc):
                raise _busy(path) from None
            raise
        if _attached_elsewhere(path):
            raise _busy(path) from None
        return None
    return conn


def _attached_elsewhere(path: Path) -> bool:
    """Whether another process holds the -shm's "DMS" lock, as every connection to a WAL
    database does while it is open (SQLite's unix VFS: byte 128 of the -shm)."""
    shm = sidecar(path, "-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 128)
        return False
    finally:
        os.close(fd)


# -- files ---------------------------------------------------------------------------------


def _free_stamp(path: Path, now: datetime) -> str:
    """`20260102T030405`, or with `-2`, `-3` when a repair in the same second kept files."""
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    stamp, n = base, 1
    while path.with_name(f"{path.name}.broken-{stamp}").exists():
        n += 1
        stamp = f"{base}-{n}"
    return stamp


def _copy_file(source: Path, target: Path) -> None:
    """A byte copy readable by its owner only from its first byte (0600 whatever the umask)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    target.chmod(0o600)


def _copy_files(path: Path, target: Path, suffixes: Sequence[str]) -> list[Path]:
    copied = []
    for suffix in suffixes:
        source = sidecar(path, suffix)
        if source.exists():
            _copy_file(source, sidecar(target, suffix))
            copied.append(sidecar(target, suffix))
    return copied


def keep_broken_copy(path: Path, stamp: str, suffixes: Sequence[str]) -> list[Path]:
    return _copy_files(path, path.with_name(f"{path.name}.broken-{stamp}"), suffixes)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _remove(path: Path) -> None:
    for suffix in ("", *SIDECARS):
        _unlink(sidecar(path, suffix))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(fresh: Path, path: Path) -> None:
    """For a file SQLite cannot open: its -wal and -shm must not outlive it, or SQLite
    would apply the old log's pages to the new file."""
    for suffix in SIDECARS:
        _unlink(sidecar(path, suffix))
    os.replace(fresh, path)
    _fsync_dir(path.parent)


def _restore_through(guard: sqlite3.Connection, fresh: Path) -> None:
    source = sqlite3.connect(fresh)
    try:
        source.backup(guard)
    finally:
        source.close()


# -- recovery ------------------------------------------------------------------------------


def _recover(scan: Path, fresh: Path, report: RepairReport) -> None:
    page_size = _page_size(scan)
    source = open_source(scan, report.notes)
    _create(fresh, page_size)
    target = sqlite3.connect(fresh, isolation_level=None)
    try:
        if source is None:
            report.tables = [TableCount(t, 0, None) for t in tables(target)]
            return
        target.execute("BEGIN")
        report.tables = [copy_table(source, target, t) for t in tables(target)]
        restore_sequences(source, target)
        # The rows a watermark covers may be among the lost: the next sync reads in full.
        target.execute("UPDATE bookmarks SET full_at = NULL")
        target.execute("COMMIT")
    finally:
        target.close()
        if source is not None:
            source.close()


def _page_size(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(HEADER_SIZE)
    return 4096 if header_problem(head) else page_size_of(head)


def _create(fresh: Path, page_size: int) -> None:
    """Today's schema, at the broken file's page size (a WAL database takes pages of its
    own size only, through the backup API)."""
    conn = sqlite3.connect(fresh)
    try:
        conn.execute(f"PRAGMA page_size={int(page_size)}")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    Database(fresh).close()
