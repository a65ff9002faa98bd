"""Browse: every cached contact or deal in a virtualised table; filter by source, sort.

`/` (or any letter typed in the list) filters as you type with Search's query language,
answered by the search index: a filter matching a million records stays a numpy sort.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from operator import is_not
from typing import Any

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static, Tab, Tabs

from crm_tui.config import DISPLAY_NAMES
from crm_tui.custom_columns import Column as CustomColumn
from crm_tui.fields.shown import shown_value, sort_key, stream_columns
from crm_tui.lazyrows import Reordered, StreamRows, find_positions, sort_ranks, sorted_order
from crm_tui.models import Record, RecordKind
from crm_tui.phones import format_phone
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.export_view import ExportView
from crm_tui.screens.local_actions import LocalActions
from crm_tui.screens.typing import TypeToFilter
from crm_tui.search.query import MIN_QUERY, QueryError
from crm_tui.widgets.record_table import Column, RecordTable
from crm_tui.writeback.shown import PENDING_MARK


def _text_key(name: str) -> Any:
    return lambda r: (getattr(r, name) or "").casefold()


def _amount_key(r: Any) -> Decimal:
    return r.amount if r.amount is not None else Decimal("-1")


def marked_name(pending: Callable[[str], object] | None) -> Callable[[Record], str]:
    """A row's name, marked while an edit of it waits (one dict lookup per row drawn)."""

    def name(record: Record) -> str:
        shown = record.name or ""
        return f"{PENDING_MARK}{shown}" if pending is not None and pending(record.id) else shown

    return name


# Narrowest widths, and what goes first when the terminal is narrow (City and Status before
# Company at 80 cells); RecordTable widens them to what their values need.
def columns(
    kind: RecordKind, region: str = "US", pending: Callable[[str], object] | None = None
) -> list[Column]:
    """The columns of one kind; phones shown in one format for `region`; `pending` (the
    store's lookup of unsent edits) marks the names of records with one."""
    return _columns(lambda r: format_phone(r.phone, region), marked_name(pending))[kind]


def _columns(phone: Any, name: Callable[[Record], str]) -> dict[RecordKind, list[Column]]:
    return {
        "contacts": [
            Column(
                "Source", 8, lambda r: DISPLAY_NAMES.get(r.source, r.source), _text_key("source"), 2
            ),
            Column("Name", 14, name, lambda r: r.name.casefold(), 0),
            Column("E-mail", 16, lambda r: r.email, _text_key("email"), 1),
            Column("Phone", 14, phone, _text_key("phone"), 3),
            Column("Company", 10, lambda r: r.company, _text_key("company"), 7),
            Column("Status", 8, lambda r: r.status, _text_key("status"), 5),
            Column("Stage", 8, lambda r: r.stage, _text_key("stage"), 6),
            Column("City", 8, lambda r: r.city, _text_key("city"), 4),
        ],
        "deals": [
            Column(
                "Source", 8, lambda r: DISPLAY_NAMES.get(r.source, r.source), _text_key("source"), 4
            ),
            Column("Deal", 20, name, _text_key("name"), 0),
            Column(
                "Amount",
                12,
                lambda r: f"{r.amount:,.0f}" if r.amount is not None else "",
                _amount_key,
                1,
            ),
            Column("Stage", 10, lambda r: r.stage, _text_key("stage"), 2),
            Column("Status", 8, lambda r: r.status, _text_key("status"), 5),
            Column("Close", 10, lambda r: r.close_date, _text_key("close_date"), 3),
        ],
    }


#: Custom columns' priority: after every built-in one (shown when the width leaves room),
#: or, toggled with ctrl+o, right after the name and e-mail (shown at 80 cells).
CUSTOM_LAST, CUSTOM_FIRST = 10, 1


def custom_columns(custom: Sequence[CustomColumn], first: bool = False) -> list[Column]:
    """A table column per custom column, after the built-in ones; values are cells of
    plain text (the table never parses markup)."""

    def getter(column: CustomColumn) -> Callable[[Record], str]:
        name, type_ = column.name, column.type
        return lambda r: shown_value(r.custom.get(name), type_)

    priority = CUSTOM_FIRST if first else CUSTOM_LAST
    return [
        Column(c.label, max(6, min(len(c.label), 12)), getter(c), sort_key(c), priority)
        for c in custom
    ]


