from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from decimal import Decimal

import pytest

from crm_tui.heap import dismantle, release_gradually
from crm_tui.models import Contact, Deal, SourceStatus, SyncState
from crm_tui.store import CacheStore, Database, StoreChange
from crm_tui.store.db import MIGRATIONS, SCHEMA_VERSION, _statements


@pytest.fixture
def store(open_db):
    """On each back end (the conftest's is SQLite's alone)."""
    return CacheStore("alice", open_db())


def contact(source: str, n: int, user: str = "alice", **extra) -> Contact:
    return Contact(
        id=f"{source}:{n}",
        source=source,
        remote_id=str(n),
        user_id=user,
        first_name=f"First{n}",
        **{"last_name": "Last", **extra},
    )


def deal(source: str, n: int, amount: str = "1250000.55") -> Deal:
    return Deal(
        id=f"{source}:{n}",
        source=source,
        remote_id=str(n),
        user_id="alice",
        name=f"{n} Main St",
        amount=Decimal(amount),
        close_date="2026-12-01",
        probability=40,
        raw='{"price": "1250000.55", "nested": {"a": [1, 2]}}',
    )


async def test_replace_is_atomic_for_a_concurrent_reader(store):
    await store.replace_stream("brivity", "contacts", [contact("brivity", i) for i in range(500)])
    seen: set[frozenset[str]] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            ids = frozenset(r.last_name for r in store.contacts("brivity"))
            seen.add(ids)
            time.sleep(0)  # let the writer have the GIL too

    thread = threading.Thread(target=reader)
    thread.start()
    for generation in range(20):
        fresh = [contact("brivity", i) for i in range(500)]
        for record in fresh:
            record.last_name = f"gen{generation}"
        await store.replace_stream("brivity", "contacts", fresh)
    stop.set()
    thread.join()
    # Every read saw one generation whole: one distinct last name, never a mix.
    assert seen
    assert all(len(names) == 1 for names in seen), [n for n in seen if len(n) > 1][:1]


async def test_subscribers_hear_once_per_batch_and_can_leave(store):
    heard: list[StoreChange] = []
    unsubscribe = store.subscribe(heard.append)

    await store.replace_stream(
        "followupboss", "contacts", [contact("followupboss", i) for i in range(1000)]
    )
    await store.upsert("contacts", [contact("followupboss", i) for i in range(5)])
    await store.delete("contacts", ["followupboss:1", "followupboss:2"])
    assert [(c.source, c.kinds, c.ids is None) for c in heard] == [
        ("followupboss", ("contacts",), True),
        ("followupboss", ("contacts",), False),
        ("followupboss", ("contacts",), False),
    ]
    assert heard[2].ids == frozenset({"followupboss:1", "followupboss:2"})

    unsubscribe()
    await store.clear()
    assert len(heard) == 3


async def test_snapshot_round_trip_keeps_every_field(open_db):
    db = open_db()
    store = CacheStore("alice", db)
    c = contact(
        "brivity",
        7,
        email="a@b.co",
        phone="(555) 123-4567",
        tags=("buyer", "vip"),
        city="Austin",
        remote_updated="2026-01-02T03:04:05Z",
        deleted=True,
        raw='{"id": 7, "custom": {"x": [1, null, "é"]}}',
    )
    d = deal("followupboss", 3)
    await store.replace_stream("brivity", "contacts", [c])
    await store.replace_stream("followupboss", "deals", [d])
    store.update_status(
        "brivity", state=SyncState.ERROR, last_error="boom", last_sync="2026-01-01T00:00:00Z"
    )
    await store.save_status("brivity")
    db.close()

    reopened = CacheStore("alice", open_db())
    await reopened.load()
    assert reopened.contacts() == [c]
    assert reopened.deals() == [d]
    loaded_deal = reopened.deals()[0]
    assert isinstance(loaded_deal.amount, Decimal) and loaded_deal.amount == Decimal("1250000.55")
    assert reopened.contacts()[0].metadata == {"id": 7, "custom": {"x": [1, None, "é"]}}
    status = reopened.status("brivity")
    assert (status.state, status.last_error, status.contact_count) == (SyncState.ERROR, "boom", 1)


async def test_a_syncing_state_is_never_persisted(store):
    store.update_status("brivity", state=SyncState.SYNCING)
    await store.save_status("brivity")
    assert store.db.load_statuses("alice")["brivity"].state is SyncState.IDLE


