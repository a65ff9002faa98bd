"""Leases and owners: who may write a stream, who is dead, what a commit may delete."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crm_tui.models import Contact
from crm_tui.store import CacheStore, Database
from crm_tui.store.db import SCHEMA_VERSION
from crm_tui.store.errors import DatabaseUnavailable, LeaseLost, StreamBusy
from crm_tui.store.leases import Holder, Lease
from crm_tui.store.owners import LEASE_TTL_SECONDS, Owner, is_alive, start_time
from crm_tui.store.pg_connection import PgConnection
from tests.helpers.leases import contact, dead_process, plant_lease, plant_owner


def ids(db: Database, imported: bool = False) -> list[str]:
    return sorted(r.id for r in db.load_records("alice", "contacts", imported))


def names(store: CacheStore) -> dict[str, str | None]:
    return {r.id: r.first_name for r in store.contacts("brivity")}


def test_a_second_lease_on_a_stream_names_its_holder_until_released(open_db):
    db, other = open_db(), open_db()
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    held = other.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(held, Holder)
    assert held.describe().startswith(f"the sync in process {os.getpid()} (since ")
    assert isinstance(other.acquire_lease("alice", "brivity", "deals", "sync"), Lease)
    assert isinstance(other.acquire_lease("bob", "brivity", "contacts", "sync"), Lease)
    db.release_lease(lease)
    assert isinstance(other.acquire_lease("alice", "brivity", "contacts", "sync"), Lease)


@pytest.mark.skipif(sys.platform != "linux", reason="process start times come from /proc")
def test_owners_are_judged_by_pid_and_start_time_here_and_by_heartbeat_elsewhere():
    me = Owner.this_process()
    pid, started = dead_process()
    gone = Owner("x", me.host, me.machine, pid, started)
    reused = Owner("y", me.host, me.machine, 1, "12345")  # PID 1 lives, but started earlier
    parent = Owner("z", me.host, me.machine, os.getppid(), start_time(os.getppid()))
    far = Owner("w", "elsewhere", "another-boot/1", 4242, "1")
    now = time.time()
    assert [is_alive(o, now) for o in (me, gone, reused, parent)] == [True, False, False, True]
    assert is_alive(far, now - 1, now) is True
    assert is_alive(far, now - LEASE_TTL_SECONDS - 1, now) is False


@pytest.mark.skipif(sys.platform != "linux", reason="process start times come from /proc")
def test_a_zombie_holds_nothing():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(child.pid)
    time.sleep(0.5)  # exited, not yet reaped: a zombie
    me = Owner.this_process()
    try:
        assert is_alive(Owner("z", me.host, me.machine, child.pid, started), time.time()) is False
    finally:
        child.wait()


def test_a_dead_holders_lease_is_taken_over_and_its_rows_swept(open_db):
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact(1)])
    me = Owner.this_process()
    pid, started = dead_process()
    dead = Owner("dead", me.host, me.machine, pid, started)
    plant_owner(db, dead, time.time())
    generation = plant_lease(db, dead, generation_rows=3)
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    leftover = db._conn.execute(
        "SELECT count(*) FROM contacts WHERE generation = ?", (generation,)
    ).fetchone()
    assert leftover == (0,)
    assert db._conn.execute("SELECT count(*) FROM pending_generations").fetchone() == (0,)
    assert ids(db) == ["brivity:1"]


def test_a_silent_owner_on_another_host_keeps_its_lease_until_the_ttl(open_db):
    db = open_db()
    far = Owner("far", "other-host", "other-boot/1", 4242, "7")
    plant_owner(db, far, time.time())
    plant_lease(db, far)
    held = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(held, Holder) and held.describe().startswith("the sync in process 4242 on")
    db._conn.execute("UPDATE owners SET heartbeat_at = ?", (time.time() - LEASE_TTL_SECONDS - 5,))
    assert isinstance(db.acquire_lease("alice", "brivity", "contacts", "sync"), Lease)


def test_a_process_that_lost_its_lease_cannot_commit(open_db):
    """Presumed dead (its heartbeat stopped), then woken: the takeover's data stands."""
    sleeper, other = open_db(), open_db()
    lease = sleeper.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    generation = sleeper.new_generation("alice", "brivity", "contacts")
    sleeper.stage("contacts", generation, [contact(1, "Stale")])
    # another process judged it dead and took the stream over
    sleeper._conn.execute("UPDATE leases SET token = 'taken', owner = 'someone'")
    other.replace_stream("alice", "brivity", "contacts", [contact(2, "Fresh")])
    with pytest.raises(LeaseLost):
        sleeper.commit_staged("alice", "brivity", "contacts", generation, lease)
    assert ids(other) == ["brivity:2"]


