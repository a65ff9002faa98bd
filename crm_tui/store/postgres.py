"""The team store: the same Database on PostgreSQL.

Every query, lease, generation and change-log row is the SQLite store's own (the mixins in
this package); what differs is here: connecting, the schema steps and their version, how a
write transaction is serialised, how a read sees one commit, and how another process's
commit is noticed.

- Writes: one at a time, as on SQLite, by a transaction-scoped advisory lock taken first in
  every write transaction, on every host; reads never wait for it.
- Reads that must see one commit run in a REPEATABLE READ transaction.
- Another connection's commit arrives as a NOTIFY (database triggers send one per
  transaction that touched records, statuses, runs, leases, decisions or edits); a
  listener on the app's event loop (or on a thread, for a caller with none) counts them,
  and `data_version` returns the count: the app's watch reads the change log only after
  one.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from crm_tui.database_url import DatabaseUrl
from crm_tui.files import secure_dir
from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS, RecordKind
from crm_tui.store.db import Database
from crm_tui.store.errors import DatabaseRefused, SchemaMismatch, StoreError
from crm_tui.store.pg_connection import PgConnection
from crm_tui.store.pg_pool import LentConnections
from crm_tui.store.pg_schema import MIGRATIONS

# Advisory lock keys (any two 64-bit numbers no other program on the database uses).
WRITER_LOCK = 0x43524D5457524954  # one writer at a time, as SQLite has
MIGRATION_LOCK = 0x43524D544D494752  # one process migrating
CHANNEL = "crm_changes"
DRAW_GENERATION = "SELECT nextval(pg_get_serial_sequence('public.generations', 'id'))"
_FIELDS: dict[RecordKind, tuple[str, ...]] = {"contacts": CONTACT_FIELDS, "deals": DEAL_FIELDS}


def local_dir_for(url: DatabaseUrl, data_dir: Path) -> Path:
    """Where this machine keeps what it derives from a team database (search artifacts):
    one folder per server and database, never beside a SQLite cache's own."""
    digest = hashlib.sha256(url.display.encode()).hexdigest()[:16]
    return data_dir / "team" / digest