async def test_users_never_see_each_other(open_db):
    db = open_db()
    alice, bob = CacheStore("alice", db), CacheStore("bob", db)
    await alice.replace_stream("brivity", "contacts", [contact("brivity", 1, user="alice")])
    await bob.replace_stream("brivity", "contacts", [contact("brivity", 2, user="bob")])
    fresh_alice = CacheStore("alice", db)
    await fresh_alice.load()
    assert [c.id for c in fresh_alice.contacts()] == ["brivity:1"]
    await bob.clear()
    again = CacheStore("alice", db)
    await again.load()
    assert again.count("contacts") == 1


async def test_clear_one_source_keeps_the_others(store):
    await store.replace_stream("brivity", "contacts", [contact("brivity", 1)])
    await store.replace_stream("followupboss", "contacts", [contact("followupboss", 1)])
    await store.clear("brivity")
    assert [c.source for c in store.contacts()] == ["followupboss"]
    reloaded = CacheStore("alice", store.db)
    await reloaded.load()
    assert [c.source for c in reloaded.contacts()] == ["followupboss"]


async def test_cached_data_has_the_guide_shape(store):
    await store.replace_stream("brivity", "contacts", [contact("brivity", 1)])
    await store.replace_stream("brivity", "deals", [deal("brivity", 1)])
    data = store.get_cached_data("brivity")
    assert set(data) == {"brivity"}
    entry = data["brivity"]
    assert set(entry) == {"contacts", "deals", "lastSync", "syncStatus"}
    assert entry["contacts"][0]["first_name"] == "First1"
    assert entry["deals"][0]["amount"] == "1250000.55"
    assert entry["syncStatus"] == "idle"
    assert set(store.get_cached_data()) >= {"brivity", "topproducer", "followupboss", "local"}


def test_migrates_from_version_zero(tmp_path):
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()  # an empty database: user_version 0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0
    db = Database(path)
    assert db.schema_version == SCHEMA_VERSION
    tables = {r[0] for r in db._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "contacts",
        "deals",
        "sync_runs",
        "quarantine",
        "bookmarks",
        "source_status",
        "local_records",
    } <= tables
    db.close()
    assert Database(path).schema_version == SCHEMA_VERSION  # re-opening migrates nothing


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="newer crm-tui"):
        Database(path)


def test_files_and_dirs_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        db = Database(tmp_path / "deep" / "data" / "crm.sqlite3")
        asyncio.run(
            CacheStore("alice", db).replace_stream("brivity", "contacts", [contact("brivity", 1)])
        )
        db.close()
    finally:
        os.umask(old)
    folder = tmp_path / "deep" / "data"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_status_guide_shape():
    status = SourceStatus("brivity", contact_count=3)
    assert status.to_guide() == {
        "status": "idle",
        "lastSync": None,
        "contactCount": 3,
        "dealCount": 0,
        "lastError": None,
    }


async def test_stream_versions_move_only_with_their_stream(store):
    before = store.stream_version("contacts", "brivity")
    other = store.stream_version("contacts", "followupboss")
    await store.replace_stream("brivity", "contacts", [contact("brivity", 1)])
    after = store.stream_version("contacts", "brivity")
    assert after != before
    assert store.stream_version("contacts", "followupboss") == other
    await store.upsert("contacts", [contact("brivity", 2)])
    upserted = store.stream_version("contacts", "brivity")
    assert upserted != after
    store.update_status("brivity", last_error="x")  # status only: the records did not move
    assert store.stream_version("contacts", "brivity") == upserted


def test_release_and_dismantle_empty_what_they_are_given():
    items, index = list(range(10_000)), {i: str(i) for i in range(10_000)}
    dismantle(items, index)
    assert items == [] and index == {}
    later = list(range(5_000))
    release_gradually(later, after=0.01)
    deadline = time.monotonic() + 5
    while later and time.monotonic() < deadline:
        time.sleep(0.01)
    assert later == []


def _ids(db: Database, kind="contacts", user="alice") -> list[str]:
    return sorted(r.id for r in db.load_records(user, kind))


def test_migrates_version_two_rows_into_generations(tmp_path):
    """A database written before generations keeps every row, visible, and later refreshes
    and edits of it behave as in a new one."""
    path = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.executemany(
        "INSERT INTO contacts (id, source, remote_id, user_id, first_name, tags, deleted)"
        " VALUES (?, ?, ?, 'alice', ?, '', 0)",
        [("brivity:1", "brivity", "1", "Ann"), ("local:7", "local", "7", "Bo")],
    )
    conn.close()
    db = Database(path)
    assert db.schema_version == SCHEMA_VERSION == 9
    assert _ids(db) == ["brivity:1", "local:7"]
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", 2)])
    db.upsert_records("contacts", [contact("local", 8)])
    assert _ids(db) == ["brivity:2", "local:7", "local:8"]
    db.delete_records("alice", "contacts", ["local:7"])
    assert _ids(db) == ["brivity:2", "local:8"]