def test_a_commit_keeps_what_live_writers_are_still_writing(open_db):
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact(1)])
    importing = db.new_generation("alice", "brivity", "contacts")  # an import, in progress
    db.stage("contacts", importing, [contact(7, "Imported")])
    db.replace_stream("alice", "brivity", "contacts", [contact(2)])
    assert db.commit_import("alice", "brivity", "contacts", importing, "/x.csv") == 1
    assert ids(db) == ["brivity:2"] and ids(db, imported=True) == ["brivity:7"]


def test_heartbeats_beat_while_something_is_held_and_the_owner_goes_after(open_db, monkeypatch):
    monkeypatch.setattr("crm_tui.store.leases.HEARTBEAT_SECONDS", 0.05)
    db = open_db()
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    first = db._conn.execute("SELECT heartbeat_at FROM owners").fetchone()[0]
    time.sleep(0.3)
    later = db._conn.execute("SELECT heartbeat_at FROM owners").fetchone()[0]
    assert later > first
    db.release_lease(lease)
    assert db._conn.execute("SELECT count(*) FROM owners").fetchone() == (0,)


async def test_a_close_waits_for_a_generation_drawn_for_a_cancelled_sync(open_db):
    """A sync cancelled (SIGTERM) while the writer thread draws its generation never hears
    the number: the close must release it after the draw, not before."""
    import asyncio
    import threading

    db = open_db()
    go = threading.Event()

    def draw() -> int:
        go.wait(10)
        return db.new_generation("alice", "brivity", "contacts")

    task = asyncio.ensure_future(db.in_writer(draw))
    await asyncio.sleep(0.05)
    task.cancel()
    threading.Timer(0.3, go.set).start()
    db.close()  # while the draw waits
    again = open_db()
    with again._lock:
        left = again._conn.execute("SELECT count(*) FROM pending_generations").fetchone()[0]
    assert left == 0
    assert go.is_set()


@pytest.mark.parametrize("cancels", [1, 2])
async def test_a_sync_cancelled_while_its_generation_is_drawn_leaves_none_pending(open_db, cancels):
    """SIGTERM while the writer thread draws a sync's generation: the number the sync never
    heard is dropped, not left pending under a live owner (found by `sync --team --watch`
    stopped under load); cancelled again while that drop waits (a timeout, then the exit),
    the drop still happens (found in review)."""
    import asyncio
    import threading

    db = open_db()
    store = CacheStore("alice", db)
    go = threading.Event()
    draw = db.new_generation

    def slow_draw(*args: Any) -> int:
        go.wait(10)
        return draw(*args)

    db.new_generation = slow_draw  # type: ignore[method-assign]
    task = asyncio.ensure_future(store.draw_generation("brivity", "contacts"))
    for _ in range(cancels):
        await asyncio.sleep(0.05)
        task.cancel()
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.in_writer(lambda: None)  # the writer thread done with the draw and the drop
    with db._lock:
        pending = db._conn.execute("SELECT count(*) FROM pending_generations").fetchone()[0]
        owners = db._conn.execute("SELECT count(*) FROM owners").fetchone()[0]
    assert (pending, owners) == (0, 0)


def test_a_beat_that_fails_does_not_stop_the_heartbeat(open_db, backing, monkeypatch):
    """A busy SQLite file, or a PostgreSQL statement that timed out: the next beat goes on,
    else the owner would look dead to other hosts while it still writes."""
    monkeypatch.setattr("crm_tui.store.leases.HEARTBEAT_SECONDS", 0.05)
    db = open_db()
    if backing.kind == "sqlite":
        beats = _FailingBeats(db._conn.execute, sqlite3.OperationalError("database is locked"))
        db._conn = _Connection(db._conn, beats)
    else:  # every connection the pool lends
        beats = _FailingBeats(
            PgConnection.execute, DatabaseUnavailable("Cannot reach the team database", "x")
        )
        monkeypatch.setattr(PgConnection, "execute", lambda conn, *a: beats(conn, *a))
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    with db._lock:
        first = db._conn.execute("SELECT heartbeat_at FROM owners").fetchone()[0]
    time.sleep(0.4)
    assert beats.failed >= 1
    with db._lock:
        assert db._conn.execute("SELECT heartbeat_at FROM owners").fetchone()[0] > first
    db.release_lease(lease)