def applied_version(conn: PgConnection) -> int:
    """The last schema step applied (0: none yet), read without changing anything."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return 0
    return int(
        conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    )


def role_writes(conn: PgConnection) -> frozenset[str] | None:
    """The user ids the login role may write (its own; a worker's, its team's); None for a
    role the policies do not bind (the tables' owner or one it inherits, a superuser)."""
    unbound = conn.execute(
        "SELECT r.rolsuper OR r.rolbypassrls OR pg_has_role(r.oid, c.relowner, 'USAGE')"
        " FROM pg_roles r, pg_class c"
        " WHERE r.rolname = current_user AND c.oid = 'public.contacts'::regclass"
    ).fetchone()
    if unbound and unbound[0]:
        return None
    return frozenset(conn.execute("SELECT crm_users(true)").fetchone()[0] or ())


class PostgresDatabase(Database):
    backend = "postgresql"

    def __init__(self, url: DatabaseUrl, data_dir: Path) -> None:
        self.url = url
        # Never opened as a file: artifacts are kept beside it (store/artifacts.py).
        self.path = local_dir_for(url, data_dir) / "crm.pg"
        self._init_leases()
        # The store's lock, here: the calling thread's connection from a pool (pg_pool.py).
        self._lock = LentConnections(url)  # type: ignore[assignment]
        try:
            secure_dir(self.path.parent)  # once connected: a refused login leaves no folder
        except BaseException:
            self._lock.close()  # type: ignore[attr-defined]
            raise
        self._writer = None
        self.read_only = False
        self.read_only_reason = ""
        self._notices: _Notices | None = None
        self._outside: PgConnection | None = None
        self.migrate()
        with self._lock:  # the login's user, as libpq holds it: no round trip
            self.owner = self.owner.of_role(str(self._conn.raw.info.user))
        self.interrupt_abandoned_runs()

    @property
    def _conn(self) -> PgConnection:  # type: ignore[override]
        """The connection lent to this thread: the store's code uses it inside `with
        self._lock`, as it uses SQLite's one connection. Outside (a test, a diagnosis), a
        connection of its own, made when first asked for."""
        conn = self._lock.current  # type: ignore[attr-defined]
        if conn is not None:
            return conn
        if self._outside is None:
            self._outside = PgConnection(self.url, "crm-tui")
        return self._outside

    @property
    def location(self) -> str:
        return self.url.display

    def writable_users(self) -> frozenset[str] | None:
        with self._lock:
            return role_writes(self._conn)

    def durable(self) -> None:
        self._lock.durable = True  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._notices is not None:
            self._notices.stop()
        self._finish_writes()
        try:
            self._release_everything()  # fails when the server is gone: the pool closes still
        finally:
            self._lock.close()  # type: ignore[attr-defined]
            if self._outside is not None:
                self._outside.close()

    # -- schema --------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        with self._lock:
            return applied_version(self._conn)

    def migrate(self) -> None:
        with self._lock:
            try:
                version = self.schema_version
            except DatabaseRefused:  # members may read it: this role is none
                role = self.url.user or "this role"
                raise DatabaseRefused(
                    "The team database refused",
                    f"{self.location}: {role} is not a member of this team database; its"
                    f" owner adds it with `crm-tui db member add {role} --position ...`",
                ) from None
            if version > len(MIGRATIONS):
                raise SchemaMismatch(
                    "The team database is newer than this crm-tui",
                    f"{self.location} has schema {version} and this crm-tui knows up to"
                    f" {len(MIGRATIONS)}: upgrade crm-tui",
                )
            while version < len(MIGRATIONS):
                try:
                    version = self._step()
                except DatabaseRefused:
                    raise SchemaMismatch(
                        "The team database needs an upgrade",
                        f"{self.location} has schema {version} and this crm-tui needs"
                        f" {len(MIGRATIONS)}; its owner upgrades it with `crm-tui db migrate`",
                    ) from None

    def _step(self) -> int:
        """One schema step under the migration lock, the version read again inside it:
        another host may have migrated while this one waited."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            conn.script(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            version = int(row.fetchone()[0])
            if version < len(MIGRATIONS):
                conn.script(MIGRATIONS[version])
                version += 1
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return version

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction; inside another (or inside a read) it joins it, taking
        the writer lock if that one had not."""
        with self._lock:
            conn = self._conn
            if conn.in_transaction:
                if not conn.write_locked:
                    conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))
                    conn.write_locked = True
                yield conn
                return
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))
                conn.write_locked = True
                yield conn
            except BaseException:
                self._end("ROLLBACK")
                raise
            self._end("COMMIT")

    def _end(self, how: str) -> None:
        conn = self._conn
        conn.write_locked = False
        if conn.in_transaction and not conn.raw.closed:
            conn.execute(how)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield
        except BaseException:
            self._end("ROLLBACK")
            raise
        self._end("COMMIT")

    @staticmethod
    def _replacing_sql(kind: RecordKind, rows: str) -> str:
        """SQLite's INSERT OR REPLACE moves a replaced row to the end of the table (a new
        rowid), and a stream's row order is the order it was written in: the same here."""
        columns = (*_FIELDS[kind], "generation")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        return (
            f"INSERT INTO {kind} ({', '.join(columns)}) {rows}"
            f" ON CONFLICT (user_id, source, generation, id) DO UPDATE SET {updates},"
            " rowid = DEFAULT"
        )

    @staticmethod
    def _differing(
        conn: Any, user_id: str, source: str, kind: RecordKind, old: int, new: int
    ) -> list[str] | None:
        # A generation just written has no statistics yet: the planner guesses one row and
        # picks a nested loop that reads the whole generation once per row (5 s at 5,000
        # rows, growing with the square). Hash joins, whatever it guesses.
        conn.execute("SET LOCAL enable_nestloop = off")
        try:
            return Database._differing(conn, user_id, source, kind, old, new)
        finally:
            conn.execute("SET LOCAL enable_nestloop = on")

    @staticmethod
    def _draw_generation(conn: Any) -> int:  # type: ignore[override]
        """The sequence's next number, and no row: a row every member may delete is one a
        member's open delete could lock, and each new generation would wait for it."""
        return int(conn.execute(DRAW_GENERATION).fetchone()[0])

    def _newest(self) -> int:
        # Not the sequence's position: PostgreSQL hands numbers out to transactions not yet
        # committed, which a reader must not skip past. Writers commit one at a time, in
        # the order they took their numbers, so the newest committed row is the newest.
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])

    def _trim(self, conn: Any, before: float) -> None:
        # Row-level security lets a role trim only its users' rows: each user's trim is
        # kept, for `_gap`.
        conn.execute(
            "WITH gone AS (DELETE FROM changes WHERE at < ? RETURNING user_id, seq)"
            " INSERT INTO change_trims (user_id, through)"
            " SELECT user_id, max(seq) FROM gone GROUP BY user_id"
            " ON CONFLICT (user_id) DO UPDATE"
            " SET through = GREATEST(change_trims.through, excluded.through)",
            (before,),
        )

    def _gap(self, user_id: str, seq: int, newest: int) -> int | None:
        # Whether this user's rows after `seq` were trimmed, from the user's own record:
        # the newest row this role sees drops when they go, and others' rows interleave.
        row = self._conn.execute(
            "SELECT through FROM change_trims WHERE user_id = ?", (user_id,)
        ).fetchone()
        if row is None or row[0] <= seq:
            return None
        return max(int(row[0]), newest)

    def _batches(self, sql: str, params: tuple[Any, ...]) -> Iterator[list[Any]]:
        # Always called inside a read transaction: a server-side cursor is allowed there.
        return self._conn.stream(sql, params, 2_000)

    def data_version(self) -> int:
        """How many times another connection committed, as told by NOTIFY (listening
        from the first call on, on a thread of its own, unless `follow_commits` listens on
        an event loop)."""
        if self._notices is None:
            self._notices = self._listener()
            self._notices.on_a_thread()
        self._notices.ready.wait(10)
        return self._notices.count

    def follow_commits(self) -> Coroutine[Any, Any, None]:
        """What an app runs on its event loop: the notices heard there (psycopg's async
        connection), counted for `data_version`, with no thread of their own. Its watch
        still looks at its own pace: a notice comes for every commit of the whole team
        (none carries a payload), and one look per notice made twenty apps' searches three
        times slower while the worker wrote (team_bench)."""
        self._notices = self._listener()
        return self._notices.listen()

    def _listener(self) -> _Notices:
        return _Notices(self.url, self._lock.pids)  # type: ignore[attr-defined]


class _Notices:
    """A connection of its own that listens for commits of other connections. A lost
    connection counts as a notice (commits may have gone unheard) and is made again a
    second later. It listens on the caller's event loop, or on a thread with a loop of its
    own (`on_a_thread`) for a caller with none."""

    def __init__(self, url: DatabaseUrl, own_pids: set[int]) -> None:
        self.count = 0
        self.ready = threading.Event()  # listening, or failed to: a commit from now counts
        self._url = url
        self._own_pids = own_pids
        self._stopping = threading.Event()

    async def listen(self) -> None:
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url.conninfo("crm-tui notices"), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    while not self._stopping.is_set():
                        async for notice in conn.notifies(timeout=0.5):
                            if notice.pid not in self._own_pids:
                                self.count += 1
            except (psycopg.Error, StoreError):
                self.ready.set()
                self.count += 1
                await asyncio.sleep(1.0)

    def on_a_thread(self) -> None:
        threading.Thread(
            target=asyncio.run, args=(self.listen(),), name="crm-db-notices", daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping.set()
