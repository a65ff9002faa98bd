"""The records artifact: built from SQLite with no Record per row, read back field for
field, trusted only whole, and laid under what changed since it was built."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from crm_tui.models import Contact, Deal, Record, RecordKind
from crm_tui.store import CacheStore, Database, row_files, stored_records
from crm_tui.store import db as db_module
from crm_tui.store.artifacts import ArtifactShelf, root_beside
from crm_tui.store.stored_records import FORMAT, WHAT, StoredRecords
from crm_tui.store.stream_view import StreamView
from tests.helpers.records import cached_contact

HOSTILE = "[@click=app.quit]x[/] <b>&amp;</b> 'quoted' \"double\" \\ back"


def full_contact(n: int) -> Contact:
    return cached_contact(
        "brivity",
        n,
        "alice",
        first_name="Zoë",
        last_name=f"Łukasiewicz-Ødegård {n}",
        email=f"zoe{n}@exämple.com",
        phone="(555) 123-4567",
        company=HOSTILE,
        status="lead",
        rating="A",
        stage="Hot",
        tags=("buyer", "vip", "ñandú"),
        street="1 Rue de l'Église",
        city="Montréal",
        state="QC",
        postal_code="H2X 1Y4",
        remote_created="2025-01-02T03:04:05Z",
        remote_updated="2026-01-02T03:04:05Z",
        synced_at="2026-11-25T00:00:00Z",
        deleted=n % 2 == 0,
        raw=f'{{"id": {n}, "x": [1, null, "é"], "s": "\\u001e"}}',
        custom={"lender": "Quicken", "budget": Decimal("12345678901234567.89"), "kids": ("a", "b")},
    )


def sparse_contact(n: int) -> Contact:
    return cached_contact("brivity", n, "alice")  # every optional field None, no tags


def full_deal(n: int) -> Deal:
    return Deal(
        id=f"brivity:d{n}",
        source="brivity",
        remote_id=f"d{n}",
        user_id="alice",
        name=f"{n} Main St, Montréal",
        amount=Decimal("1250000.55"),
        currency="CAD",
        stage="Closed",
        probability=40,
        close_date="2026-12-01",
        property_address=HOSTILE,
        status="won",
        contact_remote_id="7",
        deleted=True,
        raw='{"price": "1250000.55", "nested": {"a": [1, 2]}}',
        custom={"commission": Decimal("0.025"), "closed_on": "2026-12-01"},
    )


def _store(open_db: Callable[[], Database]) -> CacheStore:
    return CacheStore("alice", open_db())


def _shelf(store: CacheStore) -> Path:
    assert store.db is not None
    return root_beside(store.db.path)


def _build(db: Database, kind: RecordKind, source: str) -> StoredRecords:
    """The stream's records artifact, built, saved and opened as the store does."""
    stamp, arrays, meta = db.read_stream_lines(
        "alice", kind, source, lambda s, lines: (s, *stored_records.build_arrays(lines))
    )
    shelf = ArtifactShelf(db.path.parent / "artifacts", "alice")
    shelf.save(WHAT, kind, source, stamp, FORMAT, arrays, meta)
    artifact = shelf.open(WHAT, kind, source, stamp, FORMAT)
    assert artifact is not None
    return StoredRecords.opened(kind, artifact)


def _import(db: Database, kind: RecordKind, source: str, records: list[Record], file: str) -> None:
    generation = db.new_generation("alice", source, kind)
    db.stage(kind, generation, records)
    db.commit_import("alice", source, kind, generation, file)


