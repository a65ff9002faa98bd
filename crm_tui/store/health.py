"""Checks of the database and the files beside it, made without changing either.

Each check is a row of `crm-tui doctor`: ok, warning or failed, what was seen and, when
something is wrong, what to do. The database is only read (query_only), never through
Database, which migrates; and not at all before the lost-log check, since a first
connection rebuilds the -shm that shows the loss.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from crm_tui.files import check_dir, check_file
from crm_tui.store.damage import (
    HEADER_SIZE,
    REPAIR_HINT,
    header_problem,
    is_damage,
    wal_lost,
)
from crm_tui.store.db import MIGRATIONS
from crm_tui.store.errors import DatabaseDamaged, DatabaseReadOnly, DataDirRefused
from crm_tui.store.files import read_only_reason, sidecar
from crm_tui.store.leases import OWNER_COLUMNS, alive, owner_of

Status = Literal["ok", "warning", "failed"]
EXIT_DAMAGED = DatabaseDamaged.exit_code
EXIT_CONFIG = DataDirRefused.exit_code
REPAIR_FIX = REPAIR_HINT.replace("Run", "run", 1)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    message: str
    fix: str = ""
    exit_code: int = 0  # the CLI's exit code when this check failed
    repairable: bool = False  # `doctor --repair` is the answer

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix}


def ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def warning(name: str, message: str, fix: str) -> Check:
    return Check(name, "warning", message, fix)


def failed(name: str, message: str, fix: str, exit_code: int, repairable: bool = False) -> Check:
    return Check(name, "failed", message, fix, exit_code, repairable)


def damage(name: str, path: Path, what: str) -> Check:
    return failed(name, f"{path}: {what}", REPAIR_FIX, EXIT_DAMAGED, repairable=True)


# -- the database --------------------------------------------------------------------------


def database_checks(path: Path) -> list[Check]:
    """Header, write-ahead log, integrity (`PRAGMA quick_check`: reads every page) and
    schema version. A file SQLite cannot read at all stops after the header."""
    if not path.exists():
        return [ok("database", f"{path}: not created yet (the first command that needs it does)")]
    header = header_check(path)
    if header.failed:
        return [header]
    wal = wal_check(path)
    return [header, wal, writable_check(path), *contents_checks(path, main_file_only=wal.failed)]


def writable_check(path: Path) -> Check:
    """A read-only database still serves reads; every sync, import and edit fails."""
    try:
        reason = read_only_reason(path)
    except DatabaseReadOnly as exc:
        reason = exc.details
    if reason is None:
        return ok("database writable", str(path))
    return warning(
        "database writable",
        f"no: {reason}; reads work, syncs, imports and edits fail",
        "give yourself write access to the file and its folder",
    )


def header_check(path: Path) -> Check:
    with path.open("rb") as f:
        head = f.read(HEADER_SIZE)
    if not head:
        return ok("database header", f"{path}: empty (a new database)")
    problem = header_problem(head)
    if problem:
        return damage("database header", path, problem)
    return ok("database header", f"{path}: SQLite 3, {path.stat().st_size:,} bytes")


def wal_check(path: Path) -> Check:
    problem = wal_lost(path)
    if problem:
        return damage("write-ahead log", path, problem)
    wal = sidecar(path, "-wal")
    if wal.exists():
        return ok("write-ahead log", f"{wal.name}: {wal.stat().st_size:,} bytes")
    return ok("write-ahead log", "none (the last connection closed cleanly)")


def _reader(path: Path, main_file_only: bool) -> sqlite3.Connection:
    if main_file_only:
        # the main file alone, as SQLite would read it after losing the -wal, without
        # touching the -shm that shows the loss
        return sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    # Read-write but query_only: a read-only connection leaves an empty -wal and a -shm
    # behind it, where the last ordinary connection to close tidies both away.
    conn = sqlite3.connect(path, timeout=10.0)
    conn.execute("PRAGMA query_only=1")
    return conn


def contents_checks(path: Path, main_file_only: bool = False) -> list[Check]:
    try:
        conn = _reader(path, main_file_only)
    except sqlite3.DatabaseError as exc:
        return [failed("integrity", f"{path}: cannot open: {exc}", "", EXIT_DAMAGED)]
    try:
        return [integrity_check(conn, path), schema_check(conn, path), *writers_checks(conn)]
    finally:
        conn.close()


def writers_checks(conn: sqlite3.Connection) -> list[Check]:
    """Who is writing now, and what processes that died left half-written (the next sync
    of each stream, or of any stream with an import in flight, removes it)."""
    try:
        leases = conn.execute(
            f"SELECT l.user_id, l.source, l.stream, l.purpose, {OWNER_COLUMNS}"  # noqa: S608
            " FROM leases l LEFT JOIN owners o ON o.id = l.owner"
        ).fetchall()
        pending = conn.execute(
            f"SELECT p.user_id, p.source, p.kind, {OWNER_COLUMNS}"  # noqa: S608
            " FROM pending_generations p LEFT JOIN owners o ON o.id = p.owner"
        ).fetchall()
    except sqlite3.OperationalError:  # a schema before leases
        return []
    live = [
        f"{purpose} of {user}'s {source} {stream} by {found[0].describe()}"
        for user, source, stream, purpose, *owner in leases
        if alive(found := owner_of(tuple(owner)))
    ]
    dead = sorted(
        {
            f"{user}'s {source} {kind}"
            for user, source, kind, *owner in pending
            if not alive(owner_of(tuple(owner)))
        }
    )
    rows = [ok("writers", "; ".join(live) if live else "no other process is writing")]
    if dead:
        rows.append(
            warning(
                "left half-written",
                f"by processes that died: {', '.join(dead)} (hidden, taking space)",
                "the next sync of each removes them: crm-tui sync",
            )
        )
    return rows


def pages_problem(path: Path) -> str | None:
    """What `PRAGMA quick_check` finds wrong in the file (None: nothing), on a connection
    of its own, read-only, so the app's own connection is never held for the seconds a
    large file takes."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # it cannot be opened: the app's own open says why
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return str(exc) if is_damage(exc) else None
    finally:
        conn.close()
    return (
        None
        if rows == ["ok"]
        else "quick_check found: " + "; ".join(" ".join(r.split()) for r in rows)
    )


