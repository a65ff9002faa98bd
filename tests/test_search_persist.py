"""A search segment saved beside the database and opened at the next start answers exactly as
the one built from the records, over a list or over records decoded on demand; anything
that does not fit the records or the format is not opened, and the index rebuilds."""

from __future__ import annotations

import json
import logging
import mmap
import random
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

import numpy as np
import pytest

from crm_tui.custom_columns import Column
from crm_tui.models import Contact, Deal, Record, RecordKind
from crm_tui.search import persist
from crm_tui.search import segment as segment_module
from crm_tui.search.index import SearchIndex
from crm_tui.search.persist import open_segment, save_segment
from crm_tui.search.segment import Segment
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.stamps import StreamStamp
from tests.helpers.records import cached_contact

STAMP = StreamStamp(3, (2,), 40)
COLUMNS = {
    "lender": Column("lender", "Lender"),
    "price_range": Column("price_range", "Price range", "money"),
    "closing_date": Column("closing_date", "Closing date", "date"),
    "areas": Column("areas", "Areas", "list"),
}


class LazyRecords(Sequence[Record]):
    """Records decoded on demand, as the store's mapped records are: it counts each record
    it hands out, and finds ids by its own index, as StoredRecords.positions does."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._records = list(records)
        self._at = {r.id: n for n, r in enumerate(self._records)}
        self.read = 0
        self.asked: list[str] = []

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, at: int) -> Record: ...
    @overload
    def __getitem__(self, at: slice) -> Sequence[Record]: ...
    def __getitem__(self, at: int | slice) -> Record | Sequence[Record]:
        found = self._records[at]
        self.read += len(found) if isinstance(found, list) else 1
        return found

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        wanted = list(ids)
        self.asked += wanted
        return {i: self._at[i] for i in wanted if i in self._at}


def _mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a mapped file (not a copy read in)."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, mmap.mmap)


def person(n: int, source: str = "brivity", **fields: Any) -> Contact:
    return cached_contact(source, n, "u", **fields)


def accented() -> list[Record]:
    rows = [
        ("José", "Núñez", "São Paulo", "Client", ("comprador",)),
        ("Zoë", "Łukasiewicz", "Kraków", "Lead", ("buyer", "vip")),
        ("Søren", "Ærø", "Århus", "Nurture", ()),
        ("Straße", "Œuvre", "Düsseldorf", "Past client", ("seller",)),
        ("김민준", "Smith", "Austin", "lead", ("buyer",)),
    ]
    return [
        person(n, first_name=f, last_name=la, city=c, status=s, tags=t, email=f"p{n}@ex.io")
        for n, (f, la, c, s, t) in enumerate(rows)
    ]


def hostile() -> list[Record]:
    return [
        person(1, first_name="[@click=app.quit]Bob[/]", last_name="(.*)+?", city="[b]x[/b]"),
        person(2, first_name="Ann\x1fMarie", last_name="O'Neil", company="Smith & Sons"),
        person(3, first_name="", last_name=None, email=None, phone="+1 (555) 000-1111"),
        person(4, first_name="Line\nBreak", status="\\", tags=("a, b", "", "ü")),
        person(5, first_name="😀 Emoji", last_name="%s %d {0}", city="Austin", tags=("buyer",)),
    ]


def many(count: int = 5000) -> list[Record]:
    r = random.Random(7)
    first = ("John", "Mary", "José", "Ann", "Søren", "Li", "Anna", "Jon")
    last = ("Smith", "Johnson", "Núñez", "Smithers", "Andersen", "Wałęsa")
    cities = ("Austin", "Dallas", "São Paulo", "Houston", "Round Rock")
    return [
        person(
            n,
            first_name=r.choice(first),
            last_name=r.choice(last),
            email=f"x{n}@mail{n % 7}.com",
            phone=f"(512) 555-{n:04d}",
            company=r.choice(("Acme", "Smith & Sons", None)),
            city=r.choice(cities),
            status=r.choice(("Lead", "Client", "Past client", None)),
            tags=tuple(r.sample(("buyer", "seller", "vip", "investor"), r.randint(0, 2))),
            remote_created=f"2026-0{1 + n % 9}-1{n % 10}T10:00:00Z" if n % 5 else None,
            custom=_some_custom(r) if n % 3 else {},
        )
        for n in range(count)
    ]


def _some_custom(r: random.Random) -> dict[str, Any]:
    return {
        "lender": r.choice(("Quicken Loans", "Rocket Mortgage", "Chase")),
        "price_range": Decimal(r.randrange(100_000, 1_000_000, 50_000)),
        "closing_date": f"202{r.randint(6, 7)}-{r.randint(10, 12)}-0{r.randint(1, 9)}",
    }


def custom() -> list[Record]:
    values: list[dict[str, Any]] = [
        {"lender": "Quicken Loans", "price_range": Decimal("450000")},
        {"lender": "Rocket Mortgage", "price_range": Decimal("750000")},
        {"closing_date": "2026-12-15", "areas": ("Hyde Park", "Zilker")},
        {"closing_date": "2027-01-02", "price_range": Decimal("500000")},
        {},
    ]
    return [
        person(n, first_name=f"Person{n}", city="Austin", custom=v) for n, v in enumerate(values)
    ]


def deals() -> list[Record]:
    made = [
        ("1 Oak St", Decimal(400_000), "2026-12-03", "Closed"),
        ("2 Oak St", Decimal(900_000), "2027-01-10", None),
        ("3 Élm St", None, None, "Under contract"),
        ("4 Oak Ave", Decimal(650_000), "2026-12-20", "closedwon"),
    ]
    return [
        Deal(
            id=f"b:{n}",
            source="brivity",
            remote_id=str(n),
            user_id="u",
            name=name,
            amount=amount,
            close_date=close,
            stage=stage,
            custom={"lender": "Quicken"},
        )
        for n, (name, amount, close, stage) in enumerate(made)
    ]


CONTACT_QUERIES = [
    "john",
    "jo sm",
    "smi",
    "an",
    "jose",
    "nunez",
    "walesa",
    "soren",
    "sao paulo",
    "austin",
    "555",
    "mail3",
    "smith city:austin",
    "an status:lead",
    "status:client",
    "tag:buyer",
    "tag:vip john",
    "city:round",
    "click",
    "(.*)",
    "marie",
    "emoji",
    "created:2026-03",
    "lender:quicken",
    "price_range>500000",
    "closing_date:2026-12",
    "zilker",
    "zzqq",
    "acme",
    "sons",
    "smith & sons",
    "acme jo",
]
DEAL_QUERIES = [
    "oak",
    "amount>500000",
    "closing:2026-12",
    "stage:closed",
    "900000",
    "el",
    "lender:quick",
]
SETS: dict[str, tuple[RecordKind, Callable[[], list[Record]]]] = {
    "accented": ("contacts", accented),
    "hostile": ("contacts", hostile),
    "empty": ("contacts", list),
    "one": ("contacts", lambda: accented()[:1]),
    "5k": ("contacts", many),
    "custom columns": ("contacts", custom),
    "deals": ("deals", deals),
    "empty deals": ("deals", list),
}


def answers(index: SearchIndex, kind: RecordKind) -> list[Any]:
    """Everything a search shows: hits with scores and spans, counts, every match in
    order, and the facet counts the filter hints list."""
    out: list[Any] = []
    for query in CONTACT_QUERIES if kind == "contacts" else DEAL_QUERIES:
        result = index.search(query, kind, limit=20)
        hits = {s: [(h.record.id, h.score, h.spans) for h in g] for s, g in result.groups.items()}
        out.append((query, hits, result.counts, [r.id for r in index.matching(query, kind)]))
    names = ("shared", "city", "tag") if kind == "contacts" else ("shared", "stage")
    return out + [index.value_counts(kind, name) for name in names]


def shelf_at(tmp_path: Path) -> ArtifactShelf:
    return ArtifactShelf(tmp_path / "artifacts", "u")


def built(kind: RecordKind, records: list[Record]) -> SearchIndex:
    index = SearchIndex()
    index.columns = COLUMNS
    index.rebuild(kind, "brivity", records)
    return index


def opened(tmp_path: Path, kind: RecordKind, records: Sequence[Record]) -> SearchIndex:
    """A new index (with COLUMNS) holding the segment `saved` put on the shelf, opened over
    `records`."""
    segment = open_segment(shelf_at(tmp_path), kind, "brivity", STAMP, records)
    assert segment is not None
    index = SearchIndex()
    index.columns = COLUMNS
    index.install(kind, "brivity", segment)
    return index


def saved(tmp_path: Path, kind: RecordKind, records: list[Record]) -> SearchIndex:
    index = built(kind, records)
    segment = index.segment_of(kind, "brivity")
    assert segment is not None
    save_segment(shelf_at(tmp_path), kind, "brivity", STAMP, segment, COLUMNS.values())
    return index


def test_companies_matched_as_values_answer_as_companies_in_the_lines(
    tmp_path, monkeypatch
) -> None:
    """Where companies repeat, a segment leaves them out of its lines and matches them as
    values: every hit, score, highlight, count and listing is as with them in the lines,
    and the segment saved and opened keeps matching them so."""
    records = many()
    apart = saved(tmp_path, "contacts", records)
    assert apart.segment_of("contacts", "brivity")._company_apart  # type: ignore[union-attr]
    with monkeypatch.context() as patch:
        patch.setattr(segment_module, "COMPANY_REPEATS", len(records) + 1)
        inline = built("contacts", records)
    assert not inline.segment_of("contacts", "brivity")._company_apart  # type: ignore[union-attr]
    assert answers(apart, "contacts") == answers(inline, "contacts")
    index = opened(tmp_path, "contacts", list(records))
    assert "company" in index.segment_of("contacts", "brivity").facets().matched  # type: ignore[union-attr]
    assert answers(index, "contacts") == answers(inline, "contacts")
    assert index.search("smith & sons").total > 1000  # the company, not only names


@pytest.mark.parametrize("lazy", [False, True], ids=["list", "lazy"])
@pytest.mark.parametrize("name", list(SETS))
def test_an_opened_segment_answers_as_the_built_one(tmp_path, name: str, lazy: bool) -> None:
    kind, make = SETS[name]
    records = make()
    fresh = saved(tmp_path, kind, records)
    given: Sequence[Record] = LazyRecords(records) if lazy else list(records)
    index = opened(tmp_path, kind, given)
    segment = index.segment_of(kind, "brivity")
    assert segment is not None
    if len(records):
        assert _mapped(segment.lows) and _mapped(segment.data)
        assert segment.text[0:3] == fresh.segment_of(kind, "brivity").text[0:3]  # type: ignore[union-attr]
    assert answers(index, kind) == answers(fresh, kind)


def test_opening_and_searching_read_only_the_records_shown(tmp_path) -> None:
    records = many()
    saved(tmp_path, "contacts", records)
    lazy = LazyRecords(records)
    index = opened(tmp_path, "contacts", lazy)
    assert lazy.read <= persist._SAMPLES
    before = lazy.read
    result = index.search("jo sm", limit=10)
    assert result.total > 10
    assert lazy.read - before == 10


@pytest.mark.parametrize(
    "query", ["created:2026-03", "lender:quicken", "price_range>500000", "closing_date:2026-12"]
)
def test_filters_after_open_read_only_the_records_shown(tmp_path, query: str) -> None:
    """Creation days and the custom columns' values were saved with the segment: a filter
    on them after a start decodes no record but those it shows."""
    records = many()
    fresh = saved(tmp_path, "contacts", records)
    lazy = LazyRecords(records)
    index = opened(tmp_path, "contacts", lazy)
    before = lazy.read
    result = index.search(query, limit=10)
    assert result.total == fresh.search(query, limit=10).total > 10
    assert lazy.read - before == 10


def test_a_patch_over_an_opened_segment(tmp_path) -> None:
    records = many(6000)  # past PATCH_MIN: positions are made before the install
    saved(tmp_path, "contacts", records)
    lazy = LazyRecords(records)
    index = opened(tmp_path, "contacts", lazy)
    stream = {r.id: r for r in records}
    changed = person(17, first_name="Quintessa", last_name="Vole", city="Austin")
    stream[changed.id] = changed
    del stream["brivity:18"]
    read = lazy.read
    index.patch("contacts", "brivity", lambda: stream, ["brivity:17", "brivity:18"])
    assert sorted(lazy.asked) == ["brivity:17", "brivity:18"]
    assert lazy.read == read  # no pass over the records
    assert [h.record.id for h in index.search("quintessa vole").groups["brivity"]] == [changed.id]
    mailed = {r.id for r in index.matching("mail", "contacts")}
    assert mailed == {i for i, r in stream.items() if isinstance(r, Contact) and r.email}
    old_name = records[17].name.split()[0].lower()
    assert changed.id not in {r.id for r in index.matching(old_name)}


def test_an_install_drops_the_old_segments_patch_and_frees_no_lazy_records(tmp_path) -> None:
    records = accented()
    saved(tmp_path, "contacts", records)
    index = SearchIndex()
    for _ in range(2):
        segment = open_segment(
            shelf_at(tmp_path), "contacts", "brivity", STAMP, LazyRecords(records)
        )
        assert segment is not None
        index.install("contacts", "brivity", segment)
    stream: dict[str, Record] = {r.id: r for r in records}
    stream["brivity:0"] = person(0, first_name="Patched")
    index.patch("contacts", "brivity", lambda: stream, ["brivity:0"])
    assert index.search("patched").total == 1
    again = open_segment(shelf_at(tmp_path), "contacts", "brivity", STAMP, records)
    assert again is not None
    index.install("contacts", "brivity", again)
    assert index.search("patched").total == 0
    assert index.search("jose").total == 1
    index.rebuild("contacts", "brivity", records)  # over a list: freed gradually, as before
    assert index.segment_of("contacts", "brivity") is not again


def _folder(tmp_path: Path) -> Path:
    return next((tmp_path / "artifacts").rglob("meta.json")).parent


def _rewrite(folder: Path, name: str, change: Callable[[np.ndarray], None]) -> None:
    """An array changed in place, its type and shape kept: only the values are wrong."""
    array = np.load(folder / f"{name}.npy").copy()
    change(array)
    np.save(folder / f"{name}.npy", array)


def _set(at: int, value: int) -> Callable[[np.ndarray], None]:
    def change(array: np.ndarray) -> None:
        array[at] = value

    return change


def _reverse(array: np.ndarray) -> None:
    array[:] = array[::-1]


def _shift_a_first_run(array: np.ndarray) -> None:
    """A bigram's first run one later: every range still ascending, but the bigram's
    runs no longer start where its offsets do."""
    wide = np.flatnonzero(np.diff(array.astype(np.int64)) >= 2)[0]
    array[wide] += 1


def _garble(array: np.ndarray) -> None:
    array[:] = ord("x")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda f: (f / "s_lows.npy").write_bytes((f / "s_lows.npy").read_bytes()[:99]),
    "garbage meta": lambda f: (f / "meta.json").write_text("{nope"),
    "missing facets": lambda f: (f / "f_codes_city.npy").unlink(),
    "a line past the text": lambda f: _rewrite(f, "s_starts", _set(-1, 10**6)),
    "lines out of order": lambda f: _rewrite(f, "s_starts", _set(2, 1)),
    "a name outside its line": lambda f: _rewrite(f, "s_name_ends", _set(0, 10**6)),
    "a wrong block table": lambda f: _rewrite(f, "s_line_at", _set(-1, 0)),
    "bigram ranges": lambda f: _rewrite(f, "s_offsets", _set(-1, 3)),
    "runs out of order": lambda f: _rewrite(f, "s_run_start", _reverse),
    "runs of other bigrams": lambda f: _rewrite(f, "s_run_offsets", _reverse),
    "a bigram's runs moved": lambda f: _rewrite(f, "s_run_offsets", _shift_a_first_run),
    "a code past its values": lambda f: _rewrite(f, "f_codes_city", _set(0, 250)),
    "a tag owner past the records": lambda f: _rewrite(f, "f_tag_owner", _set(0, 60000)),
    "a custom column's code past its values": lambda f: _rewrite(f, "f_custom_0", _set(0, 200)),
    "a creation day past its values": lambda f: _rewrite(f, "f_created_codes", _set(0, 250)),
    "garbled values": lambda f: _rewrite(f, "f_values", _garble),
    "values of another shape": lambda f: _rewrite_values(
        f, {"values": [], "tag": {}, "closing": 1}
    ),
    "values of other fields": lambda f: _rewrite_values(
        f, {**_values(f), "values": {"status": [], "city": [""]}}
    ),
    "another type": lambda f: _retype(f, "s_lows", np.float32),
    "older format": lambda f: _meta(f, "format", "search-segment-0"),
    "another record count": lambda f: _meta_meta(f, "count", 4999),
    "other records": lambda f: _meta_meta(f, "ids", "0" * 32),
}


def _rewrite_values(folder: Path, values: Any) -> None:
    blob = json.dumps(values).encode()
    np.save(folder / "f_values.npy", np.frombuffer(blob, np.uint8))
    _meta(folder, "arrays", {**_doc(folder)["arrays"], "f_values": ["uint8", [len(blob)]]})


def _values(folder: Path) -> dict[str, Any]:
    return json.loads(np.load(folder / "f_values.npy").tobytes())


def _retype(folder: Path, name: str, dtype: Any) -> None:
    array = np.load(folder / f"{name}.npy").astype(dtype)
    np.save(folder / f"{name}.npy", array)
    _meta(folder, "arrays", {**_doc(folder)["arrays"], name: [str(array.dtype), [len(array)]]})


def _doc(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def _meta(folder: Path, key: str, value: Any) -> None:
    document = _doc(folder)
    document[key] = value
    (folder / "meta.json").write_text(json.dumps(document))


def _meta_meta(folder: Path, key: str, value: Any) -> None:
    _meta(folder, "meta", {**_doc(folder)["meta"], key: value})


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_segment_is_not_opened_and_the_index_rebuilds(
    tmp_path, caplog, damage: str
) -> None:
    records = many()
    fresh = saved(tmp_path, "contacts", records)
    DAMAGE[damage](_folder(tmp_path))
    with caplog.at_level(logging.INFO):
        found = open_segment(shelf_at(tmp_path), "contacts", "brivity", STAMP, records)
    assert found is None
    assert any("segment" in r.getMessage() for r in caplog.records)
    index = SearchIndex()
    index.columns = COLUMNS
    index.rebuild("contacts", "brivity", records)
    assert answers(index, "contacts") == answers(fresh, "contacts")


@pytest.mark.parametrize(
    "asked",
    [StreamStamp(3, (2,), 41), StreamStamp(4, (2,), 40), StreamStamp(3, (), 40)],
    ids=["a newer change", "another generation", "other imports"],
)
def test_only_the_exact_stamp_opens(tmp_path, asked: StreamStamp) -> None:
    records = accented()
    saved(tmp_path, "contacts", records)
    assert open_segment(shelf_at(tmp_path), "contacts", "brivity", asked, records) is None
    assert open_segment(shelf_at(tmp_path), "contacts", "brivity", STAMP, records) is not None


def test_records_that_are_not_the_saved_ones_do_not_open(tmp_path) -> None:
    records = many(500)
    saved(tmp_path, "contacts", records)
    shelf = shelf_at(tmp_path)
    assert open_segment(shelf, "contacts", "brivity", STAMP, records[:-1]) is None
    assert open_segment(shelf, "contacts", "brivity", STAMP, records[::-1]) is None
    assert open_segment(shelf, "deals", "brivity", STAMP, records) is None
    assert open_segment(shelf, "contacts", "lofty", STAMP, records) is None


def test_another_folding_is_another_format(tmp_path, monkeypatch) -> None:
    records = accented()
    saved(tmp_path, "contacts", records)
    monkeypatch.setattr(persist, "FOLD_VERSION", persist.FOLD_VERSION + "x")
    assert open_segment(shelf_at(tmp_path), "contacts", "brivity", STAMP, records) is None


def test_a_field_added_to_segments_is_another_format() -> None:
    """The format names every array field, so a new one cannot meet an old artifact."""
    segment = Segment.build(accented())
    names = [name for name in persist.array_fields() if name != "data"]
    assert names and all(
        f"{name}:{getattr(segment, name).dtype}" in persist.segment_format() for name in names
    )


def test_lazy_records_build_without_a_copy() -> None:
    lazy = LazyRecords(many(100))
    segment = Segment.build(lazy)
    assert segment.records is lazy
    assert segment.positions().find(["brivity:5", "nope"]) == {"brivity:5": 5}


def test_the_open_benchmark_runs_at_a_small_size() -> None:
    """Figures are printed, never asserted: the script stays working."""
    script = Path(__file__).parent.parent / "benchmarks" / "index_open_bench.py"
    done = subprocess.run(
        [sys.executable, str(script), "--size", "3000"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "first 'jo sm'" in done.stdout


def test_a_save_that_fails_is_logged_and_loses_nothing(tmp_path, caplog) -> None:
    records = accented()
    index = built("contacts", records)
    blocked = tmp_path / "artifacts"
    blocked.write_text("a file where the folder would go")
    segment = index.segment_of("contacts", "brivity")
    assert segment is not None
    with caplog.at_level(logging.WARNING):
        assert save_segment(shelf_at(tmp_path), "contacts", "brivity", STAMP, segment) is None
    assert "could not save" in caplog.text
    assert index.search("jose").total == 1
