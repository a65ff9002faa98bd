"""Team mode end to end: the database's schema (`db status`, `db migrate`, refusals), moving
a SQLite cache in (`db copy`), team members, the team's sync worker against the demo's
simulated CRMs, and a commit on one connection reaching another's open store."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from crm_tui.cli import main
from crm_tui.config import ConfigError, load_settings
from crm_tui.database_url import DatabaseUrl
from crm_tui.models import Contact
from crm_tui.store import CacheStore, Database
from crm_tui.store.errors import SchemaMismatch
from crm_tui.store.pg_pool import MAX_CONNECTIONS
from crm_tui.store.pg_schema import MIGRATIONS as PG_STEPS
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.team.scratch_server import ScratchServer
from tests.helpers.backends import new_database


def _contact(source: str, n: int, user: str = "alice", **extra: Any) -> Contact:
    return Contact(
        id=f"{source}:{n}", source=source, remote_id=str(n), user_id=user,
        first_name=f"First{n}", last_name="Team", **extra,
    )  # fmt: skip


def _empty_database(server: ScratchServer) -> str:
    """A new database with no schema at all: its name."""
    name = f"empty{time.monotonic_ns()}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def _cli(data_dir: Path, *args: str, url: str | None = None) -> tuple[int, Any]:
    head = ["--data-dir", str(data_dir)] + (["--database-url", url] if url else [])
    result = CliRunner().invoke(main, [*head, *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture
def team_url(pg_server: ScratchServer) -> str:
    return pg_server.url(dbname=new_database(pg_server))


# -- the schema ----------------------------------------------------------------------------


def test_db_status_and_migrate_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_USER_ID", "alice")
    code, before = _cli(tmp_path / "data", "db", "status", "--json")
    assert code == 0
    assert (before["backend"], before["version"]) == ("sqlite", 0)
    assert before["programVersion"] == 9 and "db migrate" in before["state"]
    code, migrated = _cli(tmp_path / "data", "db", "migrate", "--json")
    assert (code, migrated["from"], migrated["to"]) == (0, 0, 9)
    _, after = _cli(tmp_path / "data", "db", "status", "--json")
    assert (after["version"], after["state"]) == (9, "current")


def test_db_status_and_migrate_on_postgresql(
    pg_server: ScratchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_USER_ID", "alice")
    url = pg_server.url(dbname=_empty_database(pg_server))
    _, before = _cli(tmp_path / "data", "db", "status", "--json", url=url)
    assert (before["backend"], before["version"], before["programVersion"]) == (
        "postgresql",
        0,
        len(PG_STEPS),
    )
    code, migrated = _cli(tmp_path / "data", "db", "migrate", "--json", url=url)
    assert (code, migrated["from"], migrated["to"]) == (0, 0, len(PG_STEPS))
    _, after = _cli(tmp_path / "data", "db", "status", "--json", url=url)
    assert after["state"] == "current"
    code, again = _cli(tmp_path / "data", "db", "migrate", "--json", url=url)
    assert (again["from"], again["to"]) == (len(PG_STEPS), len(PG_STEPS))


def test_a_team_database_newer_than_the_program_is_refused(team_url: str, tmp_path: Path) -> None:
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (99)")
    with pytest.raises(SchemaMismatch, match="newer than this crm-tui") as caught:
        PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    assert "99" in caught.value.details and "upgrade crm-tui" in caught.value.details


def test_a_member_cannot_migrate_and_is_told_who_can(
    pg_server: ScratchServer, tmp_path: Path
) -> None:
    dbname = _empty_database(pg_server)
    url = pg_server.url(dbname=dbname)
    PostgresDatabase(DatabaseUrl(url), tmp_path / "owner").close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM schema_migrations WHERE version = {len(PG_STEPS)}")
        conn.execute("DROP ROLE IF EXISTS mona")
        conn.execute("CREATE ROLE mona LOGIN PASSWORD 'pw-mona' IN ROLE crm_agent")
    agent = DatabaseUrl(pg_server.url("mona", "pw-mona", dbname))
    with pytest.raises(SchemaMismatch, match="needs an upgrade") as caught:
        PostgresDatabase(agent, tmp_path / "mona")
    assert "crm-tui db migrate" in caught.value.details


def test_a_database_url_that_is_not_postgresql_is_a_clear_configuration_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, crm_database_url="mysql://ann:canary-Pw-99@db/crm")
    assert "postgresql://" in str(caught.value)
    assert "canary-Pw-99" not in str(caught.value)


# -- moving a SQLite cache in ----------------------------------------------------------------


async def _seed_sqlite(path: Path) -> Database:
    db = Database(path)
    store = CacheStore("alice", db)
    await store.replace_stream("brivity", "contacts", [_contact("brivity", n) for n in range(5)])
    generation = db.new_generation("alice", "topproducer", "contacts")
    db.stage("contacts", generation, [_contact("topproducer", 1)])
    db.commit_import("alice", "topproducer", "contacts", generation, "/x/contacts.csv")
    now = "2026-11-01T00:00:00Z"
    db.add_local_records("alice", "contacts", [{"first_name": "Lou", "last_name": "Local"}], now)
    run = db.start_run("alice", "brivity", now)
    db.add_quarantine("alice", run, "brivity", "contacts", [("missing id", {"name": "x"})], now)
    store.update_status("brivity", last_sync="2026-11-01T00:00:00Z")
    await store.save_status("brivity")
    return db


async def test_db_copy_moves_the_local_crm_and_the_cache_and_refuses_to_mix(
    team_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_USER_ID", "alice")
    data = tmp_path / "data"
    source = await _seed_sqlite(data / "crm.sqlite3")
    want = sorted(r.id for r in source.load_records("alice", "contacts"))
    want_imported = [r.id for r in source.load_records("alice", "contacts", imported=True)]
    source.close()

    code, copied = _cli(data, "db", "copy", "--to", team_url, "--json")
    assert code == 0 and copied["copied"]["local_records"] == 1
    assert copied["copied"]["contacts"] == 6 and copied["copied"]["quarantine"] == 1

    team = PostgresDatabase(DatabaseUrl(team_url), tmp_path / "team")
    assert sorted(r.id for r in team.load_records("alice", "contacts")) == want
    assert [r.id for r in team.load_records("alice", "contacts", imported=True)] == want_imported
    assert [p["first_name"] for p in team.local_records("alice", "contacts")] == ["Lou"]
    assert team.load_statuses("alice")["brivity"].last_sync == "2026-11-01T00:00:00Z"
    (quarantined,) = team.list_quarantine("alice")
    assert quarantined["run_id"] == team.list_runs("alice")[0]["id"]  # mapped to the new run
    team.close()

    code, refused = _cli(data, "db", "copy", "--to", team_url, "--json")
    assert code != 0 and "--replace" in refused["details"]
    code, replaced = _cli(data, "db", "copy", "--to", team_url, "--replace", "--json")
    assert code == 0 and replaced["copied"]["contacts"] == 6
    again = PostgresDatabase(DatabaseUrl(team_url), tmp_path / "team")
    assert sorted(r.id for r in again.load_records("alice", "contacts")) == want  # not doubled
    again.close()


# -- members ---------------------------------------------------------------------------------


def test_members_are_added_listed_and_removed_by_the_owner(
    pg_server: ScratchServer, team_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_USER_ID", "owner")
    data = tmp_path / "data"
    code, missing = _cli(
        data, "db", "member", "add", "nobody", "--position", "agent", "--user-id", "x", "--json",
        url=team_url,
    )  # fmt: skip
    assert code != 0 and "CREATE ROLE" in missing["details"]
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS nina")
        conn.execute("CREATE ROLE nina LOGIN PASSWORD 'pw-nina'")
    code, _ = _cli(
        data, "db", "member", "add", "nina", "--position", "lead", "--user-id", "nina",
        "--team", "north", "--json", url=team_url,
    )  # fmt: skip
    assert code == 0
    _, listed = _cli(data, "db", "member", "list", "--json", url=team_url)
    assert listed["members"] == [
        {"role": "nina", "position": "lead", "user_id": "nina", "team": "north"}
    ]
    with psycopg.connect(team_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_has_role('nina', 'crm_lead', 'MEMBER')").fetchone()[0]
    _, removed = _cli(data, "db", "member", "remove", "nina", "--json", url=team_url)
    assert removed["removed"] is True
    with psycopg.connect(team_url, autocommit=True) as conn:
        assert not conn.execute("SELECT pg_has_role('nina', 'crm_lead', 'MEMBER')").fetchone()[0]


# -- the team's worker -----------------------------------------------------------------------


def test_one_worker_syncs_every_person_and_their_apps_need_no_keys(
    team_url: str, demo_servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = demo_servers.env()
    team = tmp_path / "team"
    team.mkdir()
    (team / "alice.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    bob = {k: v for k, v in env.items() if k.startswith("BRIVITY_")}
    (team / "bob.env").write_text("".join(f"{k}={v}\n" for k, v in bob.items()))
    (team / "notes.txt").write_text("not a person")
    monkeypatch.setenv("CRM_USER_ID", "worker")
    code, result = _cli(tmp_path / "worker", "sync", "--team", str(team), "--json", url=team_url)
    assert code == 0 and set(result["users"]) == {"alice", "bob"}
    assert result["users"]["alice"]["results"]["followupboss"]["contacts"]["success"]
    assert set(result["users"]["bob"]["results"]) == {"brivity", "local"}

    monkeypatch.setenv("CRM_USER_ID", "bob")  # bob's own app: no keys, the team's data
    code, status = _cli(tmp_path / "bob", "status", "--json", url=team_url)
    assert status["status"]["brivity"]["status"] == "idle"  # not "disabled": no keys needed
    assert status["status"]["brivity"]["contactCount"] > 0
    assert status["status"]["followupboss"]["contactCount"] == 0


def test_a_team_folder_without_people_is_a_clear_error(
    team_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_USER_ID", "worker")
    (tmp_path / "empty").mkdir()
    code, result = _cli(tmp_path / "w", "sync", "--team", str(tmp_path / "empty"), "--json")
    assert code != 0 and "USER.env" in result["details"]


# -- live updates across machines ------------------------------------------------------------


async def _until(condition: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_commit_on_another_connection_reaches_an_open_store(
    team_url: str, tmp_path: Path
) -> None:
    here = PostgresDatabase(DatabaseUrl(team_url), tmp_path / "here")
    there = PostgresDatabase(DatabaseUrl(team_url), tmp_path / "there")
    watching = CacheStore("alice", here)
    await watching.load()
    seen_version, seen_change = here.data_version(), here.last_change()

    await CacheStore("alice", here).replace_stream("brivity", "contacts", [_contact("brivity", 1)])
    await asyncio.sleep(0.5)
    assert here.data_version() == seen_version  # its own commit is not another's

    await CacheStore("alice", there).replace_stream(
        "followupboss", "contacts", [_contact("followupboss", 7)]
    )
    assert await _until(lambda: here.data_version() != seen_version)
    changes = here.changes_since("alice", seen_change)
    assert ("contacts", "followupboss") in changes.streams
    await watching.follow(changes)
    assert [c.id for c in watching.contacts("followupboss")] == ["followupboss:7"]
    here.close()
    there.close()


async def test_an_agents_open_app_shows_the_workers_commit_and_nothing_of_others(
    pg_server: ScratchServer, tmp_path: Path
) -> None:
    from crm_tui.app import make_app
    from tests.helpers.env import make_settings
    from tests.helpers.team import MEMBERS, create_roles, role_url
    from tests.helpers.tui import until

    create_roles(pg_server)
    dbname = new_database(pg_server)
    with psycopg.connect(pg_server.url(dbname=dbname), autocommit=True) as conn:
        for role, (position, user_id, team) in MEMBERS.items():
            conn.execute(
                "INSERT INTO crm_members (role_name, position, user_id, team)"
                " VALUES (%s, %s, %s, %s)",
                (role, position, user_id, team),
            )
    worker = PostgresDatabase(DatabaseUrl(role_url(pg_server, dbname, "w")), tmp_path / "w")
    worker.replace_stream("alice", "brivity", "contacts", [_contact("brivity", 1)])
    worker.replace_stream("bob", "brivity", "contacts", [_contact("brivity", 2, user="bob")])
    settings = make_settings(tmp_path, crm_database_url=role_url(pg_server, dbname, "alice"))
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded)
        assert [c.id for c in app.store.contacts()] == ["brivity:1"]
        worker.replace_stream(
            "alice", "brivity", "contacts", [_contact("brivity", 1), _contact("brivity", 3)]
        )
        worker.replace_stream("bob", "brivity", "contacts", [_contact("brivity", 4, user="bob")])

        def shown() -> bool:
            return app.index.search("first3").counts.get("brivity") == 1

        await until(pilot, shown, "the worker's commit to reach alice's open app")
        assert sorted(c.id for c in app.store.contacts()) == ["brivity:1", "brivity:3"]
        assert app.index.search("first4").total == 0  # bob's row: never hers
    worker.close()


async def test_an_open_app_hears_commits_on_its_event_loop(team_url: str, tmp_path: Path) -> None:
    """The app's notices come through psycopg's async connection on its own loop (a
    `notices` worker), not a listener thread; a commit elsewhere reaches it that way."""
    import threading

    from crm_tui.app import make_app
    from tests.helpers.env import make_settings
    from tests.helpers.tui import until

    other = PostgresDatabase(DatabaseUrl(team_url), tmp_path / "other")
    other.replace_stream("alice", "brivity", "contacts", [_contact("brivity", 1)])
    app = make_app(make_settings(tmp_path, crm_database_url=team_url), sync_stale=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded)
        other.replace_stream(
            "alice", "brivity", "contacts", [_contact("brivity", 1), _contact("brivity", 3)]
        )
        await until(pilot, lambda: len(app.store.contacts()) == 2, "the commit to reach it")
        listening = [w for w in app.workers if w.group == "notices" and not w.is_finished]
        threads = [t.name for t in threading.enumerate()]
    other.close()
    assert len(listening) == 1
    assert "crm-db-notices" not in threads


def test_a_store_outlives_its_connection_being_dropped(team_url: str, tmp_path: Path) -> None:
    from crm_tui.store.errors import DatabaseUnavailable

    db = PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    db.replace_stream("alice", "brivity", "contacts", [_contact("brivity", 1)])
    with db._lock:  # the pooled connection the store reads on
        pid = db._conn.backend_pid
    with psycopg.connect(team_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DatabaseUnavailable):  # the statement the server cut off fails...
        list(db.load_records("alice", "contacts"))
    # the pool dropped that session: its pid, which the server may hand to another client
    # whose commits this store must hear of, is no longer taken for one of this store's own
    assert pid not in db._lock.pids
    assert [r.id for r in db.load_records("alice", "contacts")] == ["brivity:1"]  # ...not the next
    db.replace_stream("alice", "brivity", "contacts", [_contact("brivity", 2)])
    assert [r.id for r in db.load_records("alice", "contacts")] == ["brivity:2"]
    db.close()


def test_a_read_never_waits_for_the_same_processs_open_write(team_url: str, tmp_path: Path) -> None:
    """The pool lends each thread its own connection: a reader sees the last commit while a
    writer thread of the same store is still inside its transaction (one shared connection
    would hold the reader until the writer commits)."""
    import threading

    db = PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    db.replace_stream("alice", "brivity", "contacts", [_contact("brivity", 1)])
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction() as conn:
            conn.execute("DELETE FROM contacts WHERE user_id = ?", ("alice",))
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    try:
        seen = [r.id for r in db.load_records("alice", "contacts")]
        with db._lock:
            writer_pids = len(db._lock.pids)
    finally:
        release.set()
        thread.join(10)
    assert seen == ["brivity:1"]  # the committed row: the delete is not committed yet
    assert writer_pids == 2  # two sessions of this store: the writer's and the reader's
    assert list(db.load_records("alice", "contacts")) == []  # and then it is
    db.close()


def test_a_server_restart_fails_one_call_not_one_per_pooled_connection(
    team_url: str, tmp_path: Path
) -> None:
    """(Found in review.) Two threads at once grow the pool to its two; a restart kills
    both. The call that meets the first dead one fails; the pool then checks the idle
    ones, and the next calls work."""
    import threading

    from crm_tui.store.errors import StoreError

    db = PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    together = threading.Barrier(MAX_CONNECTIONS)

    def hold() -> None:
        with db._lock:
            db._conn.execute("SELECT 1").fetchone()
            together.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(MAX_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    dead = set(db._lock.pids)
    assert len(dead) == MAX_CONNECTIONS == 2
    with psycopg.connect(team_url, autocommit=True) as admin:  # what a restart does to them
        for pid in dead:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    failures = 0
    for _ in range(4):
        try:
            db.load_statuses("alice")
        except StoreError:
            failures += 1
    assert failures == 1
    assert not dead & db._lock.pids  # none of the dead sessions' pids still taken as its own
    db.close()


def test_a_closed_team_store_fails_with_the_stores_own_error(team_url: str, tmp_path: Path):
    """(Found in review.) A reader still running as the app exits meets the closed pool:
    the store's error, which callers handle, not psycopg_pool's."""
    from crm_tui.store.errors import DatabaseUnavailable

    db = PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    db.close()
    with pytest.raises(DatabaseUnavailable, match="closed"):
        db.load_statuses("alice")


def test_a_durable_store_asks_every_lent_connection_to_wait_for_the_disk(
    team_url: str, tmp_path: Path
) -> None:
    import threading

    db = PostgresDatabase(DatabaseUrl(team_url), tmp_path)
    db.durable()
    seen: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # keeps one connection lent, so the main thread gets another
        with db._lock:
            seen.append(db._conn.execute("SHOW synchronous_commit").fetchone()[0])
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    with db._lock:
        seen.append(db._conn.execute("SHOW synchronous_commit").fetchone()[0])
    release.set()
    thread.join(10)
    assert seen == ["on", "on"]  # the scratch server's default is off
    db.close()


def test_doctor_checks_the_team_database_and_whose_rows_the_role_reads(
    pg_server: ScratchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.team import MEMBERS, create_roles, role_url

    create_roles(pg_server)
    dbname = new_database(pg_server)
    with psycopg.connect(pg_server.url(dbname=dbname), autocommit=True) as conn:
        position, user_id, team = MEMBERS["alice"]
        conn.execute(
            "INSERT INTO crm_members (role_name, position, user_id, team) VALUES (%s, %s, %s, %s)",
            ("alice", position, user_id, team),
        )

    def checks(user: str, role: str) -> tuple[int, dict[str, dict[str, str]]]:
        monkeypatch.setenv("CRM_USER_ID", user)
        url = role_url(pg_server, dbname, role)
        code, report = _cli(tmp_path / user, "doctor", "--json", url=url)
        return code, {c["name"]: c for c in report["checks"]}

    code, found = checks("alice", "alice")
    assert code == 0 and found["schema"]["status"] == "ok"
    assert found["role"]["status"] == "ok" and "alice's among them" in found["role"]["message"]
    code, found = checks("bob", "alice")  # her role, someone else's user id
    assert code != 0 and found["role"]["status"] == "failed"
    assert "may not read bob's rows" in found["role"]["message"]


def test_tls_settings_in_the_url_reach_libpq(pg_server: ScratchServer, tmp_path: Path) -> None:
    from crm_tui.store.errors import DatabaseUnavailable
    from tests.helpers.team import create_roles, role_url

    create_roles(pg_server)
    url = role_url(pg_server, new_database(pg_server), "alice")
    # the scratch server has no TLS: a URL that requires it is refused by libpq itself
    with pytest.raises(DatabaseUnavailable, match="SSL") as caught:
        PostgresDatabase(DatabaseUrl(f"{url}?sslmode=require"), tmp_path)
    assert "pw-alice" not in str(caught.value)
    prefer = PostgresDatabase(DatabaseUrl(f"{url}?sslmode=prefer"), tmp_path)  # falls back
    assert prefer.schema_version == len(PG_STEPS)
    prefer.close()


def test_both_back_ends_hold_every_field_of_the_models(open_db: Any) -> None:
    """A field added to a model needs a schema step on each back end: here is where one
    that was forgotten shows."""
    from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS

    db = open_db()
    for kind, fields in (("contacts", CONTACT_FIELDS), ("deals", DEAL_FIELDS)):
        cursor = db._conn.execute(f"SELECT * FROM {kind} LIMIT 0")
        columns = {d[0] for d in cursor.description}
        assert set(fields) <= columns, kind


def test_a_scratch_server_whose_probed_port_was_taken_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the probe and the server's bind another process may take the port (CI runs
    several test workers): the start tries a new one rather than failing the session."""
    from crm_tui.team import scratch_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        real = scratch_server._free_port
        monkeypatch.setattr(scratch_server, "_free_port", lambda: next(ports, None) or real())
        with scratch_server.running() as server:
            assert server.port != taken.getsockname()[1]
            with psycopg.connect(server.url(), connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_agent_without_keys_is_told_the_worker_syncs_not_to_add_keys(
    team_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a team database an agent has no vendor keys by design: a sync of a vendor, and
    doctor, say the team's worker syncs it, not "missing FUB_API_KEY"."""
    from crm_tui.doctor import source_checks
    from crm_tui.sync.shown import WORKER_SYNCS

    monkeypatch.setenv("CRM_USER_ID", "alice")
    head = ["--data-dir", str(tmp_path / "a"), "--database-url", team_url]
    result = CliRunner().invoke(main, [*head, "sync", "followupboss"])
    assert result.exit_code == 3
    assert "the team's worker syncs it" in result.stderr and "FUB_API_KEY" not in result.stderr
    settings = load_settings(None, crm_data_dir=tmp_path / "a", crm_database_url=team_url)
    rows = {c.name: c.message for c in source_checks(settings)}
    assert rows["source followupboss"] == WORKER_SYNCS

    alone = load_settings(None, crm_data_dir=tmp_path / "b")  # one person's cache: add keys
    assert "FUB_API_KEY" in {c.name: c.message for c in source_checks(alone)}["source followupboss"]


async def test_an_agents_connections_screen_says_the_worker_syncs_its_sources(
    team_url: str, tmp_path: Path
) -> None:
    from textual.widgets import DataTable, Static

    from crm_tui.app import make_app
    from crm_tui.screens.connections import ConnectionsScreen
    from tests.helpers.env import make_settings
    from tests.helpers.tui import cells, until

    app = make_app(make_settings(tmp_path, crm_database_url=team_url), sync_stale=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded)
        status = " ".join(str(s.render()) for s in app.screen.query(Static))
        assert "Not synced yet by the team's worker (no keys needed here)" in status
        await pilot.press("f5")
        await until(pilot, lambda: isinstance(app.screen, ConnectionsScreen), "Connections")
        rows = {row[0]: row[1] for row in cells(app.screen.query_one(DataTable))}
        assert rows["Follow Up Boss"] == "by the worker"
        detail = " ".join(str(s.render()) for s in app.screen.query(Static))
        assert "the team's worker syncs it" in detail and "needs:" not in detail
