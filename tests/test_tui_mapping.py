"""The Mapping screen in the real app, against the demo servers: a Follow Up Boss custom
field discovered, mapped to a new custom column, then seen in Browse, Search and an
export, filtered on, and still mapped after a restart; a refused save changes nothing."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from rich.cells import cell_len
from textual.widgets import DataTable, Input, Static

from crm_tui.app import CrmApp, make_app
from crm_tui.demo import data
from crm_tui.fields.service import connector
from crm_tui.screens.browse import BrowseScreen
from crm_tui.screens.connections import ConnectionsScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.export_view import FormatScreen
from crm_tui.screens.mapping import ColumnScreen, MappingScreen
from crm_tui.sources.mapping import Mappings
from crm_tui.sources.mapping_file import mappings_path
from crm_tui.store import CacheStore, Database
from crm_tui.store.errors import StreamBusy
from crm_tui.widgets.record_table import RecordTable
from tests.helpers.snapshots import snapshot_settings
from tests.helpers.tui import settle, until

SIZE = (120, 40)


def rows(table: DataTable[Any]) -> dict[str, list[str]]:
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


def cells(table: DataTable[Any], key: str) -> dict[str, str]:
    """A row's values by column key (the columns shown depend on the width)."""
    row = table.get_row(key)
    return {str(k.value): str(v) for k, v in zip(table.columns, row, strict=True)}


def shown_lines(table: DataTable[Any]) -> list[str]:
    """What the table paints, line by line (the header first): what a person reads."""
    return [table.render_line(y).text for y in range(table.size.height)]


def status(screen: MappingScreen) -> str:
    return str(screen.query_one("#mapping-status", Static).render())


async def open_mapping(pilot: Any, app: CrmApp) -> MappingScreen:
    """From Connections: `m` on Follow Up Boss; the discovery (a thread) finished."""
    await pilot.press("f5")
    await until(pilot, lambda: isinstance(app.screen, ConnectionsScreen), "Connections")
    table = app.screen.query_one("#connections", DataTable)
    table.move_cursor(row=table.get_row_index("followupboss"))
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MappingScreen), "the Mapping screen")
    screen = app.screen
    assert isinstance(screen, MappingScreen)
    await until(pilot, lambda: screen.discovery is not None, "the discovery")
    return screen


def lenders(app: CrmApp) -> dict[str, str]:
    """What the demo payloads say each Follow Up Boss contact's lender is."""
    found = {}
    for record in app.store.records("contacts", "followupboss"):
        lender = record.metadata.get("customLender")
        if lender:
            found[record.id] = lender
    return found