def integrity_check(conn: sqlite3.Connection, path: Path) -> Check:
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return damage("integrity", path, str(exc))
        return warning("integrity", f"{path}: not checked: {exc}", "try again")
    if rows == ["ok"]:
        return ok("integrity", "quick_check: ok")
    problems = "; ".join(" ".join(r.split()) for r in rows)
    return damage("integrity", path, f"quick_check found: {problems}")


def schema_check(conn: sqlite3.Connection, path: Path) -> Check:
    known = len(MIGRATIONS)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return damage("schema", path, str(exc)) if is_damage(exc) else ok("schema", "unknown")
    if version > known:
        return failed(
            "schema",
            f"{path}: schema {version}, written by a newer crm-tui (this one knows {known})",
            "upgrade crm-tui",
            EXIT_DAMAGED,
        )
    if version < known:
        return ok("schema", f"schema {version}: brought to {known} the next time it is opened")
    return ok("schema", f"schema {version}")


# -- modes and owners ----------------------------------------------------------------------


def data_dir_check(path: Path) -> Check:
    problems = check_dir(path)  # the rules every command applies when it opens it
    if problems:
        return failed("data dir", "; ".join(problems), "use a data dir of your own", EXIT_CONFIG)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return ok("data dir", f"{path}: not created yet")
    if mode & 0o077:
        return warning(
            "data dir",
            f"{path}: mode {mode:04o}: others can list it",
            f"chmod 700 {path}",
        )
    return ok("data dir", f"{path}: mode 0700, yours")


def file_checks(paths: Iterable[Path]) -> list[Check]:
    """One row per file that is wrong, one row for all those that are right."""
    rows: list[Check] = []
    fine: list[str] = []
    for path in paths:
        check = file_check(path)
        if check is None:
            continue
        if check.status == "ok":
            fine.append(path.name)
        else:
            rows.append(check)
    if fine:
        rows.insert(0, ok("files", f"mode 0600, yours: {', '.join(fine)}"))
    return rows


def file_check(path: Path) -> Check | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    name = f"file {path.name}"
    problem = check_file(path)  # a link or not a regular file: refused when opened
    if problem is not None:
        return failed(name, problem, "put the file itself in its place", EXIT_CONFIG)
    if info.st_uid != os.geteuid():
        return failed(
            name,
            f"{path}: owned by user id {info.st_uid}, not by you",
            "use a data dir of your own (CRM_DATA_DIR)",
            EXIT_CONFIG,
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return warning(name, f"{path}: mode {mode:04o}: others can read it", f"chmod 600 {path}")
    return ok(name, "")


def data_files(database: Path, log_file: Path) -> list[Path]:
    """The database and what SQLite keeps beside it, copies kept by repairs, the log."""
    kept = sorted(database.parent.glob(f"{database.name}.broken-*"))
    return [database, sidecar(database, "-wal"), sidecar(database, "-shm"), *kept, log_file]
