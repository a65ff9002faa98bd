"""The duplicate finder over key arrays: the same people as the finder before it, and its
keys saved per stream stamp and mapped in at the next start."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pytest

from crm_tui.dedup import DuplicateFinder, People
from crm_tui.dedup.keyarrays import Keyer
from crm_tui.dedup.sourcekeys import RecordList, StreamBases
from crm_tui.dedup.texts import Texts
from crm_tui.models import Contact, Record, RecordKind
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.local_rows import LINKS_FIELD
from crm_tui.store.stamps import StreamStamp
from tests.helpers.dedup_reference import reference_find

FIRST = ["Ana", "ana", "ANA", "Søren", "Soren", "José", "Jose", "Bill", "William", "J.", "Zoë",
         "Łukasz", "[@click=app.quit]x[/]", "", None, "Mary Ann", "Ren\u00e9e"]  # fmt: skip
LAST = ["Lee", "Wałęsa", "Walesa", "Müller", "Mueller", "O'Brien", "Nguyễn", "", None,
        "[b]bold[/b]", "Smith", "Smyth"]  # fmt: skip
STREETS = [None, "", "12 Main Street", "12 main st.", "N/A", "4 Elm Ave #2", "4 Elm Avenue Apt 2"]
CITIES = [None, "", "Austin", "AUSTIN", "Zürich", "Zurich", "São Paulo"]
SOURCES = ["brivity", "followupboss", "lofty", "local"]


def generated(count: int, seed: int) -> list[Contact]:
    """Contacts with shared and crowded e-mails and phones, hostile, accented and missing
    names, places, and local contacts merged from others (some links to nothing)."""
    r = random.Random(seed)
    made: list[Contact] = []
    for n in range(count):
        source = r.choice(SOURCES)
        person = r.randrange(count // 3 + 1)
        line = f"{person % 10000:04d}"
        email = r.choice([None, f"p{person}@x.com", f"P{person}+tag@X.com", "info@office.com",
                          f"p.{person}@gmail.com", f"p{person}@gmail.com", "none"])  # fmt: skip
        phone = r.choice([None, f"512-555-{line}", f"+1 (512) 555 {line}", "000-000-0000",
                          "512-555-0000"])  # fmt: skip
        raw = "{}"
        if source == "local" and made and r.random() < 0.3:
            linked = [c.id for c in r.sample(made, min(2, len(made)))] + ["brivity:nobody"]
            raw = json.dumps({LINKS_FIELD: linked})
        made.append(
            Contact(
                id=f"{source}:{n}",
                source=source,
                remote_id=str(n),
                user_id="u",
                first_name=r.choice(FIRST),
                last_name=r.choice(LAST),
                email=email,
                phone=phone,
                street=r.choice(STREETS),
                city=r.choice(CITIES),
                remote_updated=r.choice(["", "2026-01-02T03:04:05Z", f"2025-0{1 + n % 9}-01"]),
                raw=raw,
            )
        )
    return made


def same_people(found: People, expected: People) -> None:
    assert found.clusters == expected.clusters
    assert found.possible == expected.possible
    assert found.shared_by_record == expected.shared_by_record
    assert found.by_record == expected.by_record
    assert list(found.by_id) == list(expected.by_id)
    assert found.by_id == expected.by_id


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_array_finder_finds_what_the_string_finder_did(seed: int) -> None:
    contacts = generated(3000, seed)
    expected = reference_find(contacts)
    assert len(expected.clusters) > 50 and expected.possible  # the data exercises both
    assert any(c.settled for c in expected.clusters)
    assert any(len(p) > 1 for ps in expected.shared_by_record.values() for p in ps)
    same_people(DuplicateFinder().find(contacts), expected)


# -- a store that rests on saved rows --------------------------------------------------------


class Based:
    """The read side of a store whose streams rest on a base (a stamp and its records in
    order) with some contacts changed over it: the `base_of` the store will offer."""

    def __init__(self, contacts: list[Contact]) -> None:
        self.base: dict[str, RecordList] = {}
        for c in contacts:
            self.base.setdefault(c.source, RecordList()).append(c)
        self.now = {s: {c.id: c for c in records} for s, records in self.base.items()}
        self.changed: dict[str, set[str]] = {s: set() for s in self.base}
        self.stamp = StreamStamp(1, (), 10)
        self.version = 0

    def put(self, contact: Contact) -> None:
        self.now[contact.source][contact.id] = contact
        self.changed[contact.source].add(contact.id)
        self.version += 1

    def delete(self, record_id: str) -> None:
        source = record_id.split(":", 1)[0]
        del self.now[source][record_id]
        self.changed[source].add(record_id)
        self.version += 1

    def contacts(self) -> list[Contact]:
        return [c for s in self.now for c in self.now[s].values()]

    def sources(self) -> list[str]:
        return list(self.base)

    def stream(self, kind: RecordKind, source: str) -> dict[str, Record]:
        raise AssertionError("a based stream is read through base_of")

    def stream_version(self, kind: RecordKind, source: str) -> tuple[int, int]:
        return (0, self.version)

    def changed_since(self, kind: RecordKind, source: str, version: tuple[int, int]) -> None:
        return None

    def get(self, kind: RecordKind, record_id: str) -> Record | None:
        return self.now.get(record_id.split(":", 1)[0], {}).get(record_id)

    def base_of(
        self, kind: RecordKind, source: str
    ) -> tuple[StreamStamp, RecordList, Iterable[str]]:
        return self.stamp, self.base[source], set(self.changed[source])


def _refreshed(tmp_path, store: Based, region: str = "US") -> People:  # type: ignore[no-untyped-def]
    """A start's refresh, its clusters' save (in the background) waited for."""
    finder = DuplicateFinder(region, shelf=ArtifactShelf(tmp_path, "u"))
    people = finder.refresh(store)
    finder.flush()
    return people


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    built: list[int] = []
    arrays = Keyer.arrays

    def counting(self: Keyer, contacts):  # type: ignore[no-untyped-def]
        built.append(len(contacts))
        return arrays(self, contacts)

    monkeypatch.setattr(Keyer, "arrays", counting)
    return built


def _changes(store: Based, contacts: list[Contact]) -> None:
    """An edit that joins two people, a deletion, a new contact, a new merge."""
    first, second = contacts[10], contacts[20]
    store.put(replace(first, **{"email": second.email, "first_name": second.first_name,
                                       "last_name": second.last_name}))  # fmt: skip
    store.delete(contacts[30].id)
    store.put(replace(contacts[40], **{"id": "lofty:new", "source": "lofty"}))
    links = json.dumps({LINKS_FIELD: [contacts[50].id, contacts[60].id]})
    store.put(Contact(id="local:merge", source="local", remote_id="merge", user_id="u",
                      first_name="Ana", last_name="Lee", raw=links))  # fmt: skip


def test_keys_are_saved_and_the_next_start_maps_them_in(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = generated(2000, 7)
    store = Based(contacts)
    assert isinstance(store, StreamBases)
    built = _count_builds(monkeypatch)
    first = _refreshed(tmp_path, store)
    same_people(first, reference_find(contacts))
    assert sorted(built) == sorted(len(r) for r in store.base.values())
    assert len(list(tmp_path.glob("*/dedup/*/*/meta.json"))) == len(store.base)
    _changes(store, contacts)
    built.clear()
    started = _refreshed(tmp_path, store)
    assert built == []  # every source's keys were mapped, only the changes keyed
    same_people(started, reference_find(store.contacts()))


def test_without_a_shelf_a_based_stream_is_keyed_from_its_records(monkeypatch) -> None:
    contacts = generated(1500, 8)
    store = Based(contacts)
    _changes(store, contacts)
    finder = DuplicateFinder()
    same_people(finder.refresh(store), reference_find(store.contacts()))
    built = _count_builds(monkeypatch)
    finder.refresh(store)  # nothing changed since: the keys in hand serve
    assert built == []


@pytest.mark.parametrize(
    ("damage", "array"),
    [
        ("flipped byte", "email"),
        ("flipped byte", "ids_blob"),
        ("truncated", "names_starts"),
        ("other count", "email"),
    ],
)
def test_damaged_saved_keys_are_keyed_again_and_replaced(
    tmp_path, monkeypatch: pytest.MonkeyPatch, damage: str, array: str
) -> None:
    contacts = generated(1500, 9)
    _refreshed(tmp_path, Based(contacts))
    target = next(p for p in tmp_path.rglob(f"{array}.npy") if "brivity" in str(p))
    data = bytearray(target.read_bytes())
    if damage == "flipped byte":
        data[-5] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) // 2]
    target.write_bytes(bytes(data))
    store = Based(contacts)
    if damage == "other count":  # keys saved for other records under the same stamp
        extra = replace(contacts[0], **{"id": "brivity:extra", "source": "brivity"})
        store.base["brivity"].append(extra)
        store.now["brivity"][extra.id] = extra
    built = _count_builds(monkeypatch)
    people = _refreshed(tmp_path, store)
    same_people(people, reference_find(store.contacts()))
    assert built == [len(store.base["brivity"])]  # that source only, keyed again
    built.clear()
    _refreshed(tmp_path, store)
    assert built == []  # and saved sound this time


def test_saved_keys_of_other_rows_are_not_used(tmp_path, monkeypatch) -> None:
    contacts = generated(1000, 10)
    _refreshed(tmp_path, Based(contacts))
    store = Based(contacts[:900])
    store.stamp = StreamStamp(2, (), 10)  # the streams were replaced since
    built = _count_builds(monkeypatch)
    people = _refreshed(tmp_path, store)
    same_people(people, reference_find(contacts[:900]))
    assert len(built) == len(store.base)


def test_in_memory_rekeys_agree_with_a_fresh_build() -> None:
    from crm_tui.dedup.sourcekeys import SourceKeys

    contacts = generated(1200, 11)
    keyer = Keyer(DuplicateFinder().phones)
    keys = SourceKeys.build("brivity", 0, RecordList(contacts), keyer)
    edited = replace(contacts[5], **{"email": "new@x.com", "street": "9 Oak Rd"})
    added = replace(contacts[6], **{"id": "brivity:added"})
    patched = keys.rekeyed(1, {edited.id: edited, contacts[7].id: None, added.id: added}, keyer)
    now = [edited if c.id == edited.id else c for c in contacts if c.id != contacts[7].id]
    fresh = SourceKeys.build("brivity", 1, RecordList([*now, added]), keyer)
    alive = [i for i in range(len(patched)) if patched.record(i) is not None]
    for name in ("email", "phone", "name", "street", "city"):
        assert np.array_equal(patched.column(name)[alive], fresh.column(name))
    assert patched.column("email")[7] == 0  # the deleted one keeps its place, with no keys
    assert patched.find([added.id, contacts[7].id]) == {added.id: len(contacts)}


def test_saved_texts_read_back_as_written_or_not_at_all() -> None:
    values = ["brivity:1", "", "Søren\u0301", "\ud800 lone", "[b]x[/b]", "日本"]
    texts = Texts.of(values)
    assert texts.at(np.array([5, 0, 3, 1])) == ["日本", "brivity:1", "\ud800 lone", ""]
    assert texts.at(np.array([], dtype=np.int64)) == []
    assert Texts.of(["a\x00b", "c"]).at(np.array([0, 1])) is None  # a terminator inside
    saved = texts.arrays("ids")
    assert Texts.saved(saved, "ids", len(values)) is not None
    assert Texts.saved(saved, "ids", len(values) + 1) is None


def test_keys_saved_for_another_home_region_are_not_reused(tmp_path, monkeypatch) -> None:
    contacts = generated(800, 12)
    _refreshed(tmp_path, Based(contacts), "US")
    built = _count_builds(monkeypatch)
    people = _refreshed(tmp_path, Based(contacts), "GB")
    assert len(built) == len(Based(contacts).base)  # keyed again: phones read another way
    same_people(people, reference_find(contacts, "GB"))


# -- clusters saved per combination of the sources' stamps ---------------------------------


def _count_clusterings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from crm_tui.dedup import finder

    found: list[int] = []
    real = finder.find_clusters

    def counting(parts, keyer):  # type: ignore[no-untyped-def]
        found.append(len(parts))
        return real(parts, keyer)

    monkeypatch.setattr(finder, "find_clusters", counting)
    return found


def _in_order(found: People, expected: People) -> None:
    """`same_people`, and the dicts filled in the same order too."""
    same_people(found, expected)
    assert list(found.by_record) == list(expected.by_record)
    assert list(found.shared_by_record) == list(expected.shared_by_record)
    flagged = [c.flagged for c in found.clusters]
    assert flagged == [c.flagged for c in expected.clusters]  # the agreements are enums again


@pytest.mark.parametrize("seed", [13, 14])
def test_a_start_over_unchanged_sources_reads_the_clusters_saved(
    tmp_path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    contacts = generated(2500, seed)
    first = _refreshed(tmp_path, Based(contacts))
    clustered = _count_clusterings(monkeypatch)
    started = _refreshed(tmp_path, Based(contacts))
    assert clustered == []
    _in_order(started, first)
    same_people(started, reference_find(contacts))
    assert any(c.shared for c in started.clusters) and started.possible


def test_changes_over_the_saved_rows_are_clustered_again(tmp_path, monkeypatch) -> None:
    contacts = generated(1500, 15)
    _refreshed(tmp_path, Based(contacts))
    store = Based(contacts)
    _changes(store, contacts)
    clustered = _count_clusterings(monkeypatch)
    finder = DuplicateFinder(shelf=ArtifactShelf(tmp_path, "u"))
    same_people(finder.refresh(store), reference_find(store.contacts()))
    assert clustered == [len(store.base)]


def test_saved_clusters_of_other_rows_are_not_used(tmp_path, monkeypatch) -> None:
    contacts = generated(1500, 16)
    _refreshed(tmp_path, Based(contacts))
    clustered = _count_clusterings(monkeypatch)
    store = Based(contacts)
    store.stamp = StreamStamp(1, (), 11)  # one change logged since, in every stream
    same_people(_refreshed(tmp_path, store), reference_find(contacts))
    fewer = Based(contacts[:1400])  # the same stamp over other records (a lying stamp)
    same_people(
        _refreshed(tmp_path, fewer),
        reference_find(contacts[:1400]),
    )
    assert len(clustered) == 2


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "other clusters"])
def test_damaged_saved_clusters_are_found_again_and_replaced(
    tmp_path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    from crm_tui.dedup import saved

    contacts = generated(1500, 17)
    _refreshed(tmp_path, Based(contacts))
    target = next(tmp_path.rglob("dedup_people/*/*/members.npy"))
    data = bytearray(target.read_bytes())
    if damage == "flipped byte":
        data[-100] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # sound marshal, the digest made to match, but fewer clusters than the count says
        arrays, meta = saved.to_saved(reference_find(contacts[:300]))
        meta["clusters"] += 1
        shelf = ArtifactShelf(tmp_path, "u")
        fmt = next(tmp_path.rglob("dedup_people/*/*/meta.json")).read_text()
        fmt = json.loads(fmt)["format"]
        shelf.discard(saved.WHAT, "contacts", saved.EVERY_SOURCE, saved.STAMP)
        shelf.save(saved.WHAT, "contacts", saved.EVERY_SOURCE, saved.STAMP, fmt, arrays, meta)
        data = bytearray(target.read_bytes())
    target.write_bytes(bytes(data))
    clustered = _count_clusterings(monkeypatch)
    people = _refreshed(tmp_path, Based(contacts))
    same_people(people, reference_find(contacts))
    assert clustered == [len(Based(contacts).base)]
    _refreshed(tmp_path, Based(contacts))
    assert len(clustered) == 1  # saved sound this time


def test_saved_clusters_read_back_equal_to_what_was_saved() -> None:
    from crm_tui.dedup import saved

    people = reference_find(generated(2000, 18))
    arrays, meta = saved.to_saved(people)
    back = saved.from_saved(arrays, meta)
    assert back is not None
    _in_order(back, people)
    assert saved.from_saved(arrays, {**meta, "points": meta["points"] + 1}) is None


def test_codes_of_many_texts_are_each_texts_own_code() -> None:
    from crm_tui.dedup.keyarrays import code, codes

    texts = [f"p{n % 2500}@x.com" for n in range(5000)] + [None, "", "Søren", "\ud800 lone"]
    assert codes(texts).tolist() == [code(t) if t else 0 for t in texts]


def test_saved_clusters_of_other_rules_are_not_used(tmp_path, monkeypatch) -> None:
    from crm_tui.dedup import saved

    contacts = generated(1200, 19)
    _refreshed(tmp_path, Based(contacts))
    monkeypatch.setattr(saved, "_rules", lambda: "a threshold changed since")
    clustered = _count_clusterings(monkeypatch)
    people = _refreshed(tmp_path, Based(contacts))
    same_people(people, reference_find(contacts))
    assert clustered == [len(Based(contacts).base)]


def test_clusters_are_saved_after_the_refresh_and_a_failed_save_is_let_go(tmp_path) -> None:
    contacts = generated(1000, 20)
    finder = DuplicateFinder(shelf=ArtifactShelf(tmp_path, "u"))
    people = finder.refresh(Based(contacts))
    finder.flush()
    assert len(list(tmp_path.glob("*/dedup_people/*/*/meta.json"))) == 1
    same_people(_refreshed(tmp_path, Based(contacts)), people)

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    failing = DuplicateFinder(shelf=ArtifactShelf(tmp_path / "full", "u"))
    failing.shelf._save = refused  # type: ignore[union-attr, method-assign]
    store = Based(contacts)
    failing.refresh(store)
    failing.flush()  # released although the save failed
    _changes(store, contacts)
    same_people(failing.refresh(store), reference_find(store.contacts()))  # the next one runs