async def test_map_a_custom_field_then_browse_search_filter_export_restart(demo_settings):
    app = make_app(demo_settings, sync_on_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        expected = lenders(app)
        assert len(expected) > 50  # ~60% of the demo's people have one
        await map_the_lender(pilot, app, expected)
        browse, table, hilltop = await browse_filters_on_the_lender(pilot, app, expected)
        await search_finds_the_lender(pilot, app, hilltop)
        await export_shows_the_lender(pilot, app, browse, table, hilltop)
    await still_mapped_after_restart(demo_settings, expected)


async def map_the_lender(pilot: Any, app: CrmApp, expected: dict[str, str]) -> None:
    """customLender, found by the discovery, mapped to a column declared in the dialog."""
    screen = await open_mapping(pilot, app)
    fields = screen.query_one("#mapping-fields", DataTable)
    found = cells(fields, "customLender")
    fill, mapped, samples = found["fill"], found["mapped"], found["samples"]
    assert mapped == ""
    info = next(f for f in screen.discovery.fields if f.path == "customLender")
    assert info.types == ("string",)  # the Types column is left out at 120 columns
    assert 45 <= int(fill.strip("~%")) <= 75
    assert set(samples.split(" · ")) <= set(expected.values())
    assert data.HOSTILE_LENDER in expected.values()  # shown literally below
    # a new custom column, declared in the dialog
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, ColumnScreen), "the column dialog")
    await pilot.press(*"lender", "enter", *"Lender", "enter")
    await until(pilot, lambda: app.screen is screen, "the dialog closed")
    assert screen.target == "custom.lender"
    fields.move_cursor(row=fields.get_row_index("customLender"))
    await until(pilot, lambda: "← customLender" in hint(screen), "the preview")
    preview = screen.query_one("#mapping-preview", DataTable)
    shown = [[str(c) for c in preview.get_row_at(r)] for r in range(preview.row_count)]
    assert len(shown) == 10
    first_ten = list(app.store.stream("contacts", "followupboss").values())[:10]
    assert [after for _, _, after in shown] == [expected.get(r.id, "") for r in first_ten]
    assert all(before == "" for _, before, _ in shown)  # not mapped yet
    # save: the file, the engine's maps and the cached records all change
    await pilot.press("s")
    await until(pilot, lambda: not screen.saving, "the save and re-map")
    assert "saved custom.lender ← customLender" in status(screen), status(screen)
    text = mappings_path().read_text()
    assert '"custom.lender" = "customLender"' in text
    assert "[columns.lender]" in text and 'label = "Lender"' in text
    await until(pilot, lambda: screen.discovery is not None, "the rescan")
    mapped_now = next(f for f in screen.discovery.fields if f.path == "customLender")
    assert mapped_now.mapped_to == ("custom.lender",)  # "Mapped to", when it has room
    assert rows(screen.query_one("#mapping-targets", DataTable))["custom.lender"][1] == (
        "customLender"
    )
    assert "lender" in app.index.columns
    records = {r.id: r for r in app.store.records("contacts", "followupboss")}
    assert {i: r.custom.get("lender") for i, r in records.items() if "lender" in r.custom} == (
        expected
    )


async def browse_filters_on_the_lender(
    pilot: Any, app: CrmApp, expected: dict[str, str]
) -> tuple[Any, RecordTable, set[str]]:
    """Browse: a Lender column, and a filter on it."""
    await pilot.press("escape", "f3")
    await until(pilot, lambda: isinstance(app.screen, BrowseScreen), "Browse")
    browse = app.screen
    table = browse.query_one(RecordTable)
    await until(pilot, lambda: any(c.title == "Lender" for c in table.columns), "the Lender column")
    at = next(i for i, c in enumerate(table.columns) if c.title == "Lender")
    assert at in [i for i, _ in table.shown]  # room for it at 120 columns
    hilltop = {i for i, lender in expected.items() if lender == "Hilltop Mortgage"}
    await pilot.press("slash", *"lender:hilltop source:followupboss")
    await until(
        pilot,
        lambda: {r.id for r in table.rows} == hilltop and not browse.workers,
        "the filtered rows",
    )
    assert {table.columns[at].get(r) for r in table.rows} == {"Hilltop Mortgage"}
    return browse, table, hilltop


async def search_finds_the_lender(pilot: Any, app: CrmApp, hilltop: set[str]) -> None:
    """Search: free text finds the custom value, and the filter answers there too."""
    result = app.index.search("hilltop mortgage", "contacts", ["followupboss"], limit=500)
    assert {h.record.id for h in result.groups["followupboss"]} == hilltop
    await pilot.press("f2", *"lender:hilltop")
    search = app.screen
    await until(
        pilot,
        lambda: getattr(search, "last", None) is not None and search.last.query == "lender:hilltop",
        "the search results",
    )
    hits = search.last.groups["followupboss"]
    assert {h.record.id for h in hits} == hilltop
    shown_keys = {str(k.value) for k in search.query_one("#results", DataTable).rows}
    assert hilltop <= shown_keys


