"""`crm-tui db copy --to URL`: one person's store moved into a team database.

The local CRM goes first, in a transaction of its own (records, links, id sequence, merges,
duplicate decisions, the outbox): it is the part no sync can bring back. Then the cache in
a second one: each stream's visible rows (synced and imported) under generations of the
target's, statuses, bookmarks, rate budgets, the sync audit with its quarantine, the webhook
inbox. Either transaction lands whole or not at all; the source is only read, in one
snapshot. A target already holding the person's data is refused unless `replace`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql

from crm_tui.models import KINDS
from crm_tui.store.db import Database
from crm_tui.store.pg_connection import PgConnection, errors_named
from crm_tui.store.pg_schema import USER_TABLES
from crm_tui.store.postgres import DRAW_GENERATION, PostgresDatabase

LOCAL_TABLES = (
    "local_records", "local_links", "local_sequence", "merges", "dedup_rejections", "outbox",
)  # fmt: skip
CACHE_TABLES = ("source_status", "bookmarks", "rate_budgets", "webhook_inbox")


class TargetNotEmpty(ValueError):
    pass


def copy_user(
    source: Database, target: PostgresDatabase, user_id: str, replace: bool = False
) -> dict[str, int]:
    """Copy `user_id`'s rows; how many of each table's (streams' records by kind)."""
    copied: dict[str, int] = {}
    with source.reading() as src, target.transaction() as conn:
        if _holds(conn, user_id):
            if not replace:
                raise TargetNotEmpty(
                    f"the team database already holds {user_id}'s data: --replace to"
                    " overwrite it with this copy"
                )
            for table in USER_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))  # noqa: S608
        for table in LOCAL_TABLES:
            copied[table] = _copy_table(src, conn, table, user_id)
    with source.reading() as src, target.transaction() as conn:
        for kind in KINDS:
            copied[kind] = _copy_streams(src, conn, kind, user_id)
            target.log_changes(conn, user_id, kind, None)  # open apps read everything again
        for table in CACHE_TABLES:
            copied[table] = _copy_table(src, conn, table, user_id)
        copied["sync_runs"], copied["quarantine"] = _copy_audit(src, conn, user_id)
    return copied


def _holds(dst: PgConnection, user_id: str) -> bool:
    return any(
        dst.execute(
            f"SELECT 1 FROM {table} WHERE user_id = ? LIMIT 1",  # noqa: S608
            (user_id,),
        ).fetchone()
        for table in ("contacts", "deals", "local_records", "stream_generations")
    )


def _columns(dst: PgConnection, table: str) -> list[str]:
    """The table's columns but those the target numbers itself (ids, row order): nothing
    copied refers to them, but for the audit's run ids, mapped in `_copy_audit`."""
    rows = dst.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        " AND table_schema = current_schema() AND is_identity = 'NO'"
        " ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [name for (name,) in rows]


def _select(
    src: Any, table: str, columns: Sequence[str], where: str, params: tuple[Any, ...]
) -> Iterable[Sequence[Any]]:
    cursor = src.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {where}",  # noqa: S608
        params,
    )
    while rows := cursor.fetchmany(2_000):
        yield from rows


def _copy_rows(
    dst: PgConnection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Rows into `table` by COPY (a million rows in seconds, not minutes)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with errors_named(dst.url), dst.raw.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _copy_table(src: Any, dst: PgConnection, table: str, user_id: str) -> int:
    columns = _columns(dst, table)
    rows = _select(src, table, columns, "user_id = ? ORDER BY rowid", (user_id,))
    return _copy_rows(dst, table, columns, rows)


def _copy_streams(src: Any, dst: PgConnection, kind: str, user_id: str) -> int:
    """Each stream's current generation and its imports, under new generations of the
    target's (numbers are the database's own); rows of generation 0 (written before
    generations) keep it."""
    columns = [c for c in _columns(dst, kind) if c != "generation"]
    current = src.execute(
        "SELECT source, generation FROM stream_generations WHERE user_id = ? AND kind = ?",
        (user_id, kind),
    ).fetchall()
    imports = src.execute(
        "SELECT source, generation, file, imported_at, records FROM imports"
        " WHERE user_id = ? AND kind = ? ORDER BY generation",
        (user_id, kind),
    ).fetchall()
    mapped = {0: 0}
    for _, generation, *_rest in (*current, *imports):
        mapped[generation] = dst.execute(DRAW_GENERATION).fetchone()[0]
    count = 0
    for generation, new in mapped.items():
        rows = _select(
            src,
            kind,
            columns,
            "user_id = ? AND generation = ? ORDER BY rowid",
            (user_id, generation),
        )
        count += _copy_rows(dst, kind, [*columns, "generation"], ((*r, new) for r in rows))
    for name, generation in current:
        dst.execute(
            "INSERT INTO stream_generations (user_id, kind, source, generation)"
            " VALUES (?, ?, ?, ?)",
            (user_id, kind, name, mapped[generation]),
        )
    for name, generation, file, imported_at, records in imports:
        dst.execute(
            "INSERT INTO imports (generation, user_id, kind, source, file, imported_at, records)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mapped[generation], user_id, kind, name, file, imported_at, records),
        )
    return count


def _copy_audit(src: Any, dst: PgConnection, user_id: str) -> tuple[int, int]:
    """Runs in order, each under a new id (a child's parent mapped); the quarantine's rows
    under their runs' new ids."""
    columns = _columns(dst, "sync_runs")
    runs: dict[int, int] = {}
    for old, *values in _select(
        src, "sync_runs", ["id", *columns], "user_id = ? ORDER BY id", (user_id,)
    ):
        row = dict(zip(columns, values, strict=True))
        row["parent_id"] = runs.get(row["parent_id"]) if row["parent_id"] is not None else None
        marks = ", ".join("?" for _ in columns)
        runs[old] = dst.execute(
            f"INSERT INTO sync_runs ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            tuple(row.values()),
        ).lastrowid
    q_columns = _columns(dst, "quarantine")
    at = q_columns.index("run_id")
    rows = (
        (*r[:at], runs.get(r[at]) if r[at] is not None else None, *r[at + 1 :])
        for r in _select(src, "quarantine", q_columns, "user_id = ? ORDER BY id", (user_id,))
    )
    return len(runs), _copy_rows(dst, "quarantine", q_columns, rows)
