"""SQLite persistence: the cache snapshot, sync audit, quarantine, bookmarks and the local CRM.

Parameters only, never string-built values. Table and column names come from the constants
below, never from input. One connection guarded by a lock: writes arrive from worker threads
so the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from crm_tui.background import background_thread
from crm_tui.custom_columns import custom_text, custom_values
from crm_tui.faults import fault_point
from crm_tui.files import secure_dir
from crm_tui.models import (
    CONTACT_FIELDS,
    DEAL_FIELDS,
    KINDS,
    Contact,
    Deal,
    Record,
    RecordKind,
    SourceStatus,
    StreamReport,
    SyncReport,
    SyncState,
    utc_now,
)
from crm_tui.store.changes import ChangeLogStore
from crm_tui.store.damage import check_at_open, damage_named, is_busy
from crm_tui.store.decisions import DecisionStore
from crm_tui.store.errors import DatabaseReadOnly, StreamBusy
from crm_tui.store.files import SIDECARS, connect, named_write_error, refuse_unsafe_files, sidecar
from crm_tui.store.leases import Holder, Lease, LeaseStore
from crm_tui.store.local_rows import LocalRecordStore
from crm_tui.store.outbox import OutboxStore
from crm_tui.store.remap import RemapStore
from crm_tui.store.stamps import StampStore, StreamStamp
from crm_tui.store.syncstate import SyncStateStore

# Control characters are stripped at ingest, so neither separator occurs inside a value.
TAG_SEPARATOR = "\x1f"
RECORD_SEPARATOR = "\x1e"
_INTERNED = frozenset(
    {
        "source",
        "user_id",
        "status",
        "stage",
        "city",
        "state",
        "currency",
        "company",
        "rating",
        "synced_at",
    }
)
SCHEMA_VERSION = 9
T = TypeVar("T")
logger = logging.getLogger(__name__)
#: A refresh that changed more records than this is logged as a whole stream replaced.
DIFF_LIMIT = 20_000
_COLUMNS: dict[RecordKind, tuple[str, ...]] = {"contacts": CONTACT_FIELDS, "deals": DEAL_FIELDS}
# The record tables' columns as migrations 1 and 3 made them. Written out, not derived from
# the models: a field added later comes with a migration of its own, and must not change
# what an earlier step creates (the later step would then add it twice).
_V1_COLUMNS: dict[RecordKind, tuple[str, ...]] = {
    "contacts": (
        "id", "source", "remote_id", "user_id", "first_name", "last_name", "email", "phone",
        "company", "status", "rating", "stage", "tags", "street", "city", "state",
        "postal_code", "remote_created", "remote_updated", "synced_at", "deleted", "raw",
    ),
    "deals": (
        "id", "source", "remote_id", "user_id", "name", "amount", "currency", "stage",
        "probability", "close_date", "property_address", "status", "contact_remote_id",
        "remote_created", "remote_updated", "synced_at", "deleted", "raw",
    ),
}  # fmt: skip


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    """Rows by column name, from the cursor's description: the PostgreSQL connection has no
    row factory to set."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _column_defs(columns: tuple[str, ...]) -> str:
    return ", ".join(
        f"{c} {'INTEGER' if c in ('deleted', 'probability') else 'TEXT'}" for c in columns
    )


def _record_table_sql(table: str, columns: tuple[str, ...]) -> str:
    cols = _column_defs(columns)
    return (
        f"CREATE TABLE {table} ({cols}, PRIMARY KEY (user_id, id)) WITHOUT ROWID;"
        f"CREATE INDEX {table}_user_source ON {table} (user_id, source);"
    )


def _generation_tables(table: str, columns: tuple[str, ...]) -> str:
    """A rowid table (rows of ~700 bytes append cheaply; a WITHOUT ROWID tree splits on
    every page) whose rows carry their stream's generation, filled from the old one."""
    cols = _column_defs(columns)
    names = ", ".join(columns)
    return (
        f"CREATE TABLE {table}_v3 ({cols}, generation INTEGER NOT NULL DEFAULT 0);"
        f"INSERT INTO {table}_v3 ({names}) SELECT {names} FROM {table};"
        f"DROP TABLE {table};"
        f"DROP TABLE {table}_staging;"
        f"ALTER TABLE {table}_v3 RENAME TO {table};"
        f"CREATE UNIQUE INDEX {table}_key ON {table} (user_id, source, generation, id);"
    )


MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    _record_table_sql("contacts", _V1_COLUMNS["contacts"])
    + _record_table_sql("deals", _V1_COLUMNS["deals"])
    + """
    CREATE TABLE source_status (
        user_id TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
        last_sync TEXT, last_error TEXT, retry_at TEXT,
        PRIMARY KEY (user_id, source));
    CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, source TEXT NOT NULL,
        parent_id INTEGER REFERENCES sync_runs(id), stream TEXT,
        started_at TEXT NOT NULL, ended_at TEXT, outcome TEXT,
        records_read INTEGER DEFAULT 0, records_written INTEGER DEFAULT 0,
        quarantined INTEGER DEFAULT 0, duplicates INTEGER DEFAULT 0,
        retries INTEGER DEFAULT 0, pages INTEGER DEFAULT 0,
        error_class TEXT, error_message TEXT);
    CREATE INDEX sync_runs_user ON sync_runs (user_id, id);
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, run_id INTEGER,
        source TEXT NOT NULL, stream TEXT NOT NULL, reason TEXT NOT NULL,
        payload TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX quarantine_run ON quarantine (user_id, run_id);
    CREATE TABLE bookmarks (
        user_id TEXT NOT NULL, source TEXT NOT NULL, stream TEXT NOT NULL,
        value TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (user_id, source, stream));
    CREATE TABLE local_records (
        user_id TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL,
        payload TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (user_id, kind, id));
    """,
    # 1 -> 2: staging tables, where a full refresh lands page by page before the swap
    """
    CREATE TABLE contacts_staging AS SELECT *, '' AS run_key FROM contacts WHERE 0;
    CREATE INDEX contacts_staging_run ON contacts_staging (run_key);
    CREATE TABLE deals_staging AS SELECT *, '' AS run_key FROM deals WHERE 0;
    CREATE INDEX deals_staging_run ON deals_staging (run_key);
    """,
    # 2 -> 3: generations. A refresh writes its rows once, straight into the record table
    # under a new generation; the commit moves the stream's pointer and deletes the old
    # generation. Copying staged rows across at commit cost as much as writing them.
    _generation_tables("contacts", _V1_COLUMNS["contacts"])
    + _generation_tables("deals", _V1_COLUMNS["deals"])
    + """
    CREATE TABLE stream_generations (
        user_id TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
        generation INTEGER NOT NULL, PRIMARY KEY (user_id, kind, source));
    CREATE TABLE generations (id INTEGER PRIMARY KEY AUTOINCREMENT);
    """,
    # 3 -> 4: many processes on one data dir. A process that writes registers as an owner
    # and beats a heartbeat; a lease gives one owner a stream; a generation being written
    # names its owner, so a commit deletes only the rows it replaces and those of dead
    # owners; an imported file is a generation of its own that no sync replaces.
    """
    CREATE TABLE owners (
        id TEXT PRIMARY KEY, host TEXT NOT NULL, machine TEXT NOT NULL,
        pid INTEGER NOT NULL, started TEXT NOT NULL, heartbeat_at REAL NOT NULL);
    CREATE TABLE leases (
        user_id TEXT NOT NULL, source TEXT NOT NULL, stream TEXT NOT NULL,
        token TEXT NOT NULL, owner TEXT NOT NULL, purpose TEXT NOT NULL,
        acquired_at TEXT NOT NULL, PRIMARY KEY (user_id, source, stream));
    CREATE TABLE pending_generations (
        generation INTEGER PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL,
        source TEXT NOT NULL, owner TEXT NOT NULL);
    CREATE TABLE imports (
        generation INTEGER PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL,
        source TEXT NOT NULL, file TEXT NOT NULL, imported_at TEXT NOT NULL,
        records INTEGER NOT NULL);
    CREATE INDEX imports_stream ON imports (user_id, kind, source);
    """,
    # 4 -> 5: what people decided about duplicates (see decisions.py); which local contact
    # links which source record, and local ids that are never handed out twice
    """
    CREATE TABLE dedup_rejections (
        user_id TEXT NOT NULL, members TEXT NOT NULL, cluster_id TEXT NOT NULL,
        rejected_at TEXT NOT NULL, PRIMARY KEY (user_id, members));
    CREATE TABLE merges (
        id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, cluster_id TEXT NOT NULL,
        local_id TEXT NOT NULL, created INTEGER NOT NULL, previous TEXT, members TEXT NOT NULL,
        merged_at TEXT NOT NULL, undone_at TEXT);
    CREATE INDEX merges_user ON merges (user_id, id);
    CREATE TABLE local_links (
        user_id TEXT NOT NULL, record_id TEXT NOT NULL, local_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, record_id, local_id));
    CREATE INDEX local_links_local ON local_links (user_id, local_id);
    INSERT OR IGNORE INTO local_links (user_id, record_id, local_id)
        SELECT lr.user_id, j.value, lr.id
        FROM local_records lr, json_each(
            CASE WHEN json_valid(lr.payload) THEN lr.payload ELSE '{}' END, '$.linked_records'
        ) j
        WHERE lr.kind = 'contacts';
    CREATE TABLE local_sequence (user_id TEXT PRIMARY KEY, last INTEGER NOT NULL);
    INSERT INTO local_sequence (user_id, last)
        SELECT user_id, MAX(id) FROM local_records GROUP BY user_id;
    """,
    # 5 -> 6: incremental sync and live updates. A stream's bookmark is its watermark (the
    # vendor's latest updated time seen) and when it was last read in full; every write of
    # records leaves a row in `changes`, so another process applies just those rows; the
    # rate budget last read from a source's headers; webhooks wait in an inbox until applied.
    """
    ALTER TABLE bookmarks ADD COLUMN full_at TEXT;
    ALTER TABLE sync_runs ADD COLUMN mode TEXT;
    ALTER TABLE sync_runs ADD COLUMN deleted INTEGER DEFAULT 0;
    ALTER TABLE sync_runs ADD COLUMN requests INTEGER DEFAULT 0;
    ALTER TABLE sync_runs ADD COLUMN watermark TEXT;
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, kind TEXT NOT NULL,
        source TEXT, record_id TEXT, origin TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX changes_at ON changes (at);
    CREATE TABLE rate_budgets (
        user_id TEXT NOT NULL, source TEXT NOT NULL, request_limit INTEGER,
        remaining INTEGER, window_seconds REAL, daily_remaining INTEGER,
        observed_at TEXT NOT NULL, PRIMARY KEY (user_id, source));
    CREATE TABLE webhook_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, source TEXT NOT NULL,
        event TEXT NOT NULL, payload TEXT NOT NULL, received_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new', attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT, done_at TEXT);
    CREATE INDEX webhook_inbox_state ON webhook_inbox (user_id, state, id);
    CREATE TABLE webhook_refusals (
        source TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
        last_at TEXT NOT NULL, PRIMARY KEY (source, reason));
    """,
    # 6 -> 7: which process runs a sync, so that a run whose process is gone (killed, a
    # machine that lost power) is marked interrupted instead of staying "running" forever;
    # which process holds a webhook while applying it (migration 6 had shipped without)
    """
    ALTER TABLE sync_runs ADD COLUMN owner TEXT;
    CREATE INDEX sync_runs_open ON sync_runs (owner) WHERE ended_at IS NULL;
    ALTER TABLE webhook_inbox ADD COLUMN tried_at TEXT;
    ALTER TABLE webhook_inbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE webhook_inbox ADD COLUMN heartbeat_at TEXT;
    """,
    # 7 -> 8: two-way sync. Edits of vendor records wait in an outbox until the vendor has
    # them, and stay as the audit of every write (see store/outbox.py)
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, source TEXT NOT NULL,
        stream TEXT NOT NULL, action TEXT NOT NULL, record_id TEXT, remote_id TEXT,
        base TEXT NOT NULL, wanted TEXT NOT NULL, theirs TEXT, state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, error TEXT, answer TEXT, author TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, sent_at TEXT, done_at TEXT,
        claimed_by TEXT);
    CREATE INDEX outbox_state ON outbox (user_id, state, source, id);
    CREATE INDEX outbox_record ON outbox (user_id, record_id, id);
    """,
    # 8 -> 9: custom columns. A record's values for them as JSON text (custom_columns.py);
    # NULL when it has none, as every empty value is stored
    """
    ALTER TABLE contacts ADD COLUMN custom TEXT;
    ALTER TABLE deals ADD COLUMN custom TEXT;
    """,
)


def _statements(script: str) -> list[str]:
    """A migration script as single statements (execute() takes one at a time)."""
    return [s.strip() for s in script.split(";") if s.strip()]


_VALUES = {kind: operator.attrgetter(*columns) for kind, columns in _COLUMNS.items()}
_TAGS = CONTACT_FIELDS.index("tags")
_CONTACT_DELETED = CONTACT_FIELDS.index("deleted")
_DEAL_DELETED = DEAL_FIELDS.index("deleted")
_AMOUNT = DEAL_FIELDS.index("amount")
_CUSTOM = {kind: columns.index("custom") for kind, columns in _COLUMNS.items()}
#: The columns of each table that hold integers; every other holds text or NULL.
_NUMBERS = {
    kind: tuple(i for i, c in enumerate(columns) if c in ("deleted", "probability"))
    for kind, columns in _COLUMNS.items()
}


def _chunks(ids: Sequence[str], size: int = 500) -> list[list[str]]:
    """Ids a few hundred at a time: SQLite takes a bounded number of parameters."""
    return [list(ids[at : at + size]) for at in range(0, len(ids), size)]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _to_row(record: Record, generation: int) -> list[Any]:
    """A record's column values in table order as SQLite stores them, then its generation.
    Every synced record passes through here: one C-level getter, then the three columns
    that need converting."""
    if type(record) is Contact:
        row = list(_VALUES["contacts"](record))
        row[_TAGS] = TAG_SEPARATOR.join(row[_TAGS])
        row[_CONTACT_DELETED] = int(row[_CONTACT_DELETED])
        custom = _CUSTOM["contacts"]
    else:
        row = list(_VALUES["deals"](record))
        row[_DEAL_DELETED] = int(row[_DEAL_DELETED])
        if row[_AMOUNT] is not None:
            row[_AMOUNT] = str(row[_AMOUNT])
        custom = _CUSTOM["deals"]
    row[custom] = custom_text(row[custom])
    row.append(generation)
    return row


def record_line(record: Record) -> bytes:
    """A record's row as `read_stream_lines` reads it from the table (its columns as SQLite
    holds them, as text), made from the record: for what was just written from it."""
    values = _to_row(record, 0)
    values.pop()  # the generation
    for at in _NUMBERS["contacts" if type(record) is Contact else "deals"]:  # as SQLite reads
        if values[at] is not None:
            values[at] = str(values[at])
    return RECORD_SEPARATOR.join([v or "" for v in values]).encode()


def _joined(kind: RecordKind) -> str:
    """SQL that joins a record row's columns into one text (one Python object, not twenty):
    NULL as nothing, a number as its text. One printf, not twenty `ifnull`s and `||`s: half
    the time of reading a row."""
    columns = _COLUMNS[kind]
    return f"printf('{RECORD_SEPARATOR.join('%s' for _ in columns)}', {', '.join(columns)})"


def record_decoder(kind: RecordKind, share: bool = True) -> Callable[[str], Record]:
    """A function that makes a record of one joined row (see `_joined`). With `share`,
    low-cardinality values are shared between the records it makes (held for its life)."""
    columns = _COLUMNS[kind]
    factory: Callable[..., Record] = Contact if kind == "contacts" else Deal
    shared: dict[str, str] = {}
    interned = [i for i, c in enumerate(columns) if c in _INTERNED] if share else []
    tags_at = columns.index("tags") if "tags" in columns else -1
    amount_at = columns.index("amount") if "amount" in columns else -1
    probability_at = columns.index("probability") if "probability" in columns else -1
    deleted_at = columns.index("deleted")
    custom_at = columns.index("custom")

    def decode(line: str) -> Record:
        # Empty strings are never stored (ingest turns them into NULL).
        values: list[Any] = [v or None for v in line.split(RECORD_SEPARATOR)]
        for i in interned:
            v = values[i]
            if v is not None:
                values[i] = shared.setdefault(v, v)
        if tags_at >= 0:
            tags = values[tags_at]
            values[tags_at] = tuple(tags.split(TAG_SEPARATOR)) if tags else ()
        if amount_at >= 0 and values[amount_at] is not None:
            values[amount_at] = Decimal(values[amount_at])
        if probability_at >= 0 and values[probability_at] is not None:
            values[probability_at] = int(values[probability_at])
        values[deleted_at] = values[deleted_at] == "1"
        values[custom_at] = custom_values(values[custom_at])
        return factory(*values)

    return decode


def _blob(kind: RecordKind) -> str:
    """`_joined` as its UTF-8 bytes: what an artifact stores, never made a Python str."""
    return f"CAST({_joined(kind)} AS BLOB)"


_ROW_SEPARATOR = RECORD_SEPARATOR.encode()


class _Laying:
    """Imported rows laid over a stream's synced rows: an imported row in place of a synced
    one of the same id (`over`), then the imported rows left (`rest`)."""

    def __init__(self, imported: dict[bytes, bytes]) -> None:
        self.imported = imported

    def over(self, line: bytes) -> bytes:
        if self.imported:
            return self.imported.pop(line.partition(_ROW_SEPARATOR)[0], line)
        return line

    def rest(self) -> list[bytes]:
        left, self.imported = list(self.imported.values()), {}
        return left


class Database(
    LeaseStore,
    DecisionStore,
    LocalRecordStore,
    ChangeLogStore,
    SyncStateStore,
    OutboxStore,
    RemapStore,
    StampStore,
):
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_leases()
        secure_dir(path.parent)
        self._lock = threading.RLock()
        self._writer: ThreadPoolExecutor | None = None
        refuse_unsafe_files(path)  # before anything reads it: a FIFO would block
        check_at_open(path)
        self._conn, reason = connect(path)
        self.read_only = reason is not None
        self.read_only_reason = reason or ""
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._enable_wal()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        for suffix in SIDECARS:
            beside = sidecar(path, suffix)
            if beside.exists() and not self.read_only:
                beside.chmod(0o600)
        self.migrate()
        if not self.read_only:
            self.interrupt_abandoned_runs()

    @property
    def location(self) -> str:
        """Where the data is, for messages: the file (a team database: its URL)."""
        return str(self.path)

    def writable_users(self) -> frozenset[str] | None:
        """The user ids this connection may write, None for every one (a file's reader
        writes whatever the file holds)."""
        return None

    def durable(self) -> None:
        """Every commit on the disk before it returns (`synchronous=FULL`; NORMAL survives a
        crash of the process, not of the machine): for a process whose commits are promises
        to someone else, such as the webhook receiver's 2xx after storing a request."""
        with self._lock:
            self._conn.execute("PRAGMA synchronous=FULL")

    def read_only_error(self) -> DatabaseReadOnly:
        return DatabaseReadOnly(
            "The database is read-only",
            f"cannot write {self.path}: {self.read_only_reason}; reading still works"
            " (status, contacts, search, export)",
            self.path,
        )

    def close(self) -> None:
        self._finish_writes()
        self._release_everything()
        with self._lock:
            self._conn.close()

    def _finish_writes(self) -> None:
        """The writer thread's calls run to their end before the close releases what this
        process holds: a sync cancelled while it drew a generation has not heard its number,
        and only the release can find it."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    async def in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)`, a call of this database, on its writer thread: off the event
        loop, one call at a time, at lowered priority once the entry point tuned the
        process (crm_tui.tuning)."""
        if self._writer is None:
            self._writer = background_thread("crm-db-writer")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(fn, *args))

    # -- schema --------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @damage_named
    def _enable_wal(self) -> None:
        """Two processes opening a new database at once race to switch its journal mode, and
        SQLite answers the loser "locked" without waiting: try again for a few seconds."""
        if self.read_only:  # it was made WAL by whoever could write it, or stays as it is
            return
        for attempt in range(50):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    @damage_named
    def migrate(self) -> None:
        with self._lock:
            if self.schema_version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} was written by a newer crm-tui "
                    f"(schema {self.schema_version}); upgrade"
                )
            if self.read_only:
                self._require_current_schema()
                return
            while True:
                # One step at a time under a write lock, re-reading the version inside it:
                # another process may have migrated while we waited.
                self._conn.execute("BEGIN IMMEDIATE")
                version = self.schema_version
                if version >= len(MIGRATIONS):
                    self._conn.execute("COMMIT")
                    return
                try:
                    for statement in _statements(MIGRATIONS[version]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={version + 1}")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    def _require_current_schema(self) -> None:
        """A read-only database cannot be migrated: an older schema is a clear error."""
        version = self.schema_version
        if version < len(MIGRATIONS):
            raise DatabaseReadOnly(
                "The database needs an upgrade",
                f"{self.path} has schema {version} and this crm-tui needs"
                f" {len(MIGRATIONS)}, but {self.read_only_reason}; open it once with write"
                " access to upgrade it",
                self.path,
            )

    @contextmanager
    @damage_named
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; inside another it simply joins it."""
        if self.read_only:
            raise self.read_only_error()
        with self._lock, self._write_errors_named():
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite rolls back by itself after some errors
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _write_errors_named(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            named = named_write_error(exc, self.path)
            if named is None:
                raise
            raise named from exc

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction: every statement in it sees the same commit. Without it, a
        commit landing between reading a stream's generation and reading its rows would
        show that stream empty."""
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def _batches(self, sql: str, params: tuple[Any, ...]) -> Iterator[list[Any]]:
        """A large result in small batches: memory held and the GIL let go between them."""
        cursor = self._conn.execute(sql, params)
        while rows := cursor.fetchmany(2_000):
            yield rows

    @damage_named
    def data_version(self) -> int:
        """Changes when another connection (another process) commits."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    # -- cached records ------------------------------------------------------------------

    @damage_named
    def load_records(
        self,
        user_id: str,
        kind: RecordKind,
        imported: bool = False,
        source: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> Iterator[Record]:
        """A user's cached records, fast: SQLite joins each row into one string (one Python
        object instead of twenty), split here; low-cardinality values are shared. The
        sources' own (synced) rows, or with `imported` the rows of imported files, oldest
        import first, so that a later import of an id wins. Only `source`'s, or only the
        records `ids` (of `source`), when given."""
        decode = record_decoder(kind)
        joined = _joined(kind)
        with self._lock, self._reading():
            queries = self._record_queries(user_id, kind, joined, imported, source, ids)
            for sql, params in queries:
                for rows in self._batches(sql, params):
                    for (line,) in rows:
                        yield decode(line)

    @damage_named
    def read_stream_lines(
        self,
        user_id: str,
        kind: RecordKind,
        source: str,
        take: Callable[[StreamStamp, Iterator[bytes]], T],
    ) -> T:
        """`take(stamp, lines)`: one stream's rows as `load_records` reads them (one joined
        line each, as UTF-8 bytes, decoded by `record_decoder` once made a str), one per id as
        the cache shows the stream: its synced rows in the order they were written, with an
        imported row in place of a synced one of the same id, then the imported rows of new
        ids (a later import wins). Read in one transaction with the stream's stamp, so the
        stamp names exactly these rows. Through the table's index: for one stream of many."""
        joined = _blob(kind)
        with self._lock, self._reading():
            stamp = self._stamp(user_id, kind, source)
            laying = _Laying(self._imported_lines(user_id, kind, source))
            ((sql, params),) = self._record_queries(
                user_id, kind, joined, False, source, None, written=True
            )
            return take(stamp, self._laid_over(sql, params, laying))

    def _laid_over(self, sql: str, params: tuple[Any, ...], laying: _Laying) -> Iterator[bytes]:
        for rows in self._batches(sql, params):
            for (line,) in rows:
                yield laying.over(line)
        yield from laying.rest()

    @damage_named
    def read_streams_lines(
        self,
        user_id: str,
        kind: RecordKind,
        sources: Sequence[str],
        sink: Callable[[str, StreamStamp], Callable[[bytes], None]],
    ) -> None:
        """Several streams' rows, each as `read_stream_lines` gives them, in one pass over
        the table in row order (cheaper than one read through the index per stream once
        they are a good part of it). One transaction with their stamps: `sink(source,
        stamp)` is called for each stream first and returns what takes its rows."""
        joined = _blob(kind)
        with self._lock, self._reading():
            streams: dict[tuple[str, int], tuple[Callable[[bytes], None], _Laying]] = {}
            for source in dict.fromkeys(sources):
                stamp = self._stamp(user_id, kind, source)
                laying = _Laying(self._imported_lines(user_id, kind, source))
                streams[(source, stamp.generation)] = (sink(source, stamp), laying)
            if not streams:
                return
            generations = sorted({generation for _, generation in streams})
            # `+user_id`: a scan in row order, not through the index (which jumps about)
            batches = self._batches(
                f"SELECT source, generation, {joined} FROM {kind} WHERE +user_id = ?"
                f" AND generation IN ({_marks(generations)}) ORDER BY rowid",
                (user_id, *generations),
            )
            for rows in batches:
                for source, generation, line in rows:
                    into = streams.get((source, generation))
                    if into is not None:  # not another stream's, nor an import's
                        into[0](into[1].over(line))
            for put, laying in streams.values():
                for line in laying.rest():
                    put(line)

    def _imported_lines(self, user_id: str, kind: RecordKind, source: str) -> dict[bytes, bytes]:
        """A stream's imported rows by id, oldest import first (a later import of an id
        takes its place)."""
        imported: dict[bytes, bytes] = {}
        for sql, params in self._record_queries(user_id, kind, _blob(kind), True, source, None):
            for (line,) in self._conn.execute(sql, params):
                imported[line.partition(_ROW_SEPARATOR)[0]] = line
        return imported

    @damage_named
    def stream_sources(self, user_id: str, kind: RecordKind) -> list[str]:
        """The sources that have rows of `kind` (in any generation), in name order: one
        index probe per source, not a scan of the rows."""
        with self._lock:
            rows = self._conn.execute(
                "WITH RECURSIVE s(source) AS ("
                f" SELECT (SELECT min(source) FROM {kind} WHERE user_id = ?1)"
                f" UNION ALL SELECT (SELECT min(source) FROM {kind}"
                "  WHERE user_id = ?1 AND source > s.source)"
                " FROM s WHERE s.source IS NOT NULL)"
                " SELECT source FROM s WHERE source IS NOT NULL",
                (user_id,),
            ).fetchall()
        return [source for (source,) in rows]

    def _record_queries(
        self,
        user_id: str,
        kind: RecordKind,
        joined: str,
        imported: bool,
        source: str | None,
        ids: Sequence[str] | None,
        written: bool = False,
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The SELECTs that read what `load_records` was asked for, in order. A stream's
        rows come in id order (its key's), or with `written` in the order they were written;
        every stream's rows, in the order written. Said, not left to the plan: it is what
        SQLite's plan gives at no cost, and PostgreSQL's plan may give another."""
        by_stream = (
            f"SELECT {joined} FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?"
        )
        order = " ORDER BY rowid" if written else " ORDER BY id"
        if imported:
            # one import after another, in order, each through the table's index
            select = by_stream
            only = "" if source is None else " AND source = ?"
            imports = self._conn.execute(
                f"SELECT source, generation FROM imports WHERE user_id = ? AND kind = ?{only}"
                " ORDER BY generation",
                (user_id, kind) if source is None else (user_id, kind, source),
            ).fetchall()
            if ids is not None:
                return [
                    (select + f" AND id IN ({_marks(chunk)}){order}", (user_id, name, g, *chunk))
                    for name, g in imports
                    for chunk in _chunks(ids)
                ]
            return [(select + order, (user_id, name, g)) for name, g in imports]
        generations = self._generations(user_id, kind)
        if source is not None:
            # one stream, through the table's index (a few rows, or a source among many)
            select = by_stream
            current = generations.get(source, 0)
            if ids is not None:
                return [
                    (
                        select + f" AND id IN ({_marks(chunk)}){order}",
                        (user_id, source, current, *chunk),
                    )
                    for chunk in _chunks(ids)
                ]
            return [(select + order, (user_id, source, current))]
        visible = sorted({0, *generations.values()})
        marks = ", ".join("?" for _ in visible)
        # `+user_id`: a scan in row order beats index order, which jumps about the file
        select = f"SELECT {joined} FROM {kind} WHERE +user_id = ? AND generation IN ({marks})"
        return [(select + " ORDER BY rowid", (user_id, *visible))]

    # A stream's rows are those of its current generation (0 until its first refresh). A
    # refresh writes a new generation beside the current one, invisible until committed.

    def _generations(self, user_id: str, kind: RecordKind) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT source, generation FROM stream_generations WHERE user_id = ? AND kind = ?",
            (user_id, kind),
        )
        return dict(rows.fetchall())

    def replace_stream(
        self, user_id: str, source: str, kind: RecordKind, records: Iterable[Record]
    ) -> int:
        """Swap a source's whole stream at once (under its lease, which must be free): the
        old rows or the new, never a mix. Returns how many rows the commit holds."""
        lease = self.acquire_lease(user_id, source, kind, "replace")
        if isinstance(lease, Holder):
            raise StreamBusy(f"{source} {kind} is busy", lease.describe(), self.path)
        try:
            generation = self.new_generation(user_id, source, kind)
            try:
                self.stage(kind, generation, records)
                return self.commit_staged(user_id, source, kind, generation, lease)
            except BaseException:
                self.drop_staged(user_id, source, kind, generation)
                raise
        finally:
            self.release_lease(lease)

    def stage(self, kind: RecordKind, generation: int, records: Iterable[Record]) -> None:
        """Write one page of a full refresh (or an import) as `generation`; readers see
        nothing yet. An id sent twice replaces its first row: the last one wins."""
        rows = (_to_row(r, generation) for r in records)
        with self.transaction() as conn:
            conn.executemany(self._insert_sql(kind), rows)

    def drop_staged(self, user_id: str, source: str, kind: RecordKind, generation: int) -> None:
        """Give up a generation being written. One no longer pending is left alone: its
        commit went through (a cancel that arrived during it), or it was swept."""
        with self.transaction() as conn:
            if self._settle(conn, generation):
                self._delete_generation(conn, kind, user_id, source, generation)

    def commit_staged(
        self,
        user_id: str,
        source: str,
        kind: RecordKind,
        generation: int,
        lease: Lease,
        watermark: str | None = None,
    ) -> int:
        """Make `generation` the stream's rows, in one transaction: the old rows or the new.
        Deleted with it: the previous generation, and whatever owners that died left. Kept:
        imported files and generations that live owners are still writing. The stream's
        bookmark moves with it: read in full now, up to `watermark`. Returns how many rows
        the stream now holds, as the database counts them."""
        return self.commit_staged_stamped(user_id, source, kind, generation, lease, watermark)[0]

    def commit_staged_stamped(
        self,
        user_id: str,
        source: str,
        kind: RecordKind,
        generation: int,
        lease: Lease,
        watermark: str | None = None,
    ) -> tuple[int, StreamStamp]:
        """`commit_staged`, and the stream's stamp as this commit leaves it (read inside
        its transaction: a later commit by anyone shows as a change after it)."""
        with self.transaction() as conn:
            self.move_bookmark(conn, user_id, source, kind, watermark, full=True)
            written = self.swap_generation(user_id, source, kind, generation, lease)
            return written, self._stamp(user_id, kind, source)

    def swap_generation(
        self, user_id: str, source: str, kind: RecordKind, generation: int, lease: Lease
    ) -> int:
        """`generation` becomes the stream's rows as commit_staged says, its differences
        logged for the other processes; its bookmark left alone (a re-map of stored
        payloads read nothing new). In one transaction, or in the caller's."""
        with self.transaction() as conn:
            self.check_lease(conn, lease)
            previous = self._generations(user_id, kind).get(source)
            # what differs from the rows it replaces, for the other processes: a refresh
            # that changed a few records costs an open app those few, not the stream
            differing = None
            if previous is not None:
                differing = self._differing(conn, user_id, source, kind, previous, generation)
            self.log_changes(conn, user_id, kind, source, differing)
            self._settle_or_lose(conn, generation, source, kind)
            keep = {generation, *self._imported_generations(conn, user_id, source, kind)}
            keep.update(self._live_pending(conn, user_id, source, kind))
            self._sweep(conn, user_id, source, kind)
            conn.execute(
                "INSERT INTO stream_generations (user_id, kind, source, generation)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, kind, source)"
                " DO UPDATE SET generation = excluded.generation",
                (user_id, kind, source, generation),
            )
            marks = ", ".join("?" for _ in keep)
            conn.execute(
                f"DELETE FROM {kind} WHERE user_id = ? AND source = ?"
                f" AND generation NOT IN ({marks})",
                (user_id, source, *keep),
            )
            written = self._count(conn, user_id, source, kind, generation)
            fault_point("commit")  # the tests kill or pause a process here, mid-commit
            return written

    @staticmethod
    def _differing(
        conn: sqlite3.Connection,
        user_id: str,
        source: str,
        kind: RecordKind,
        old: int,
        new: int,
    ) -> list[str] | None:
        """The ids added, changed (in anything but their sync time) or gone between two
        generations of a stream; None when more than DIFF_LIMIT differ (then the stream is
        read again whole)."""
        compared = [c for c in _COLUMNS[kind] if c not in ("id", "user_id", "source", "synced_at")]
        differs = " OR ".join(f"n.{c} IS NOT o.{c}" for c in compared)
        same_row = "o.user_id = n.user_id AND o.source = n.source AND o.id = n.id"
        found = [
            i
            for (i,) in conn.execute(
                f"SELECT n.id FROM {kind} n LEFT JOIN {kind} o ON {same_row}"
                f" AND o.generation = ? WHERE n.user_id = ? AND n.source = ?"
                f" AND n.generation = ? AND (o.id IS NULL OR {differs}) LIMIT ?",
                (old, user_id, source, new, DIFF_LIMIT + 1),
            )
        ]
        found += [
            i
            for (i,) in conn.execute(
                f"SELECT o.id FROM {kind} o WHERE o.user_id = ? AND o.source = ?"
                f" AND o.generation = ? AND NOT EXISTS (SELECT 1 FROM {kind} n"
                f" WHERE {same_row} AND n.generation = ?) LIMIT ?",
                (user_id, source, old, new, DIFF_LIMIT + 1),
            )
        ]
        return found if len(found) <= DIFF_LIMIT else None

    def commit_import(
        self, user_id: str, source: str, kind: RecordKind, generation: int, file: str
    ) -> int:
        """Make an imported file's staged rows visible, as a generation of their own that
        no sync replaces. A file imported again replaces its earlier import. Returns how
        many rows the import holds."""
        with self.transaction() as conn:
            self._settle_or_lose(conn, generation, source, kind)
            self.log_changes(conn, user_id, kind, source)
            for (earlier,) in conn.execute(
                "SELECT generation FROM imports"
                " WHERE user_id = ? AND kind = ? AND source = ? AND file = ?",
                (user_id, kind, source, file),
            ).fetchall():
                self._delete_generation(conn, kind, user_id, source, earlier)
                conn.execute("DELETE FROM imports WHERE generation = ?", (earlier,))
            count = self._count(conn, user_id, source, kind, generation)
            conn.execute(
                "INSERT INTO imports (generation, user_id, kind, source, file, imported_at,"
                " records) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (generation, user_id, kind, source, file, utc_now(), count),
            )
            return count

    @staticmethod
    def _count(
        conn: sqlite3.Connection, user_id: str, source: str, kind: RecordKind, generation: int
    ) -> int:
        return int(
            conn.execute(
                f"SELECT count(*) FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?",
                (user_id, source, generation),
            ).fetchone()[0]
        )

    @staticmethod
    def _imported_generations(
        conn: sqlite3.Connection, user_id: str, source: str, kind: RecordKind
    ) -> list[int]:
        rows = conn.execute(
            "SELECT generation FROM imports WHERE user_id = ? AND kind = ? AND source = ?",
            (user_id, kind, source),
        )
        return [g for (g,) in rows.fetchall()]

    def upsert_records(self, kind: RecordKind, records: Iterable[Record]) -> None:
        with self.transaction() as conn:
            current: dict[str, dict[str, int]] = {}
            rows = []
            for record in records:
                if record.user_id not in current:
                    current[record.user_id] = self._generations(record.user_id, kind)
                rows.append(_to_row(record, current[record.user_id].get(record.source, 0)))
                self.log_changes(conn, record.user_id, kind, record.source, (record.id,))
            conn.executemany(self._insert_sql(kind), rows)

    def delete_records(self, user_id: str, kind: RecordKind, ids: Iterable[str]) -> None:
        with self.transaction() as conn:
            current = self._generations(user_id, kind)
            keys = []
            for record_id in ids:
                source = record_id.split(":", 1)[0]
                keys.append((user_id, source, current.get(source, 0), record_id))
                self.log_changes(conn, user_id, kind, source, (record_id,))
            conn.executemany(
                f"DELETE FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?"
                " AND id = ?",
                keys,
            )

    def commit_changes(
        self,
        user_id: str,
        source: str,
        kind: RecordKind,
        upserts: Sequence[Record],
        deletes: Sequence[str],
        lease: Lease | None,
        watermark: str | None = None,
    ) -> int:
        """What changed in one stream since its last sync (an incremental read, a webhook),
        in one transaction with its bookmark: written into the stream's current rows, each
        change logged for the other processes. Returns how many rows it deleted."""
        with self.transaction() as conn:
            if lease is not None:
                self.check_lease(conn, lease)
            current = self._generations(user_id, kind).get(source, 0)
            conn.executemany(self._insert_sql(kind), (_to_row(r, current) for r in upserts))
            # a listing of deletions names records long gone too: only those still here
            # are deleted, and logged
            present = self._present(conn, user_id, source, kind, current, deletes)
            conn.executemany(
                f"DELETE FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?"
                " AND id = ?",
                ((user_id, source, current, i) for i in present),
            )
            self.move_bookmark(conn, user_id, source, kind, watermark, full=False)
            self.log_changes(conn, user_id, kind, source, [r.id for r in upserts] + present)
            return len(present)

    @staticmethod
    def _present(
        conn: sqlite3.Connection,
        user_id: str,
        source: str,
        kind: RecordKind,
        generation: int,
        ids: Sequence[str],
    ) -> list[str]:
        found: list[str] = []
        for chunk in _chunks(ids):
            found += [
                i
                for (i,) in conn.execute(
                    f"SELECT id FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?"
                    f" AND id IN ({_marks(chunk)})",
                    (user_id, source, generation, *chunk),
                )
            ]
        return found

    def clear(self, user_id: str, source: str | None = None) -> int:
        """Delete the visible rows, imported files' included; a refresh still running keeps
        its own generation. Returns how many imported rows went with them."""
        only = "" if source is None else " AND source = ?"
        params: tuple[str, ...] = (user_id,) if source is None else (user_id, source)
        with self.transaction() as conn:
            imported = 0
            for kind in KINDS:
                pointers = conn.execute(
                    f"SELECT generation FROM stream_generations WHERE user_id = ?{only}"
                    " AND kind = ?",
                    (*params, kind),
                ).fetchall()
                imports = conn.execute(
                    f"SELECT generation, records FROM imports WHERE user_id = ?{only} AND kind = ?",
                    (*params, kind),
                ).fetchall()
                imported += sum(n for _, n in imports)
                visible = {0, *(g for (g,) in pointers), *(g for g, _ in imports)}
                marks = ", ".join("?" for _ in visible)
                conn.execute(
                    f"DELETE FROM {kind} WHERE user_id = ?{only} AND generation IN ({marks})",
                    (*params, *visible),
                )
            for table in ("imports", "bookmarks", "source_status"):
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?{only}", params)
            for kind in KINDS:
                self.log_changes(conn, user_id, kind, source)
        return imported

    @classmethod
    def _insert_sql(cls, kind: RecordKind) -> str:
        marks = ", ".join("?" for _ in (*_COLUMNS[kind], "generation"))
        return cls._replacing_sql(kind, f"VALUES ({marks})")

    @staticmethod
    def _replacing_sql(kind: RecordKind, rows: str) -> str:
        """An INSERT of `rows` (VALUES or a SELECT of every column, generation last) in
        which a row replaces the one with its key, moving to the end of the table."""
        columns = ", ".join((*_COLUMNS[kind], "generation"))
        return f"INSERT OR REPLACE INTO {kind} ({columns}) {rows}"

    # -- reading without loading (a cold CLI call) -----------------------------------------

    @contextmanager
    @damage_named
    def consistent_reads(self) -> Iterator[None]:
        """Every read inside sees one commit: for a caller that reads a stream in several
        queries (its row order, its rows, its imports) and must never see half a swap."""
        with self._lock, self._reading():
            yield

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """One read transaction and its connection, for a caller that reads the tables
        itself (`db copy`): every statement sees the same commit."""
        with self._lock, self._reading():
            yield self._conn

    @damage_named
    def stream_counts(self, user_id: str, kind: RecordKind) -> dict[str, int]:
        """Each source's records of `kind` as a loaded store counts them (its current rows,
        imported ones laid over them, an id counted once), read from the index alone; in the
        order a full load meets the sources (first row of each, then import-only ones)."""
        with self._lock, self._reading():
            current = self._generations(user_id, kind)
            first: list[tuple[int, str, int]] = []
            for source in self._record_sources(user_id, kind):
                count, first_row = self._conn.execute(
                    f"SELECT count(*), min(rowid) FROM {kind}"
                    " WHERE user_id = ? AND source = ? AND generation = ?",
                    (user_id, source, current.get(source, 0)),
                ).fetchone()
                if count:
                    first.append((first_row, source, count))
            if first:  # the index alone answered: reach the table once, so a damaged
                # table fails here as a load would have, not only in the next full read
                self._conn.execute(f"SELECT id FROM {kind} WHERE rowid = ?", (first[0][0],))
            counts = {source: count for _, source, count in sorted(first)}
            imports = self._conn.execute(
                "SELECT source, generation FROM imports WHERE user_id = ? AND kind = ?"
                " ORDER BY generation",
                (user_id, kind),
            ).fetchall()
            for source in dict.fromkeys(name for name, _ in imports):
                gens = [g for name, g in imports if name == source]
                added = self._imported_only(user_id, kind, source, current.get(source, 0), gens)
                if added:
                    counts[source] = counts.get(source, 0) + added
        return counts

    def _record_sources(self, user_id: str, kind: RecordKind) -> list[str]:
        """The sources with rows of `kind` in any generation: one index probe per source
        (a loose index scan), not a walk through every row."""
        rows = self._conn.execute(
            "WITH RECURSIVE s(source) AS ("
            f" SELECT (SELECT min(source) FROM {kind} WHERE user_id = ?1)"
            f" UNION ALL SELECT (SELECT min(source) FROM {kind} WHERE user_id = ?1"
            " AND source > s.source) FROM s WHERE s.source IS NOT NULL)"
            " SELECT source FROM s WHERE source IS NOT NULL",
            (user_id,),
        )
        return [source for (source,) in rows.fetchall()]

    def _imported_only(
        self, user_id: str, kind: RecordKind, source: str, current: int, imports: list[int]
    ) -> int:
        """Ids of the imports not among the stream's current rows, each counted once."""
        return int(
            self._conn.execute(
                f"SELECT count(DISTINCT i.id) FROM {kind} i WHERE i.user_id = ?"
                f" AND i.source = ? AND i.generation IN ({_marks(imports)})"
                f" AND NOT EXISTS (SELECT 1 FROM {kind} s WHERE s.user_id = i.user_id"
                " AND s.source = i.source AND s.generation = ? AND s.id = i.id)",
                (user_id, source, *imports, current),
            ).fetchone()[0]
        )

    @damage_named
    def stream_id_batches(
        self, user_id: str, kind: RecordKind, source: str, size: int = 500
    ) -> Iterator[list[str]]:
        """The ids of a stream's current (synced) rows, in batches of `size`, in the order a
        full load meets them (the table's row order): a few bytes per row held, not a
        record. Call inside `consistent_reads` so the rows read next are these."""
        import numpy as np

        with self._lock, self._reading():
            generation = self._generations(user_id, kind).get(source, 0)
            cursor = self._conn.execute(
                f"SELECT rowid FROM {kind} WHERE user_id = ? AND source = ? AND generation = ?",
                (user_id, source, generation),
            )
            rowids = np.sort(np.fromiter((r for (r,) in cursor), dtype=np.int64))
            for start in range(0, len(rowids), size):
                chunk = rowids[start : start + size].tolist()
                found = self._conn.execute(
                    f"SELECT rowid, id FROM {kind} WHERE rowid IN ({_marks(chunk)})", chunk
                ).fetchall()
                yield [i for _, i in sorted(found)]

    # -- status --------------------------------------------------------------------------

    def save_status(self, user_id: str, status: SourceStatus) -> None:
        """A run's outcome. Several processes write a source's status: the last sync time
        only ever moves forward, so a run that ends late never hides a later success."""
        state = status.state
        # a crash must not leave a source "syncing" forever
        if state in (SyncState.SYNCING, SyncState.WAITING):
            state = SyncState.IDLE
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO source_status"
                " (user_id, source, state, last_sync, last_error, retry_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, source) DO UPDATE SET state = excluded.state,"
                " last_error = excluded.last_error, retry_at = excluded.retry_at,"
                " last_sync = CASE WHEN excluded.last_sync > coalesce(source_status.last_sync, '')"
                " THEN excluded.last_sync ELSE source_status.last_sync END",
                (
                    user_id,
                    status.source,
                    str(state),
                    status.last_sync,
                    status.last_error,
                    status.retry_at,
                ),
            )

    def load_statuses(self, user_id: str) -> dict[str, SourceStatus]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT source, state, last_sync, last_error, retry_at FROM source_status"
                " WHERE user_id = ?",
                (user_id,),
            ).fetchall()
        rates = self.rates(user_id)
        return {
            source: SourceStatus(
                source=source,
                state=_stored_state(user_id, source, state),
                last_sync=last_sync,
                last_error=last_error,
                retry_at=retry_at,
                rate=rates.get(source),
            )
            for source, state, last_sync, last_error, retry_at in rows
        }

    # -- audit ---------------------------------------------------------------------------

    def start_run(
        self,
        user_id: str,
        source: str,
        started_at: str,
        parent_id: int | None = None,
        stream: str | None = None,
    ) -> int:
        """A run, open under this process (an owner with a heartbeat while it runs)."""
        with self.transaction() as conn:
            self._hold(conn)
            cursor = conn.execute(
                "INSERT INTO sync_runs (user_id, source, parent_id, stream, started_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, source, parent_id, stream, started_at, self.owner.id),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, report: SyncReport | StreamReport) -> None:
        if isinstance(report, SyncReport):
            streams = report.streams.values()
            counts = (
                sum(s.read for s in streams),
                sum(s.written for s in streams),
                sum(s.quarantined for s in streams),
                sum(s.duplicates for s in streams),
                sum(s.retries for s in streams),
                sum(s.pages for s in streams),
            )
            error_class = next((s.error_class for s in streams if s.error_class), None)
            error = report.error
            extra: tuple[Any, ...] = (None, sum(s.deleted for s in streams), None, None)
        else:
            counts = (
                report.read,
                report.written,
                report.quarantined,
                report.duplicates,
                report.retries,
                report.pages,
            )
            error_class, error = report.error_class, report.error
            extra = (report.mode, report.deleted, report.requests, report.watermark)
        with self.transaction() as conn:
            # open, or marked interrupted meanwhile by another host that found our heartbeat
            # late: either way this process held it and lets go now
            was_open = conn.execute(
                "SELECT 1 FROM sync_runs WHERE id = ? AND owner = ?"
                " AND (ended_at IS NULL OR outcome = 'interrupted')",
                (run_id, self.owner.id),
            ).fetchone()
            conn.execute(
                "UPDATE sync_runs SET ended_at = ?, outcome = ?, records_read = ?,"
                " records_written = ?, quarantined = ?, duplicates = ?, retries = ?, pages = ?,"
                " error_class = ?, error_message = ?, mode = ?, deleted = ?, requests = ?,"
                " watermark = ? WHERE id = ?",
                (report.ended_at, str(report.outcome), *counts, error_class, error, *extra, run_id),
            )
            if was_open:
                self._unhold(conn)

    @damage_named
    def list_runs(self, user_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """Runs newest first, each with its stream rows under "streams"."""
        return self._runs_with_streams(
            "SELECT * FROM sync_runs WHERE user_id = ? AND parent_id IS NULL"
            " ORDER BY id DESC LIMIT ?",
            (user_id, limit),
            user_id,
        )

    @damage_named
    def recent_runs(self, user_id: str, per_source: int = 30) -> list[dict[str, Any]]:
        """Each source's latest `per_source` sync runs, newest first, with their stream rows:
        the Pipeline's sync health (one busy source must not push the others out, nor
        re-maps of the cache the syncs)."""
        return self._runs_with_streams(
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY source ORDER BY id DESC)"
            " AS nth FROM sync_runs WHERE user_id = ? AND parent_id IS NULL"
            " AND (stream IS NULL OR stream NOT LIKE 'remap:%')) AS ranked"
            " WHERE nth <= ? ORDER BY id DESC",
            (user_id, per_source),
            user_id,
        )

    def _runs_with_streams(
        self, sql: str, params: tuple[Any, ...], user_id: str
    ) -> list[dict[str, Any]]:
        with self._lock:
            runs = _dicts(self._conn.execute(sql, params))
            ids = [r["id"] for r in runs]
            streams: dict[int, list[dict[str, Any]]] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" for _ in chunk)
                for row in _dicts(
                    self._conn.execute(
                        f"SELECT * FROM sync_runs WHERE user_id = ? AND parent_id IN ({marks})"
                        " ORDER BY id",
                        (user_id, *chunk),
                    )
                ):
                    streams.setdefault(row["parent_id"], []).append(row)
        for run in runs:
            run["streams"] = streams.get(run["id"], [])
        return runs

    # -- quarantine ----------------------------------------------------------------------

    def add_quarantine(
        self,
        user_id: str,
        run_id: int | None,
        source: str,
        stream: str,
        items: Iterable[tuple[str, Any]],
        created_at: str,
    ) -> None:
        """Invalid records with their reasons. A payload is stored as JSON (ASCII: a lone
        surrogate is escaped, never a failed batch); past 64 KiB only its first 64 KiB are
        kept, inside `{"truncated": true, "characters": N, "head": ...}`, so that a 10 MB
        record cannot bloat the database."""
        cap = 64 * 1024
        rows = []
        for reason, payload in items:
            try:
                text = json.dumps(payload, default=str)
            except (ValueError, RecursionError):  # an int past str()'s limit, deep nesting
                text = json.dumps({"unserialisable": type(payload).__name__})
            if len(text) > cap:
                text = json.dumps({"truncated": True, "characters": len(text), "head": text[:cap]})
            # The reason may quote the record: keep it storable whatever it holds.
            storable = reason.encode("utf-8", "backslashreplace").decode("utf-8")
            rows.append((user_id, run_id, source, stream, storable, text, created_at))
        if not rows:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO quarantine (user_id, run_id, source, stream, reason, payload,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    @damage_named
    def list_quarantine(self, user_id: str, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, run_id, source, stream, reason, payload, created_at FROM quarantine"
        sql += " WHERE user_id = ?" + (" AND run_id = ?" if run_id is not None else "")
        params: tuple[Any, ...] = (user_id,) if run_id is None else (user_id, run_id)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        keys = ("id", "run_id", "source", "stream", "reason", "payload", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _stored_state(user_id: str, source: str, state: object) -> SyncState:
    """A status row's state; one crm-tui does not know (a newer version's, or a team
    member's own hand-written row) reads as idle, so that one row never stops a load (the
    team worker loads every person's)."""
    try:
        return SyncState(state)
    except ValueError:
        logger.warning("%s's %s status: an unknown state, read as idle", user_id, source)
        return SyncState.IDLE