class _FailingBeats:
    """An `execute` whose first two heartbeats fail."""

    def __init__(self, execute: Callable[..., Any], failure: Exception) -> None:
        self._execute, self._failure, self.failed = execute, failure, 0

    def __call__(self, *args: Any) -> Any:
        sql = next(a for a in args if isinstance(a, str))
        if sql.startswith("UPDATE owners SET heartbeat_at") and self.failed < 2:
            self.failed += 1
            raise self._failure
        return self._execute(*args)


class _Connection:
    def __init__(self, conn: Any, execute: Callable[..., Any]) -> None:
        self._conn, self.execute = conn, execute

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_the_store_waits_for_a_lease_and_says_who_holds_it(open_db):
    holder_db = open_db()
    store = CacheStore("alice", open_db())
    lease = holder_db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    with pytest.raises(StreamBusy) as busy:
        async with store.lease("brivity", "contacts", "sync", wait=False):
            pass
    assert f"process {os.getpid()}" in busy.value.details
    seen: list[str] = []

    def waiting(holder: Holder) -> None:
        seen.append(holder.describe())
        if len(seen) == 2:
            holder_db.release_lease(lease)

    async with store.lease("brivity", "contacts", "sync", on_wait=waiting) as mine:
        assert isinstance(mine, Lease)
    assert len(seen) == 2


# -- imports: a layer of their own -----------------------------------------------------------


async def import_file(store: CacheStore, path: str, records: list[Contact]) -> int:
    db = store.db
    assert db is not None
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, records)
    return db.commit_import("alice", "brivity", "contacts", generation, path)


async def test_an_imported_row_shows_over_the_synced_one_and_outlives_every_sync(open_db):
    store = CacheStore("alice", open_db())
    await store.replace_stream("brivity", "contacts", [contact(1, "Synced"), contact(2, "Two")])
    assert await import_file(store, "/a.csv", [contact(1, "Imported"), contact(3, "Three")]) == 2
    reader = CacheStore("alice", open_db())
    reader.load_sync()
    assert names(reader) == {"brivity:1": "Imported", "brivity:2": "Two", "brivity:3": "Three"}
    await reader.replace_stream("brivity", "contacts", [contact(1, "Resynced")])
    assert names(reader) == {"brivity:1": "Imported", "brivity:3": "Three"}  # memory
    again = CacheStore("alice", open_db())
    again.load_sync()
    assert names(again) == names(reader)  # and the database


async def test_a_file_imported_again_replaces_its_earlier_rows_and_later_imports_win(open_db):
    store = CacheStore("alice", open_db())
    await import_file(store, "/a.csv", [contact(1, "A1"), contact(2, "A2")])
    await import_file(store, "/b.csv", [contact(2, "B2")])
    await import_file(store, "/a.csv", [contact(1, "A1 again")])
    store.load_sync()
    assert names(store) == {"brivity:1": "A1 again", "brivity:2": "B2"}


async def test_clearing_a_source_drops_its_imports_and_counts_them(open_db):
    store = CacheStore("alice", open_db())
    await store.replace_stream("brivity", "contacts", [contact(1)])
    await import_file(store, "/a.csv", [contact(5), contact(6)])
    store.load_sync()
    assert await store.clear("brivity") == 2
    assert store.count("contacts", "brivity") == 0
    reloaded = CacheStore("alice", store.db)
    reloaded.load_sync()
    assert reloaded.count("contacts", "brivity") == 0


def test_migrating_from_schema_3_keeps_every_row(tmp_path: Path):
    """SQLite-only: a file from an older SQLite schema."""
    import sqlite3

    from crm_tui.store.db import MIGRATIONS, _statements

    path = tmp_path / "v3.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:3]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO contacts (id, source, remote_id, user_id, first_name, tags, deleted,"
        " generation) VALUES ('brivity:1', 'brivity', '1', 'alice', 'Ann', '', 0, 5)"
    )
    conn.execute("INSERT INTO stream_generations VALUES ('alice', 'contacts', 'brivity', 5)")
    conn.close()
    db = Database(path)
    assert db.schema_version == SCHEMA_VERSION
    assert ids(db) == ["brivity:1"]
    db.replace_stream("alice", "brivity", "contacts", [contact(2)])
    assert ids(db) == ["brivity:2"]


