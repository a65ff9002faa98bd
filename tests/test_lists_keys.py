"""Keys that cannot hurt in the lists, no ceiling on results, filters, export, empty states:
the real app driven by Pilot against the demo servers."""

from __future__ import annotations

import csv

from textual.widgets import DataTable, Input, Static

from crm_tui.app import make_app
from crm_tui.screens.browse import BrowseScreen
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.export_view import FormatScreen
from crm_tui.screens.local_form import LocalFormScreen
from crm_tui.screens.search import SearchScreen
from crm_tui.widgets.record_table import RecordTable
from tests.helpers.env import make_settings
from tests.helpers.tui import SIZE, audit_read, idle, settle


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def search_results(pilot, app, query: str) -> DataTable:
    """Search, `query` typed, results shown and focused (down)."""
    await settle(pilot, app)
    await pilot.press("f2", *query)
    await idle(pilot)
    await pilot.press("down")
    table = app.screen.query_one("#results", DataTable)
    assert app.focused is table
    return table


async def local_contact(pilot, app, first: str) -> None:
    """A local contact saved through the form (ctrl+n on Browse)."""
    await pilot.press("f3", "ctrl+n")
    assert isinstance(app.screen, LocalFormScreen)
    await pilot.press(*first)
    app.screen.query_one("#field-email", Input).value = f"{first.lower()}@example.com"
    await pilot.press("ctrl+s")
    await settle(pilot, app)