async def export_shows_the_lender(
    pilot: Any, app: CrmApp, browse: Any, table: RecordTable, hilltop: set[str]
) -> None:
    """Export what Browse shows: a Lender column with the values."""
    await pilot.press("f3")
    await until(pilot, lambda: app.screen is browse, "Browse again")
    table.focus()
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, FormatScreen), "the format dialog")
    await pilot.press("c")
    folder = app.settings.data_dir / "exports"
    await until(pilot, lambda: folder.is_dir() and any(folder.glob("*.csv")), "the export")
    (exported,) = folder.glob("*.csv")
    with exported.open(encoding="utf-8", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert {row["Lender"] for row in lines} == {"Hilltop Mortgage"}
    assert len(lines) == len(hilltop)


async def still_mapped_after_restart(settings: Any, expected: dict[str, str]) -> None:
    """A restart on the same data dir: still mapped, still shown."""
    again = make_app(settings, sync_stale=False)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot, again)
        assert again.index.columns["lender"].label == "Lender"
        some = next(iter(expected))
        assert (
            again.store.stream("contacts", "followupboss")[some].custom["lender"]
            == (expected[some])
        )
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(again.screen, BrowseScreen), "Browse")
        table = again.screen.query_one(RecordTable)
        await until(pilot, lambda: table.rows, "rows")
        lender = next(c for c in table.columns if c.title == "Lender")
        assert lender.get(again.store.stream("contacts", "followupboss")[some]) == expected[some]
        assert again.index.matching("lender:hilltop", "contacts")


