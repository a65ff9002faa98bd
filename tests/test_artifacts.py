"""Stream stamps and the artifact shelf: an artifact is found only for the rows it was built
from, whole, and what changed since is told exactly."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Callable

import numpy as np
import pytest

from crm_tui.store import CacheStore, Database
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.stamps import StreamStamp
from tests.helpers.records import cached_contact


def _store(open_db: Callable[[], Database]) -> CacheStore:
    return CacheStore("alice", open_db())


def _fill(store: CacheStore, source: str, count: int) -> None:
    records = [cached_contact(source, n, "alice", first_name=f"P{n}") for n in range(count)]
    asyncio.run(store.replace_stream(source, "contacts", records))


def test_a_refresh_moves_the_stamp_and_the_delta_says_whole(open_db) -> None:
    store = _store(open_db)
    _fill(store, "brivity", 3)
    before = store.db.stream_stamp("alice", "contacts", "brivity")
    assert store.db.stream_delta("alice", "contacts", before, "brivity").whole is False
    _fill(store, "brivity", 4)
    after = store.db.stream_stamp("alice", "contacts", "brivity")
    assert not after.same_rows(before)
    assert store.db.stream_delta("alice", "contacts", before, "brivity").whole is True


def test_changed_records_are_named_and_other_streams_ignored(open_db) -> None:
    store = _store(open_db)
    _fill(store, "brivity", 3)
    _fill(store, "lofty", 3)
    stamp = store.db.stream_stamp("alice", "contacts", "brivity")
    changed = cached_contact("brivity", 1, "alice", first_name="Changed")
    asyncio.run(store.commit_changes("brivity", "contacts", [changed], ["brivity:2"], None, None))
    other = cached_contact("lofty", 1, "alice", first_name="Elsewhere")
    asyncio.run(store.commit_changes("lofty", "contacts", [other], [], None, None))
    delta = store.db.stream_delta("alice", "contacts", stamp, "brivity")
    assert delta.whole is False
    assert delta.ids == {"brivity:1", "brivity:2"}
    assert delta.newest == store.db.stream_stamp("alice", "contacts", "brivity").seq


def test_clearing_every_source_is_a_whole_change(open_db) -> None:
    store = _store(open_db)
    _fill(store, "brivity", 2)
    stamp = store.db.stream_stamp("alice", "contacts", "brivity")
    asyncio.run(store.clear(None))
    assert store.db.stream_delta("alice", "contacts", stamp, "brivity").whole is True


def test_trimmed_log_is_a_whole_change(open_db) -> None:
    store = _store(open_db)
    _fill(store, "brivity", 2)
    stamp = store.db.stream_stamp("alice", "contacts", "brivity")
    change = cached_contact("brivity", 1, "alice", first_name="X")
    asyncio.run(store.commit_changes("brivity", "contacts", [change], [], None, None))
    asyncio.run(store.commit_changes("brivity", "contacts", [change], [], None, None))
    with store.db.transaction() as conn:  # aged past what is kept, then trimmed as a commit does
        conn.execute("UPDATE changes SET at = 0 WHERE seq <= ?", (stamp.seq + 1,))
        store.db._trim(conn, 1.0)
    assert store.db.stream_delta("alice", "contacts", stamp, "brivity").whole is True
    later = store.db.stream_stamp("alice", "contacts", "brivity")
    assert store.db.stream_delta("alice", "contacts", later, "brivity").whole is False


def _saved(shelf: ArtifactShelf, stamp: StreamStamp, values: list[int]) -> None:
    saved = shelf.save(
        "test", "contacts", "brivity", stamp, "v1", {"values": np.array(values)}, {"n": 1}
    )
    assert saved is not None


def test_an_artifact_opens_mapped_as_saved(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(7, (9,), 40)
    _saved(shelf, stamp, [3, 1, 2])
    found = shelf.open("test", "contacts", "brivity", StreamStamp(7, (9,), 45), "v1")
    assert found is not None
    assert found.stamp == stamp
    assert found.arrays["values"].tolist() == [3, 1, 2]
    assert isinstance(found.arrays["values"], np.memmap)
    assert found.meta == {"n": 1}
    folder = next((tmp_path / "artifacts").rglob("meta.json")).parent
    assert stat.S_IMODE(os.stat(folder / "values.npy").st_mode) == 0o600


@pytest.mark.parametrize(
    "asked",
    [StreamStamp(8, (9,), 45), StreamStamp(7, (), 45), StreamStamp(7, (9,), 39)],
    ids=["other generation", "other imports", "older than saved"],
)
def test_no_artifact_for_other_rows(tmp_path, asked: StreamStamp) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    _saved(shelf, StreamStamp(7, (9,), 40), [1])
    assert shelf.open("test", "contacts", "brivity", asked, "v1") is None


def test_another_format_or_user_finds_nothing(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(1, (), 1)
    _saved(shelf, stamp, [1])
    assert shelf.open("test", "contacts", "brivity", stamp, "v2") is None
    bob = ArtifactShelf(tmp_path / "artifacts", "bob")
    assert bob.open("test", "contacts", "brivity", stamp, "v1") is None


def test_a_newer_save_replaces_the_older(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    _saved(shelf, StreamStamp(1, (), 1), [1])
    _saved(shelf, StreamStamp(1, (), 5), [5])
    _saved(shelf, StreamStamp(2, (), 6), [6])
    folders = [
        p.name for p in next((tmp_path / "artifacts").rglob("meta.json")).parent.parent.iterdir()
    ]
    assert folders == ["g2-i0-s6"]
    found = shelf.open("test", "contacts", "brivity", StreamStamp(2, (), 9), "v1")
    assert found is not None and found.arrays["values"].tolist() == [6]


@pytest.mark.parametrize(
    "damage",
    ["missing array", "wrong shape", "garbage meta", "truncated", "a byte", "meta value", "null"],
)
def test_a_damaged_artifact_is_not_one(tmp_path, damage: str) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(1, (), 1)
    _saved(shelf, stamp, list(range(1000)))
    folder = next((tmp_path / "artifacts").rglob("meta.json")).parent
    if damage == "missing array":
        (folder / "values.npy").unlink()
    elif damage == "wrong shape":
        meta = json.loads((folder / "meta.json").read_text())
        meta["arrays"]["values"][1] = [999]
        (folder / "meta.json").write_text(json.dumps(meta))
    elif damage == "garbage meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "a byte":
        data = bytearray((folder / "values.npy").read_bytes())
        data[-9] ^= 1
        (folder / "values.npy").write_bytes(bytes(data))
    elif damage == "meta value":
        meta = json.loads((folder / "meta.json").read_text())
        meta["meta"]["n"] = 2
        (folder / "meta.json").write_text(json.dumps(meta))
    elif damage == "null":
        (folder / "meta.json").write_text("null")
    else:
        data = (folder / "values.npy").read_bytes()
        (folder / "values.npy").write_bytes(data[:200])
    assert shelf.open("test", "contacts", "brivity", stamp, "v1") is None


def test_empty_arrays_round_trip(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(1, (), 1)
    shelf.save("test", "contacts", "odd source/..", stamp, "v1", {"values": np.zeros(0, np.int32)})
    found = shelf.open("test", "contacts", "odd source/..", stamp, "v1")
    assert found is not None and found.arrays["values"].shape == (0,)
    assert all(".." not in p.name for p in (tmp_path / "artifacts").rglob("*"))


def test_a_discarded_artifact_makes_room_for_a_new_save(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path, "u")
    stamp = StreamStamp(1, (), 5)
    _saved(shelf, stamp, [1, 2, 3])
    shelf.discard("test", "contacts", "brivity", stamp)
    assert shelf.open("test", "contacts", "brivity", stamp, "v1") is None
    _saved(shelf, stamp, [4, 5])
    found = shelf.open("test", "contacts", "brivity", stamp, "v1")
    assert found is not None and found.arrays["values"].tolist() == [4, 5]
    shelf.discard("test", "contacts", "brivity", StreamStamp(9, (), 9))  # none: no error


def test_a_save_of_an_older_stamp_leaves_the_newer(tmp_path) -> None:
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    _saved(shelf, StreamStamp(2, (), 6), [6])  # the app's, current
    _saved(shelf, StreamStamp(1, (), 3), [3])  # a slow process's, older
    found = shelf.open("test", "contacts", "brivity", StreamStamp(2, (), 9), "v1")
    assert found is not None and found.arrays["values"].tolist() == [6]


def test_a_save_in_a_new_format_replaces_an_older_versions_at_the_same_stamp(tmp_path) -> None:
    """After an upgrade, the stream's rows unchanged: the new version's save takes the
    stamp's place from the old version's artifact (else it would be rebuilt at every
    start); a save in the same format leaves the first one saved."""
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(3, (), 8)
    _saved(shelf, stamp, [1, 2])  # the older version's, format v1
    assert shelf.save("test", "contacts", "brivity", stamp, "v2", {"values": np.array([7])})
    found = shelf.open("test", "contacts", "brivity", stamp, "v2")
    assert found is not None and found.arrays["values"].tolist() == [7]
    assert shelf.open("test", "contacts", "brivity", stamp, "v1") is None
    assert shelf.save("test", "contacts", "brivity", stamp, "v2", {"values": np.array([9])})
    found = shelf.open("test", "contacts", "brivity", stamp, "v2")
    assert found is not None and found.arrays["values"].tolist() == [7]  # theirs: as good
    folder = next((tmp_path / "artifacts").rglob("meta.json")).parent.parent
    assert [p.name for p in folder.iterdir()] == [stamp.name]  # nothing left behind


def test_a_save_that_cannot_be_made_is_logged_not_raised(tmp_path, caplog) -> None:
    (tmp_path / "artifacts").write_text("a file where the folder should be")
    shelf = ArtifactShelf(tmp_path / "artifacts", "alice")
    stamp = StreamStamp(1, (), 1)
    assert shelf.save("test", "contacts", "brivity", stamp, "v1", {"v": np.zeros(2)}) is None
    assert "could not save the test of brivity contacts" in caplog.text
