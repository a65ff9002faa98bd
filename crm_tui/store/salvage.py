"""Copy what still reads of one SQLite file into another, table by table, counting what was
lost.

Python's sqlite3 has no `.recover`, so rows are read in rowid ranges: a range query reads
only the pages on its own path through the tree, and a range that raises is halved until
single unreadable rows fail alone and are skipped. The local CRM's rows exist nowhere else,
so they go first and with no limit on the effort; the cached contacts and deals go last,
and only their visible generations, since a re-sync brings them back anyway. How many rows
were lost is counted from an index where one survived (an index holds a key and a rowid per
row, on pages of its own).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_tui.store.damage import HEADER_SIZE, SQLITE_MAGIC, header_problem, is_damage
from crm_tui.store.files import sidecar

# The order rows are recovered in: what exists nowhere else first.
TABLE_ORDER = (
    "local_records",
    "sync_runs",
    "quarantine",
    "bookmarks",
    "source_status",
    "stream_generations",
    "imports",
    "generations",
    "contacts",
    "deals",
)
RECORD_TABLES = ("contacts", "deals")
# Who was writing when the file broke: nobody is now (a repair holds the file alone), and
# their half-written generations are not copied.
NOT_COPIED = frozenset({"owners", "leases", "pending_generations"})
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


# -- rows --------------------------------------------------------------------------------


def open_source(path: Path, notes: list[str]) -> sqlite3.Connection | None:
    """A connection that reads what it can of `path` (a scratch copy: a garbage header is
    rebuilt in place), or None with a note saying why nothing can be read."""
    with path.open("rb") as f:
        problem = header_problem(f.read(HEADER_SIZE))
    if problem:
        page_size = rebuild_header(path)
        if page_size is None:
            notes.append(f"nothing could be read: {problem}")
            return None
        notes.append(f"the header was rebuilt (page size {page_size}) to read the rest")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.text_factory = _decode
    try:
        conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not is_damage(exc):
            raise
        notes.append(f"nothing could be read: the schema is damaged ({exc})")
        return None
    return conn


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "replace")  # a damaged page may hold any bytes


def tables(conn: sqlite3.Connection) -> list[str]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    names = [t for t in names if t not in NOT_COPIED]
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


def _visible(target: sqlite3.Connection, table: str) -> dict[tuple[str, str], set[int]]:
    """Each stream's visible generations (its synced one, or 0 before its first refresh,
    and its imported files'), from the tables recovered before."""
    visible: dict[tuple[str, str], set[int]] = {}
    for user, source, generation in target.execute(
        "SELECT user_id, source, generation FROM stream_generations WHERE kind = ?", (table,)
    ):
        visible[(user, source)] = {generation}
    for user, source, generation in target.execute(
        "SELECT user_id, source, generation FROM imports WHERE kind = ?", (table,)
    ):
        visible.setdefault((user, source), {0}).add(generation)
    return visible


_BEFORE_REFRESH = frozenset({0})


def _visible_rows(
    target: sqlite3.Connection, table: str, columns: list[str]
) -> Callable[[tuple[Any, ...]], bool] | None:
    """Rows of a stream's visible generation (0 before its first refresh); the rest belong
    to refreshes that never committed."""
    if "generation" not in columns:
        return None
    user, source, generation = (columns.index(c) for c in ("user_id", "source", "generation"))
    visible = _visible(target, table)
    return lambda row: row[generation] in visible.get((row[user], row[source]), _BEFORE_REFRESH)


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
    return sum(n for user, src, gen, n in rows if gen in visible.get((user, src), _BEFORE_REFRESH))


def _covers(source: sqlite3.Connection, index: str, columns: Sequence[str]) -> bool:
    held = {row[2] for row in source.execute(f"PRAGMA index_info({_quoted(index)})")}
    return set(columns) <= held


def restore_sequences(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
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
        for t in ("stream_generations", "imports", *RECORD_TABLES)
    ]
    highest = max(int(old.get("generations") or 0), *in_use)
    if highest:
        target.execute("INSERT OR IGNORE INTO generations (id) VALUES (?)", (highest,))
    present = set(tables(target))
    for name, seq in old.items():
        if name in present and isinstance(seq, int):
            target.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name)
            )
            target.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (name, seq, name),
            )
