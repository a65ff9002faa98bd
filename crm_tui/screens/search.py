"""Search: results as you type, grouped by source, matched text highlighted.

Each source shows its best matches at once; `enter` on its header (or ctrl+b for every
source) opens all of them in Browse, a virtualised list, with the query kept as its filter.
Letters typed in the results go to the search box (screens/typing.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Input, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import Record, RecordKind
from crm_tui.phones import format_phone
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.export_view import ExportView
from crm_tui.screens.local_actions import LocalActions
from crm_tui.screens.people import badges
from crm_tui.screens.typing import TypeToFilter
from crm_tui.search.index import Hit, SearchResult, filter_hint
from crm_tui.search.query import MIN_QUERY, QUERY_TOO_SHORT, QueryError
from crm_tui.widgets.columns import Want, fit_widths, need
from crm_tui.widgets.safe import highlighted, safe
from crm_tui.writeback.shown import PENDING_MARK

KEYS_HINT = (
    "tab contacts/deals · ctrl+g one row per person · ↓ results · enter opens the first"
    " · / back here · ctrl+b all in Browse · F1-F7 screens"
)
# (field, title, narrowest width, priority): at 80 cells City and Status come before
# Company; the space left widens the columns to what their values need.
COLUMNS: dict[RecordKind, tuple[tuple[str, str, int, int], ...]] = {
    "contacts": (
        ("name", "Name", 14, 0),
        ("email", "E-mail", 14, 1),
        ("phone", "Phone", 14, 3),
        ("company", "Company", 10, 6),
        ("status", "Status", 8, 5),
        ("city", "City", 8, 4),
    ),
    "deals": (
        ("name", "Deal", 20, 0),
        ("amount", "Amount", 12, 1),
        ("stage", "Stage", 10, 2),
        ("status", "Status", 8, 5),
        ("close_date", "Close", 10, 3),
        ("property_address", "Property", 14, 6),
    ),
}
SOURCE_WIDTH = 8  # the source column is always shown, at least this wide


class SearchScreen(TypeToFilter, ExportView, LocalActions, ModeScreen):
    BINDINGS = [
        Binding("ctrl+t,tab", "toggle_kind", "Contacts/Deals", id="search.toggle", priority=True),
        Binding("escape", "clear", "Clear", id="search.clear"),
        Binding("down", "focus_results", "Results", show=False, id="search.results"),
        Binding("slash", "focus_query", "Search box", show=False, id="search.find"),
        Binding("ctrl+g", "toggle_people", "One row per person", id="search.people"),
        Binding("ctrl+b", "all_in_browse", "All in Browse", id="search.browse"),
    ]
    DEBOUNCE = 0.12

    def __init__(self) -> None:
        super().__init__()
        self.kind: RecordKind = "contacts"
        self.last: SearchResult | None = None
        self.per_person = False
        self.shown_columns: list[tuple[str, str, int]] = []
        self.open_when_shown = False  # enter came before the results

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="Search every source (2 characters at least)",
            id="query",
            select_on_focus=False,
        )
        yield Static(KEYS_HINT, id="hint", markup=False)
        yield Static(id="summary", markup=False)
        yield DataTable(id="results", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#query", Input).focus()
        self._set_columns()

    def filter_box(self) -> Input:
        return self.query_one("#query", Input)

    def typing_lists(self) -> tuple[Widget, ...]:
        return (self.query_one("#results", DataTable),)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Edit and delete act on the selected result: not offered while the box has the
        focus (there ctrl+e and ctrl+d move the cursor and delete a character)."""
        if action in ("local_edit", "local_delete"):
            return self.focused is not self.query_one("#query", Input)
        return super().check_action(action, parameters)

    def _set_columns(self, result: SearchResult | None = None) -> None:
        """The columns that fit the table's width, as wide as the hits need; the table is
        rebuilt only when that changes."""
        from crm_tui.search.index import field_text

        table = self.query_one("#results", DataTable)
        hits = [h for group in result.groups.values() for h in group] if result else []
        names = [f"▸ {DISPLAY_NAMES.get(s, s)}" for s in (result.groups if result else ())]
        wants = [Want("source", SOURCE_WIDTH, need("Source", names, SOURCE_WIDTH), -1)]
        for key, title, least, priority in COLUMNS[self.kind]:
            values = (field_text(h.record, key) for h in hits)
            wants.append(Want(key, least, need(title, values, least), priority))
        widths = fit_widths(wants, (table.size.width or 80) - 2, gap=2)  # - the scrollbar
        shown = [("source", "Source", widths["source"])] if "source" in widths else []
        shown += [(k, t, widths[k]) for k, t, _, _ in COLUMNS[self.kind] if k in widths]
        if shown == self.shown_columns:
            table.clear()
            return
        self.shown_columns = shown
        table.clear(columns=True)
        for key, title, width in shown:
            table.add_column(title, key=key, width=width)

    def on_resize(self) -> None:
        """Columns chosen again for the new width; the cursor stays on its row."""
        if self.last is not None:
            table = self.query_one("#results", DataTable)
            row = table.cursor_row
            self.show(self.last)
            table.move_cursor(row=row)

    def refresh_data(self) -> None:
        self.show_hint()
        query = self.query_one("#query", Input).value
        if query.strip():
            self.run_search(query)

    @work(exclusive=True, group="search-hint", exit_on_error=False)
    async def show_hint(self) -> None:
        """The values the cache holds, counted off the loop (every field of 1M records)."""
        hint = await asyncio.to_thread(filter_hint, self.crm.index)
        self.query_one("#hint", Static).update(Text(f"{hint} · {KEYS_HINT}"))

    def on_input_changed(self, event: Input.Changed) -> None:
        self.open_when_shown = False
        self.run_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """The first record opens (a group header never does); typed faster than the
        search ran, it opens once the results for what was typed arrive."""
        if self.last is not None and self.last.query == event.value.strip():
            self._open_first(self.last)
        else:
            self.open_when_shown = True

    def _open_first(self, result: SearchResult) -> None:
        hit = next((h for hits in result.groups.values() for h in hits), None)
        if hit is not None:
            self.app.push_screen(RecordScreen(hit.record))

    @work(exclusive=True, group="search", exit_on_error=False)
    async def run_search(self, query: str) -> None:
        summary = self.query_one("#summary", Static)
        if len(query.strip()) < MIN_QUERY:
            self.last = None
            self.query_one("#results", DataTable).clear()
            summary.update(Text(QUERY_TOO_SHORT if query.strip() else "", style="dim"))
            return
        await asyncio.sleep(self.DEBOUNCE)  # a newer keystroke cancels us while we wait
        try:
            result = await asyncio.to_thread(self.crm.index.search, query, self.kind)
        except QueryError as exc:
            self.query_one("#results", DataTable).clear()
            summary.update(Text(str(exc), style="yellow"))
            return
        self.show(result)

    def show(self, result: SearchResult) -> None:
        table = self.query_one("#results", DataTable)
        kept = self._cursor_key() if table.has_focus else None
        self.last = result
        if self.open_when_shown:
            self.open_when_shown = False
            self._open_first(result)
        self._set_columns(result)
        groups = ", ".join(f"{DISPLAY_NAMES.get(s, s)} {n:,}" for s, n in result.counts.items())
        if len(groups) + 20 > self.size.width:  # 80 columns: every source still named
            groups = ", ".join(f"{badges((s,))} {n:,}" for s, n in result.counts.items())
        kind = "contacts" if self.kind == "contacts" else "deals"
        text = Text(f"{result.total:,} {kind}", style="bold")
        if groups:
            text.append(f"  ({groups})")
        if not self.crm.loaded:
            text.append("  loading cache…", style="dim")
        elif not result.total:
            text = Text(self._why_nothing(result.query), style="yellow")
        self.query_one("#summary", Static).update(text)
        if self.per_person and self.kind == "contacts":
            self._show_people(result)
        else:
            self._show_groups(result)
        if kept is not None and kept in table.rows:  # a live update: the person stays put
            table.move_cursor(row=table.get_row_index(kept), scroll=False)

    def _cursor_key(self) -> str | None:
        table = self.query_one("#results", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _show_groups(self, result: SearchResult) -> None:
        table = self.query_one("#results", DataTable)
        for source, hits in result.groups.items():
            name = DISPLAY_NAMES.get(source, source)
            shown = self._group_label(len(hits), result.counts[source])
            blank = [Text("")] * (len(self.shown_columns) - 2)
            table.add_row(
                Text(f"▸ {name}", style="bold"),
                Text(shown, style="bold"),
                *blank,
                key=f"group:{source}",
            )
            for hit in hits:
                table.add_row(
                    safe(DISPLAY_NAMES.get(source, source), "dim"),
                    *self._cells(hit),
                    key=hit.record.id,
                )

    def _group_label(self, shown: int, count: int) -> str:
        """What a source's header row says, short enough for its column at 80 cells."""
        more = shown < count
        label = f"showing {shown} of {count:,}" + (" · enter: all" if more else "")
        width = self.shown_columns[1][2] if len(self.shown_columns) > 1 else len(label)
        if len(label) > width:
            label = f"{shown} of {count:,}" + (" ↵ all" if more else "")
        return label

    def _why_nothing(self, query: str) -> str:
        if not self.crm.store.count(self.kind):
            return f"No {self.kind} synced yet: on Status (F1) press a to sync every source"
        other = "deals" if self.kind == "contacts" else "contacts"
        return f"No {self.kind} match {query!r} (tab searches {other}; esc clears)"

    def _show_people(self, result: SearchResult) -> None:
        """The shown hits folded to one row per person, with every source as a badge."""
        table = self.query_one("#results", DataTable)
        review = self.crm.review
        rows: dict[str, tuple[Hit, tuple[str, ...]]] = {}
        for hits in result.groups.values():
            for hit in hits:
                cluster = review.person_of(hit.record.id)
                key = cluster.id if cluster else hit.record.id
                if key not in rows:
                    rows[key] = (hit, cluster.sources if cluster else (hit.record.source,))
        blank = [Text("")] * (len(self.shown_columns) - 2)
        table.add_row(
            Text("▸ People", style="bold"),
            Text(f"{len(rows)} people", style="bold"),
            *blank,
            key="group:people",
        )
        for hit, sources in rows.values():
            table.add_row(Text(badges(sources), style="bold"), *self._cells(hit), key=hit.record.id)

    def _cells(self, hit: Hit) -> list[Text]:
        from crm_tui.search.index import field_text

        cells = []
        for key, _title, _width in self.shown_columns[1:]:
            value = field_text(hit.record, key)
            spans = hit.spans.get(key, [])
            if key == "phone":  # one format for every CRM; a matched phone lit whole
                value = format_phone(value, self.crm.settings.crm_phone_region)
                spans = [(0, len(value))] if spans else []
            cell = highlighted(value, spans)
            if key == "name" and self.crm.store.pending(hit.record.id):
                cell = Text(PENDING_MARK, style="yellow") + cell  # an edit waits to be sent
            cells.append(cell)
        return cells

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key.startswith("group:"):
            source = key.removeprefix("group:")
            self.open_in_browse(None if source == "people" else source)
            return
        record = self.crm.store.get(self.kind, key)
        if record is not None:
            self.app.push_screen(RecordScreen(record))

    def selected_record(self) -> Record | None:
        table = self.query_one("#results", DataTable)
        if not table.row_count:
            return None
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return None if key.startswith("group:") else self.crm.store.get(self.kind, key)

    def action_toggle_kind(self) -> None:
        self.kind = "deals" if self.kind == "contacts" else "contacts"
        self._set_columns()
        self.run_search(self.query_one("#query", Input).value)

    def action_toggle_people(self) -> None:
        self.per_person = not self.per_person
        if self.last is not None:
            self.show(self.last)
        if self.per_person and self.kind == "deals":
            self.notify("One row per person applies to contacts", markup=False)

    def action_clear(self) -> None:
        query = self.query_one("#query", Input)
        query.value = ""
        query.focus()

    def action_focus_results(self) -> None:
        table = self.query_one("#results", DataTable)
        if table.row_count and self.focused is self.query_one("#query", Input):
            table.move_cursor(row=min(1, table.row_count - 1))  # the first record, not a header
            table.focus()

    def action_focus_query(self) -> None:
        self.focus_box()

    def action_all_in_browse(self) -> None:
        self.open_in_browse(None)

    def open_in_browse(self, source: str | None) -> None:
        """Every match (of one source, or all), in Browse's virtualised list, the query
        kept as its filter."""
        query = self.query_one("#query", Input).value
        if len(query.strip()) < MIN_QUERY:
            self.notify(QUERY_TOO_SHORT, markup=False)
            return
        kind = self.kind

        async def show() -> None:
            from crm_tui.screens.browse import BrowseScreen

            await self.app.switch_mode("browse")
            browse = self.app.screen
            if isinstance(browse, BrowseScreen):
                browse.show_matches(kind, query, source)

        self.app.run_worker(show(), exit_on_error=False)

    async def view_records(self) -> tuple[RecordKind, Sequence[Record]]:
        """Every match of the query, not only the rows shown."""
        query = self.query_one("#query", Input).value
        try:
            return self.kind, await asyncio.to_thread(self.crm.index.matching, query, self.kind)
        except QueryError:
            return self.kind, []
