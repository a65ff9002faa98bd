"""Team mode's security: what the database itself lets each member's role read and write
(isolation, by hand-written SQL and through the store), what a killed process leaves
behind, that a password never leaks into an error or a log, and two hosts writing at once.

The team (tests/helpers/team.py): agents alice and bob, lead carol (team t1), agent dave
(team t2), worker w (serves t1); every user has rows in every user table.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from crm_tui.database_url import DatabaseUrl, InvalidDatabaseUrl
from crm_tui.models import Contact, RecordKind, utc_now
from crm_tui.store.errors import DatabaseRefused, DatabaseUnavailable, StoreError, StreamBusy
from crm_tui.store.leases import Holder, Lease
from crm_tui.store.pg_schema import SHARED_TABLES, USER_TABLES
from crm_tui.store.postgres import DRAW_GENERATION, WRITER_LOCK, PostgresDatabase
from crm_tui.team.scratch_server import ScratchServer
from tests.helpers.ports import refusing_port
from tests.helpers.records import cached_contact
from tests.helpers.team import (
    MEMBERS,
    PASSWORDS,
    TEAM_T1,
    USERS,
    connected,
    copy_database,
    create_roles,
    insert_row,
    one_row,
    role_url,
    rows_by_user,
    seeded_database,
)

ROOT = Path(__file__).resolve().parents[1]
CANARY = "canary-Pw-7f3a9"
RLS = "row-level security"
_copies = itertools.count(1)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(pg_server: ScratchServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    create_roles(pg_server)
    return seeded_database(pg_server, tmp_path_factory.mktemp("team-seed"))


@pytest.fixture(scope="module")
def shared_db(pg_server: ScratchServer, seeded: str) -> str:
    """A copy of the seeded database for the tests whose writes must all be refused or
    are undone (one copy each would take most of the module's time)."""
    return copy_database(pg_server, seeded, "team_shared")


@pytest.fixture
def team_db(pg_server: ScratchServer, seeded: str) -> Iterator[str]:
    """This test's own copy of the seeded database."""
    name = copy_database(pg_server, seeded, f"team{next(_copies)}")
    yield name
    with connected(pg_server, "postgres") as su:
        su.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def open_as(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> Iterator[Callable[[str], PostgresDatabase]]:
    """A PostgresDatabase logged in as a member ("" for the superuser), closed after."""
    opened: list[PostgresDatabase] = []

    def open_as(role: str) -> PostgresDatabase:
        url = role_url(pg_server, team_db, role) if role else pg_server.url(dbname=team_db)
        db = PostgresDatabase(DatabaseUrl(url), tmp_path / "data")
        opened.append(db)
        return db

    yield open_as
    for db in opened:
        with contextlib.suppress(StoreError):  # a test may have closed it already
            db.close()


def _ids(db: PostgresDatabase, user: str, kind: RecordKind = "contacts") -> list[str]:
    return sorted(r.id for r in db.load_records(user, kind))


def _names(db: PostgresDatabase, user: str) -> set[str | None]:
    return {r.first_name for r in db.load_records(user, "contacts") if isinstance(r, Contact)}


def _refused_by_rls(conn: psycopg.Connection[Any], statement: Callable[[], object]) -> None:
    with pytest.raises(pg_errors.InsufficientPrivilege, match=RLS):
        statement()
    assert not conn.closed


def _user_ids(conn: psycopg.Connection[Any], table: str) -> set[str]:
    query = sql.SQL("SELECT DISTINCT user_id FROM {}").format(sql.Identifier(table))
    return {row[0] for row in conn.execute(query).fetchall()}


def _count(conn: psycopg.Connection[Any], statement: str, table: str, *params: Any) -> int:
    return conn.execute(sql.SQL(statement).format(sql.Identifier(table)), params or None).rowcount


# -- 1. isolation, by the database ---------------------------------------------------------


def test_every_table_with_a_user_id_is_a_user_table_under_row_level_security(
    pg_server: ScratchServer, shared_db: str
) -> None:
    """A table added later with someone's rows in it but no policies fails here."""
    with connected(pg_server, shared_db) as su:
        with_user_id = {
            row[0]
            for row in su.execute(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND column_name = 'user_id'"
            ).fetchall()
        }
        assert with_user_id - {"crm_members"} == set(USER_TABLES)
        tables = {
            name: secured
            for name, secured in su.execute(
                "SELECT relname, relrowsecurity FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            ).fetchall()
        }
        # crm_members and schema_migrations members may not write at all; webhook_refusals
        # holds no one's data (counts by source, which only grow)
        assert {t for t, on in tables.items() if not on} == {
            "crm_members", "schema_migrations", "webhook_refusals"
        }  # fmt: skip
        commands = {
            (table, cmd)
            for table, cmd in su.execute(
                "SELECT tablename, cmd FROM pg_policies WHERE schemaname = 'public'"
            ).fetchall()
        }
        for table in USER_TABLES:
            assert {c for t, c in commands if t == table} == {
                "SELECT", "INSERT", "UPDATE", "DELETE"
            }, table  # fmt: skip
        writable = {
            row[0]
            for row in su.execute(
                "SELECT DISTINCT table_name FROM information_schema.role_table_grants"
                " WHERE grantee = 'crm_agent' AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE')"
            ).fetchall()
        }
        # generations: numbers come from its sequence alone (no member writes a row)
        assert writable == set(USER_TABLES) | set(SHARED_TABLES) - {"generations"}


@pytest.mark.parametrize("table", USER_TABLES)
def test_an_agent_reads_and_writes_only_her_own_rows(
    pg_server: ScratchServer, shared_db: str, table: str
) -> None:
    with connected(pg_server, shared_db) as su:
        before = rows_by_user(su, table)
        assert set(before) == set(USERS), f"every user has rows in {table}"
        own = one_row(su, table, "alice")
    with connected(pg_server, shared_db, "alice") as alice:
        assert _user_ids(alice, table) == {"alice"}
        assert rows_by_user(alice, table) == {"alice": before["alice"]}
        for other in ("bob", "dave"):
            assert (
                _count(alice, "UPDATE {} SET user_id = user_id WHERE user_id = %s", table, other)
                == 0
            )
            assert _count(alice, "DELETE FROM {} WHERE user_id = %s", table, other) == 0
        _refused_by_rls(alice, lambda: insert_row(alice, table, {**own, "user_id": "bob"}))
        # her own row, handed to bob
        _refused_by_rls(
            alice,
            lambda: _count(alice, "UPDATE {} SET user_id = 'bob' WHERE user_id = 'alice'", table),
        )
    with connected(pg_server, shared_db) as su:
        assert rows_by_user(su, table) == before


@pytest.mark.parametrize("table", USER_TABLES)
def test_a_lead_reads_the_team_and_writes_none_of_it(
    pg_server: ScratchServer, shared_db: str, table: str
) -> None:
    with connected(pg_server, shared_db) as su:
        before = rows_by_user(su, table)
        alices = one_row(su, table, "alice")
    with connected(pg_server, shared_db, "carol") as carol:
        assert _user_ids(carol, table) == TEAM_T1
        assert rows_by_user(carol, table) == {u: before[u] for u in TEAM_T1}
        assert _count(carol, "UPDATE {} SET user_id = user_id WHERE user_id <> 'carol'", table) == 0
        assert _count(carol, "DELETE FROM {} WHERE user_id <> 'carol'", table) == 0
        _refused_by_rls(carol, lambda: insert_row(carol, table, {**alices, "user_id": "bob"}))
        # her own rows stay hers to write
        assert _count(
            carol, "UPDATE {} SET user_id = user_id WHERE user_id = 'carol'", table
        ) == len(before["carol"])
    with connected(pg_server, shared_db) as su:
        assert rows_by_user(su, table) == before


@pytest.mark.parametrize("table", USER_TABLES)
def test_a_worker_reads_and_writes_its_team_and_nothing_else(
    pg_server: ScratchServer, shared_db: str, table: str
) -> None:
    with connected(pg_server, shared_db) as su:
        before = rows_by_user(su, table)
        unkeyed = rows_by_user(su, table, keys=False)
        daves = one_row(su, table, "dave")
    with connected(pg_server, shared_db, "w") as w:
        assert _user_ids(w, table) == TEAM_T1
        assert _count(w, "UPDATE {} SET user_id = user_id WHERE user_id = 'dave'", table) == 0
        assert _count(w, "DELETE FROM {} WHERE user_id = 'dave'", table) == 0
        _refused_by_rls(w, lambda: insert_row(w, table, daves))
        for user in TEAM_T1:
            assert _count(
                w, "UPDATE {} SET user_id = user_id WHERE user_id = %s", table, user
            ) == len(before[user])
        if table == "pending_generations":  # only the session that drew one writes it
            _refused_by_rls(w, lambda: insert_row(w, table, {**one_row(w, table, "bob")}))
            return
        # a team member's row deleted and written back (under keys the database draws)
        bobs = one_row(w, table, "bob")
        deleted = w.execute(
            sql.SQL("DELETE FROM {} t WHERE to_jsonb(t) = %s::jsonb").format(sql.Identifier(table)),
            (json.dumps(bobs),),
        ).rowcount
        assert deleted == 1
        assert insert_row(w, table, bobs) == 1
    with connected(pg_server, shared_db) as su:
        assert rows_by_user(su, table, keys=False) == unkeyed


def test_the_members_table_is_out_of_a_members_reach(
    pg_server: ScratchServer, shared_db: str
) -> None:
    with connected(pg_server, shared_db, "alice") as alice:
        for statement in (
            "SELECT * FROM crm_members",
            "UPDATE crm_members SET position = 'worker', user_id = NULL WHERE role_name = 'alice'",
            "INSERT INTO crm_members VALUES ('alice2', 'worker', NULL, 't2')",
            "DELETE FROM crm_members WHERE role_name = 'bob'",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                alice.execute(statement)
        assert alice.execute("SELECT crm_users(false), crm_users(true)").fetchone() == (
            ["alice"],
            ["alice"],
        )
    with connected(pg_server, shared_db) as su:
        members = su.execute(
            "SELECT role_name, position, user_id, team FROM crm_members"
        ).fetchall()
    assert {m[0]: m[1:] for m in members} == MEMBERS


def test_switching_roles_does_not_escape(pg_server: ScratchServer, shared_db: str) -> None:
    with connected(pg_server, shared_db, "alice") as alice:
        for statement in (
            "SET ROLE crm_worker",
            "SET ROLE crm_lead",
            "SET ROLE w",
            "SET ROLE bob",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION bob",
            "SET SESSION AUTHORIZATION w",
            "GRANT crm_worker TO alice",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                alice.execute(statement)
        # her own group role she may take: it changes current_user, not whose rows she sees
        alice.execute("SET ROLE crm_agent")
        assert alice.execute("SELECT current_user, session_user").fetchone() == (
            "crm_agent",
            "alice",
        )
        assert _user_ids(alice, "contacts") == {"alice"}
        assert _count(alice, "DELETE FROM {} WHERE user_id = 'bob'", "contacts") == 0


def test_a_temporary_table_cannot_stand_in_for_the_members_table(
    pg_server: ScratchServer, shared_db: str
) -> None:
    """PostgreSQL looks in the session's temporary schema first unless search_path says
    otherwise: a security-definer function must not read a member's own table."""
    with connected(pg_server, shared_db, "alice") as alice:
        alice.execute(
            "CREATE TEMP TABLE crm_members (role_name text, position text, user_id text, team text)"
        )
        alice.execute(
            "INSERT INTO pg_temp.crm_members VALUES ('alice', 'worker', NULL, 'x'),"
            " ('x1', 'agent', 'bob', 'x'), ('x2', 'agent', 'dave', 'x')"
        )
        assert _user_ids(alice, "contacts") == {"alice"}
        assert alice.execute("SELECT crm_users(true)").fetchone() == (["alice"],)
        _refused_by_rls(
            alice, lambda: insert_row(alice, "local_sequence", {"user_id": "bob", "last": 1})
        )
    with connected(pg_server, shared_db) as su:
        configs = su.execute(
            "SELECT proname, proconfig FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace AND prosecdef"
        ).fetchall()
    assert {name for name, _ in configs} >= {"crm_users", "crm_owner_unused"}
    for name, config in configs:
        assert any(c.startswith("search_path=") and c.endswith("pg_temp") for c in config or []), (
            name
        )


def test_a_member_cannot_lift_the_policies(pg_server: ScratchServer, shared_db: str) -> None:
    with connected(pg_server, shared_db, "alice") as alice:
        for statement in (
            "ALTER TABLE contacts DISABLE ROW LEVEL SECURITY",
            "DROP POLICY contacts_read ON contacts",
            "CREATE POLICY mine ON contacts FOR SELECT USING (true)",
            "ALTER FUNCTION crm_users(boolean) RESET ALL",
            "CREATE FUNCTION public.crm_mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "TRUNCATE contacts",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                alice.execute(statement)
    with connected(pg_server, shared_db) as su:
        assert set(rows_by_user(su, "contacts")) == set(USERS)


def test_one_members_sweep_leaves_other_members_processes_alone(
    open_as: Callable[[str], PostgresDatabase], pg_server: ScratchServer, team_db: str
) -> None:
    """A sweep deletes owner rows that nothing names; what names them (leases, pending
    generations, open runs) is counted over everyone's rows, not over the rows the sweeping
    member may see."""
    bob = open_as("bob")
    lease = bob.acquire_lease("bob", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    generation = bob.new_generation("bob", "brivity", "contacts")
    bob.stage("contacts", generation, [cached_contact("brivity", 7, "bob")])
    alice = open_as("alice")
    alice.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 3, "alice")])
    alice.close()
    with connected(pg_server, team_db) as su:
        assert su.execute("SELECT 1 FROM owners WHERE id = %s", (bob.owner.id,)).fetchone()
    # the worker finds bob's sync alive, and does not take its stream
    held = open_as("w").acquire_lease("bob", "brivity", "contacts", "sync")
    assert isinstance(held, Holder)
    assert held.owner.id == bob.owner.id
    assert bob.commit_staged("bob", "brivity", "contacts", generation, lease) == 1
    assert _ids(bob, "bob") == ["brivity:7"]


def test_a_member_cannot_tamper_with_shared_bookkeeping(
    open_as: Callable[[str], PostgresDatabase], pg_server: ScratchServer, team_db: str
) -> None:
    bob = open_as("bob")
    bob.acquire_lease("bob", "brivity", "contacts", "sync")
    with connected(pg_server, team_db) as su:
        bobs_owner = su.execute("SELECT * FROM owners WHERE id = %s", (bob.owner.id,)).fetchall()
        next_generation = su.execute("SELECT last_value FROM generations_id_seq").fetchone()[0]
    with connected(pg_server, team_db, "alice") as alice:
        # bob's process made to look dead, or gone
        assert alice.execute("UPDATE owners SET heartbeat_at = 0, pid = 1").rowcount == 0
        assert alice.execute("DELETE FROM owners").rowcount == 0
        _refused_by_rls(
            alice,
            lambda: alice.execute(
                "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at, role_name)"
                " VALUES ('fake', 'h', 'm', 1, '', 0, 'bob')"
            ),
        )
        # a generation number taken ahead of the sequence would collide with bob's next
        for statement in (
            f"INSERT INTO generations (id) VALUES ({next_generation + 1_000})",
            "UPDATE generations SET id = id + 1000",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                alice.execute(statement)
        alice.execute(
            "INSERT INTO webhook_refusals VALUES ('fub', 'bad signature', 1, 'now')"
            " ON CONFLICT (source, reason) DO UPDATE SET count = webhook_refusals.count + 1"
        )
        for statement in (
            "DELETE FROM webhook_refusals",
            "UPDATE webhook_refusals SET count = 0",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                alice.execute(statement)
    with connected(pg_server, team_db) as su:
        assert (
            su.execute("SELECT * FROM owners WHERE id = %s", (bob.owner.id,)).fetchall()
            == bobs_owner
        )
        assert su.execute("SELECT count FROM webhook_refusals").fetchall() == [(1,)]
    generation = bob.new_generation("bob", "brivity", "contacts")
    assert generation > next_generation


def test_the_store_as_an_agent_returns_only_her_records(
    open_as: Callable[[str], PostgresDatabase], pg_server: ScratchServer, team_db: str
) -> None:
    alice = open_as("alice")
    assert _ids(alice, "alice") == ["brivity:1", "brivity:2"]
    assert _ids(alice, "alice", "deals") == ["brivity:1"]
    for other in ("bob", "carol", "dave"):
        assert _ids(alice, other) == []
        assert _ids(alice, other, "deals") == []
        assert alice.local_records(other, "contacts") == []
        assert alice.list_runs(other) == []
        assert alice.list_quarantine(other) == []
        assert alice.rejections(other) == []
        assert alice.outbox(other) == []
        assert alice.load_statuses(other) == {}
        assert alice.stream_sources(other, "contacts") == []
    assert len(alice.local_records("alice", "contacts")) == 1
    assert len(alice.outbox("alice")) == 1
    with pytest.raises(DatabaseRefused, match=RLS):
        alice.replace_stream("bob", "brivity", "contacts", [cached_contact("brivity", 9, "bob")])
    with pytest.raises(DatabaseRefused, match=RLS):
        alice.add_local_records("bob", "contacts", [{"first_name": "planted"}], utc_now())
    with pytest.raises(DatabaseRefused, match=RLS):
        alice.clear("bob")
    with connected(pg_server, team_db) as su:
        assert su.execute("SELECT count(*) FROM contacts WHERE user_id = 'bob'").fetchone() == (2,)
    # and the refused writes left nothing behind that stops her own
    alice.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 5, "alice")])
    assert _ids(alice, "alice") == ["brivity:5"]


def test_the_store_as_a_lead_reads_the_team_and_as_a_worker_writes_it(
    open_as: Callable[[str], PostgresDatabase],
) -> None:
    carol = open_as("carol")
    assert _names(carol, "alice") == {"alice1", "alice2"}
    assert _names(carol, "bob") == {"bob1", "bob2"}
    assert _ids(carol, "dave") == []
    with pytest.raises(DatabaseRefused, match=RLS):
        carol.replace_stream(
            "alice", "brivity", "contacts", [cached_contact("brivity", 9, "alice")]
        )
    w = open_as("w")
    w.replace_stream(
        "bob", "brivity", "contacts", [cached_contact("brivity", 9, "bob", first_name="new")]
    )
    assert _names(carol, "bob") == {"new"}
    assert _ids(w, "dave") == []
    with pytest.raises(DatabaseRefused, match=RLS):
        w.replace_stream("dave", "brivity", "contacts", [cached_contact("brivity", 9, "dave")])
    dave = open_as("dave")
    assert _names(dave, "dave") == {"dave1", "dave2"}
    assert _ids(dave, "bob") == []


# -- 2. crashes ----------------------------------------------------------------------------

_STAGE_AND_HANG = """
import os, sys, time
from pathlib import Path
from crm_tui.models import utc_now
from crm_tui.database_url import DatabaseUrl
from crm_tui.store.postgres import PostgresDatabase
from tests.helpers.records import cached_contact

db = PostgresDatabase(DatabaseUrl(os.environ["CRM_TEST_URL"]), Path(os.environ["CRM_TEST_DATA"]))
rows = [cached_contact("brivity", 100 + n, "alice", first_name="ghost") for n in range(50)]
if sys.argv[1] == "staged":
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, rows)
    print(generation, db._conn.backend_pid, flush=True)
    time.sleep(120)
with db.transaction():
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, rows)
    db.add_local_records("alice", "contacts", [{"first_name": "ghost"}], utc_now())
    print(generation, db._conn.backend_pid, flush=True)
    time.sleep(120)
"""


def _start_and_kill_when_ready(url: str, data_dir: Path, how: str) -> tuple[int, int]:
    """A process that opens the store as alice, does `how`, says so and hangs: SIGKILLed
    then. Its generation and its server process's id."""
    env = {
        **os.environ,
        "CRM_TEST_URL": url,
        "CRM_TEST_DATA": str(data_dir),
        "PYTHONPATH": str(ROOT),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _STAGE_AND_HANG, how],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # poll, not select: a long test session's process may hold descriptors past 1024
        poller = select.poll()
        poller.register(child.stdout, select.POLLIN)
        assert poller.poll(30_000), "the child never got there"
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        generation, backend = (int(part) for part in line.split())
        if how == "in-transaction":
            _assert_writer_lock(url, held=True)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.communicate()
    return generation, backend


def _assert_writer_lock(url: str, held: bool) -> None:
    with psycopg.connect(DatabaseUrl(url).conninfo("test"), autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()[0]
        if got:
            conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        assert got is not held


def _wait_until_gone(su: psycopg.Connection[Any], backend: int) -> None:
    deadline = time.monotonic() + 15  # not a measurement: keeps a broken server from hanging
    while su.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone():
        assert time.monotonic() < deadline, "the server kept the dead client's session"
        time.sleep(0.05)


def test_rows_staged_by_a_killed_process_stay_hidden_and_go_at_the_next_commit(
    open_as: Callable[[str], PostgresDatabase],
    pg_server: ScratchServer,
    team_db: str,
    tmp_path: Path,
) -> None:
    url = role_url(pg_server, team_db, "alice")
    generation, backend = _start_and_kill_when_ready(url, tmp_path / "child", "staged")
    with connected(pg_server, team_db) as su:
        _wait_until_gone(su, backend)
        assert su.execute(
            "SELECT count(*) FROM contacts WHERE generation = %s", (generation,)
        ).fetchone() == (50,)
        assert su.execute(
            "SELECT count(*) FROM pending_generations WHERE generation = %s", (generation,)
        ).fetchone() == (1,)
    alice = open_as("alice")
    assert _names(alice, "alice") == {"alice1", "alice2"}
    alice.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 3, "alice")])
    assert _ids(alice, "alice") == ["brivity:3"]
    with connected(pg_server, team_db) as su:
        assert su.execute(
            "SELECT count(*) FROM contacts WHERE user_id = 'alice' AND source = 'brivity'"
        ).fetchone() == (1,)
        assert su.execute(
            "SELECT count(*) FROM pending_generations WHERE generation = %s", (generation,)
        ).fetchone() == (0,)
        assert su.execute(
            "SELECT count(*) FROM contacts WHERE first_name = 'ghost'"
        ).fetchone() == (0,)


def test_a_process_killed_inside_a_write_transaction_leaves_nothing_and_no_lock(
    open_as: Callable[[str], PostgresDatabase],
    pg_server: ScratchServer,
    team_db: str,
    tmp_path: Path,
) -> None:
    url = role_url(pg_server, team_db, "alice")
    generation, backend = _start_and_kill_when_ready(url, tmp_path / "child", "in-transaction")
    with connected(pg_server, team_db) as su:
        _wait_until_gone(su, backend)
        for table, column in (("contacts", "generation"), ("pending_generations", "generation")):
            assert su.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (generation,),
            ).fetchone() == (0,)
        assert su.execute(
            "SELECT count(*) FROM local_records WHERE payload LIKE '%ghost%'"
        ).fetchone() == (0,)
    _assert_writer_lock(url, held=False)
    alice = open_as("alice")
    alice.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 4, "alice")])
    assert _ids(alice, "alice") == ["brivity:4"]
    assert [r["first_name"] for r in alice.local_records("alice", "contacts")] == ["local alice"]