def test_a_staged_refresh_is_invisible_until_committed_and_dropped_cleanly(open_db):
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", 1)])
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, [contact("brivity", 2), contact("brivity", 3)])
    assert _ids(db) == ["brivity:1"]  # another process loading now sees the old stream
    db.drop_staged("alice", "brivity", "contacts", generation)
    assert db._conn.execute("SELECT count(*) FROM contacts").fetchone() == (1,)
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, [contact("brivity", 4, last_name="Old")])
    db.stage("contacts", generation, [contact("brivity", 4, last_name="New")])
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    assert db.commit_staged("alice", "brivity", "contacts", generation, lease) == 1
    assert [r.last_name for r in db.load_records("alice", "contacts")] == ["New"]


def test_rows_left_by_a_crashed_refresh_stay_hidden_and_go_at_the_next_commit(open_db):
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", 1)])
    db.stage("contacts", db.new_generation("alice", "brivity", "contacts"), [contact("brivity", 9)])
    db.close()
    db = open_db()
    assert _ids(db) == ["brivity:1"]
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", 2)])
    assert _ids(db) == ["brivity:2"]
    assert db._conn.execute("SELECT count(*) FROM contacts").fetchone() == (1,)


def test_generations_are_never_reused(open_db):
    first = open_db().new_generation("alice", "brivity", "contacts")
    again = open_db()
    made = [again.new_generation("alice", "brivity", "contacts") for _ in range(3)]
    assert made == [first + 1, first + 2, first + 3]


def test_clear_during_a_refresh_keeps_the_refresh_rows(open_db):
    """Clearing drops what is visible; a refresh still running commits in full after it."""
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", 1)])
    db.upsert_records("contacts", [contact("local", 1)])
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, [contact("brivity", 2)])
    db.clear("alice")
    assert _ids(db) == []
    lease = db.acquire_lease("alice", "brivity", "contacts", "sync")
    db.commit_staged("alice", "brivity", "contacts", generation, lease)
    assert _ids(db) == ["brivity:2"]


async def test_writes_run_on_one_writer_thread(open_db):
    db = open_db()
    main = threading.get_native_id()
    first = await db.in_writer(threading.get_native_id)
    second = await db.in_writer(threading.get_native_id)
    assert first == second != main
    writer_thread = await db.in_writer(threading.current_thread)
    assert writer_thread.name.startswith("crm-db-writer")
    db.close()
    assert not writer_thread.is_alive()


def test_a_database_at_the_shipped_version_6_gains_the_inbox_claim_columns(tmp_path):
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:6]:  # as a cache made by the release with schema 6
        for statement in _statements(migration):
            conn.execute(statement)
    conn.execute("PRAGMA user_version=6")
    conn.commit()
    conn.close()
    Database(path).close()
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(webhook_inbox)")}
    assert {"tried_at", "claimed_by", "heartbeat_at"} <= columns
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_records_come_back_in_the_same_order_on_either_back_end(open_db):
    """One stream's rows in id order (its key's); every stream's, and a stream's lines, in
    the order written, a replaced row moved to the end; new imported ids in id order."""
    db = open_db()
    db.replace_stream("alice", "brivity", "contacts", [contact("brivity", n) for n in (3, 1, 4, 2)])
    db.replace_stream("alice", "lofty", "contacts", [contact("lofty", 5)])
    db.upsert_records("contacts", [contact("brivity", 1, last_name="Moved")])
    db.upsert_records("contacts", [contact("brivity", 0)])
    generation = db.new_generation("alice", "brivity", "contacts")
    db.stage("contacts", generation, [contact("brivity", n) for n in (9, 7, 8)])
    db.commit_import("alice", "brivity", "contacts", generation, "/a.csv")

    def ids(*args: object) -> list[str]:
        return [r.id for r in db.load_records("alice", "contacts", *args)]

    assert ids(False, "brivity") == [f"brivity:{n}" for n in (0, 1, 2, 3, 4)]
    assert ids() == ["brivity:3", "brivity:4", "brivity:2", "lofty:5", "brivity:1", "brivity:0"]
    assert ids(True) == ids(True, "brivity") == ["brivity:7", "brivity:8", "brivity:9"]
    lines = db.read_stream_lines(
        "alice", "contacts", "brivity", lambda _, rows: [r.split(b"\x1e")[0] for r in rows]
    )
    assert lines == [f"brivity:{n}".encode() for n in (3, 4, 2, 1, 0, 7, 8, 9)]