def test_every_field_of_contacts_and_deals_comes_back_equal(open_db) -> None:
    store = _store(open_db)
    contacts = [full_contact(n) for n in range(5)] + [sparse_contact(n) for n in range(5, 8)]
    deals = [full_deal(n) for n in range(3)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    asyncio.run(store.replace_stream("brivity", "deals", deals))
    stored = _build(store.db, "contacts", "brivity")
    assert list(stored) == contacts  # in the order they were written
    assert sorted(stored, key=lambda r: r.id) == sorted(
        store.db.load_records("alice", "contacts", False, "brivity"), key=lambda r: r.id
    )
    assert sorted(_build(store.db, "deals", "brivity"), key=lambda r: r.id) == deals
    assert stored[0].custom["budget"] == Decimal("12345678901234567.89")


def test_by_position_and_by_id(open_db) -> None:
    store = _store(open_db)
    contacts = [full_contact(n) for n in range(20)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    stored = _build(store.db, "contacts", "brivity")
    listed = list(stored)
    assert len(stored) == 20
    assert [stored[i] for i in range(20)] == listed
    assert stored[-1] == listed[-1] and stored[3:6] == listed[3:6]
    with pytest.raises(IndexError):
        stored[20]
    where = stored.positions(["brivity:4", "brivity:nope", "brivity:19"])
    assert where == {
        "brivity:4": listed.index(contacts[4]),
        "brivity:19": listed.index(contacts[19]),
    }
    assert stored.get("brivity:7") == contacts[7]
    assert stored.get("brivity:70") is None
    assert stored.id_at(where["brivity:4"]) == "brivity:4"


def test_a_record_read_by_position_or_id_comes_from_the_file_not_the_mapping(open_db) -> None:
    store = _store(open_db)
    contacts = [full_contact(n) for n in range(30)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    stored = _build(store.db, "contacts", "brivity")
    listed = list(stored)  # a whole pass reads the mapping, in order
    stored._view = memoryview(b"\x00" * len(stored._view))  # the mapping no longer read
    assert [stored[i] for i in range(30)] == listed
    assert stored.get("brivity:12") == contacts[12]
    assert stored.id_at(3) == listed[3].id


def test_a_records_file_cut_short_after_opening_is_damage_not_a_wrong_record(open_db) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(n) for n in range(9)]))
    stored = _build(store.db, "contacts", "brivity")
    (data,) = _shelf(store).rglob("records/contacts.brivity/*/data.npy")
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size - 100)
    assert stored[0].id == "brivity:0"  # the rows before the cut still read
    with pytest.raises(stored_records.DamagedArtifact, match="shorter"):
        stored[8]


def test_reading_many_streams_keeps_a_bounded_number_of_files_open(tmp_path) -> None:
    """Each opened stream reads its rows from its file, but the process keeps at most
    OPEN_FILES of them open: a long session (or a test run) opens thousands of streams.
    (SQLite's alone: a store each, and the artifacts are the same files on both.)"""
    count = row_files.OPEN_FILES + 8
    dbs = []
    for n in range(count):
        store = CacheStore("alice", Database(tmp_path / f"cache{n}" / "crm.sqlite3"))
        asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(n)]))
        dbs.append(store.db)
    opened = [_build(db, "contacts", "brivity") for db in dbs]
    before = len(os.listdir("/proc/self/fd"))  # each mapping holds one: numpy's, not ours
    assert [stored[0].id for stored in opened] == [full_contact(n).id for n in range(count)]
    assert row_files.open_files() == row_files.OPEN_FILES
    assert len(os.listdir("/proc/self/fd")) - before <= row_files.OPEN_FILES
    assert opened[0].get(full_contact(0).id) == full_contact(0)  # read again, reopened