# -- 3. secrets ----------------------------------------------------------------------------


def _whole_text(exc: BaseException) -> str:
    """Everything an error could show: its message, details, repr, traceback, and the
    exception it replaced."""
    parts = [str(exc), repr(exc), getattr(exc, "details", ""), getattr(exc, "error", "")]
    parts.append("".join(traceback.format_exception(exc)))
    if exc.__context__ is not None:
        parts.append(str(exc.__context__))
    return "\n".join(parts)


def _assert_hidden(text: str, password: str) -> None:
    for form in {password, quote(password), quote(password, safe="")}:
        assert form not in text


def test_a_wrong_password_is_refused_and_never_shown(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    url = DatabaseUrl(pg_server.url("alice", CANARY, team_db))
    with pytest.raises(DatabaseRefused) as refused:
        PostgresDatabase(url, tmp_path)
    text = _whole_text(refused.value)
    _assert_hidden(text, CANARY)
    assert 'password authentication failed for user "alice"' in refused.value.details
    assert "alice:***@127.0.0.1" in refused.value.details


def test_an_unreachable_port_is_named_and_the_password_is_not(tmp_path: Path) -> None:
    with refusing_port() as port, pytest.raises(DatabaseUnavailable) as unavailable:
        url = DatabaseUrl(f"postgresql://alice:{CANARY}@127.0.0.1:{port}/crm")
        PostgresDatabase(url, tmp_path)
    _assert_hidden(_whole_text(unavailable.value), CANARY)
    assert "Connection refused" in unavailable.value.details
    assert f"alice:***@127.0.0.1:{port}/crm" in unavailable.value.details


def test_a_server_that_never_answers_times_out_and_the_password_is_not_shown(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:  # accepts (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = DatabaseUrl(f"postgresql://alice:{CANARY}@127.0.0.1:{port}/crm?connect_timeout=2")
        outcome: list[BaseException] = []

        def attempt() -> None:
            try:
                PostgresDatabase(url, tmp_path)
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(30)  # connect_timeout=2: only a broken timeout gets near this
        assert not thread.is_alive(), "connect_timeout did not fire"
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseUnavailable)
    _assert_hidden(_whole_text(outcome[0]), CANARY)
    assert "timeout" in outcome[0].details


def test_a_database_url_never_shows_its_password() -> None:
    url = DatabaseUrl(f"postgresql://alice:{CANARY}@db.example:5432/crm?sslmode=require")
    for text in (
        repr(url),
        str(url),
        f"{url}",
        repr([url]),
        url.display,
        url.masked(f"x {CANARY} y"),
    ):
        assert CANARY not in text
    assert url.display == "postgresql://alice:***@db.example:5432/crm?sslmode=require"
    assert url.password == CANARY  # what libpq gets, all the same
    assert CANARY in url.conninfo("crm-tui")


def test_a_malformed_url_is_refused_without_quoting_its_password() -> None:
    unescaped = f"postgresql://alice:x@y:{CANARY}/z@127.0.0.1:5432/crm"  # '@' and '/' as is
    with pytest.raises(InvalidDatabaseUrl) as invalid:
        DatabaseUrl(unescaped)
    assert CANARY not in _whole_text(invalid.value)
    assert "%40" in str(invalid.value)  # says how to write it


SPECIAL = "p@ss:w/rd%" + CANARY


def test_a_password_with_url_characters_works_percent_encoded_and_is_masked(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    with connected(pg_server, team_db) as su:
        su.execute(sql.SQL("ALTER ROLE dave PASSWORD {}").format(sql.Literal(SPECIAL)))
    try:
        encoded = quote(SPECIAL, safe="")
        good = DatabaseUrl(f"postgresql://dave:{encoded}@127.0.0.1:{pg_server.port}/{team_db}")
        assert good.password == SPECIAL
        for text in (repr(good), good.display):
            _assert_hidden(text, SPECIAL)
            assert "p@ss" not in text and "rd%" not in text
        db = PostgresDatabase(good, tmp_path)
        try:
            assert _names(db, "dave") == {"dave1", "dave2"}
        finally:
            db.close()
        wrong = SPECIAL + "x"
        bad = DatabaseUrl(
            f"postgresql://dave:{quote(wrong, safe='')}@127.0.0.1:{pg_server.port}/{team_db}"
        )
        with pytest.raises(DatabaseRefused) as refused:
            PostgresDatabase(bad, tmp_path)
        _assert_hidden(_whole_text(refused.value), wrong)
        assert CANARY not in _whole_text(refused.value)
        assert 'password authentication failed for user "dave"' in refused.value.details
    finally:
        with connected(pg_server, team_db) as su:
            su.execute(
                sql.SQL("ALTER ROLE dave PASSWORD {}").format(sql.Literal(PASSWORDS["dave"]))
            )


_LOG_A_FAILED_CONNECTION = """
import logging, os, sys
from pathlib import Path
from crm_tui.database_url import DatabaseUrl
from crm_tui.store.errors import StoreError
from crm_tui.store.postgres import PostgresDatabase

logging.basicConfig(filename=os.environ["CRM_TEST_LOG"], level=logging.DEBUG)
try:
    PostgresDatabase(DatabaseUrl(os.environ["CRM_TEST_URL"]), Path(os.environ["CRM_TEST_DATA"]))
except StoreError:
    logging.exception("could not open the team database")
    raise
"""


def test_a_failed_connection_leaves_the_password_out_of_the_log_and_stderr(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    log = tmp_path / "crm.log"
    env = {
        **os.environ,
        "CRM_TEST_URL": pg_server.url("alice", CANARY, team_db),
        "CRM_TEST_DATA": str(tmp_path / "data"),
        "CRM_TEST_LOG": str(log),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _LOG_A_FAILED_CONNECTION],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    logged = log.read_text()
    for text in (done.stderr, done.stdout, logged):
        assert CANARY not in text
    for text in (done.stderr, logged):
        assert "DatabaseRefused" in text
        assert 'password authentication failed for user "alice"' in text


# -- 4. two hosts at once ------------------------------------------------------------------


def _rows(user: str, label: str) -> list[Contact]:
    return [cached_contact("brivity", n, user, first_name=label) for n in range(40)]


def test_a_stream_being_written_by_one_host_is_busy_for_the_other(
    open_as: Callable[[str], PostgresDatabase],
) -> None:
    one, two = open_as("alice"), open_as("alice")
    lease = one.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    generation = one.new_generation("alice", "brivity", "contacts")
    one.stage("contacts", generation, _rows("alice", "one"))
    with pytest.raises(StreamBusy):
        two.replace_stream("alice", "brivity", "contacts", _rows("alice", "two"))
    assert _names(two, "alice") == {"alice1", "alice2"}  # neither yet
    one.commit_staged("alice", "brivity", "contacts", generation, lease)
    one.release_lease(lease)
    assert _names(two, "alice") == {"one"}
    two.replace_stream("alice", "brivity", "contacts", _rows("alice", "two"))
    assert _names(one, "alice") == {"two"}
    assert len(_ids(one, "alice")) == 40


def _race(hosts: dict[str, PostgresDatabase], round_: int) -> dict[str, str]:
    """Each host replaces alice's brivity contacts with its own rows, both at once: who
    committed and who found the stream busy."""
    start = threading.Barrier(len(hosts))
    outcomes: dict[str, str] = {}

    def write(label: str, db: PostgresDatabase) -> None:
        start.wait(10)
        try:
            db.replace_stream("alice", "brivity", "contacts", _rows("alice", f"{label}{round_}"))
            outcomes[label] = "committed"
        except StreamBusy:
            outcomes[label] = "busy"

    threads = [threading.Thread(target=write, args=item) for item in hosts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_two_hosts_replacing_one_stream_at_once_leave_one_commits_rows(
    open_as: Callable[[str], PostgresDatabase], pg_server: ScratchServer, team_db: str
) -> None:
    hosts = {"one": open_as("alice"), "two": open_as("alice")}
    for round_ in range(6):
        outcomes = _race(hosts, round_)
        assert set(outcomes.values()) <= {"committed", "busy"} and len(outcomes) == 2
        assert "committed" in outcomes.values()
        names = _names(hosts["one"], "alice")
        assert len(names) == 1, f"a mix of two commits: {names}"
        winner = names.pop()
        assert winner in {f"one{round_}", f"two{round_}"}
        assert outcomes[winner[:3]] == "committed"
        with connected(pg_server, team_db) as su:
            assert su.execute(
                "SELECT count(*) FROM contacts WHERE user_id = 'alice' AND source = 'brivity'"
            ).fetchone() == (40,)
            assert su.execute(
                "SELECT count(*) FROM pending_generations WHERE user_id = 'alice'"
                " AND source = 'brivity'"
            ).fetchone() == (0,)


def test_local_adds_from_two_hosts_at_once_never_reuse_an_id(
    open_as: Callable[[str], PostgresDatabase], pg_server: ScratchServer, team_db: str
) -> None:
    hosts = [open_as("alice"), open_as("alice")]
    start = threading.Barrier(2)
    made: list[list[int]] = [[], []]

    def add(i: int) -> None:
        start.wait(10)
        for n in range(15):
            made[i].extend(
                hosts[i].add_local_records(
                    "alice",
                    "contacts",
                    [{"first_name": f"h{i}-{n}-{k}"} for k in range(3)],
                    utc_now(),
                )
            )

    threads = [threading.Thread(target=add, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = made[0] + made[1]
    assert len(ids) == 90
    # the seeded local record is 1: the two hosts' 90 are 2..91, each once
    assert sorted(ids) == list(range(2, 92))
    with connected(pg_server, team_db) as su:
        stored = su.execute(
            "SELECT id FROM local_records WHERE user_id = 'alice' ORDER BY id"
        ).fetchall()
    assert [row[0] for row in stored] == list(range(1, 92))


# -- found in review: the change log's trims, a key across users, URLs -----------------------


def test_an_app_is_told_when_its_users_changes_were_trimmed(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """A role trims only the rows it may write, so others' old rows keep everyone's oldest
    low: an app asleep past the kept log must still learn that it missed something."""
    from crm_tui.store.changes import KEEP_SECONDS

    with connected(pg_server, team_db) as su:  # the seeded rows: no trims yet
        su.execute("DELETE FROM change_trims")
    alice, worker = open_as("alice"), open_as("w")
    alice.replace_stream(
        "alice", "pipedrive", "contacts", [cached_contact("pipedrive", 1, "alice")]
    )
    seen = alice.last_change()
    worker.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 7, "alice")])
    with connected(pg_server, team_db) as su:  # alice's app sleeps past the kept log
        su.execute("UPDATE changes SET at = at - %s", (2 * KEEP_SECONDS,))
    worker._trimmed_at = 0.0  # its next commit trims the rows it may write
    worker.replace_stream("alice", "lofty", "contacts", [cached_contact("lofty", 1, "alice")])
    found = alice.changes_since("alice", seen)
    assert found.everything
    assert not alice.changes_since("alice", found.last).everything  # once, then caught up
    # each user's trims are theirs: the worker may not trim dave's (team t2), so dave,
    # who changed nothing since, is told nothing
    assert open_as("dave").changes_since("dave", seen).empty


def test_no_row_of_one_user_can_pin_another_users_run(
    pg_server: ScratchServer, team_db: str
) -> None:
    with connected(pg_server, team_db) as su:
        bobs = su.execute("SELECT id FROM sync_runs WHERE user_id = 'bob' LIMIT 1").fetchone()[0]
    with connected(pg_server, team_db, "alice") as alice:
        alice.execute(
            "INSERT INTO sync_runs (user_id, source, parent_id, started_at)"
            " VALUES ('alice', 'x', %s, 'now')",
            (bobs,),
        )
    with connected(pg_server, team_db, "bob") as bob:  # as `db copy --replace` does
        assert bob.execute("DELETE FROM sync_runs WHERE user_id = 'bob'").rowcount >= 1


def test_a_password_given_as_a_url_setting_is_masked_too() -> None:
    url = DatabaseUrl("postgresql://bob@db.example/crm?sslmode=require&password=canary-Q%40z")
    assert url.password == "canary-Q@z"
    assert "canary" not in url.display and "sslmode=require" in url.display
    assert url.masked("auth failed for canary-Q@z") == "auth failed for ***"


def test_a_raw_at_sign_in_a_password_is_refused_not_half_shown() -> None:
    with pytest.raises(InvalidDatabaseUrl) as caught:
        DatabaseUrl("postgresql://bob:bo@secretTAIL@db.example/crm")
    assert "secretTAIL" not in str(caught.value) and "%40" in str(caught.value)


def test_several_hosts_pass_through_to_libpq() -> None:
    url = DatabaseUrl("postgresql://a:pw@h1:5432,h2:5433/crm?target_session_attrs=read-write")
    assert url.display == "postgresql://a:***@h1:5432,h2:5433/crm?target_session_attrs=read-write"


def test_a_role_that_is_not_a_member_is_told_so(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    with connected(pg_server, team_db) as su:
        su.execute("DROP ROLE IF EXISTS stranger")
        su.execute("CREATE ROLE stranger LOGIN PASSWORD 'pw-stranger'")
    url = DatabaseUrl(pg_server.url("stranger", "pw-stranger", team_db))
    with pytest.raises(DatabaseRefused) as caught:
        PostgresDatabase(url, tmp_path)
    assert "stranger is not a member" in caught.value.details
    assert "crm-tui db member add stranger" in caught.value.details


def test_a_missing_database_is_refused_and_a_down_server_is_a_remote_failure(
    pg_server: ScratchServer, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseRefused, match="refused") as refused:
        PostgresDatabase(DatabaseUrl(pg_server.url("alice", PASSWORDS["alice"], "nodb")), tmp_path)
    assert (
        refused.value.exit_code == 3 and 'database "nodb" does not exist' in refused.value.details
    )
    with refusing_port() as port, pytest.raises(DatabaseUnavailable) as down:
        PostgresDatabase(DatabaseUrl(f"postgresql://a:pw@127.0.0.1:{port}/crm"), tmp_path)
    assert down.value.exit_code == 4  # remote, as a CRM that cannot be reached


def _bob_still_syncs(open_as: Callable[[str], PostgresDatabase]) -> None:
    """Bob's ordinary write takes the next numbers, unhindered by what alice did."""
    bob = open_as("bob")
    bob.replace_stream("bob", "brivity", "contacts", [cached_contact("brivity", 9, "bob")])
    assert "brivity:9" in _ids(bob, "bob")


def _next_number(server: ScratchServer, dbname: str, table: str, column: str) -> int:
    """What a table's sequence hands out next (read as the superuser: members may not)."""
    with connected(server, dbname) as su:
        query = "SELECT nextval(pg_get_serial_sequence(%s, %s))"
        return int(su.execute(query, (table, column)).fetchone()[0]) + 1


def test_no_member_draws_from_a_sequence_but_the_generations(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """Two draws from a record table's sequence, before and after, told alice how many rows
    the others wrote between them. Identity columns need no grant on their sequence."""
    with connected(pg_server, team_db, "alice") as alice:
        for table, column in (("contacts", "rowid"), ("changes", "seq"), ("outbox", "id")):
            with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
                alice.execute("SELECT nextval(pg_get_serial_sequence(%s, %s))", (table, column))
        assert alice.execute(DRAW_GENERATION).fetchone()[0] > 0
    alice_db = open_as("alice")
    alice_db.replace_stream("alice", "brivity", "contacts", [cached_contact("brivity", 5, "alice")])
    assert _ids(alice_db, "alice") == ["brivity:5"]


def test_no_member_can_claim_the_keys_the_database_hands_others(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """Numbers the sequences hand out next, taken in advance with a member's own rows, would
    make every other member's next write fail on a duplicate key."""
    ahead = _next_number(pg_server, team_db, "changes", "seq")
    with connected(pg_server, team_db, "alice") as alice:
        with pytest.raises(pg_errors.InsufficientPrivilege):
            alice.execute(
                "INSERT INTO changes (seq, user_id, kind, origin, at)"
                " VALUES (%s, 'alice', 'contacts', 'x', 0)",
                (ahead,),
            )
        with pytest.raises(pg_errors.InsufficientPrivilege):
            alice.execute("UPDATE changes SET seq = %s WHERE user_id = 'alice'", (ahead,))
        drawn = alice.execute("SELECT nextval(pg_get_serial_sequence('generations', 'id'))")
        future = drawn.fetchone()[0] + 1
        _refused_by_rls(
            alice,
            lambda: alice.execute(
                "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
                " VALUES (%s, 'alice', 'contacts', 'x', 'nobody')",
                (future,),
            ),
        )
    _bob_still_syncs(open_as)


def test_no_member_can_take_the_number_of_another_members_next_import(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """An import's row is keyed by its generation, which the database draws for everyone:
    alice's rows under the numbers it hands out next would make bob's import fail."""
    bob = open_as("bob")
    generation = bob.new_generation("bob", "brivity", "contacts")
    with connected(pg_server, team_db, "alice") as alice:
        for taken in range(generation, generation + 3):
            alice.execute(
                "INSERT INTO imports (generation, user_id, kind, source, file, imported_at,"
                " records) VALUES (%s, 'alice', 'contacts', 'brivity', '/x.csv', 'now', 0)",
                (taken,),
            )
    bob.stage("contacts", generation, [cached_contact("brivity", 9, "bob")])
    assert bob.commit_import("bob", "brivity", "contacts", generation, "/b.csv") == 1
    assert [r.id for r in bob.load_records("bob", "contacts", imported=True)] == ["brivity:9"]


def test_no_member_can_take_the_row_numbers_the_record_tables_hand_out_next(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """A record table's rowid (its rows' written order) is drawn for everyone; an INSERT may
    name it with OVERRIDING SYSTEM VALUE, and alice's rows under the numbers drawn next
    would make bob's next sync fail on a duplicate."""
    ahead = _next_number(pg_server, team_db, "contacts", "rowid")
    with (
        connected(pg_server, team_db, "alice") as alice,
        pytest.raises(pg_errors.InsufficientPrivilege),
    ):
        alice.execute(
            "INSERT INTO contacts (rowid, user_id, source, id, generation)"
            " OVERRIDING SYSTEM VALUE VALUES (%s, 'alice', 'brivity', 'brivity:1', 0)",
            (ahead,),
        )
    _bob_still_syncs(open_as)


def test_no_member_can_move_a_pending_generation_onto_the_numbers_drawn_next(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """A pending generation is checked when inserted (this session drew it); an update
    moved it onto a number drawn later, and bob's next sync failed on the duplicate."""
    with connected(pg_server, team_db, "alice") as alice:
        mine = alice.execute(DRAW_GENERATION).fetchone()[0]
        alice.execute(
            "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
            " VALUES (%s, 'alice', 'contacts', 'x', 'nobody')",
            (mine,),
        )
        with pytest.raises(pg_errors.InsufficientPrivilege):
            alice.execute(
                "UPDATE pending_generations SET generation = %s WHERE generation = %s",
                (mine + 1, mine),
            )
        # the other columns stay hers to change
        moved = "UPDATE pending_generations SET source = 'y' WHERE generation = %s"
        assert alice.execute(moved, (mine,)).rowcount == 1
    _bob_still_syncs(open_as)


def test_generations_are_drawn_with_no_row_a_member_could_lock(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """An open `DELETE FROM generations` of alice's locked the newest number's row, and every
    new generation of the team waited on it while holding the writer lock."""
    with connected(pg_server, team_db, "alice") as alice:
        for statement in ("DELETE FROM generations", "INSERT INTO generations DEFAULT VALUES"):
            with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
                alice.execute(statement)
    bob = open_as("bob")
    first = bob.new_generation("bob", "brivity", "contacts")
    assert bob.new_generation("bob", "brivity", "contacts") > first
    with connected(pg_server, team_db) as su:
        assert su.execute("SELECT count(*) FROM generations").fetchone()[0] == 0


def _alice_cannot_take_its_owner_id(
    server: ScratchServer, dbname: str, db: PostgresDatabase, user: str, prefix: str
) -> None:
    """`db`'s process took a lease (its owner row written, under `prefix`) and let it go;
    alice's row under the same id is refused."""
    lease = db.acquire_lease(user, "brivity", "contacts", "sync")
    assert isinstance(lease, Lease) and db.owner.id.startswith(prefix)
    db.release_lease(lease)
    with connected(server, dbname, "alice") as alice:
        _refused_by_rls(
            alice,
            lambda: alice.execute(
                "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at)"
                " VALUES (%s, 'h', 'm', 1, '', 0)",
                (db.owner.id,),
            ),
        )


@pytest.mark.parametrize("victim", ["bob", "w"])
def test_no_member_can_take_the_owner_id_of_anothers_process(
    pg_server: ScratchServer,
    team_db: str,
    open_as: Callable[[str], PostgresDatabase],
    victim: str,
) -> None:
    """Every member reads every owner row (liveness is judged from them), and a process
    keeps its id for life: alice's row under bob's id (or the worker's), once his row had
    gone, made his next lease fail. An id is under its role's name, which only that role
    may write."""
    db = open_as(victim)
    _alice_cannot_take_its_owner_id(pg_server, team_db, db, "bob", f"{victim}/")
    with connected(pg_server, team_db, "alice") as alice:
        alice.execute(
            "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at)"
            " VALUES ('alice/mine', 'h', 'm', 1, '', 0)"
        )
        _refused_by_rls(
            alice,
            lambda: alice.execute(
                "UPDATE owners SET id = %s WHERE id = 'alice/mine'", (db.owner.id,)
            ),
        )
    again = db.acquire_lease("bob", "brivity", "contacts", "sync")
    assert isinstance(again, Lease)


def test_a_members_pending_row_naming_the_workers_process_does_not_break_its_close(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """A process's close reads every pending row that names it, the team's too for a
    worker: a kind that is no record table made it fail, and bob's lease stayed."""
    w = open_as("w")
    lease = w.acquire_lease("bob", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    with connected(pg_server, team_db, "alice") as alice:
        drawn = alice.execute(DRAW_GENERATION).fetchone()[0]
        with pytest.raises(pg_errors.CheckViolation):
            alice.execute(
                "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
                " VALUES (%s, 'alice', 'hostile', 'x', %s)",
                (drawn, w.owner.id),
            )
        alice.execute(
            "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
            " VALUES (%s, 'alice', 'contacts', 'x', %s)",
            (drawn, w.owner.id),
        )
    w.close()
    with connected(pg_server, team_db) as su:
        assert su.execute("SELECT 1 FROM leases WHERE token = %s", (lease.token,)).fetchall() == []
        assert (
            su.execute(
                "SELECT count(*) FROM pending_generations WHERE generation = %s", (drawn,)
            ).fetchone()[0]
            == 0
        )


def test_a_members_hand_written_status_does_not_stop_the_team_worker(
    pg_server: ScratchServer,
    team_db: str,
    open_as: Callable[[str], PostgresDatabase],
    tmp_path: Path,
) -> None:
    """Alice may write her own status rows; a state crm-tui does not know stopped the
    worker's start (it loads everyone's), so nobody was synced. It reads as idle."""
    from crm_tui.config import load_settings
    from crm_tui.models import SyncState
    from crm_tui.team.worker import TeamSync

    with connected(pg_server, team_db, "alice") as alice:
        assert alice.execute("UPDATE source_status SET state = 'hostile'").rowcount == 1
    folder = tmp_path / "team"
    folder.mkdir()
    for user in ("alice", "bob"):
        (folder / f"{user}.env").write_text("")
    (tmp_path / "worker.env").write_text("")
    worker = load_settings(tmp_path / "worker.env", crm_data_dir=tmp_path / "w")
    team = TeamSync(worker, open_as("w"), folder)
    assert sorted(team.engines) == ["alice", "bob"]
    assert team.engines["alice"].store.status("brivity").state is SyncState.IDLE


def test_webhook_refusals_are_counted_one_by_one(
    pg_server: ScratchServer, team_db: str, open_as: Callable[[str], PostgresDatabase]
) -> None:
    """The refusal counts are shared: a count set near bigint's end by alice stopped every
    later refusal of its kind from being counted (the receiver logs the failure)."""
    from crm_tui.webhooks.inbox import WebhookInbox

    with connected(pg_server, team_db, "alice") as alice:
        for statement in (
            "INSERT INTO webhook_refusals VALUES ('fub', 'x', 9223372036854775807, 'now')",
            "INSERT INTO webhook_refusals VALUES ('fub', 'x', 0, 'now')",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege, match="one by one"):
                alice.execute(statement)
        alice.execute("INSERT INTO webhook_refusals VALUES ('fub', 'x', 1, 'now')")
        with pytest.raises(pg_errors.InsufficientPrivilege, match="one by one"):
            alice.execute("UPDATE webhook_refusals SET count = 9223372036854775807")
    inbox = WebhookInbox(open_as("bob"), "bob")
    inbox.refuse("fub", "x")
    inbox.refuse("fub", "x")
    with connected(pg_server, team_db) as su:
        counted = su.execute("SELECT count FROM webhook_refusals WHERE reason = 'x'").fetchone()
    assert counted == (3,)


def test_a_lock_held_by_another_session_is_an_error_after_the_timeout_not_a_hang(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    """Any session may take the team's writer key as an advisory lock and keep it (or lock
    a table it may update); a write then waits for it. Not forever: lock_timeout (a minute
    by default, here a second through the URL) makes it an error that names the cause, and
    the rows written before stay."""
    default = PostgresDatabase(DatabaseUrl(role_url(pg_server, team_db, "bob")), tmp_path / "d")
    with default._lock:
        assert default._conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
    default.close()
    quick = role_url(pg_server, team_db, "bob") + "?options=-c%20lock_timeout%3D1s"
    bob = PostgresDatabase(DatabaseUrl(quick), tmp_path / "q")
    try:
        before = _ids(bob, "bob")
        with connected(pg_server, team_db, "alice") as alice:
            alice.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
            with pytest.raises(DatabaseUnavailable, match="busy") as busy:
                bob.replace_stream(
                    "bob", "brivity", "contacts", [cached_contact("brivity", 9, "bob")]
                )
            assert "lock timeout" in busy.value.details
            alice.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        assert _ids(bob, "bob") == before
        bob.replace_stream("bob", "brivity", "contacts", [cached_contact("brivity", 9, "bob")])
        assert _ids(bob, "bob") == ["brivity:9"]
    finally:
        bob.close()


def _show(db: PostgresDatabase, setting: str) -> str:
    with db._lock:
        return str(db._conn.execute(f"SHOW {setting}").fetchone()[0])


def test_the_lock_timeout_joins_the_options_the_url_or_pgoptions_give(
    pg_server: ScratchServer, team_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq takes `options` from the URL, or else from PGOPTIONS: the lock timeout is added
    to whichever the user gave, never in place of it, and theirs wins when they set one."""
    url = role_url(pg_server, team_db, "bob")
    given = PostgresDatabase(
        DatabaseUrl(url + "?options=-c%20statement_timeout%3D7s"), tmp_path / "u"
    )
    assert (_show(given, "statement_timeout"), _show(given, "lock_timeout")) == ("7s", "1min")
    given.close()
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=7MB")
    environ = PostgresDatabase(DatabaseUrl(url), tmp_path / "e")
    assert (_show(environ, "work_mem"), _show(environ, "lock_timeout")) == ("7MB", "1min")
    environ.close()
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=5s")
    own = PostgresDatabase(DatabaseUrl(url), tmp_path / "o")
    assert _show(own, "lock_timeout") == "5s"
    own.close()


def test_a_role_named_as_another_plus_a_slash_takes_none_of_its_owner_ids(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    """Owner ids are "role/uuid"; a role may be named "alice/ops", whose ids alice's
    prefix alone would have let her write."""
    role, password = "alice/ops", "pw-ops-4d1e"
    with connected(pg_server, "postgres") as su:
        if not su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            su.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        su.execute(sql.SQL("GRANT crm_agent TO {}").format(sql.Identifier(role)))
    with connected(pg_server, team_db) as su:
        su.execute(
            "INSERT INTO crm_members (role_name, position, user_id, team)"
            " VALUES (%s, 'agent', 'ops', 't1')",
            (role,),
        )
    ops = PostgresDatabase(DatabaseUrl(pg_server.url(role, password, team_db)), tmp_path)
    try:
        _alice_cannot_take_its_owner_id(pg_server, team_db, ops, "ops", "alice/ops/")
        assert isinstance(ops.acquire_lease("ops", "brivity", "contacts", "sync"), Lease)
    finally:
        ops.close()


def test_a_worker_syncs_the_people_it_serves_and_names_the_files_it_may_not(
    pg_server: ScratchServer,
    team_db: str,
    demo_servers: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A USER.env for someone the worker's role does not serve (another team's agent, or
    no member at all) stopped the whole run with a row-level-security error naming no one;
    now that person is left out, by name and file, and the others are synced."""
    from click.testing import CliRunner

    from crm_tui.cli import main

    keys = {k: v for k, v in demo_servers.env().items() if k.startswith("BRIVITY_")}
    team = tmp_path / "team"
    team.mkdir()
    for user in ("bob", "dave", "frank"):  # bob is of the worker's team; dave and frank not
        (team / f"{user}.env").write_text("".join(f"{k}={v}\n" for k, v in keys.items()))
        (team / f"{user}.env").chmod(0o600)
    (team / "bob.env").chmod(0o644)  # his keys, readable by everyone on the host
    monkeypatch.setenv("CRM_USER_ID", "worker")
    url = role_url(pg_server, team_db, "w")
    args = ["--data-dir", str(tmp_path / "w"), "--database-url", url, "sync", "--team"]
    result = CliRunner().invoke(main, [*args, str(team), "--json"])
    payload = json.loads(result.stdout)
    assert result.exit_code == 3 and not payload["success"]
    assert set(payload["users"]) == {"bob"}
    assert payload["users"]["bob"]["results"]["brivity"]["contacts"]["success"]
    assert set(payload["skipped"]) == {"dave", "frank"}
    assert "frank.env" in payload["skipped"]["frank"]
    assert "warning: dave is not synced: dave.env" in result.stderr
    assert f"chmod 600 {team / 'bob.env'}" in result.stderr
    assert "dave.env holds" not in result.stderr
    assert PASSWORDS["w"] not in result.stdout + result.stderr

    (team / "bob.env").unlink()
    alone = CliRunner().invoke(main, [*args, str(team)])
    assert alone.exit_code == 3 and "nobody to sync" in alone.stderr


def test_a_write_the_policies_refuse_says_whose_rows_a_role_may_write(
    open_as: Callable[[str], PostgresDatabase],
) -> None:
    """A lead reads the team's rows and writes only its own: the server's refusal names a
    table and a policy, and the message adds what that means and which setting decides."""
    carol = open_as("carol")
    with pytest.raises(DatabaseRefused) as refused:
        carol.add_local_records("alice", "contacts", [{"first_name": "Not hers"}], utc_now())
    assert "row-level security" in refused.value.details
    assert "a lead its own" in refused.value.details and "CRM_USER_ID" in refused.value.details
    assert PASSWORDS["carol"] not in str(refused.value) + refused.value.details


def test_an_agent_who_gives_no_user_id_reads_their_own_rows(
    pg_server: ScratchServer, team_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRM_USER_ID defaults to the OS user name, which means nothing to a team database: an
    agent who left it out saw an empty app. The user a role writes is theirs."""
    from click.testing import CliRunner

    from crm_tui.cli import main

    monkeypatch.delenv("CRM_USER_ID", raising=False)

    def brivity_contacts(role: str) -> int:
        url = role_url(pg_server, team_db, role)
        head = ["--data-dir", str(tmp_path / role), "--database-url", url]
        result = CliRunner().invoke(main, [*head, "status", "--json"])
        assert result.exit_code == 0, result.stderr
        return int(json.loads(result.stdout)["status"]["brivity"]["contactCount"])

    assert brivity_contacts("bob") == 2  # bob's own two (each user has two)
    monkeypatch.setenv("CRM_USER_ID", "nobody")  # given: it stands, and shows nothing
    assert brivity_contacts("bob") == 0


def test_a_refused_login_leaves_no_folder_and_db_status_names_the_url_once(
    pg_server: ScratchServer, team_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from crm_tui.cli import main

    wrong = pg_server.url("bob", "not-his-password", team_db)
    with pytest.raises(DatabaseRefused):
        PostgresDatabase(DatabaseUrl(wrong), tmp_path / "data")
    assert not (tmp_path / "data").exists()  # a folder per failed attempt, before

    monkeypatch.setenv("CRM_USER_ID", "bob")
    url = role_url(pg_server, team_db, "bob")
    head = ["--data-dir", str(tmp_path / "data"), "--database-url", url]
    said = CliRunner().invoke(main, [*head, "db", "status"]).stdout
    assert said.startswith("postgresql://bob:***@") and "postgresql postgresql" not in said


def _cli_as(tmp_path: Path, url: str, *args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from crm_tui.cli import main

    head = ["--data-dir", str(tmp_path / "data"), "--database-url", url]
    result = CliRunner().invoke(main, [*head, *args])
    return result.exit_code, result.stdout, result.stderr


def test_doctor_and_import_take_the_roles_user_when_none_is_given(
    pg_server: ScratchServer, team_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the app and `status` do (review): doctor checked the OS user name and failed the
    setup; an import planned its rows under it and the database refused them."""
    from crm_tui.demo.csvfiles import write_demo_csvs

    monkeypatch.delenv("CRM_USER_ID", raising=False)
    url = role_url(pg_server, team_db, "bob")
    _, out, _ = _cli_as(tmp_path, url, "doctor", "--json")
    role = {c["name"]: c for c in json.loads(out)["checks"]}["role"]
    assert role["status"] == "ok" and "bob's among them" in role["message"]
    files = write_demo_csvs(tmp_path / "exports", 5, 3)
    csv = str(files["topproducer_contacts"])
    code, out, err = _cli_as(tmp_path, url, "import", "topproducer", csv, "--json")
    assert code == 0, out + err
    bob = PostgresDatabase(DatabaseUrl(url), tmp_path / "check")
    try:
        assert len(list(bob.load_records("bob", "contacts", imported=True))) == 5
    finally:
        bob.close()


def test_a_role_that_inherits_the_tables_owner_writes_every_user(
    pg_server: ScratchServer, team_db: str, tmp_path: Path
) -> None:
    """Such a role passes the policies as the owner does; taking it for "nobody" made a
    worker under it skip every person."""
    with connected(pg_server, team_db) as su:
        owner = su.execute(
            "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'public.contacts'::regclass"
        ).fetchone()[0]
        if su.execute("SELECT 1 FROM pg_roles WHERE rolname = 'heir'").fetchone() is None:
            su.execute("CREATE ROLE heir LOGIN PASSWORD 'pw-heir'")
        su.execute(sql.SQL("GRANT {} TO heir").format(sql.Identifier(owner)))
    heir = PostgresDatabase(DatabaseUrl(pg_server.url("heir", "pw-heir", team_db)), tmp_path)
    try:
        heir.add_local_records("dave", "contacts", [{"first_name": "written"}], utc_now())
        assert heir.writable_users() is None
    finally:
        heir.close()


def test_an_agents_edit_without_keys_is_told_it_needs_them(
    pg_server: ScratchServer, team_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker syncs; it never sends an agent's edits: an edit needs the vendor's keys
    here, and says so (not "the team's worker syncs it")."""
    monkeypatch.setenv("CRM_USER_ID", "bob")
    url = role_url(pg_server, team_db, "bob")
    db = PostgresDatabase(DatabaseUrl(url), tmp_path / "w")
    db.replace_stream("bob", "followupboss", "contacts", [cached_contact("followupboss", 1, "bob")])
    db.close()
    code, out, err = _cli_as(tmp_path, url, "edit", "followupboss:1", "--first-name", "X", "--json")
    assert code == 3 and "FUB_API_KEY" in out + err
    assert "the team's worker syncs it" not in out + err