class BrowseScreen(TypeToFilter, ExportView, LocalActions, ModeScreen):
    _stale = False  # the store changed while a load ran: load again after it
    #: the streams last listed, and their rows (kept while the streams are the same)
    _unsorted: tuple[list[Mapping[str, Record]], StreamRows] | None = None
    #: the rows last sorted, by which column, and each row's rank by it
    _ranks: tuple[Sequence[Record], Column, np.ndarray] | None = None
    BINDINGS = [
        Binding("ctrl+t", "toggle_kind", "Contacts/Deals", id="browse.toggle"),
        Binding("slash", "find", "Filter", id="browse.find"),
        Binding("f", "next_source", "Source", id="browse.filter"),
        Binding("o", "next_sort", "Sort", id="browse.sort"),
        Binding("O", "reverse_sort", "Reverse", id="browse.reverse"),
        # ctrl: a letter typed in the list filters it
        Binding("ctrl+o", "toggle_custom", "Custom cols", id="browse.custom"),
        Binding("escape", "clear_find", "Clear filter", show=False, id="browse.clear"),
    ]
    DEBOUNCE = 0.12

    def __init__(self) -> None:
        super().__init__()
        self.kind: RecordKind = "contacts"
        self.source: str | None = None
        self.text = ""  # the filter, in the query language
        self.custom_first = False  # custom columns before the narrow built-in ones

    def compose(self) -> ComposeResult:
        yield Header()
        yield Tabs(Tab("Contacts", id="contacts"), Tab("Deals", id="deals"), id="kinds")
        yield Input(
            placeholder="filter: words, source:x status:lead city:austin (esc clears)",
            id="browse-find",
            select_on_focus=False,
        )
        yield Static(id="browse-summary", markup=False)
        yield RecordTable(self._columns("contacts"), id="records")
        yield Footer()

    def _columns(self, kind: RecordKind) -> list[Column]:
        built_in = columns(kind, self.crm.settings.crm_phone_region, self.crm.store.pending)
        custom = stream_columns(self.crm.engine.mappings, kind)
        return built_in + custom_columns(custom, self.custom_first)

    def _columns_changed(self) -> bool:
        """After a mapping was saved: the table takes the new custom columns (the rows
        are dropped with them and loaded again)."""
        table = self.query_one(RecordTable)
        fresh = self._columns(self.kind)
        if [(c.title, c.priority) for c in fresh] == [(c.title, c.priority) for c in table.columns]:
            return False
        table.columns = fresh
        table.sort_column = None
        self.refresh_bindings()  # ctrl+o is offered only with custom columns
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_custom":
            return bool(stream_columns(self.crm.engine.mappings, self.kind))
        return super().check_action(action, parameters)

    def action_toggle_custom(self) -> None:
        self.custom_first = not self.custom_first
        self._columns_changed()
        self.load_rows(keep=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#browse-find", Input).display = False
        self.query_one(RecordTable).focus()

    def filter_box(self) -> Input:
        return self.query_one("#browse-find", Input)

    def typing_lists(self) -> tuple[Widget, ...]:
        return (self.query_one(RecordTable), self.query_one(Tabs))

    async def view_records(self) -> tuple[RecordKind, Sequence[Record]]:
        return self.kind, self.query_one(RecordTable).rows

    def show_matches(self, kind: RecordKind, text: str, source: str | None) -> None:
        """Search's "all matches": this kind, this filter, this source."""
        self.source = source
        if kind != self.kind:
            self.query_one(Tabs).active = kind  # its TabActivated reloads
            self.kind = kind
            table = self.query_one(RecordTable)
            table.columns = self._columns(kind)
            table.sort_column = None
        box = self.filter_box()
        box.display = True
        with box.prevent(Input.Changed):
            box.value = text
        self.text = text
        self.query_one(RecordTable).focus()
        self.load_rows(keep=False)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        kind: RecordKind = "deals" if event.tab.id == "deals" else "contacts"
        if kind != self.kind:
            self.kind = kind
            table = self.query_one(RecordTable)
            table.columns = self._columns(kind)
            table.sort_column = None
            self.refresh_bindings()
            self.load_rows(keep=False)

    def refresh_data(self) -> None:
        """Store changes arrive while a load still runs (a sync writes every second): one
        more load after it, never a pile of filter threads that cannot be cancelled."""
        if any(w.group == "browse" and not w.is_finished for w in self.workers):
            self._stale = True
            return
        self.load_rows(keep=not self._columns_changed())

    @on(Input.Changed, "#browse-find")
    def _find_changed(self, event: Input.Changed) -> None:
        self.text = event.value
        self.load_rows(keep=False, wait=self.DEBOUNCE)

    @on(Input.Submitted, "#browse-find")
    def _find_done(self) -> None:
        self.query_one(RecordTable).focus()

    def action_find(self) -> None:
        self.focus_box()

    def action_clear_find(self) -> None:
        box = self.filter_box()
        if not box.display and not self.text:
            return
        box.value, box.display = "", False
        self.text = ""
        self.query_one(RecordTable).focus()
        self.load_rows(keep=False)

    async def _records(self) -> tuple[Sequence[Record], str]:
        """What the list holds, and what to say when the filter cannot run."""
        text = self.text.strip()
        if len(text) < MIN_QUERY:
            return self._stream_rows(), ""
        sources = [self.source] if self.source else None
        try:
            found = await asyncio.to_thread(self.crm.index.matching, text, self.kind, sources)
        except QueryError as exc:
            return [], str(exc)
        return found, ""

    def _stream_rows(self) -> StreamRows:
        """The cache's records of this kind and source, lazily; the same object while its
        streams are (a sort of it is then kept)."""
        store = self.crm.store
        names = [self.source] if self.source is not None else store.sources()
        streams = [store.stream(self.kind, name) for name in names]
        kept = self._unsorted
        if kept is None or len(kept[0]) != len(streams) or any(map(is_not, kept[0], streams)):
            kept = self._unsorted = (streams, StreamRows(streams))
        return kept[1]

    async def _sorted(
        self, records: Sequence[Record], column: Column, reverse: bool
    ) -> Sequence[Record]:
        """`records` in a column's order, as a lazy reordering: the column's value of each
        record is read in a thread and kept as a rank (an array), never the records."""
        if column.sort_key is None or not records:
            return records
        kept = self._ranks
        if kept is not None and kept[0] is records and kept[1] is column:
            ranks = kept[2]
        else:
            self._ranks = None  # it holds the rows it sorted: let them go
            self._say(f"Sorting {len(records):,} {self.kind} by {column.title}…")
            stop = threading.Event()
            try:
                ranks = await asyncio.to_thread(sort_ranks, records, column.sort_key, stop)
            except asyncio.CancelledError:
                stop.set()  # a newer load replaced this one: its thread stops too
                raise
            self._ranks = (records, column, ranks)
        order = await asyncio.to_thread(sorted_order, ranks, reverse)
        return Reordered(records, order)

    def _say(self, text: str) -> None:
        self.query_one("#browse-summary", Static).update(text)

    @work(exclusive=True, group="browse", exit_on_error=False)
    async def load_rows(self, keep: bool = True, wait: float = 0.0) -> None:
        if wait:
            await asyncio.sleep(wait)  # a newer keystroke cancels us while we wait
        table = self.query_one(RecordTable)
        selected = table.current if keep else None
        records, problem = await self._records()
        if table.sort_column is not None:
            column = table.columns[table.sort_column]
            records = await self._sorted(records, column, table.sort_reverse)
        else:
            self._ranks = None
        at = None
        if selected is not None:  # the same record, wherever a reload or a sort put it
            found = await asyncio.to_thread(find_positions, records, [selected.id])
            at = found.get(selected.id)
        table.set_rows(records, keep_cursor=keep)
        if at is not None:
            table.cursor = at
        self._say(self._summary(len(records), problem))
        if self._stale:
            self._stale = False
            self.load_rows()

    def _summary(self, count: int, problem: str) -> str:
        table = self.query_one(RecordTable)
        where = DISPLAY_NAMES.get(self.source, self.source) if self.source else "all sources"
        if problem:
            return f"Filter: {problem}"
        if not count:
            return self._empty(where)
        sort = ""
        if table.sort_column is not None:
            order = "descending" if table.sort_reverse else "ascending"
            sort = f", sorted by {table.columns[table.sort_column].title} {order}"
        matching = f" matching {self.text.strip()!r}" if len(self.text.strip()) >= 2 else ""
        return (
            f"{count:,} {self.kind}{matching} from {where}{sort}   "
            "/: filter  f: source  o: sort  g/G: top/bottom  enter: open"
        )

    def _empty(self, where: str) -> str:
        """Why the list is empty, and what to do."""
        if not self.crm.loaded:
            return "Loading the cache…"
        if len(self.text.strip()) >= MIN_QUERY:
            return f"No {self.kind} from {where} match {self.text.strip()!r}: esc clears the filter"
        if self.source is not None:
            return f"No {self.kind} from {where}: f shows the next source"
        if not self.crm.store.count(self.kind):
            return f"No {self.kind} synced yet: on Status (F1) press a to sync every source"
        return f"No {self.kind}"

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
        at = sources.index(self.source) if self.source in sources else 0
        self.source = sources[(at + 1) % len(sources)]
        self.load_rows(keep=False)

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
