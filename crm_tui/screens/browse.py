"""Browse: every cached contact or deal in a virtualised table; filter by source, sort."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static, Tab, Tabs

from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import Record, RecordKind
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.local_actions import LocalActions
from crm_tui.widgets.record_table import Column, RecordTable


def _text_key(name: str) -> Any:
    return lambda r: (getattr(r, name) or "").casefold()


def _amount_key(r: Any) -> Decimal:
    return r.amount if r.amount is not None else Decimal("-1")


COLUMNS: dict[RecordKind, list[Column]] = {
    "contacts": [
        Column("Source", 15, lambda r: DISPLAY_NAMES.get(r.source, r.source), _text_key("source")),
        Column("Name", 24, lambda r: r.name, lambda r: r.name.casefold()),
        Column("E-mail", 28, lambda r: r.email, _text_key("email")),
        Column("Phone", 16, lambda r: r.phone, _text_key("phone")),
        Column("Company", 16, lambda r: r.company, _text_key("company")),
        Column("Status", 12, lambda r: r.status, _text_key("status")),
        Column("Stage", 12, lambda r: r.stage, _text_key("stage")),
        Column("City", 12, lambda r: r.city, _text_key("city")),
    ],
    "deals": [
        Column("Source", 15, lambda r: DISPLAY_NAMES.get(r.source, r.source), _text_key("source")),
        Column("Deal", 40, lambda r: r.name, _text_key("name")),
        Column(
            "Amount", 14, lambda r: f"{r.amount:,.0f}" if r.amount is not None else "", _amount_key
        ),
        Column("Stage", 18, lambda r: r.stage, _text_key("stage")),
        Column("Status", 10, lambda r: r.status, _text_key("status")),
        Column("Close", 10, lambda r: r.close_date, _text_key("close_date")),
    ],
}


class BrowseScreen(LocalActions, ModeScreen):
    BINDINGS = [
        Binding("ctrl+t", "toggle_kind", "Contacts/Deals", id="browse.toggle"),
        Binding("f", "next_source", "Filter source", id="browse.filter"),
        Binding("o", "next_sort", "Sort", id="browse.sort"),
        Binding("O", "reverse_sort", "Reverse", id="browse.reverse"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.kind: RecordKind = "contacts"
        self.source: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Tabs(Tab("Contacts", id="contacts"), Tab("Deals", id="deals"), id="kinds")
        yield Static(id="browse-summary", markup=False)
        yield RecordTable(COLUMNS["contacts"], id="records")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RecordTable).focus()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        kind: RecordKind = "deals" if event.tab.id == "deals" else "contacts"
        if kind != self.kind:
            self.kind = kind
            table = self.query_one(RecordTable)
            table.columns = COLUMNS[kind]
            table.sort_column = None
            self.refresh_data()

    def refresh_data(self) -> None:
        self.load_rows()

    @work(exclusive=True, group="browse", exit_on_error=False)
    async def load_rows(self) -> None:
        table = self.query_one(RecordTable)
        records = self.crm.store.records(self.kind, self.source)
        column = table.sort_column
        if column is not None:
            key = table.columns[column].sort_key
            reverse = table.sort_reverse
            # Sorting a million records takes a second: off the event loop.
            records = await asyncio.to_thread(sorted, records, key=key, reverse=reverse)
        table.set_rows(records)
        where = DISPLAY_NAMES.get(self.source, self.source) if self.source else "all sources"
        sort = ""
        if column is not None:
            order = "descending" if table.sort_reverse else "ascending"
            sort = f", sorted by {table.columns[column].title} {order}"
        self.query_one("#browse-summary", Static).update(
            f"{len(records):,} {self.kind} from {where}{sort}   "
            "f: source  o: sort  O: reverse  enter: open"
        )

    def selected_record(self) -> Record | None:
        return self.query_one(RecordTable).current

    def on_record_table_selected(self, event: RecordTable.Selected) -> None:
        record: Record = event.row
        self.app.push_screen(RecordScreen(record))

    def action_toggle_kind(self) -> None:
        tabs = self.query_one(Tabs)
        tabs.active = "deals" if self.kind == "contacts" else "contacts"

    def action_next_source(self) -> None:
        sources: list[str | None] = [None, *self.crm.store.sources()]
        self.source = sources[(sources.index(self.source) + 1) % len(sources)]
        self.load_rows()

    def action_next_sort(self) -> None:
        table = self.query_one(RecordTable)
        table.sort_column = (
            0 if table.sort_column is None else ((table.sort_column + 1) % len(table.columns))
        )
        self.load_rows()

    def action_reverse_sort(self) -> None:
        table = self.query_one(RecordTable)
        if table.sort_column is None:
            table.sort_column = 0
        table.sort_reverse = not table.sort_reverse
        self.load_rows()
