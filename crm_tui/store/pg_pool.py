"""The team store's connections: a pool, each connection lent to one thread at a time.

On SQLite the store's lock serialises a process's statements on its one connection. Here
`with db._lock:` instead lends the calling thread a connection of the pool for as long as
its outermost `with` lasts (re-entrant, as the lock is): a read transaction or a write
transaction stays on one connection, and threads no longer wait on each other. An app's
reader is not held up by its own writer's commit, nor the team worker's people by each
other's reads; writers still go one at a time, on the server's advisory lock (as processes
on other hosts do).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from crm_tui.database_url import DatabaseUrl
from crm_tui.store.errors import DatabaseUnavailable
from crm_tui.store.pg_connection import PgConnection, errors_named

#: Connections one process may hold at once: a writer's and a reader's, so that reads never
#: wait for a commit (writes wait for each other on the server anyway). A third thread
#: waits for one to come back, never for an error; and a team of apps stays within a stock
#: server's `max_connections` (a sync worker needs no more: the same at 1, 2 or 4, measured).
MAX_CONNECTIONS = 2
#: A connection beyond the first is closed after this long unused: twenty idle apps hold
#: twenty connections, not forty.
IDLE_SECONDS = 30.0
#: How long a thread waits for a free connection, or the first connection, before the
#: store says the database cannot be reached.
WAIT_SECONDS = 30.0

# The pool says why it could not connect at WARNING, once per try, in the background: the
# error reaches the user once, from the call that needed the connection (errors_named).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
_NO_CONNECTION = f"no connection within {WAIT_SECONDS:g} s"


class _Session(psycopg.Connection[Any]):
    """A pooled connection that takes its backend's pid out of `pids` when it closes: the
    server may give the number to another client's session, whose commits must count."""

    pids: set[int] | None = None
    pid = 0
    durable = False  # synchronous_commit set on, for a store that asked for it

    def forget(self) -> None:
        if self.pids is not None:
            self.pids.discard(self.pid)

    def close(self) -> None:
        self.forget()
        super().close()


class _Pool(ConnectionPool[_Session]):
    @staticmethod
    def check_connection(conn: _Session) -> None:
        """A dead connection found by `check` is dropped without being closed: it forgets
        its pid here."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            conn.forget()
            raise


class LentConnections:
    """`with lent:` binds the calling thread to a pooled connection (the same one for
    nested `with`s); `lent.current` is that thread's connection, or None outside."""

    def __init__(self, url: DatabaseUrl, application: str = "crm-tui") -> None:
        self.url = url
        self.durable = False
        self.pids: set[int] = set()  # this process's open sessions: their NOTIFYs are its own
        self._bound = threading.local()
        self._pool = _Pool(
            url.conninfo(application),
            connection_class=_Session,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=MAX_CONNECTIONS,
            max_idle=IDLE_SECONDS,
            timeout=WAIT_SECONDS,
            num_workers=1,
            configure=self._configure,
            open=False,
            name="crm-tui",
        )
        self._open(application)

    def _open(self, application: str) -> None:
        """The first connection made now: a wrong password or an unreachable server is
        named here, with the server's reason, not as a pool's timeout later."""
        first = PgConnection(self.url, application)  # raises the named error
        first.close()
        try:
            self._pool.open(wait=True, timeout=WAIT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise self._unavailable(_NO_CONNECTION) from None

    def _configure(self, conn: _Session) -> None:
        conn.pid, conn.pids = int(conn.info.backend_pid), self.pids
        self.pids.add(conn.pid)

    def _unavailable(self, why: str) -> DatabaseUnavailable:
        return DatabaseUnavailable("Cannot reach the team database", f"{self.url.display}: {why}")

    @property
    def current(self) -> PgConnection | None:
        return getattr(self._bound, "conn", None)

    def __enter__(self) -> PgConnection:
        bound = self._bound
        if getattr(bound, "depth", 0):
            bound.depth += 1
            return bound.conn
        try:
            raw: _Session = self._pool.getconn()
        except PoolTimeout:
            raise self._unavailable(_NO_CONNECTION) from None
        except PoolClosed:  # a reader still running as the app exits
            raise self._unavailable("this store is closed") from None
        conn = PgConnection(self.url, raw=raw)
        try:
            if self.durable and not raw.durable:
                conn.execute("SET synchronous_commit = on")
                raw.durable = True
        except BaseException:
            self._pool.putconn(raw)
            raise
        bound.conn, bound.depth = conn, 1
        return conn

    def __exit__(self, *exc: object) -> None:
        bound = self._bound
        bound.depth -= 1
        if bound.depth:
            return
        conn, bound.conn = bound.conn, None
        raw = conn.raw
        broken = raw.closed
        if broken:  # the pool drops it without closing it
            raw.forget()
        # A transaction is always ended inside the `with` that began it; the pool rolls
        # back one that was not (a thread killed mid-way).
        with errors_named(self.url):
            self._pool.putconn(raw)
            if broken:  # a restart or a lost network killed the idle ones too: one call
                self._pool.check()  # fails, not one per connection the pool holds

    def close(self) -> None:
        self._pool.close()