async def test_a_refused_save_shows_why_and_changes_nothing(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        screen = await open_mapping(pilot, app)
        before = {r.id: r for r in app.store.records("contacts", "followupboss")}
        # mappings.toml gets a problem by hand meanwhile: the save must name it and write
        # nothing (the person fixes the file first)
        path = mappings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('[followupboss.contacts]\n"custom.x" = "a..b"\n')
        targets = screen.query_one("#mapping-targets", DataTable)
        targets.move_cursor(row=targets.get_row_index("company"))
        fields = screen.query_one("#mapping-fields", DataTable)
        fields.move_cursor(row=fields.get_row_index("customLender"))
        await pilot.press("s")
        await until(pilot, lambda: not screen.saving, "the refusal")
        said = status(screen)
        assert "mappings.toml" in said and "line 2" in said, said
        assert "\n" not in said.strip()
        assert path.read_text() == '[followupboss.contacts]\n"custom.x" = "a..b"\n'
        after = {r.id: r for r in app.store.records("contacts", "followupboss")}
        assert after == before
        assert screen.query_one("#mapping-progress").display is False


async def test_palette_offers_the_mapping_screen(demo_settings):
    app = make_app(demo_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Map fields: Follow Up Boss" in titles
        command = next(
            c
            for c in app.get_system_commands(app.screen)
            if c.title == "Map fields: Follow Up Boss"
        )
        command.callback()
        await until(pilot, lambda: isinstance(app.screen, MappingScreen), "the Mapping screen")
        assert app.screen.source == "followupboss"
        box = app.screen.query(Input)
        assert not box  # nothing to type into until a column is declared


def test_mapping_screen_snapshot(snap_compare, monkeypatch):
    """80x24: the targets, the discovered fields (hostile samples literal), a new column's
    preview of ten records."""
    monkeypatch.setenv("TZ", "UTC")
    settings = snapshot_settings()
    source = connector(settings, "followupboss", Mappings())
    payloads = [data.fub_person(11, i, 40) for i in range(40) if i != data.MISSING_ID_INDEX]
    records = [source.map_record("contacts", p, "2026-11-25T10:00:00Z") for p in payloads]
    db = Database(settings.database_path)
    asyncio.run(CacheStore("snap", db).replace_stream("followupboss", "contacts", records))
    db.close()
    app = make_app(settings, sync_stale=False)

    async def shown(pilot) -> None:
        await until(pilot, lambda: pilot.app.loaded, "the cache")
        pilot.app.open_mapping("followupboss")
        await until(pilot, lambda: isinstance(pilot.app.screen, MappingScreen), "the screen")
        screen = pilot.app.screen
        await until(pilot, lambda: screen.discovery is not None, "the discovery")
        await pilot.press("n", *"lender", "enter", *"Lender", "enter")
        await until(pilot, lambda: pilot.app.screen is screen, "the dialog closed")
        fields = screen.query_one("#mapping-fields", DataTable)
        fields.move_cursor(row=fields.get_row_index("customLender"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=shown)


async def test_a_busy_stream_puts_the_file_back(synced_settings, monkeypatch):
    """The save lands, then the re-map finds a sync holding the stream: the reason is
    shown, mappings.toml is as before, and the engine maps as before."""
    import crm_tui.screens.mapping as mapping_screen

    async def busy(*args: Any, **kwargs: Any) -> Any:
        raise StreamBusy("Stream busy", "the sync in process 4242 holds followupboss contacts")

    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        path = mappings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        original = '# ours\n[followupboss.contacts]\ncompany = "background"\n'
        path.write_text(original)
        await app.engine.reload_mappings()
        screen = await open_mapping(pilot, app)
        monkeypatch.setattr(mapping_screen, "remap", busy)
        targets = screen.query_one("#mapping-targets", DataTable)
        targets.move_cursor(row=targets.get_row_index("company"))
        fields = screen.query_one("#mapping-fields", DataTable)
        fields.move_cursor(row=fields.get_row_index("customLender"))
        await pilot.press("s")
        await until(pilot, lambda: not screen.saving, "the refusal")
        assert status(screen) == "Stream busy: the sync in process 4242 holds followupboss contacts"
        assert path.read_text() == original
        assert app.engine.mappings.overrides["followupboss"]["contacts"] == {
            "company": "background"
        }


async def test_detail_shows_the_value_then_unmap_takes_it_away(demo_settings):
    """A column mapped by hand (mappings.toml, then a re-map): the record view lists the
    hostile lender literally under its label; `u` on the Mapping screen unmaps it."""
    path = mappings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '[followupboss.contacts]\n"custom.lender" = "customLender"\n\n'
        '[columns.lender]\nlabel = "Mortgage lender"\ntype = "text"\n'
    )
    app = make_app(demo_settings, sync_on_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        hostile = next(
            r
            for r in app.store.records("contacts", "followupboss")
            if r.custom.get("lender") == data.HOSTILE_LENDER
        )
        app.push_screen(RecordScreen(hostile))
        await until(
            pilot,
            lambda: isinstance(app.screen, RecordScreen) and app.screen.query("#fields"),
            "the record",
        )
        table = app.screen.query_one("#fields", DataTable)
        await until(pilot, lambda: table.row_count, "its rows")
        row = [str(c) for c in table.get_row("custom.lender")]
        assert row == ["Mortgage lender", data.HOSTILE_LENDER]
        assert app.is_running  # the markup ran nothing
        await pilot.press("escape")

        screen = await open_mapping(pilot, app)
        targets = screen.query_one("#mapping-targets", DataTable)
        assert rows(targets)["custom.lender"] == ["Mortgage lender (text)", "customLender"]
        targets.move_cursor(row=targets.get_row_index("custom.lender"))
        targets.focus()
        await pilot.press("u")
        await until(pilot, lambda: not screen.saving, "the unmap and re-map")
        assert "saved custom.lender unmapped" in status(screen), status(screen)
        assert "customLender" not in path.read_text()
        assert "[columns.lender]" in path.read_text()  # the declaration stays
        assert not any("lender" in r.custom for r in app.store.records("contacts", "followupboss"))


# -- by keyboard: focus, the lists' height, the columns fitted to the width -----------------


def focused_id(app: CrmApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def footer_keys(screen: MappingScreen) -> list[str]:
    """The keys the footer shows, in its order (the focused list's first)."""
    return [b.key for _, b, _, _ in screen.active_bindings.values() if b.show]


def fits(table: DataTable[Any]) -> bool:
    """Every column inside the table's width: nothing to scroll sideways to."""
    used = sum(c.get_render_width(table) for c in table.columns.values())
    return used <= table.scrollable_content_region.width


async def press_until(pilot: Any, key: str, ready: Callable[[], object], what: str) -> None:
    await pilot.press(key)
    await until(pilot, ready, what, within=5)


@asynccontextmanager
async def mapping_lists(settings: Any) -> AsyncIterator[tuple[Any, CrmApp, MappingScreen]]:
    """The synced demo's Mapping screen at 120x40: (pilot, app, screen)."""
    app = make_app(settings, sync_on_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        yield pilot, app, await open_mapping(pilot, app)


def lists_of(screen: MappingScreen) -> tuple[DataTable, DataTable]:
    """The targets and the payload's fields."""
    return (
        screen.query_one("#mapping-targets", DataTable),
        screen.query_one("#mapping-fields", DataTable),
    )


async def test_tab_arrows_and_enter_move_focus_predictably_at_120x40(demo_settings):
    async with mapping_lists(demo_settings) as (pilot, app, screen):
        targets, fields = lists_of(screen)
        # left to right: the targets first, the footer leading with their keys
        await until(pilot, lambda: focused_id(app) == "mapping-targets", "the targets")
        assert set(footer_keys(screen)[:2]) == {"enter", "right"}, footer_keys(screen)
        cycle = ["mapping-fields", "mapping-preview", "mapping-targets"]
        for want in cycle:
            await press_until(pilot, "tab", lambda w=want: focused_id(app) == w, want)
        for want in reversed(cycle[:-1]):
            await press_until(pilot, "shift+tab", lambda w=want: focused_id(app) == w, want)
        await press_until(pilot, "shift+tab", lambda: app.focused is targets, "targets")
        await press_until(pilot, "right", lambda: app.focused is fields, "→: fields")
        keys = footer_keys(screen)
        assert keys[0] == "left" and "right" not in keys, keys
        await press_until(pilot, "left", lambda: app.focused is targets, "←: targets")
        await pilot.press("down", "down")
        await until(pilot, lambda: targets.cursor_row == 2, "the third target")
        chosen = screen.target
        await press_until(pilot, "enter", lambda: app.focused is fields, "enter: fields")
        assert screen.target == chosen  # the target stays picked while the path is chosen
        # the height the preview leaves: far more than the old 7 rows
        for table in (targets, fields):
            visible = table.size.height - table.header_height
            assert visible >= 20, (table.id, visible)
            assert fits(table), table.id
        assert targets.row_count <= targets.size.height - targets.header_height  # all at once
        preview = screen.query_one("#mapping-preview", DataTable)
        assert preview.size.height - preview.header_height >= 10  # the ten records


async def test_after_the_new_column_dialog_focus_is_back_on_the_right_list(demo_settings):
    async with mapping_lists(demo_settings) as (pilot, app, screen):
        targets, fields = lists_of(screen)
        # cancelled: back where it was, nothing changed
        await until(pilot, lambda: app.focused is targets, "the targets")
        before = screen.target
        await press_until(pilot, "n", lambda: isinstance(app.screen, ColumnScreen), "dialog")
        await press_until(pilot, "escape", lambda: app.screen is screen, "the dialog closed")
        await until(pilot, lambda: app.focused is targets, "focus back on the targets")
        assert screen.target == before
        # `enter` on the last row opens it too; declared, the new column is the target and
        # the payload fields have the focus: its path is what to pick next
        targets.move_cursor(row=targets.row_count - 1)
        await press_until(pilot, "enter", lambda: isinstance(app.screen, ColumnScreen), "dialog")
        await pilot.press(*"lender", "enter", *"Lender", "enter")
        await until(pilot, lambda: app.screen is screen, "the dialog closed")
        await until(pilot, lambda: app.focused is fields, "focus on the payload fields")
        assert screen.target == "custom.lender"
        assert any(line.strip().startswith("Lender (text)") for line in shown_lines(targets))
        fields.move_cursor(row=fields.get_row_index("customLender"))
        await until(pilot, lambda: "custom.lender ← customLender" in hint(screen), "the hint")
        await press_until(pilot, "left", lambda: app.focused is targets, "←: targets")
        assert screen.target == "custom.lender"


def hint(screen: MappingScreen) -> str:
    return str(screen.query_one("#mapping-hint", Static).render())


async def test_at_80x24_the_from_paths_show_and_nothing_scrolls_sideways(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        screen = await open_mapping(pilot, app)
        targets = screen.query_one("#mapping-targets", DataTable)
        fields = screen.query_one("#mapping-fields", DataTable)
        await until(pilot, lambda: targets.row_count and fields.row_count, "the rows")
        for table in (targets, fields, screen.query_one("#mapping-preview", DataTable)):
            assert fits(table), table.id
        assert list(targets.columns) == ["field", "from"]  # both, always
        assert [str(k.value) for k in fields.columns][:2] == ["path", "fill"]
        assert "types" not in [str(k.value) for k in fields.columns]  # the first to go
        lines = shown_lines(targets)
        assert lines[0].split() == ["Field", "From"], lines[0]
        by_label = {line.split()[0]: line for line in lines[1:] if line.strip()}
        assert "firstName" in by_label["First"], by_label
        # row after row until the City target is on screen: its From path whole
        targets.move_cursor(row=targets.get_row_index("city"))
        await until(pilot, lambda: any(" City " in line for line in shown_lines(targets)), "City")
        city = next(line for line in shown_lines(targets) if " City " in line)
        spec = next(t.spec for t in screen.discovery.targets if t.name == "city")
        assert spec in city, (spec, city)
        width = targets.content_region.width
        assert all(cell_len(line) <= width for line in shown_lines(targets))
        assert targets.size.height - targets.header_height >= 8


def test_columns_fit_the_width_and_long_paths_lose_their_middle():
    from rich.text import Text

    from crm_tui.screens.mapping import MappingFields, MappingTargets, cell, cut_middle, fitted

    def row(key: str, **values: str) -> tuple[str, dict[str, Text]]:
        return key, {k: cell(v) for k, v in values.items()}

    fields = [
        row(
            "a",
            path="addresses[0].postalCode",
            fill="100%",
            mapped="postal_code",
            types="string",
            samples="78701 · 78702",
        ),
    ]
    at_80 = fitted(MappingFields.COLUMNS, fields, 44)
    assert [c.key for c, _ in at_80] == ["path", "fill", "samples"]
    assert dict((c.key, w) for c, w in at_80)["path"] == len("addresses[0].postalCode")
    assert sum(w + 2 for _, w in at_80) <= 44
    # no room for the samples: nothing less useful shown in their place, the path whole
    narrower = fitted(MappingFields.COLUMNS, fields, 40)
    assert [(c.key, w) for c, w in narrower] == [("path", 23), ("fill", 4)]
    at_120 = [c.key for c, _ in fitted(MappingFields.COLUMNS, fields, 70)]
    assert at_120 == ["path", "fill", "mapped", "samples"]
    # too narrow for both: the target's name and its From are still there, cut
    targets = [row("x", field="A very long label indeed", **{"from": "a.b.c.d.e.f.g.h"})]
    narrow = fitted(MappingTargets.COLUMNS, targets, 20)
    assert [c.key for c, _ in narrow] == ["field", "from"]
    for width in range(12, 40):  # a narrow terminal: each gets a fair share, none a cell
        shown = dict((c.key, w) for c, w in fitted(MappingTargets.COLUMNS, targets, width))
        assert sum(w + 2 for w in shown.values()) <= width, (width, shown)
        assert shown["from"] >= min(width // 2 - 2, 8), (width, shown)  # 8: its least
    # a CRM's text stays literal: the cut keeps its end, markup stays characters
    hostile = cell("[bold red]x[/] \x1b[2J customFields.lender_name", "dim")
    cut = cut_middle(hostile, 20)
    assert cut.plain.endswith("lender_name") and "…" in cut.plain
    assert "\x1b" not in cut.plain and cell_len(cut.plain) <= 20
    assert cut.plain.startswith("[bold") and cut.style == "dim"
    wide = cut_middle(cell("日本語" * 6), 11)
    assert cell_len(wide.plain) <= 11
