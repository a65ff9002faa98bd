"""The index of a store on records artifacts: the first start builds each stream's segment
and saves it; the next maps it in (no build) and answers the same, with what another
process changed since laid over it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crm_tui.search import index as index_module
from crm_tui.search import stored
from crm_tui.search.index import SearchIndex
from crm_tui.search.segment import Segment
from crm_tui.search.stored import index_streams, store_index
from crm_tui.store import CacheStore, Database
from tests.helpers.records import cached_contact

NAMES = ["Joan Smith", "John Smyth", "Søren Kierkegaard", "Lech Wałęsa", "Ana Núñez"]
QUERIES = ["jo sm", "smith", "soren", "walesa", "nunez", "lech", "zz"]


def _seed(open_db: Callable[[], Database]) -> None:
    store = CacheStore("alice", open_db())
    for source, count in (("brivity", 40), ("lofty", 25)):
        records = [
            cached_contact(
                source,
                n,
                "alice",
                first_name=NAMES[n % 5].split()[0],
                last_name=f"{NAMES[n % 5].split()[1]}{n}",
                city="Austin" if n % 2 else "Houston",
            )
            for n in range(count)
        ]
        asyncio.run(store.replace_stream(source, "contacts", records))
    store.db.close()


def _loaded(open_db: Callable[[], Database]) -> CacheStore:
    store = CacheStore("alice", open_db())
    store.load_sync()
    return store


def _answers(index: SearchIndex) -> list[tuple[str, dict[str, int], list[str]]]:
    found = []
    for query in QUERIES:
        result = index.search(query)
        ids = [h.record.id for hits in result.groups.values() for h in hits]
        found.append((query, result.counts, ids))
    return found


def _counting_builds(monkeypatch) -> list[int]:
    built: list[int] = []
    original = Segment.build.__func__

    def build(cls, records):
        built.append(len(records))
        return original(cls, records)

    monkeypatch.setattr(Segment, "build", classmethod(build))
    return built


def test_the_next_start_maps_the_saved_segments_in(open_db, monkeypatch) -> None:
    _seed(open_db)
    first = _loaded(open_db)
    expected = SearchIndex()
    expected.rebuild_from(first)
    built = _counting_builds(monkeypatch)
    index = store_index(first, first.shelf, {})
    assert sorted(n for n in built if n) == [25, 40]  # both streams built once
    assert _answers(index) == _answers(expected)
    built.clear()
    again = store_index(_loaded(open_db), first.shelf, {})
    assert [n for n in built if n] == []  # every stream with records mapped in
    assert _answers(again) == _answers(expected)
    assert any(h.record.id == "brivity:3" for h in again.search("walesa").groups["brivity"])


def test_another_process_change_since_the_save_is_patched_in(open_db) -> None:
    _seed(open_db)
    first = _loaded(open_db)
    store_index(first, first.shelf, {})
    other = CacheStore("alice", open_db())  # a cron sync or a webhook, elsewhere
    renamed = cached_contact("brivity", 0, "alice", first_name="Zebulon", last_name="Quist")
    asyncio.run(other.commit_changes("brivity", "contacts", [renamed], ["brivity:1"], None, None))
    store = _loaded(open_db)
    index = store_index(store, store.shelf, {})
    assert [h.record.id for h in index.search("zebulon").groups["brivity"]] == ["brivity:0"]
    smiths = index.search("smith")
    assert "brivity:0" not in [h.record.id for h in smiths.groups["brivity"]]
    assert smiths.counts["brivity"] == 7  # 8 of 40 were "Joan Smith…", one renamed
    assert "brivity:1" not in [h.record.id for h in index.search("smyth").groups["brivity"]]


def test_a_source_gone_from_the_store_leaves_the_index(open_db) -> None:
    _seed(open_db)
    store = _loaded(open_db)
    index = SearchIndex()
    index_streams(index, store, store.shelf)
    assert index.search("smith").counts == {"brivity": 8, "lofty": 5}
    asyncio.run(store.clear("lofty"))
    index_streams(index, store, store.shelf)
    assert index.search("smith").counts == {"brivity": 8}


def test_a_failed_save_still_indexes(open_db, monkeypatch) -> None:
    _seed(open_db)
    store = _loaded(open_db)

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.shelf, "_save", refuse)
    index = store_index(store, store.shelf, {})
    assert index.search("soren").counts == {"brivity": 8, "lofty": 5}


@pytest.mark.parametrize("with_shelf", [True, False])
def test_a_dict_stream_is_built_from_its_records(tmp_path, with_shelf) -> None:
    store = CacheStore("alice", None)  # no database: dict streams
    records = [cached_contact("brivity", n, "alice", first_name="Ana") for n in range(3)]
    asyncio.run(store.replace_stream("brivity", "contacts", records))
    assert store.base_of("contacts", "brivity") is None
    shelf = stored.ArtifactShelf(tmp_path / "a", "alice") if with_shelf else None
    index = store_index(store, shelf, {})
    assert index.search("ana").counts == {"brivity": 3}
    assert not (tmp_path / "a").exists()  # nothing to save a dict stream under


def test_a_patch_grown_big_rebuilds_over_the_stream_without_listing_it(
    open_db, monkeypatch
) -> None:
    monkeypatch.setattr(index_module, "PATCH_MIN", 10)
    _seed(open_db)
    store = _loaded(open_db)
    index = store_index(store, store.shelf, {})
    renamed = [cached_contact("brivity", n, "alice", first_name=f"Zed{n}") for n in range(20)]
    asyncio.run(store.upsert("contacts", renamed))
    given: list[object] = []
    real = Segment.build

    def build(records):
        given.append(records)
        return real(records)

    monkeypatch.setattr(Segment, "build", build)
    ids = [f"brivity:{n}" for n in range(20)]
    index.patch("contacts", "brivity", lambda: store.stream("contacts", "brivity"), ids)
    assert [len(r) for r in given] == [40] and not isinstance(given[0], list)
    assert index.search("zed").counts == {"brivity": 20}
