"""A stream as a view over its records artifact: changes laid over it copy-on-write, read
by id and by position as a dict of the same records would be; the store's writes, reads
and `settle` over such views."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable

import pytest

from crm_tui.models import Contact
from crm_tui.store import CacheStore, Database, stream_loading
from crm_tui.store.artifacts import root_beside
from crm_tui.store.stream_view import ChainedRecords, StreamView
from tests.helpers.records import cached_contact


def person(n: int, first: str = "P") -> Contact:
    return cached_contact("brivity", n, "alice", first_name=f"{first}{n}")


def _loaded(open_db: Callable[[], Database], count: int = 10) -> CacheStore:
    store = CacheStore("alice", open_db())
    asyncio.run(store.replace_stream("brivity", "contacts", [person(n) for n in range(count)]))
    store.load_sync()
    assert isinstance(store.stream("contacts", "brivity"), StreamView)
    return store


def _same_as_dict(view: StreamView, expected: dict[str, Contact]) -> None:
    assert dict(view) == expected
    assert len(view) == len(expected)
    assert list(view) == list(view.keys()) == [r.id for r in view.values()]
    assert list(view.items()) == [(r.id, r) for r in view.values()]
    listed = list(view.values())
    assert [view.at(i) for i in range(len(view))] == listed
    assert all(view[key] == record and key in view for key, record in expected.items())
    assert "brivity:missing" not in view and view.get("brivity:missing") is None


def test_changes_are_laid_over_the_base_copy_on_write(open_db) -> None:
    store = _loaded(open_db)
    view = store.stream("contacts", "brivity")
    expected = {r.id: r for r in view.values()}
    changed = view.patched(
        {"brivity:2": person(2, "New"), "brivity:20": person(20), "brivity:21": person(21)},
        ["brivity:0", "brivity:5", "brivity:21", "brivity:nope"],
    )
    _same_as_dict(view, expected)  # the old view is as it was
    expected["brivity:2"] = person(2, "New")
    expected["brivity:20"] = person(20)
    for gone in ("brivity:0", "brivity:5"):
        del expected[gone]
    _same_as_dict(changed, expected)
    assert changed.touched == {"brivity:0", "brivity:2", "brivity:5", "brivity:20"}
    back = changed.patched({"brivity:5": person(5, "Back")}, ["brivity:20"])
    expected["brivity:5"] = person(5, "Back")
    del expected["brivity:20"]
    assert dict(back) == expected and len(back) == len(expected)
    assert [back.at(i) for i in range(len(back))] == list(back.values())


def test_chained_records_read_by_position_across_views_and_dicts(open_db) -> None:
    store = _loaded(open_db, 5)
    view = store.stream("contacts", "brivity").patched({}, ["brivity:1"])
    plain = {f"lofty:{n}": cached_contact("lofty", n, "alice") for n in range(3)}
    chained = ChainedRecords([view, {}, plain])
    listed = [*view.values(), *plain.values()]
    assert len(chained) == 7 and list(chained) == listed and chained == listed
    assert [chained[i] for i in range(7)] == listed and chained[-1] == listed[-1]
    assert chained[2:5] == listed[2:5]
    with pytest.raises(IndexError):
        chained[7]
    assert chained != listed[:-1]


def test_the_store_writes_over_a_loaded_stream(open_db) -> None:
    store = _loaded(open_db)
    held = store.stream("contacts", "brivity")
    upserts, deletes = [person(3, "Changed"), person(30)], ["brivity:4"]
    removed = asyncio.run(store.commit_changes("brivity", "contacts", upserts, deletes, None, None))
    assert removed == 1
    assert store.get("contacts", "brivity:3").first_name == "Changed3"
    assert store.get("contacts", "brivity:4") is None and len(held) == 10  # held: unchanged
    assert store.count("contacts") == 10 and store.contacts()[-1] == person(30)
    asyncio.run(store.upsert("contacts", [person(31)]))
    gone = asyncio.run(store.delete("contacts", ["brivity:0", "brivity:31"]))
    assert sorted(r.id for r in gone) == ["brivity:0", "brivity:31"]
    assert isinstance(store.stream("contacts", "brivity"), StreamView)
    now = {r.id: r for r in store.db.load_records("alice", "contacts", False, "brivity")}
    assert dict(store.stream("contacts", "brivity")) == now
    # 31, added then removed, is not over the base
    assert store.base_of("contacts", "brivity")[2] == {
        "brivity:0", "brivity:3", "brivity:4", "brivity:30",
    }  # fmt: skip


def test_settle_puts_a_synced_stream_on_its_artifact(open_db) -> None:
    store = CacheStore("alice", open_db())
    asyncio.run(store.replace_stream("brivity", "contacts", [person(n) for n in range(8)]))
    synced = dict(store.stream("contacts", "brivity"))
    assert store.base_of("contacts", "brivity") is None
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    assert isinstance(store.stream("contacts", "brivity"), StreamView)
    assert dict(store.stream("contacts", "brivity")) == synced
    assert store.base_of("contacts", "brivity")[2] == frozenset()


def _around(store: CacheStore, work, meanwhile):
    """`work()` (a read of a stream: settle, follow), with `meanwhile()` run on the loop after
    its thread read the database and before it returns."""
    read, done = threading.Event(), threading.Event()
    fresh_stream = store._fresh_stream

    def slow(*args):
        found = fresh_stream(*args)
        read.set()
        done.wait(10)
        return found

    store._fresh_stream = slow  # type: ignore[method-assign]

    async def run():
        task = asyncio.create_task(work())
        await asyncio.to_thread(read.wait, 10)
        await meanwhile()
        done.set()
        return await task

    return asyncio.run(run())


def _settle_around(store: CacheStore, meanwhile) -> bool:
    return _around(store, lambda: store.settle("contacts", "brivity"), meanwhile)


def test_settle_never_undoes_a_change_made_meanwhile(open_db) -> None:
    store = CacheStore("alice", open_db())
    asyncio.run(store.replace_stream("brivity", "contacts", [person(n) for n in range(8)]))
    change = [person(2, "Late")]
    settled = _settle_around(
        store, lambda: store.commit_changes("brivity", "contacts", change, [], None, None)
    )
    assert settled is True
    assert store.get("contacts", "brivity:2").first_name == "Late2"
    assert isinstance(store.stream("contacts", "brivity"), StreamView)


def test_settle_leaves_a_stream_replaced_meanwhile(open_db) -> None:
    store = CacheStore("alice", open_db())
    asyncio.run(store.replace_stream("brivity", "contacts", [person(n) for n in range(8)]))
    newer = [person(1, "Newer")]
    settled = _settle_around(store, lambda: store.replace_stream("brivity", "contacts", newer))
    assert settled is False
    assert [r.first_name for r in store.contacts()] == ["Newer1"]
    assert type(store.stream("contacts", "brivity")) is dict


def test_clearing_everything_drops_the_artifacts(open_db) -> None:
    store = _loaded(open_db)
    assert root_beside(store.db.path).exists() and store._loader.shelf.root.exists()
    asyncio.run(store.clear())
    assert not store._loader.shelf.root.exists() and store.count("contacts") == 0
    store.load_sync()
    assert store.count("contacts") == 0


def test_a_store_without_a_database_keeps_dicts() -> None:
    store = CacheStore("alice")
    asyncio.run(store.replace_stream("brivity", "contacts", [person(n) for n in range(3)]))
    assert type(store.stream("contacts", "brivity")) is dict
    assert store.base_of("contacts", "brivity") is None
    assert store.records("contacts") == [person(n) for n in range(3)]
    assert asyncio.run(store.settle("contacts", "brivity")) is False


def test_settle_puts_a_view_with_many_changes_on_a_new_artifact(open_db, monkeypatch) -> None:
    monkeypatch.setattr(stream_loading, "REBUILD_AFTER", 2)
    store = _loaded(open_db, 30)  # re-based beyond max(2, 30 // 10) changes
    before = store.base_of("contacts", "brivity")[0]
    few = [person(n, "Few") for n in range(3)]
    asyncio.run(store.commit_changes("brivity", "contacts", few, [], None, None))
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    assert store.base_of("contacts", "brivity")[0] == before  # three: still laid over
    many = [person(n, "Many") for n in range(4)]
    asyncio.run(store.commit_changes("brivity", "contacts", many, ["brivity:29"], None, None))
    expected = dict(store.stream("contacts", "brivity"))
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    stamp, base, touched = store.base_of("contacts", "brivity")
    assert stamp.seq > before.seq and touched == frozenset() and len(base) == 29
    assert dict(store.stream("contacts", "brivity")) == expected


def test_a_write_during_follows_read_is_kept(open_db) -> None:
    """Another process replaced a stream; while it is read again, this process writes a
    record of it: the write stays (its own writes are not in the log it follows)."""
    setup = open_db()
    setup.replace_stream(
        "alice",
        "brivity",
        "contacts",
        [cached_contact("brivity", n, "alice", first_name=f"Old{n}") for n in range(5)],
    )
    setup.close()
    store = CacheStore("alice", open_db())
    store.load_sync()
    seen = store.db.last_change()

    other = open_db()  # another process: a cron sync replaces the stream
    other.owner = dataclasses.replace(other.owner, id="another-process", pid=other.owner.pid + 1)
    other.clear("alice", "brivity")  # logged as the whole stream
    other.close()

    changes = store.db.changes_since("alice", seen)
    assert changes.streams
    mine = [cached_contact("brivity", 2, "alice", first_name="Mine")]
    # this process (the app: an edit, a webhook) writes one record while follow reads
    _around(store, lambda: store.follow(changes), lambda: store.upsert("contacts", mine))
    in_db = {
        r.id: r.first_name for r in store.db.load_records("alice", "contacts", False, "brivity")
    }
    assert in_db["brivity:2"] == "Mine"
    assert store.get("contacts", "brivity:2").first_name == "Mine"