# -- what the review found ------------------------------------------------------------------


def test_a_cancel_that_lands_after_a_commit_drops_nothing(open_db):
    """The engine's `finally` drops a generation it thinks uncommitted; if the commit went
    through first (a cancel arriving during it), the drop must leave it alone."""
    db = open_db()
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, [contact(1), contact(2)])
    db.commit_import("alice", "brivity", "contacts", generation, "/a.csv")
    db.drop_staged("alice", "brivity", "contacts", generation)
    assert ids(db, imported=True) == ["brivity:1", "brivity:2"]
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(lease, Lease)
    synced = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", synced, [contact(3)])
    db.commit_staged("alice", "brivity", "contacts", synced, lease)
    db.drop_staged("alice", "brivity", "contacts", synced)
    assert ids(db) == ["brivity:3"]


def test_an_import_swept_as_dead_commits_nothing(open_db):
    importer, other = open_db(), open_db()
    generation = importer.new_generation("alice", "brivity", "contacts")
    importer.stage("contacts", generation, [contact(1)])
    # another process judged the importer dead and swept what it had written
    with other.transaction() as conn:
        other._delete_generation(conn, "contacts", "alice", "brivity", generation)
    importer.stage("contacts", generation, [contact(2)])
    with pytest.raises(LeaseLost):
        importer.commit_import("alice", "brivity", "contacts", generation, "/a.csv")
    assert ids(other, imported=True) == []
    assert other._conn.execute("SELECT count(*) FROM imports").fetchone() == (0,)


@pytest.mark.skipif(sys.platform != "linux", reason="process start times come from /proc")
def test_an_owner_with_this_pid_but_another_start_is_dead():
    """A killed container's PID 1 seen from the next container, in a namespace whose
    number came back: the same PID and machine, another start time."""
    me = Owner.this_process()
    earlier = Owner("not-mine", me.host, me.machine, os.getpid(), "1")
    assert is_alive(earlier, time.time()) is False
    assert is_alive(me, 0.0) is True


def test_a_process_swept_once_is_not_left_without_an_owner(open_db):
    app, cron = open_db(), open_db()
    generation = app.new_generation("alice", "brivity", "contacts")
    with cron.transaction() as conn:  # the app was judged dead once, and swept
        cron._delete_generation(conn, "contacts", "alice", "brivity", generation)
        conn.execute("DELETE FROM owners")
    app.drop_staged("alice", "brivity", "contacts", generation)
    lease = app.acquire_lease("alice", "brivity", "deals", "sync")
    assert isinstance(lease, Lease)
    assert isinstance(cron.acquire_lease("alice", "brivity", "deals", "sync"), Holder)


def test_a_read_sees_one_commit_even_if_another_lands_between_its_statements(open_db, monkeypatch):
    reader, syncer = open_db(), open_db()
    syncer.replace_stream("alice", "brivity", "contacts", [contact(i) for i in range(100)])
    pointers = Database._generations

    def commit_in_between(self: Database, user_id: str, kind: str) -> dict[str, int]:
        found = pointers(self, user_id, kind)
        if self is reader:
            syncer.replace_stream("alice", "brivity", "contacts", [contact(i) for i in range(50)])
        return found

    monkeypatch.setattr(Database, "_generations", commit_in_between)
    assert len(list(reader.load_records("alice", "contacts"))) == 100


def test_what_a_command_still_holds_when_it_ends_is_released_by_its_close(
    backing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command closes its database at the end, however it ended: a lease (or a
    pending generation) some path failed to release goes with the command, not at the
    next process's sweep of a dead owner."""
    from click.testing import CliRunner

    from crm_tui.cli import main
    from crm_tui.cli.runtime import Runtime

    monkeypatch.setenv("CRM_USER_ID", "alice")
    for name, value in backing.env().items():
        monkeypatch.setenv(name, value)
    rt = Runtime(data_dir=backing.data_dir)  # the command's runtime, its store opened early
    held = rt.database.acquire_lease("alice", "brivity", "contacts", "sync")
    assert isinstance(held, Lease)  # as if a command's path forgot to release it
    head = ["--data-dir", str(backing.data_dir)]
    assert CliRunner().invoke(main, [*head, "status", "--json"], obj=rt).exit_code == 0
    assert backing.open().leases("alice") == []