def test_a_records_file_removed_after_opening_is_read_through_its_mapping(open_db) -> None:
    store = _store(open_db)
    contacts = [full_contact(n) for n in range(9)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    stored = _build(store.db, "contacts", "brivity")
    (data,) = _shelf(store).rglob("records/contacts.brivity/*/data.npy")
    saved = data.read_bytes()
    data.unlink()
    data.write_bytes(saved.replace(b"Montr", b"Zzzzz"))  # another file at the same path
    for n in range(row_files.OPEN_FILES + 1):  # its descriptor closed meanwhile
        row_files._FILES.pread(str(data), os.stat(data).st_ino, 1, n)
    assert stored.get("brivity:4") == contacts[4]  # the file it opened, not the new one


def test_ids_sharing_a_hash_are_told_apart_by_the_id(open_db, monkeypatch) -> None:
    monkeypatch.setattr(stored_records, "id_hash", lambda record_id: 42)  # every id collides
    store = _store(open_db)
    contacts = [cached_contact("brivity", n, "alice", first_name=f"P{n}") for n in range(30)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    stored = _build(store.db, "contacts", "brivity")
    assert all(stored.get(c.id) == c for c in contacts)
    assert stored.get("brivity:99") is None


def test_an_imported_row_wins_and_a_later_import_wins_over_an_earlier(open_db) -> None:
    store = _store(open_db)
    synced = [cached_contact("brivity", n, "alice", first_name=f"Synced{n}") for n in range(4)]
    asyncio.run(store.replace_stream("brivity", "contacts", synced))
    first = [
        cached_contact("brivity", 2, "alice", first_name="Imported2"),
        cached_contact("brivity", 9, "alice", first_name="Early9"),
    ]
    _import(store.db, "contacts", "brivity", first, "a.csv")
    _import(
        store.db,
        "contacts",
        "brivity",
        [cached_contact("brivity", 9, "alice", first_name="Late9")],
        "b.csv",
    )
    stored = _build(store.db, "contacts", "brivity")
    assert [(r.id, r.first_name) for r in stored] == [
        ("brivity:0", "Synced0"),
        ("brivity:1", "Synced1"),
        ("brivity:2", "Imported2"),
        ("brivity:3", "Synced3"),
        ("brivity:9", "Late9"),
    ]
    store.db.close()
    loaded = _store(open_db)
    loaded.load_sync()
    assert [r.first_name for r in loaded.contacts()] == [r.first_name for r in stored]
    assert loaded.imported_count("brivity") == 2


def test_pending_values_are_laid_over_the_stored_record(open_db) -> None:
    store = _store(open_db)
    contacts = [cached_contact("brivity", n, "alice", stage="Lead") for n in range(3)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    store.db.add_edit(
        "alice", "brivity", "contacts", "update", "brivity:1", "1", {"stage": "Lead"},
        {"stage": "Won"}, "alice",
    )  # fmt: skip
    store.db.close()
    loaded = _store(open_db)
    loaded.load_sync()
    assert loaded.get("contacts", "brivity:1").stage == "Won"
    assert [r.stage for r in loaded.contacts()] == ["Lead", "Won", "Lead"]
    _, base, touched = loaded.base_of("contacts", "brivity")
    assert base.get("brivity:1").stage == "Lead" and touched == frozenset()


def _artifact_folder(store: CacheStore) -> Path:
    shelf = ArtifactShelf(_shelf(store), "alice")
    (folder,) = (shelf.root / WHAT / "contacts.brivity").iterdir()
    return folder


def _loaded_after(open_db: Callable[[], Database], damage) -> CacheStore:
    store = _store(open_db)
    contacts = [cached_contact("brivity", n, "alice", first_name=f"Name{n:03}") for n in range(50)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    store.db.close()
    first = _store(open_db)
    first.load_sync()  # builds and saves the artifact
    first.db.close()
    damage(_artifact_folder(first))
    again = _store(open_db)
    again.load_sync()
    assert [again.get("contacts", c.id) for c in contacts] == contacts
    assert list(again.contacts()) == contacts
    return again


def _flip(path: Path, at_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - at_end] ^= 0x20  # "Name" -> "name": a record still, but a wrong one
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda f: _flip(f / "data.npy", 40), id="flipped-data"),
        pytest.param(lambda f: _flip(f / "id_hash.npy", 3), id="flipped-hash"),
        pytest.param(lambda f: _flip(f / "ends.npy", 5), id="flipped-ends"),
        pytest.param(
            lambda f: (f / "data.npy").write_bytes((f / "data.npy").read_bytes()[:-100]),
            id="truncated-data",
        ),
        pytest.param(lambda f: (f / "id_order.npy").unlink(), id="missing-array"),
        pytest.param(lambda f: (f / "meta.json").write_text("{"), id="broken-meta"),
    ],
)
def test_a_damaged_artifact_is_rebuilt_not_trusted(open_db, damage, caplog) -> None:
    store = _loaded_after(open_db, damage)
    stamp, base, _ = store.base_of("contacts", "brivity")
    assert len(base) == 50
    reopened = ArtifactShelf(_shelf(store), "alice").open(
        WHAT, "contacts", "brivity", stamp, FORMAT
    )
    assert reopened is not None and list(StoredRecords.opened("contacts", reopened)) == list(base)


def test_a_changed_byte_is_refused_when_opened(open_db) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(1)]))
    stored = _build(store.db, "contacts", "brivity")
    folder = _artifact_folder(store)
    shelf = ArtifactShelf(_shelf(store), "alice")
    assert shelf.open(WHAT, "contacts", "brivity", stored.stamp, FORMAT) is not None
    _flip(folder / "data.npy", 10)
    assert shelf.open(WHAT, "contacts", "brivity", stored.stamp, FORMAT) is None


