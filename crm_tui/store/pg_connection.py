"""A PostgreSQL connection that takes the store's SQL as written for SQLite.

The store's statements are portable SQL but for a few spellings, translated here once per
statement: `?` and `?N` placeholders, `printf` (PostgreSQL's `format`), SQLite's unary `+`
that keeps a column off an index, `CAST(... AS BLOB)`, `IS [NOT]` between two values, and
`lastrowid` (a `RETURNING` of the table's key). What cannot be translated (PRAGMAs,
locking) is the database class's (store/postgres.py).

psycopg's errors leave as the store's own (crm_tui.store.errors), with the connection's
password masked: callers catch StoreError on both back ends.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from crm_tui.database_url import DatabaseUrl
from crm_tui.store.errors import DatabaseRefused, DatabaseUnavailable, StoreError

# Tables whose key PostgreSQL generates: an INSERT into one returns it, as `lastrowid`.
_GENERATED_KEYS = {
    "sync_runs": "id", "quarantine": "id", "generations": "id", "merges": "id",
    "changes": "seq", "webhook_inbox": "id", "outbox": "id",
}  # fmt: skip
_PLACEHOLDER = re.compile(r"\?(\d*)")
_UNARY_PLUS = re.compile(r"(?<=[\s(])\+(?=[a-z_])")
_BLOB = re.compile(r"CAST\((.*) AS BLOB\)", re.DOTALL)
# SQLite's `a IS b` and `a IS NOT b` compare any two values, NULL included.
_IS_NOT = re.compile(r"\bIS NOT (?!NULL\b)")
_IS = re.compile(r"\bIS (?!NOT\b|NULL\b|DISTINCT\b)")
_INSERT_INTO = re.compile(r"^\s*INSERT INTO (\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None, str | None]:
    """SQLite's statement as PostgreSQL's; the order to pass its parameters in (None: as
    given); the key column an INSERT returns (None: no RETURNING added)."""
    sql = sql.replace("%", "%%")
    sql = sql.replace("printf(", "format(")
    sql = _UNARY_PLUS.sub("", sql)
    sql = _BLOB.sub(r"convert_to(\1, 'UTF8')", sql)
    sql = _IS_NOT.sub("IS DISTINCT FROM ", sql)
    sql = _IS.sub("IS NOT DISTINCT FROM ", sql)
    order: list[int] = []
    numbered = False

    def placeholder(match: re.Match[str]) -> str:
        nonlocal numbered
        if match.group(1):
            numbered = True
            order.append(int(match.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    sql = _PLACEHOLDER.sub(placeholder, sql)
    returning = None
    insert = _INSERT_INTO.match(sql)
    if insert and "RETURNING" not in sql.upper():
        returning = _GENERATED_KEYS.get(insert.group(1))
        if returning is not None:
            sql += f" RETURNING {returning}"
    return sql, (tuple(order) if numbered else None), returning


def _ordered(params: Sequence[Any], order: tuple[int, ...] | None) -> Sequence[Any]:
    return params if order is None else [params[i] for i in order]


class PgCursor:
    """The part of sqlite3.Cursor the store uses."""

    def __init__(self, cursor: psycopg.Cursor[Any], returning: str | None) -> None:
        self._cursor = cursor
        self.lastrowid: int | None = None
        if returning is not None and cursor.description is not None:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def fetchmany(self, size: int) -> list[Any]:
        return self._cursor.fetchmany(size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PgConnection:
    """The part of sqlite3.Connection the store uses, over one psycopg connection in
    autocommit mode: the store's own BEGIN and COMMIT delimit its transactions.

    Results come in binary (the records' joined lines as bytes, not hex text). A connection
    the server or the network dropped fails the statement it was running (a transaction is
    lost whole); one of its own (not lent by the store's pool, which replaces its own) is
    made again for the next statement: a command outlives a database restart."""

    def __init__(
        self,
        url: DatabaseUrl,
        application: str = "crm-tui",
        raw: psycopg.Connection[Any] | None = None,
    ) -> None:
        self.url = url
        self._application = application
        self._own = raw is None
        self._raw = raw if raw is not None else self._connect()
        self.write_locked = False  # whether this transaction holds the writer lock

    def _connect(self) -> psycopg.Connection[Any]:
        with errors_named(self.url):
            return psycopg.connect(self.url.conninfo(self._application), autocommit=True)

    @property
    def raw(self) -> psycopg.Connection[Any]:
        if self._raw.broken and self._own:
            self._raw = self._connect()
        return self._raw

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def backend_pid(self) -> int:
        return int(self.raw.info.backend_pid)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        text, order, returning = translate(sql)
        with errors_named(self.url):
            cursor = self.raw.cursor(binary=True)
            # Always parameters, if none: psycopg reads `%%` as `%` only in a query with some.
            cursor.execute(text, _ordered(params, order))
            return PgCursor(cursor, returning)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        text, order, _ = translate(sql)
        with errors_named(self.url):
            cursor = self.raw.cursor()
            cursor.executemany(text, (_ordered(r, order) for r in rows))
            return PgCursor(cursor, None)

    def script(self, sql: str) -> None:
        """Several statements at once, no parameters (a migration step)."""
        with errors_named(self.url):
            self.raw.execute(sql.encode())

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
        """A large result in batches through a server-side cursor (inside a transaction):
        the whole result never sits in this process, and other statements may run between
        batches."""
        text, order, _ = translate(sql)
        with errors_named(self.url):
            name = f"crm_rows_{id(self)}_{next(_cursor_numbers)}"
            cursor = self.raw.cursor(name=name, binary=True)
            try:
                cursor.execute(text, _ordered(params, order))
                while rows := cursor.fetchmany(size):
                    yield rows
            finally:
                if not self.raw.closed and self.in_transaction:
                    cursor.close()

    def close(self) -> None:
        self._raw.close()


_cursor_numbers = iter(range(1, 1 << 62))


@functools.cache
def _refusals() -> tuple[type[Exception], ...]:
    return (pg_errors.InsufficientPrivilege, pg_errors.InvalidAuthorizationSpecification)


# A connection the server turns away raises a bare OperationalError (no SQLSTATE reaches the
# client before the session exists): these messages of the server's tell a refusal (the
# login, its password, pg_hba.conf) from a server that cannot be reached.
_REFUSED_LOGIN = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects"
    r"|role \"[^\"]*\" does not exist|not permitted to log in"
    r"|permission denied for database|password is required|no password supplied"
    r"|database \"[^\"]*\" does not exist",
    re.IGNORECASE,
)


def _why(said: str) -> str:
    """What a member's refusal means, beside the server's words (which name a table)."""
    if "row-level security" in said:
        return (
            " (this role may write only the rows of the users it serves: an agent its own,"
            " a lead its own, a worker its team's; CRM_USER_ID names whose rows these are)"
        )
    if "permission denied for table crm_members" in said:
        return " (the team's members are the database owner's to list and change)"
    return ""


@contextlib.contextmanager
def errors_named(url: DatabaseUrl) -> Iterator[None]:
    """psycopg's errors as the store's, naming the database (password masked)."""
    try:
        yield
    except psycopg.Error as exc:
        raise _named(exc, url) from None


def _named(exc: psycopg.Error, url: DatabaseUrl) -> StoreError:
    said = url.masked(str(exc).strip()) or type(exc).__name__
    where = url.display
    if isinstance(exc, _refusals()) or (
        type(exc) is psycopg.OperationalError and _REFUSED_LOGIN.search(str(exc))
    ):
        return DatabaseRefused("The team database refused", f"{where}: {said}{_why(said)}")
    if isinstance(exc, pg_errors.LockNotAvailable):
        return DatabaseUnavailable(
            "The team database is busy",
            f"{where}: another session held a lock for longer than lock_timeout: {said}",
        )
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, pg_errors.QueryCanceled):
        return DatabaseUnavailable("Cannot reach the team database", f"{where}: {said}")
    return StoreError("The team database failed", f"{where}: {said}")
