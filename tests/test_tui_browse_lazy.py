"""Browse over a cache loaded from its snapshot (records read from the mapped artifact as
they are shown): a sort, the cursor after a reload and a filter give what the same
operations on a plain list of the records give. The real app, driven by Pilot."""

from __future__ import annotations

from pathlib import Path

from crm_tui.app import make_app
from crm_tui.lazyrows import Reordered, StreamRows
from crm_tui.screens.browse import BrowseScreen
from crm_tui.search.matched import MatchedRecords
from crm_tui.store import CacheStore, Database
from crm_tui.store.stream_view import StreamView
from crm_tui.widgets.record_table import RecordTable
from tests.helpers.env import make_settings
from tests.helpers.records import cached_contact
from tests.helpers.tui import SIZE, idle, settle, until
from tests.test_lazy_lists import people


async def seeded(tmp_path: Path):
    settings = make_settings(tmp_path)
    settings.crm_data_dir.mkdir(parents=True, exist_ok=True)
    store = CacheStore("alice", Database(settings.database_path))
    await store.replace_stream("brivity", "contacts", people(400))
    await store.replace_stream("followupboss", "contacts", people(150, "followupboss", 4))
    assert store.db is not None
    store.db.close()
    return settings


async def browse(pilot, app) -> RecordTable:
    await settle(pilot, app)
    await pilot.press("f3")
    await idle(pilot)
    assert isinstance(app.screen, BrowseScreen)
    return app.screen.query_one(RecordTable)


def ids(rows) -> list[str]:
    return [r.id for r in rows]


async def test_sorting_the_lazy_list_orders_it_as_sorting_the_records(tmp_path) -> None:
    app = make_app(await seeded(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await browse(pilot, app)
        assert isinstance(app.store.stream("contacts", "brivity"), StreamView)
        assert isinstance(table.rows, StreamRows) and len(table.rows) == 550
        listed = list(app.store.records("contacts"))
        for presses, title in ((("o",), "Source"), (("o",), "Name"), (("o", "o"), "Phone")):
            await pilot.press(*presses)
            await idle(pilot)
            column = table.columns[table.sort_column]
            assert column.title == title and isinstance(table.rows, Reordered)
            assert ids(table.rows) == ids(sorted(listed, key=column.sort_key))
        await pilot.press("O")
        await idle(pilot)
        assert ids(table.rows) == ids(sorted(listed, key=column.sort_key, reverse=True))
        assert "sorted by Phone descending" in str(app.screen.query_one("#browse-summary").render())


async def test_the_cursor_stays_on_its_record_when_a_reload_moves_it(tmp_path) -> None:
    app = make_app(await seeded(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await browse(pilot, app)
        await pilot.press("o", "o")  # by name
        await idle(pilot)
        await pilot.press("g", *["down"] * 9)  # the tenth
        chosen = table.current
        assert chosen is not None and table.cursor == 9
        # records sorting before it arrive (a sync): it moves down, the cursor with it
        ahead = [cached_contact("brivity", f"a{n}", "alice", first_name="!") for n in range(5)]
        await app.store.upsert("contacts", ahead)
        await until(pilot, lambda: len(table.rows) == 555)
        await idle(pilot)
        assert table.current is not None and table.current.id == chosen.id
        assert table.cursor == ids(table.rows).index(chosen.id) == 14
        await pilot.press("o")  # another column: still on it
        await idle(pilot)
        assert table.current.id == chosen.id and table.rows[table.cursor].id == chosen.id


async def test_a_filter_lists_what_search_finds_in_its_order(tmp_path) -> None:
    app = make_app(await seeded(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await browse(pilot, app)
        for query in ("ann", "sm status:lead", "city:austin"):
            await pilot.press("slash", *query, "enter")
            await idle(pilot)
            assert isinstance(table.rows, MatchedRecords)
            found = app.index.search(query, limit=10_000)
            expected = [h.record.id for hits in found.groups.values() for h in hits]
            assert len(expected) > 5 and ids(table.rows) == expected
            await pilot.press("escape")
            await idle(pilot)
        await pilot.press("slash", *"ann", "enter", "o", "o")  # a filter, sorted by name
        await idle(pilot)
        found = app.index.search("ann", limit=10_000)
        column = table.columns[1]
        hits = [h.record for hits in found.groups.values() for h in hits]
        assert ids(table.rows) == ids(sorted(hits, key=column.sort_key))