def test_another_process_changes_are_laid_over_the_artifact(open_db) -> None:
    store = _store(open_db)
    contacts = [cached_contact("brivity", n, "alice", first_name=f"P{n}") for n in range(40)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    store.load_sync()  # the artifact, at this stamp
    built = store.base_of("contacts", "brivity")[0]
    other = open_db()  # another process's connection
    changed = [cached_contact("brivity", n, "alice", first_name=f"Changed{n}") for n in (3, 50)]
    other.commit_changes("alice", "brivity", "contacts", changed, ["brivity:7", "brivity:8"], None)
    other.upsert_records("contacts", [cached_contact("brivity", 9, "alice", first_name="Up")])
    other.close()
    store.db.close()
    loaded = _store(open_db)
    loaded.load_sync()
    stamp, _, touched = loaded.base_of("contacts", "brivity")
    assert stamp == built  # not rebuilt: the changes are laid over it
    assert touched == {"brivity:3", "brivity:50", "brivity:7", "brivity:8", "brivity:9"}
    now = {r.id: r for r in loaded.db.load_records("alice", "contacts", False, "brivity")}
    assert dict(loaded.stream("contacts", "brivity")) == now
    assert list(loaded.contacts()) == list(loaded.stream("contacts", "brivity").values())
    assert loaded.count("contacts") == 39
    assert isinstance(loaded.stream("contacts", "brivity"), StreamView)


def test_a_replaced_stream_gets_a_new_artifact(open_db) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(1)]))
    store.load_sync()
    before = store.base_of("contacts", "brivity")[0]
    asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(2), full_contact(3)]))
    store.load_sync()
    after = store.base_of("contacts", "brivity")[0]
    assert not after.same_rows(before)
    assert [r.id for r in store.contacts()] == ["brivity:2", "brivity:3"]


def test_loading_makes_no_record_per_row(open_db, monkeypatch) -> None:
    store = _store(open_db)
    contacts = [full_contact(n) for n in range(3_000)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    store.db.close()
    made = []
    real = db_module.Contact

    def counting(*values):
        made.append(1)
        return real(*values)

    monkeypatch.setattr(db_module, "Contact", counting)
    for built in (False, True):  # the artifact built by the first load, opened by the second
        loaded = _store(open_db)
        tracemalloc.start()
        loaded.load_sync()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert loaded.count("contacts") == 3_000, built
        assert made == [], built
        # a cached Contact costs about 900 B: 100 B a row bounds fixed costs (statements,
        # numpy's mapped arrays) and leaves no room for a record per row
        assert held < 100 * 3_000, built
        loaded.db.close()
    assert loaded.get("contacts", "brivity:17") == contacts[17]
    assert len(made) == 1


def test_an_artifact_that_cannot_be_saved_is_held_in_memory(open_db, monkeypatch) -> None:
    store = _store(open_db)
    asyncio.run(store.replace_stream("brivity", "contacts", [full_contact(1), full_contact(2)]))

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(ArtifactShelf, "_save", refuse)
    store.load_sync()
    assert [r.id for r in store.contacts()] == ["brivity:1", "brivity:2"]
    assert isinstance(store.base_of("contacts", "brivity")[1]._data, np.ndarray)
