"""Rebuild a damaged database: keep the broken files, copy every row that still reads into a
fresh database, and put that in the broken one's place.

Python's sqlite3 has no `.recover`, so rows are copied table by table in rowid ranges; a
range that raises is split until the single unreadable rows are skipped and counted. The
local CRM's rows exist nowhere else, so they go first and with no limit on the effort; the
cached contacts and deals go last, and only their visible generations, since a re-sync
brings them back anyway.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_tui.store.damage import (
    HEADER_SIZE,
    SQLITE_MAGIC,
    header_problem,
    is_damage,
    page_size_of,
    sidecar,
    wal_lost,
)
from crm_tui.store.db import Database
from crm_tui.store.errors import DatabaseBusy

SIDECARS = ("-wal", "-shm")
# The order rows are recovered in: what exists nowhere else first.
TABLE_ORDER = (
    "local_records",
    "sync_runs",
    "quarantine",
    "bookmarks",
    "source_status",
    "stream_generations",
    "generations",
    "contacts",
    "deals",
)
RECORD_TABLES = ("contacts", "deals")
BATCH = 2_000
# Unreadable rows a table may cost before the rest of it is given up on (not the local CRM):
# a damaged page high in a big tree makes every row under it one failed read.
EFFORT = 20_000
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    recovered: int
    lost: int | None  # None: unknown (the table could not be read, and no index counted it)

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "recovered": self.recovered, "lost": self.lost}


@dataclass
class RepairReport:
    path: Path
    kept: list[Path] = field(default_factory=list)
    tables: list[TableCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, table: str) -> TableCount | None:
        return next((t for t in self.tables if t.table == table), None)

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
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
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


# -- a garbage header ----------------------------------------------------------------------


def rebuild_header(path: Path) -> int | None:
    """Write a plausible header over a garbage one, so that SQLite can read the pages
    behind it; the page size is the first that makes the schema readable. Returns it, or
    None (and the file as it was) when none does."""
    size = path.stat().st_size
    with path.open("rb") as f:
        original = f.read(HEADER_SIZE)
    wal = sidecar(path, "-wal").exists()
    for page_size in PAGE_SIZES:
        if size < page_size or size % page_size:
            continue
        _write_header(path, _header(page_size, size // page_size, wal))
        if _schema_readable(path):
            return page_size
    _write_header(path, original)
    return None


def _header(page_size: int, pages: int, wal: bool) -> bytes:
    """SQLite's file format, section 1.3; the freelist is forgotten (only reads follow)."""
    head = bytearray(HEADER_SIZE)
    head[0:16] = SQLITE_MAGIC
    head[16:18] = (1 if page_size == 65536 else page_size).to_bytes(2, "big")
    head[18] = head[19] = 2 if wal else 1  # write and read versions: WAL or rollback journal
    head[21:24] = bytes((64, 32, 32))  # payload fractions, fixed by the format
    head[24:28] = (1).to_bytes(4, "big")  # change counter
    head[28:32] = pages.to_bytes(4, "big")
    head[40:44] = (1).to_bytes(4, "big")  # schema cookie
    head[44:48] = (4).to_bytes(4, "big")  # schema format
    head[56:60] = (1).to_bytes(4, "big")  # UTF-8
    head[92:96] = (1).to_bytes(4, "big")  # valid for change counter 1
    major, minor, patch = sqlite3.sqlite_version_info
    head[96:100] = (major * 1_000_000 + minor * 1_000 + patch).to_bytes(4, "big")
    return bytes(head)


def _write_header(path: Path, head: bytes) -> None:
    with path.open("r+b") as f:
        f.write(head)


def _schema_readable(path: Path) -> bool:
    try:
        conn = sqlite3.connect(path)
    except sqlite3.DatabaseError:
        return False
    try:
        conn.execute("SELECT name, rootpage, sql FROM sqlite_master").fetchall()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


# -- recovery ------------------------------------------------------------------------------


