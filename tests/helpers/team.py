"""A team on the scratch PostgreSQL server, for the security tests: login roles in their
positions, a database seeded with every user's rows, and plain connections as each role."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from crm_tui.database_url import DatabaseUrl
from crm_tui.models import Deal, SourceStatus, SyncState, utc_now
from crm_tui.store.pg_schema import USER_TABLES
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.team.scratch_server import ScratchServer
from tests.helpers.backends import new_database
from tests.helpers.records import cached_contact

#: role -> (position, user_id, team): two agents and a lead of team t1, an agent of team
#: t2, and a sync worker serving t1.
MEMBERS: dict[str, tuple[str, str | None, str]] = {
    "alice": ("agent", "alice", "t1"),
    "bob": ("agent", "bob", "t1"),
    "carol": ("lead", "carol", "t1"),
    "dave": ("agent", "dave", "t2"),
    "w": ("worker", None, "t1"),
}
PASSWORDS = {role: f"pw-{role}-4d1e" for role in MEMBERS}
#: The users who own rows: every member but the worker.
USERS = ("alice", "bob", "carol", "dave")
TEAM_T1 = frozenset({"alice", "bob", "carol"})
SEEDED = "crm_team_seeded"
_numbers = itertools.count(1_000_000)


def create_roles(server: ScratchServer) -> None:
    """The login roles, once per server (roles are the server's, not a database's)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        for role, (position, _, _) in MEMBERS.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(PASSWORDS[role])
                )
            )
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(f"crm_{position}"), sql.Identifier(role)
                )
            )


def seeded_database(server: ScratchServer, data_dir: Path) -> str:
    """A migrated database with the team in `crm_members` and rows of every user in every
    user table, left with no connection so that tests can copy it."""
    name = new_database(server)
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} RENAME TO {SEEDED}")
    url = server.url(dbname=SEEDED)
    with psycopg.connect(url, autocommit=True) as conn:
        for role, (position, user_id, team) in MEMBERS.items():
            conn.execute(
                "INSERT INTO crm_members (role_name, position, user_id, team)"
                " VALUES (%s, %s, %s, %s)",
                (role, position, user_id, team),
            )
    db = PostgresDatabase(DatabaseUrl(url), data_dir)
    try:
        for user in USERS:
            _seed_user(db, user)
    finally:
        db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in USER_TABLES:
            for user in USERS:
                _fill(conn, table, user)
    return SEEDED


def _seed_user(db: PostgresDatabase, user: str) -> None:
    """Rows as the app writes them, through the store's own API."""
    now = utc_now()
    db.replace_stream(
        user,
        "brivity",
        "contacts",
        [cached_contact("brivity", n, user, first_name=f"{user}{n}") for n in (1, 2)],
    )
    db.replace_stream(
        user,
        "brivity",
        "deals",
        [
            Deal(
                id="brivity:1",
                source="brivity",
                remote_id="1",
                user_id=user,
                name=f"{user}'s house",
                amount=Decimal("100"),
            )
        ],
    )
    db.save_status(user, SourceStatus("brivity", SyncState.IDLE, last_sync=now))
    run = db.start_run(user, "brivity", now)  # closed as interrupted by db.close()
    db.add_quarantine(user, run, "brivity", "contacts", [("no id", {"x": 1})], now)
    db.add_local_records(user, "contacts", [{"first_name": f"local {user}"}], now)
    db.add_edit(
        user,
        "brivity",
        "contacts",
        "update",
        "brivity:1",
        "1",
        {"first_name": f"{user}1"},
        {"first_name": f"{user} edited"},
        author=user,
    )
    db.reject(user, "cluster-1", ["brivity:1", "brivity:2"])


def _fill(conn: psycopg.Connection[Any], table: str, user: str) -> None:
    """One row of `user` in `table` if the API left none: every required column filled
    by its type, so that a user table added later is seeded too."""
    if conn.execute(
        sql.SQL("SELECT 1 FROM {} WHERE user_id = %s").format(sql.Identifier(table)), (user,)
    ).fetchone():
        return
    columns = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attnotnull AND NOT atthasdef AND attidentity = ''",
        (table,),
    ).fetchall()
    values: dict[str, Any] = {}
    for column, kind in columns:
        if column == "user_id":
            values[column] = user
        elif column == "kind":  # the tables that name a record kind check it
            values[column] = "contacts"
        elif kind in ("bigint", "integer"):
            values[column] = next(_numbers)
        elif kind == "double precision":
            values[column] = 0.0
        else:
            values[column] = f"{user}-{column}-{next(_numbers)}"
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
        ),
        list(values.values()),
    )


def copy_database(server: ScratchServer, template: str, name: str) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def role_url(server: ScratchServer, dbname: str, role: str) -> str:
    return server.url(role, PASSWORDS[role], dbname)


@contextmanager
def connected(
    server: ScratchServer, dbname: str, role: str = ""
) -> Iterator[psycopg.Connection[Any]]:
    """A plain autocommit connection: as `role` (over TCP, with its password), or as the
    superuser."""
    url = role_url(server, dbname, role) if role else server.url(dbname=dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def rows_by_user(
    conn: psycopg.Connection[Any], table: str, keys: bool = True
) -> dict[str, list[str]]:
    """Every row of `table` (as JSON text, in a fixed order) by user, as `conn` sees them;
    without `keys`, leaving out the keys the database draws (a row written back gets new
    ones)."""
    out: dict[str, list[str]] = {}
    drawn = [
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND attidentity <> ''",
            (table,),
        )
    ]
    row = sql.SQL("to_jsonb(t)")
    for name in [] if keys else drawn:
        row = sql.SQL("({} - {})").format(row, sql.Literal(name))
    query = sql.SQL("SELECT user_id, {}::text FROM {} t").format(row, sql.Identifier(table))
    for user, row in conn.execute(query).fetchall():
        out.setdefault(user, []).append(row)
    return {user: sorted(rows) for user, rows in out.items()}


def one_row(conn: psycopg.Connection[Any], table: str, user: str) -> dict[str, Any]:
    found = conn.execute(
        sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE user_id = %s LIMIT 1").format(
            sql.Identifier(table)
        ),
        (user,),
    ).fetchone()
    assert found is not None, f"no row of {user} in {table}"
    return dict(found[0])


def insert_row(conn: psycopg.Connection[Any], table: str, row: dict[str, Any]) -> int:
    """`row` (as `one_row` returned it) inserted as it is but for the keys the database
    draws (members may not choose them)."""
    columns = [
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped AND attidentity = ''",
            (table,),
        )
    ]
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM jsonb_populate_record(NULL::{}, %s::jsonb)"
        ).format(sql.Identifier(table), names, names, sql.Identifier(table)),
        (json.dumps(row),),
    ).rowcount
