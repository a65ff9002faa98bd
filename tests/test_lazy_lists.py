"""Lists over a million records hold arrays, not records: Browse's rows (a store's streams,
a sort of them, a filter's matches) and the Pipeline's groups read from a search segment's
facets. Each is checked against the same answer computed from a plain list of records, and
the lazy ones count the records they read."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from crm_tui.insights.dealtable import DealTable
from crm_tui.insights.leads import SegmentLeads, lead_flow
from crm_tui.insights.report import deal_figures
from crm_tui.lazyrows import Reordered, StreamRows, find_positions, sort_ranks, sorted_order
from crm_tui.models import Deal, Record, RecordKind
from crm_tui.screens.browse import columns
from crm_tui.search.index import SearchIndex
from crm_tui.search.persist import open_segment, save_segment
from crm_tui.store import CacheStore, Database
from crm_tui.store.stream_view import StreamView
from tests.helpers.records import cached_contact
from tests.test_search_persist import STAMP, LazyRecords, shelf_at

NOW = date(2026, 11, 25)


def people(count: int, source: str = "brivity", seed: int = 3) -> list[Record]:
    """Contacts whose shown values repeat (ties to keep in order) or are missing."""
    r = random.Random(seed)
    return [
        cached_contact(
            source,
            n,
            "alice",
            first_name=r.choice(("Ann", "ann", "Bob", "Émile", "Zoë", "")),
            last_name=r.choice(("Smith", "Núñez", "O'Neil")),
            email=r.choice((f"x{n}@mail.com", None)),
            city=r.choice(("Austin", "austin", "Dallas", None)),
            status=r.choice(("Lead", "Client", None)),
            stage=r.choice(("Lead", "Hot Prospect", "Closed", None)),
            remote_created=r.choice((None, "2026-11-23T08:00:00Z", f"2026-10-{1 + n % 28:02d}T1")),
        )
        for n in range(count)
    ]


def loaded(tmp_path: Path, records: list[Record]) -> CacheStore:
    store = CacheStore("alice", Database(tmp_path / "crm.sqlite3"))
    asyncio.run(store.replace_stream("brivity", "contacts", records))
    store.load_sync()
    assert isinstance(store.stream("contacts", "brivity"), StreamView)
    return store


def changed_rows(tmp_path: Path) -> tuple[StreamRows, list[Record]]:
    """A stream view with records changed, removed and added over its artifact, then a
    dict stream: the rows, and the same records listed."""
    store = loaded(tmp_path, people(300))
    view = store.stream("contacts", "brivity")
    assert isinstance(view, StreamView)
    moved = cached_contact("brivity", 7, "alice", first_name="Moved", city="Zurich")
    new = [cached_contact("brivity", f"n{n}", "alice", first_name=f"New{n}") for n in range(3)]
    gone = ["brivity:0", "brivity:150", "brivity:299", "brivity:n1"]
    view = view.patched({r.id: r for r in [moved, *new]}, gone)
    plain = {r.id: r for r in people(40, "lofty", seed=9)}
    rows = StreamRows([view, {}, plain])
    return rows, [*view.values(), *plain.values()]


def test_stream_rows_find_every_id_where_the_list_holds_it(tmp_path) -> None:
    rows, listed = changed_rows(tmp_path)
    assert len(rows) == len(listed) == 300 - 3 + 2 + 40 and list(rows) == listed
    expected = {r.id: n for n, r in enumerate(listed)}
    assert rows.positions(expected) == expected
    assert rows.positions(["brivity:0", "brivity:n1", "nowhere:1"]) == {}
    assert rows[5:8] == listed[5:8] and rows[-1] == listed[-1]


@pytest.mark.parametrize("reverse", [False, True], ids=["ascending", "descending"])
def test_a_sort_by_ranks_is_the_order_sorting_the_records_gives(tmp_path, reverse) -> None:
    rows, listed = changed_rows(tmp_path)
    for column in columns("contacts"):
        assert column.sort_key is not None
        expected = sorted(listed, key=column.sort_key, reverse=reverse)
        order = sorted_order(sort_ranks(rows, column.sort_key), reverse)
        shown = Reordered(rows, order)
        assert [r.id for r in shown] == [r.id for r in expected], column.title
    ids = [r.id for r in shown]
    assert shown.positions(ids[::37]) == {i: ids.index(i) for i in ids[::37]}


def test_a_sort_reads_each_record_once_and_can_be_stopped() -> None:
    import threading

    from crm_tui.lazyrows import Cancelled

    lazy = LazyRecords(people(20_000))
    ranks = sort_ranks(lazy, lambda r: (r.city or "").casefold())
    assert lazy.read == 20_000
    assert sorted(set(ranks.tolist())) == [0, 1, 2]  # "", austin, dallas
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        sort_ranks(lazy, lambda r: r.city, stop)
    assert lazy.read == 20_000


def test_find_positions_of_a_list_and_of_a_sequence_that_tells() -> None:
    records = people(20)
    assert find_positions(records, ["brivity:4", "x:1"]) == {"brivity:4": 4}
    lazy = LazyRecords(records)
    assert find_positions(lazy, ["brivity:4", "brivity:9"]) == {"brivity:4": 4, "brivity:9": 9}
    assert lazy.read == 0 and lazy.asked


Opened = tuple[SearchIndex, LazyRecords]


def opened(tmp_path: Path, kind: RecordKind, records: list[Record]) -> Opened:
    """An index whose one segment was saved, then opened over records read on demand."""
    built = SearchIndex()
    built.rebuild(kind, "brivity", records)
    segment = built.segment_of(kind, "brivity")
    assert segment is not None
    save_segment(shelf_at(tmp_path), kind, "brivity", STAMP, segment)
    lazy = LazyRecords(records)
    found = open_segment(shelf_at(tmp_path), kind, "brivity", STAMP, lazy)
    assert found is not None
    index = SearchIndex()
    index.install(kind, "brivity", found)
    return index, lazy


def test_a_filters_matches_are_read_only_when_shown(tmp_path) -> None:
    records = people(3000)
    index, lazy = opened(tmp_path, "contacts", records)
    listed = SearchIndex()
    listed.rebuild("contacts", "brivity", records)
    before = lazy.read
    for query in ("ann", "sm status:lead", "city:austin", "nu"):
        found = index.matching(query)
        assert lazy.read == before  # the matches are arrays until read
        expected = list(listed.matching(query))
        assert len(found) > 10 and found == expected
        assert found[3:6] == expected[3:6] and found[-1] == expected[-1]
        ids = [r.id for r in expected[::50]]
        at = {r.id: n for n, r in enumerate(expected)}
        assert found.positions(ids) == {i: at[i] for i in ids}
        before = lazy.read
    assert index.matching("zzzz") == []


def test_matches_over_a_patch_find_the_new_version(tmp_path) -> None:
    records = people(6000)
    index, _ = opened(tmp_path, "contacts", records)
    current = {r.id: r for r in records}
    moved = cached_contact("brivity", 11, "alice", first_name="Quentin", last_name="Xylo")
    current[moved.id] = moved
    index.patch("contacts", "brivity", lambda: current, [moved.id])
    found = index.matching("quentin xylo")
    assert list(found) == [moved] and found.positions([moved.id]) == {moved.id: 0}


def test_lead_flow_from_an_opened_segment_reads_a_record_per_stage(tmp_path) -> None:
    records = people(5000)
    index, lazy = opened(tmp_path, "contacts", records)
    before = lazy.read
    flow, count = SegmentLeads().flow(index.parts("contacts"), NOW)
    assert count == 5000 and flow == lead_flow(records, NOW)
    heads = {(r.stage, r.status) for r in records}
    assert lazy.read - before <= len(heads)


def deals(count: int) -> list[Record]:
    r = random.Random(5)
    return [
        Deal(
            f"brivity:{n}",
            "brivity",
            str(n),
            "alice",
            name=f"{n} Oak St",
            amount=r.choice((None, Decimal(250_000), Decimal(n * 1000))),
            stage=r.choice(("Closed", "Under contract", "Pending", None)),
            close_date=r.choice((None, f"2026-{1 + n % 12:02d}-15", "2027-02-01")),
            raw='{"GCI": "1,000"}',
        )
        for n in range(count)
    ]


def test_deal_figures_from_opened_segments_equal_those_of_the_records(tmp_path) -> None:
    records = deals(4000)
    index, lazy = opened(tmp_path, "deals", records)
    before = lazy.read
    parts = index.parts("deals")
    table = DealTable.merge([DealTable.of_segment(seg, dead) for _, seg, dead in parts])
    got, expected = deal_figures(table, NOW), deal_figures(DealTable.of(records), NOW)
    assert got == expected and got.deal_count == 4000
    in_window = sum(1 for r in records if r.close_date and r.close_date[:7] >= "2025-12")
    # a record per group for its key, and the GCI of those closing in the window: no more
    assert lazy.read - before <= len(table.keys) + in_window < len(records)


def test_deal_table_of_lazy_records_reads_each_once() -> None:
    records = deals(3000)
    lazy = LazyRecords(records)
    table = DealTable.of(lazy)
    assert lazy.read == 3000 + len(table.keys)  # a pass, then each group's first deal
    assert deal_figures(table, NOW) == deal_figures(records, NOW)  # type: ignore[arg-type]
    assert np.array_equal(table.counts, DealTable.of(records).counts)


def test_stream_rows_of_a_store_are_its_records(tmp_path) -> None:
    store = loaded(tmp_path, people(50))
    rows = StreamRows(store.stream("contacts", name) for name in store.sources())
    assert list(rows) == list(store.records("contacts")) and len(rows) == 50


def test_a_filters_figures_come_from_the_facets_of_its_matches(tmp_path) -> None:
    contacts = people(4000)
    index, lazy = opened(tmp_path, "contacts", contacts)
    found = index.matching("status:lead")
    before = lazy.read
    assert lead_flow(found, NOW) == lead_flow(list(found), NOW)
    assert lazy.read - before - len(found) <= len({(r.stage, r.status) for r in contacts})
    records = deals(4000)
    index, lazy = opened(tmp_path / "deals", "deals", records)
    found = index.matching("stage:closed", "deals")
    before = lazy.read
    table = DealTable.of(found)
    assert lazy.read - before <= len(table.keys)
    matched = [r for r in records if r.id in {m.id for m in found}]
    assert 0 < len(matched) < len(records)
    assert deal_figures(table, NOW) == deal_figures(DealTable.of(matched), NOW)
