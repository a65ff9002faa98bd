"""Building several streams' records artifacts in one pass over a table, and leaving them
ready after a sync: the same rows as one stream's read, with a stamp that names them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from crm_tui.models import Record, RecordKind
from crm_tui.store import CacheStore, Database
from crm_tui.store.db import record_line
from crm_tui.store.settling import settle_all
from crm_tui.store.stamps import StreamStamp
from crm_tui.store.stored_records import FORMAT, WHAT, RecordsBuilder, build_arrays
from crm_tui.store.stream_loading import StreamLoader
from crm_tui.store.stream_view import StreamView
from tests.helpers.records import cached_contact

SOURCES = ("brivity", "followupboss", "lofty")


def _store(open_db: Callable[[], Database]) -> CacheStore:
    return CacheStore("alice", open_db())


def _contacts(source: str, numbers: range, name: str = "N") -> list[Record]:
    return [cached_contact(source, n, "alice", first_name=f"{name}{n}") for n in numbers]


def _import(db: Database, source: str, records: list[Record], file: str) -> None:
    generation = db.new_generation("alice", source, "contacts")
    db.stage("contacts", generation, records)
    db.commit_import("alice", source, "contacts", generation, file)


def _seeded(open_db: Callable[[], Database]) -> CacheStore:
    """Three streams written interleaved (rows of each spread over the table), one with
    imports over it, one refreshed twice, and a refresh staged but never committed."""
    store = _store(open_db)
    for start in (0, 10, 20):
        for source in SOURCES:
            asyncio.run(store.upsert("contacts", _contacts(source, range(start, start + 10))))
    asyncio.run(store.replace_stream("lofty", "contacts", _contacts("lofty", range(5, 25), "R")))
    asyncio.run(store.replace_stream("lofty", "contacts", _contacts("lofty", range(3, 30), "S")))
    _import(store.db, "brivity", _contacts("brivity", [4, 40, 41], "Early"), "a.csv")
    _import(store.db, "brivity", _contacts("brivity", [41, 4], "Late"), "b.csv")
    staged = store.db.new_generation("alice", "followupboss", "contacts")
    store.db.stage("contacts", staged, _contacts("followupboss", range(100, 110), "Staged"))
    return store


def _one_by_one(db: Database, source: str) -> tuple[StreamStamp, dict[str, np.ndarray]]:
    return db.read_stream_lines(
        "alice", "contacts", source, lambda stamp, lines: (stamp, build_arrays(lines)[0])
    )


def _in_one_pass(db: Database, sources) -> dict[str, tuple[StreamStamp, RecordsBuilder]]:
    built: dict[str, tuple[StreamStamp, RecordsBuilder]] = {}

    def sink(source: str, stamp: StreamStamp):
        built[source] = (stamp, RecordsBuilder())
        return built[source][1].add

    db.read_streams_lines("alice", "contacts", sources, sink)
    return built


def test_one_pass_builds_each_stream_as_its_own_read_does(open_db) -> None:
    store = _seeded(open_db)
    built = _in_one_pass(store.db, SOURCES)
    assert set(built) == set(SOURCES)
    for source in SOURCES:
        stamp, arrays = _one_by_one(store.db, source)
        assert built[source][0] == stamp
        together = built[source][1].finish()[0]
        for name, array in arrays.items():
            assert np.array_equal(together[name], array), (source, name)
    names = [line.split(b"\x1e")[4].decode() for line in _rows(built["brivity"][1])]
    assert names[:5] == ["N0", "N1", "N2", "N3", "Late4"]  # an import in place, later wins
    assert names[-2:] == ["Early40", "Late41"]  # then imported ids the sync never had


def _rows(builder: RecordsBuilder) -> list[bytes]:
    arrays = builder.finish()[0]
    data, ends = arrays["data"].tobytes(), arrays["ends"].tolist()
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def test_a_stream_with_no_rows_and_no_stream_at_all(open_db) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", _contacts("brivity", range(3))))
    built = _in_one_pass(store.db, ["brivity", "nowhere"])
    assert len(built["brivity"][1]) == 3
    assert len(built["nowhere"][1]) == 0
    assert _in_one_pass(store.db, []) == {}


@pytest.mark.parametrize("several", [False, True])
def test_the_stamp_names_the_rows_read_while_another_process_commits(open_db, several) -> None:
    """A commit by another connection between the stamp and the rows is not in the rows,
    and shows as a change after the stamp: a view over the artifact then shows it."""
    store = _store(open_db)
    for source in SOURCES[:2]:
        asyncio.run(store.replace_stream(source, "contacts", _contacts(source, range(20))))
    other = open_db()  # another process's connection

    def commit_meanwhile() -> None:
        for source in SOURCES[:2]:
            changed = _contacts(source, [3, 99], "Other")
            other.commit_changes("alice", source, "contacts", changed, [f"{source}:5"], None)

    if several:
        built: dict[str, tuple[StreamStamp, RecordsBuilder]] = {}

        def sink(source: str, stamp: StreamStamp):
            if not built:
                commit_meanwhile()  # after the first stamp, before any row
            built[source] = (stamp, RecordsBuilder())
            return built[source][1].add

        store.db.read_streams_lines("alice", "contacts", SOURCES[:2], sink)
        results = {s: (stamp, b.finish()[0]) for s, (stamp, b) in built.items()}
    else:

        def take(stamp: StreamStamp, lines):
            commit_meanwhile()
            return stamp, build_arrays(lines)[0]

        results = {"brivity": store.db.read_stream_lines("alice", "contacts", "brivity", take)}
    other.close()
    for source, (stamp, arrays) in results.items():
        assert len(arrays["ends"]) == 20  # the rows before the commit: 5 still there, no 99
        delta = store.db.stream_delta("alice", "contacts", stamp, source)
        assert not delta.whole and delta.ids == {f"{source}:3", f"{source}:99", f"{source}:5"}
    loader = StreamLoader(store.db, "alice")
    stream, _ = loader.fresh("contacts", "brivity", {})
    assert isinstance(stream, StreamView)
    now = {r.id: r for r in store.db.load_records("alice", "contacts", False, "brivity")}
    assert dict(stream) == now and "brivity:99" in now and "brivity:5" not in now


def test_a_cold_load_builds_the_missing_streams_in_one_pass(open_db, monkeypatch) -> None:
    store = _seeded(open_db)
    expected = {}
    for source in SOURCES:
        synced, imported = StreamLoader(store.db, "alice").read_dicts("contacts", source)
        expected[source] = {**synced, **imported}
    store.db.close()
    passes: list[tuple[str, ...]] = []
    real = Database.read_streams_lines

    def counted(self, user_id, kind, sources, sink):
        passes.append(tuple(sources))
        return real(self, user_id, kind, sources, sink)

    monkeypatch.setattr(Database, "read_streams_lines", counted)
    monkeypatch.setattr(Database, "read_stream_lines", _refused)
    loaded = _store(open_db)
    loaded.load_sync()
    assert passes == [SOURCES]  # contacts: one pass for all three; deals: none to build
    for source in SOURCES:
        stream = loaded.stream("contacts", source)
        assert isinstance(stream, StreamView)
        assert dict(stream) == expected[source]
    loaded.db.close()
    again = _store(open_db)
    monkeypatch.setattr(Database, "read_streams_lines", _refused)
    again.load_sync()  # every artifact opened: nothing read to build one
    assert again.count("contacts") == sum(len(e) for e in expected.values())


def _refused(*args, **kwargs):
    raise AssertionError("built again")


def test_one_stream_to_build_is_read_through_the_index(open_db, monkeypatch) -> None:
    store = _seeded(open_db)
    store.load_sync()
    asyncio.run(store.replace_stream("lofty", "contacts", _contacts("lofty", range(2), "T")))
    store.db.close()
    monkeypatch.setattr(Database, "read_streams_lines", _refused)
    loaded = _store(open_db)
    loaded.load_sync()
    assert [r.first_name for r in loaded.contacts("lofty")] == ["T0", "T1"]


def test_settle_all_leaves_the_committed_streams_ready(open_db, monkeypatch) -> None:
    store = _store(open_db)  # as a sync leaves it: the streams it replaced, held as dicts
    for source in SOURCES:
        asyncio.run(store.replace_stream(source, "contacts", _contacts(source, range(30))))
    asyncio.run(store.replace_stream("sierra", "contacts", _contacts("sierra", range(2))))
    wanted: list[tuple[RecordKind, str]] = [("contacts", s) for s in SOURCES]
    settled = asyncio.run(settle_all(store, [*wanted, ("contacts", "brivity")]))
    assert settled == wanted
    assert all(isinstance(store.stream("contacts", s), StreamView) for s in SOURCES)
    assert not isinstance(store.stream("contacts", "sierra"), StreamView)  # not asked for
    shelf = StreamLoader(store.db, "alice").shelf
    for source in SOURCES:
        stamp = store.db.stream_stamp("alice", "contacts", source)
        assert shelf.open(WHAT, "contacts", source, stamp, FORMAT) is not None
    store.db.close()
    monkeypatch.setattr(Database, "read_streams_lines", _refused)
    monkeypatch.setattr(Database, "read_stream_lines", lambda *a, **k: _refused())
    loaded = _store(open_db)
    with pytest.raises(AssertionError, match="built again"):  # sierra's has none yet
        loaded.load_sync()
    monkeypatch.undo()
    loaded.load_sync()
    assert loaded.count("contacts") == 92


def test_settle_all_with_nothing_to_do(open_db) -> None:
    assert asyncio.run(settle_all(CacheStore("alice"), [("contacts", "brivity")])) == []
    store = _store(open_db)
    assert asyncio.run(settle_all(store, [])) == []


def test_settle_all_survives_a_database_it_cannot_read(open_db, monkeypatch, caplog) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", _contacts("brivity", range(3))))

    def broken(*args, **kwargs):
        raise OSError("disk I/O error")

    monkeypatch.setattr(Database, "stream_stamp", broken)
    assert asyncio.run(settle_all(store, [("contacts", "brivity")])) == []
    assert "not built after the sync" in caplog.text
    assert [r.first_name for r in store.contacts("brivity")] == ["N0", "N1", "N2"]


def _refresh(store: CacheStore, source: str, pages: list[list[Record]]) -> dict[str, Record]:
    """A full refresh as the sync engine commits it: pages staged as a new generation,
    collected by id (an id sent again moves to the end, as its row does), then committed."""
    db = store.db
    lease = db.acquire_lease("alice", source, "contacts", "sync")
    generation = db.new_generation("alice", source, "contacts")
    collected: dict[str, Record] = {}
    for page in pages:
        db.stage("contacts", generation, page)
        for record in page:
            collected.pop(record.id, None)
            collected[record.id] = record
    asyncio.run(store.commit_staged(source, "contacts", generation, collected, lease))
    db.release_lease(lease)
    return collected


def _arrays_of(store: CacheStore, source: str) -> dict[str, np.ndarray]:
    base = store.base_of("contacts", source)
    assert base is not None
    stored = base[1]
    return {"data": stored._data, "ends": stored._ends, "id_hash": stored._hash}


def test_a_record_line_is_the_row_the_table_gives(open_db) -> None:
    from tests.test_stored_records import full_contact, full_deal, sparse_contact

    store = _store(open_db)
    contacts = [full_contact(n) for n in range(4)] + [sparse_contact(n) for n in range(4, 6)]
    deals = [full_deal(n) for n in range(3)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    asyncio.run(store.replace_stream("brivity", "deals", deals))
    for kind, records in (("contacts", contacts), ("deals", deals)):
        lines = store.db.read_stream_lines("alice", kind, "brivity", lambda s, rows: list(rows))
        assert lines == [record_line(r) for r in records], kind


def test_settle_builds_a_refresh_from_its_records_as_the_table_would(open_db, monkeypatch) -> None:
    store = _store(open_db)
    pages = [_contacts("brivity", range(0, 30)), _contacts("brivity", [5, 31, 2], "Again")]
    _refresh(store, "brivity", pages)
    commit = store.db.stream_stamp("alice", "contacts", "brivity")
    monkeypatch.setattr(Database, "read_stream_lines", _refused)
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    monkeypatch.undo()
    assert store.base_of("contacts", "brivity")[0] == commit
    from_memory = _arrays_of(store, "brivity")
    stamp, from_table = _one_by_one(store.db, "brivity")
    assert stamp == commit
    for name, array in from_memory.items():
        assert np.array_equal(array, from_table[name]), name  # byte for byte, row for row
    names = [r.first_name for r in store.contacts("brivity")]
    assert names[-3:] == ["Again5", "Again31", "Again2"] and len(names) == 31


def test_settle_from_records_lays_what_another_process_committed_after(open_db) -> None:
    """The artifact is the commit's rows under the commit's stamp: a change committed by
    another process right after (before settle) shows as laid over it, not lost."""
    store = _store(open_db)
    _refresh(store, "brivity", [_contacts("brivity", range(20))])
    commit = store.db.stream_stamp("alice", "contacts", "brivity")
    other = open_db()
    changed = _contacts("brivity", [3, 77], "Other")
    other.commit_changes("alice", "brivity", "contacts", changed, ["brivity:9"], None)
    other.close()
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    stamp, base, touched = store.base_of("contacts", "brivity")
    assert stamp == commit and len(base) == 20  # built from the records, not read after
    assert touched == {"brivity:3", "brivity:77", "brivity:9"}
    now = {r.id: r for r in store.db.load_records("alice", "contacts", False, "brivity")}
    assert dict(store.stream("contacts", "brivity")) == now


def test_settle_reads_the_table_when_the_records_are_not_the_rows(open_db, monkeypatch) -> None:
    store = _store(open_db)
    _import(store.db, "brivity", _contacts("brivity", [1, 50], "Imported"), "a.csv")
    _refresh(store, "brivity", [_contacts("brivity", range(10))])
    read: list[str] = []
    real = Database.read_stream_lines

    def counted(self, user_id, kind, source, take):
        read.append(source)
        return real(self, user_id, kind, source, take)

    monkeypatch.setattr(Database, "read_stream_lines", counted)
    assert asyncio.run(store.settle("contacts", "brivity")) is True
    assert read == ["brivity"]  # an import over the stream: its rows are not the records
    names = {r.id: r.first_name for r in store.contacts("brivity")}
    assert names["brivity:1"] == "Imported1" and names["brivity:50"] == "Imported50"
    _refresh(store, "lofty", [_contacts("lofty", range(5))])
    asyncio.run(
        store.commit_changes("lofty", "contacts", _contacts("lofty", [1], "X"), [], None, None)
    )
    assert asyncio.run(store.settle("contacts", "lofty")) is True  # changed since: read
    assert read == ["brivity", "lofty"]
    assert store.get("contacts", "lofty:1").first_name == "X1"