async def test_a_name_typed_into_the_results_changes_nothing_and_lands_in_the_box(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await local_contact(pilot, app, "Dyer")
        assert app.store.count("contacts", "local") == 1
        table = await search_results(pilot, app, "dy")
        assert table.row_count == 2  # the header and Dyer, the cursor on Dyer
        await pilot.press(*"er ana lee nq 16 du")
        await idle(pilot)
        assert isinstance(app.screen, SearchScreen)  # no form, no question, no other screen
        assert app.is_running
        box = app.screen.query_one("#query", Input)
        assert box.value == "dyer ana lee nq 16 du"
        assert app.focused is box and box.cursor_position == len(box.value)
        assert app.store.count("contacts", "local") == 1


async def test_up_at_the_top_and_slash_return_to_the_box_with_the_query(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await search_results(pilot, app, "jose")
        box = app.screen.query_one("#query", Input)
        await pilot.press("down", "slash")
        assert app.focused is box and box.value == "jose" and box.cursor_position == 4
        await pilot.press("down")
        assert app.focused is table and table.cursor_row == 1
        await pilot.press("up")  # the group's header
        assert app.focused is table and table.cursor_row == 0
        await pilot.press("up", "x")
        assert app.focused is box and box.value == "josex"


async def test_enter_in_the_box_opens_the_first_record(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f2", *"jose")
        await idle(pilot)
        first = next(iter(app.screen.last.groups.values()))[0].record
        await pilot.press("enter")
        await idle(pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.record.id == first.id


async def test_a_group_header_opens_all_its_matches_in_browse(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await search_results(pilot, app, "source:brivity")
        result = app.screen.last
        assert result.counts["brivity"] > len(result.groups["brivity"])  # past the ceiling
        await pilot.press("up", "enter")  # the header
        await settle(pilot, app)
        assert isinstance(app.screen, BrowseScreen)
        rows = app.screen.query_one(RecordTable).rows
        assert len(rows) == result.counts["brivity"]
        assert {r.source for r in rows} == {"brivity"}
        assert app.screen.query_one("#browse-find", Input).value == "source:brivity"
        assert table is not None


async def test_ctrl_b_opens_every_match_in_browse_with_the_query_kept(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await search_results(pilot, app, "ma")
        total = app.screen.last.total
        await pilot.press("ctrl+b")
        await settle(pilot, app)
        assert isinstance(app.screen, BrowseScreen)
        rows = app.screen.query_one(RecordTable).rows
        assert len(rows) == total > 50
        every = app.index.search("ma", limit=10**9)  # the same order as the ranked search
        assert [r.id for r in rows] == [h.record.id for g in every.groups.values() for h in g]
        assert "matching 'ma'" in text_of(app, "#browse-summary")


async def test_q_and_digits_never_leave_a_typing_screen_but_f_keys_and_ctrl_q_do(
    synced_settings,
):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3", "q", "4")  # Browse's list: both go to its filter
        assert isinstance(app.screen, BrowseScreen) and app.is_running
        assert app.screen.query_one("#browse-find", Input).value == "q4"
        await pilot.press("f2")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press("f1", "3")  # Status: nothing is typed there, a digit switches
        assert isinstance(app.screen, BrowseScreen)
        await pilot.press("ctrl+q")
    assert not app.is_running


async def test_data_changing_keys_are_ctrl_keys_in_browse(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await local_contact(pilot, app, "Nora")
        await pilot.press("escape", "d", "y", "n", "e", "u")  # typed, never run
        await idle(pilot)
        assert isinstance(app.screen, BrowseScreen) and app.store.count("contacts", "local") == 1
        await pilot.press("escape")
        await idle(pilot)
        await pilot.press("delete")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot, app)
        assert app.store.count("contacts", "local") == 0

        def footer() -> set[str]:
            shown = app.screen.active_bindings.values()
            return {b.binding.key for b in shown if b.binding.show and b.enabled}

        assert {"ctrl+n", "ctrl+e", "ctrl+z"} <= footer()  # a delete to undo: offered
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert app.store.count("contacts", "local") == 1
        assert {"ctrl+n", "ctrl+e"} <= footer() and "ctrl+z" not in footer()  # nothing left


async def test_browse_filters_as_you_type_and_esc_clears(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        table = app.screen.query_one(RecordTable)
        everyone = table.row_count
        await pilot.press("slash", *"jose")
        await idle(pilot)
        assert 3 <= table.row_count < everyone
        assert all("jos" in r.name.casefold() or "jos" in (r.email or "") for r in table.rows)
        await pilot.press(*" source:brivity")
        await idle(pilot)
        assert table.rows and {r.source for r in table.rows} == {"brivity"}
        await pilot.press(*["backspace"] * len("brivity"))
        await pilot.press(*"nowhere")
        await idle(pilot)
        assert "unknown source" in text_of(app, "#browse-summary").lower() or not table.rows
        await pilot.press("enter", "escape")
        await idle(pilot)
        assert table.row_count == everyone


async def test_browse_sort_keeps_the_selected_record_and_g_goes_top_and_bottom(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3", "G")
        table = app.screen.query_one(RecordTable)
        assert table.cursor == table.row_count - 1
        await pilot.press("g", *["down"] * 7)
        chosen = table.current
        await pilot.press("o", "o")  # by source, then by name
        await idle(pilot)
        # the same record, read again from disk (not the same object)
        assert table.sort_column == 1 and table.current.id == chosen.id
        names = [r.name.casefold() for r in table.rows]
        assert names == sorted(names)


async def test_audit_filters_runs_and_goes_top_and_bottom(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await audit_read(pilot)
        runs = app.screen.query_one("#runs", DataTable)
        assert runs.row_count >= 3
        await pilot.press("G")
        assert runs.cursor_row == runs.row_count - 1
        await pilot.press("g")
        assert runs.cursor_row == 0
        await pilot.press(*"brivity")  # letters in the list go to the filter
        await idle(pilot)
        assert app.screen.query_one("#audit-find", Input).value == "brivity"
        assert 0 < runs.row_count < len(app.screen.runs)
        await pilot.press(*"zzz")
        await idle(pilot)
        assert runs.row_count == 0 and "No run matches" in text_of(app, "#audit-summary")


async def test_people_letters_go_to_find_and_decisions_take_ctrl_keys(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f6")
        table = app.screen.query_one(RecordTable)
        before = table.row_count
        await pilot.press(*"ux")  # once undo and not the same: now typed
        await idle(pilot)
        assert app.screen.query_one("#people-find", Input).value == "ux"
        assert app.review.counts()["rejected"] == 0
        await pilot.press("escape")  # the find cleared, the list has the keys again
        await idle(pilot)
        assert table.row_count == before
        await pilot.press("ctrl+x")
        await settle(pilot, app)
        assert app.review.counts()["rejected"] == 1 and table.row_count == before - 1


async def test_export_the_browse_filter_as_csv_and_vcard(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3", "slash", *"jose")
        await idle(pilot)
        shown = list(app.screen.query_one(RecordTable).rows)
        await pilot.press("enter", "ctrl+s")
        await idle(pilot)
        assert isinstance(app.screen, FormatScreen)
        await pilot.press("c")
        await settle(pilot, app)
        folder = synced_settings.data_dir / "exports"
        [path] = list(folder.glob("contacts-*.csv"))
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["id"] for r in rows] == [r.id for r in shown]
        assert path.stat().st_mode & 0o777 == 0o600
        assert any(str(path) in str(n.message) for n in app._notifications)
        await pilot.press("ctrl+s", "v")
        await settle(pilot, app)
        [card] = list(folder.glob("contacts-*.vcf"))
        assert card.read_text().count("BEGIN:VCARD") == len(shown)


async def test_empty_states_say_why(tmp_path, synced_settings):
    app = make_app(make_settings(tmp_path / "empty"), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        await idle(pilot)
        assert "synced yet" in text_of(app, "#browse-summary")
        await pilot.press("f4")
        await audit_read(pilot)
        assert "No sync runs yet" in text_of(app, "#audit-summary")
        await pilot.press("f2", *"zz")
        await idle(pilot)
        assert "synced yet" in text_of(app, "#summary")
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f2", *"qqxqq")
        await idle(pilot)
        assert "No contacts match 'qqxqq'" in text_of(app, "#summary")
        await pilot.press("f3", "slash", *"qqxqq")
        await idle(pilot)
        assert "match 'qqxqq'" in text_of(app, "#browse-summary")


async def test_columns_are_chosen_by_width_and_priority_and_follow_a_resize(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        await idle(pilot)
        table = app.screen.query_one(RecordTable)
        titles = [table.columns[i].title for i, _ in table.shown]
        assert {"City", "Status"} <= set(titles) and "Company" not in titles
        await pilot.resize_terminal(200, 50)
        await idle(pilot)
        widths = {table.columns[i].title: w for i, w in table.shown}
        assert "Company" in widths
        longest = max(len(r.email or "") for r in table.rows[:500])
        assert widths["E-mail"] >= longest  # no e-mail cut while there is room
        await pilot.press("f2", *"ma")
        await idle(pilot)
        search = app.screen
        found = {key for key, _, _ in search.shown_columns}
        assert {"city", "status", "company"} <= found
        await pilot.resize_terminal(80, 24)
        await idle(pilot)
        found = {key for key, _, _ in search.shown_columns}
        assert {"city", "status"} <= found and "company" not in found


async def test_export_every_search_match_as_xlsx(synced_settings):
    from openpyxl import load_workbook

    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await search_results(pilot, app, "ma")
        total = app.screen.last.total
        assert total > sum(len(hits) for hits in app.screen.last.groups.values())
        await pilot.press("ctrl+s", "x")
        await settle(pilot, app)
        [path] = list((synced_settings.data_dir / "exports").glob("contacts-*.xlsx"))
        rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
        assert len(rows) == total + 1  # every match, not the rows shown, and a header
        assert "raw" not in rows[0]  # the vendor's payload (and whatever it holds) stays out


async def test_search_offers_edit_and_delete_only_on_a_result(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f2", *"jose")
        await idle(pilot)

        def offered() -> set[str]:
            return {b.binding.action for b in app.screen.active_bindings.values()}

        assert "local_edit" not in offered() and "local_new" in offered()
        await pilot.press("down")
        await idle(pilot)
        assert {"local_edit", "local_delete"} <= offered()


async def test_deal_matches_open_in_browse_on_the_deals_tab(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f2", "tab", *"amount>0")
        await idle(pilot)
        total = app.screen.last.total
        assert app.screen.kind == "deals" and total > 0
        await pilot.press("ctrl+b")
        await settle(pilot, app)
        assert isinstance(app.screen, BrowseScreen) and app.screen.kind == "deals"
        assert len(app.screen.query_one(RecordTable).rows) == total
        assert [c.title for c in app.screen.query_one(RecordTable).columns][1] == "Deal"


async def test_up_at_the_top_of_a_filtered_browse_returns_to_its_filter(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f3", "up")  # no filter shown: up stays in the list
        table = app.screen.query_one(RecordTable)
        assert app.focused is table
        await pilot.press("slash", *"jose")  # (j and o are the list's own keys: down, sort)
        await idle(pilot)
        await pilot.press("enter", "down", "up", "up", "x")
        box = app.screen.query_one("#browse-find", Input)
        assert app.focused is box and box.value == "josex"


def test_columns_join_by_priority_and_widen_to_what_they_need():
    from crm_tui.widgets.columns import Want, fit_widths

    wants = [
        Want("name", 14, 20, 0),
        Want("company", 10, 30, 6),
        Want("city", 8, 12, 4),
        Want("email", 16, 40, 1),
    ]
    assert fit_widths(wants, 45, gap=1) == {"name": 18, "email": 16, "city": 8}
    assert fit_widths(wants, 200, gap=1) == {"name": 20, "email": 40, "city": 12, "company": 30}


async def test_enter_typed_before_the_results_opens_the_first_of_them(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f2", *"zoe", "enter")  # faster than the search's debounce
        await idle(pilot)
        assert isinstance(app.screen, RecordScreen)
        assert app.screen.record.first_name == "Zoë"


async def test_question_mark_in_a_list_still_opens_help(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    [help_binding] = [b for b in app.BINDINGS if getattr(b, "id", None) == "app.help"]
    shown: list[str] = []
    setattr(app, f"action_{help_binding.action}", lambda: shown.append("help"))
    async with app.run_test(size=SIZE) as pilot:
        await search_results(pilot, app, "jose")
        await pilot.press(help_binding.key.split(",")[0])
        await idle(pilot)
        assert shown == ["help"]
        assert app.screen.query_one("#query", Input).value == "jose"


async def test_export_the_people_shown_as_csv(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f6", "c", "c")  # confidence >= 0.95: a selection
        await idle(pilot)
        members = {m for c in app.screen.query_one(RecordTable).rows for m in c.members}
        await pilot.press("ctrl+s", "c")
        await settle(pilot, app)
        [path] = list((synced_settings.data_dir / "exports").glob("contacts-*.csv"))
        with path.open(newline="") as handle:
            assert {r["id"] for r in csv.DictReader(handle)} == members


def test_two_exports_in_one_second_get_two_files(tmp_path):
    from datetime import datetime

    from crm_tui.screens.export_view import export_path

    now = datetime(2026, 11, 27, 1, 2, 3)
    first = export_path(tmp_path, "contacts", "csv", now)
    second = export_path(tmp_path, "contacts", "csv", now)
    assert first != second and first.exists() and second.exists()
    assert first.name == "contacts-20261127-010203.csv"
    assert second.name == "contacts-20261127-010203-2.csv"
    assert first.stat().st_mode & 0o777 == 0o600


async def test_a_live_refresh_keeps_the_search_cursor_on_its_record(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await search_results(pilot, app, "an")
        await pilot.press("down", "down", "down")
        before = app.screen._cursor_key()
        assert before is not None and not before.startswith("group:")
        app.screen.refresh_data()  # what a store change does: the query runs again
        await idle(pilot)
        assert app.screen._cursor_key() == before and app.focused is table


async def test_audit_shows_the_columns_that_fit_and_more_when_wider(synced_settings):
    from crm_tui.screens.audit import NARROW_COLUMNS, RUN_COLUMNS

    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await audit_read(pilot)
        runs = app.screen.query_one("#runs", DataTable)
        titles = [str(c.label) for c in runs.ordered_columns]
        assert titles == list(NARROW_COLUMNS) and runs.row_count > 0
        assert sum(c.get_render_width(runs) for c in runs.ordered_columns) <= 80
        await pilot.resize_terminal(200, 50)
        await idle(pilot)
        assert [str(c.label) for c in runs.ordered_columns] == list(RUN_COLUMNS)
        assert runs.row_count > 0


async def test_the_audit_reads_off_the_event_loop_and_says_when_it_cannot(tmp_path, monkeypatch):
    import sqlite3
    import threading

    from crm_tui.store import Database

    on_loop: list[bool] = []
    real, failing = Database.list_runs, [True]

    def list_runs(self, *args, **kwargs):
        on_loop.append(threading.current_thread() is threading.main_thread())
        if failing[0]:
            raise sqlite3.DatabaseError("disk I/O error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Database, "list_runs", list_runs)
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await audit_read(pilot)
        said = text_of(app, "#audit-summary")
        assert "Could not read the sync runs (disk I/O error)" in said and "r tries" in said
        failing[0] = False
        await pilot.press("r")
        await audit_read(pilot)
        assert "No sync runs yet" in text_of(app, "#audit-summary")
    assert len(on_loop) >= 2 and not any(on_loop)