def _recover(scan: Path, fresh: Path, report: RepairReport) -> None:
    page_size = _page_size(scan)
    source = _open_source(scan, report)
    _create(fresh, page_size)
    target = sqlite3.connect(fresh, isolation_level=None)
    try:
        if source is None:
            report.tables = [TableCount(t, 0, None) for t in _tables(target)]
            return
        target.execute("BEGIN")
        report.tables = [copy_table(source, target, t) for t in _tables(target)]
        _restore_sequences(source, target)
        target.execute("COMMIT")
    finally:
        target.close()
        if source is not None:
            source.close()


def _page_size(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(HEADER_SIZE)
    return 4096 if header_problem(head) else page_size_of(head)


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "replace")  # a damaged page may hold any bytes


def _open_source(scan: Path, report: RepairReport) -> sqlite3.Connection | None:
    with scan.open("rb") as f:
        problem = header_problem(f.read(HEADER_SIZE))
    if problem:
        page_size = rebuild_header(scan)
        if page_size is None:
            report.notes.append(f"nothing could be read: {problem}")
            return None
        report.notes.append(f"the header was rebuilt (page size {page_size}) to read the rest")
    conn = sqlite3.connect(scan, isolation_level=None)
    conn.text_factory = _decode
    try:
        conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not is_damage(exc):
            raise
        report.notes.append(f"nothing could be read: the schema is damaged ({exc})")
        return None
    return conn


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


def _tables(conn: sqlite3.Connection) -> list[str]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return [t for t in TABLE_ORDER if t in names] + [t for t in names if t not in TABLE_ORDER]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({_quoted(table)})")]


@dataclass
class _Scan:
    unreadable: int = 0  # rows (rowids) that raised
    complete: bool = True  # False: part of the table was never reached


def copy_table(source: sqlite3.Connection, target: sqlite3.Connection, table: str) -> TableCount:
    try:
        have = set(_columns(source, table))
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return TableCount(table, 0, None)
    columns = [c for c in _columns(target, table) if c in have]
    if not columns:  # not in this (older) schema
        return TableCount(table, 0, 0)
    keep = _visible_rows(target, table, columns) if table in RECORD_TABLES else None
    expected = _expected_rows(source, target, table)
    scan = _Scan()
    effort = None if table == "local_records" else EFFORT
    insert = (
        f"INSERT OR IGNORE INTO {_quoted(table)} ({', '.join(map(_quoted, columns))})"
        f" VALUES ({', '.join('?' for _ in columns)})"
    )
    read = recovered = 0
    for rows in _rows(source, table, columns, scan, effort):
        kept = [r for r in rows if keep(r)] if keep is not None else rows
        before = target.total_changes
        target.executemany(insert, kept)
        read += len(kept)
        recovered += target.total_changes - before
    if expected is not None:
        lost: int | None = max(expected - recovered, 0)
    elif scan.complete:
        lost = scan.unreadable + read - recovered
    else:
        lost = None
    return TableCount(table, recovered, lost)


def _rows(
    source: sqlite3.Connection, table: str, columns: list[str], scan: _Scan, effort: int | None
) -> Iterator[list[tuple[Any, ...]]]:
    try:
        source.execute(f"SELECT rowid FROM {_quoted(table)} LIMIT 0")
    except sqlite3.OperationalError as exc:
        if is_damage(exc):
            raise
        return _rows_in_order(source, table, columns, scan)  # a WITHOUT ROWID table
    return _rows_by_rowid(source, table, columns, scan, effort)


def _rows_by_rowid(
    source: sqlite3.Connection, table: str, columns: list[str], scan: _Scan, effort: int | None
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in rowid order, a batch at a time; a range that raises is halved until single
    rowids fail alone. A range query reads only the pages on its own path through the
    tree, so one damaged page costs only the rows on it."""
    name = _quoted(table)
    try:
        # an aggregate over rowids: SQLite may answer it from an index when the table's
        # own pages are what is damaged
        low, high = source.execute(f"SELECT min(rowid), max(rowid) FROM {name}").fetchone()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        scan.complete = False
        return
    if low is None:
        return
    sql = (
        f"SELECT rowid, {', '.join(map(_quoted, columns))} FROM {name}"
        f" WHERE rowid BETWEEN ? AND ? ORDER BY rowid LIMIT {BATCH}"
    )
    pending = [(low, high)]
    while pending:
        low, high = pending.pop()
        if low > high:
            continue
        try:
            rows = source.execute(sql, (low, high)).fetchall()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            if low < high:
                middle = (low + high) // 2
                pending += [(middle + 1, high), (low, middle)]
                continue
            scan.unreadable += 1
            if effort is not None and scan.unreadable >= effort:
                scan.complete = False
                return
            continue
        if len(rows) == BATCH:
            pending.append((rows[-1][0] + 1, high))
        if rows:
            yield [row[1:] for row in rows]


def _rows_in_order(
    source: sqlite3.Connection, table: str, columns: list[str], scan: _Scan
) -> Iterator[list[tuple[Any, ...]]]:
    cursor = source.execute(f"SELECT {', '.join(map(_quoted, columns))} FROM {_quoted(table)}")
    try:
        while rows := cursor.fetchmany(BATCH):
            yield rows
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        scan.complete = False


def _visible(target: sqlite3.Connection, table: str) -> dict[tuple[str, str], int]:
    """Each stream's visible generation, from the stream_generations recovered before."""
    rows = target.execute(
        "SELECT user_id, source, generation FROM stream_generations WHERE kind = ?", (table,)
    )
    return {(user, source): generation for user, source, generation in rows}


def _visible_rows(
    target: sqlite3.Connection, table: str, columns: list[str]
) -> Callable[[tuple[Any, ...]], bool] | None:
    """Rows of a stream's visible generation (0 before its first refresh); the rest belong
    to refreshes that never committed."""
    if "generation" not in columns:
        return None
    user, source, generation = (columns.index(c) for c in ("user_id", "source", "generation"))
    visible = _visible(target, table)
    return lambda row: row[generation] == visible.get((row[user], row[source]), 0)


def _expected_rows(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str
) -> int | None:
    """How many rows the table held, counted from an index alone (an index keeps a key and
    a rowid per row, on pages of its own): the exact number lost when the table's pages are
    what is damaged. None when no index reads."""
    try:
        indexes = [row[1] for row in source.execute(f"PRAGMA index_list({_quoted(table)})")]
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return None
    for index in indexes:
        try:
            if table not in RECORD_TABLES:
                sql = f"SELECT count(*) FROM {_quoted(table)} INDEXED BY {_quoted(index)}"
                return int(source.execute(sql).fetchone()[0])
            if _covers(source, index, ("user_id", "source", "generation")):
                return _visible_count(source, target, table, index)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
    return None


def _visible_count(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str, index: str
) -> int:
    """Rows of the visible generations only, from an index that holds user, source and
    generation (so the table's own pages are never read)."""
    sql = (
        f"SELECT user_id, source, generation, count(*) FROM {_quoted(table)}"
        f" INDEXED BY {_quoted(index)} GROUP BY 1, 2, 3"
    )
    visible = _visible(target, table)
    rows = source.execute(sql).fetchall()
    return sum(n for user, src, gen, n in rows if gen == visible.get((user, src), 0))


def _covers(source: sqlite3.Connection, index: str, columns: Sequence[str]) -> bool:
    held = {row[2] for row in source.execute(f"PRAGMA index_info({_quoted(index)})")}
    return set(columns) <= held


def _restore_sequences(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """AUTOINCREMENT never reuses a number; a generation reused would make a refresh's rows
    visible before its commit. So each sequence resumes above every number the broken file
    handed out, or the recovered rows still carry."""
    try:
        old = dict(source.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        old = {}
    in_use = [
        target.execute(f"SELECT max(generation) FROM {t}").fetchone()[0] or 0
        for t in ("stream_generations", *RECORD_TABLES)
    ]
    highest = max(int(old.get("generations") or 0), *in_use)
    if highest:
        target.execute("INSERT OR IGNORE INTO generations (id) VALUES (?)", (highest,))
    tables = set(_tables(target))
    for name, seq in old.items():
        if name in tables and isinstance(seq, int):
            target.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name)
            )
            target.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (name, seq, name),
            )
