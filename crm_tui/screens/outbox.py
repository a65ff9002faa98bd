"""The outbox from the app: what waits to be sent to a CRM, what a CRM refused, what changed
at the CRM meanwhile. Opened with `o` on Status; a conflict opens its three versions
(`c`, here or on the record); a write opens from the Audit screen.

Every value shown came from a person or a vendor: Text objects only, never markup."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from crm_tui.screens.base import FollowsStore
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.store.outbox import OPEN_STATES, OutboxEntry
from crm_tui.widgets.safe import safe, safe_block
from crm_tui.writeback.service import Choice
from crm_tui.writeback.shown import (
    KIND_OF_ACTION,
    Versions,
    changes,
    record_label,
    three_versions,
    vendor,
    write_details,
)

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

STATE_STYLE = {
    "pending": "cyan",
    "sending": "cyan",
    "unsure": "yellow",
    "failed": "red",
    "conflict": "magenta",
    "done": "green",
    "dropped": "dim",
}
#: How many open entries the view lists (an outbox that long has a bigger problem).
LISTED = 500


def label_of(app: CrmApp, entry: OutboxEntry) -> str:
    record = app.store.get(entry.stream, entry.record_id) if entry.record_id else None
    return record_label(record, entry)


def cut(text: str, width: int) -> str:
    """`text` in `width` characters, an ellipsis saying where it was cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)].rstrip() + "…"


def open_record(app: CrmApp, entry: OutboxEntry) -> None:
    """The record an entry is about, in the detail screen."""
    from crm_tui.screens.detail import RecordScreen

    record = app.store.get(entry.stream, entry.record_id) if entry.record_id else None
    if record is None:
        app.notify("The record is not in the cache (yet)", markup=False)
    else:
        app.push_screen(RecordScreen(record))


# -- the outbox -------------------------------------------------------------------------------


class OutboxScreen(FollowsStore, ModalScreen[None]):
    """Open entries newest first; the highlighted one's every detail below the list."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="outbox.close"),
        Binding("r", "retry", "Retry", id="outbox.retry"),
        Binding("d,delete", "drop", "Drop", id="outbox.drop"),
        Binding("c", "resolve", "Resolve", id="outbox.resolve"),
        Binding("o", "open", "Open record", id="outbox.open"),
    ]
    #: At 80 columns these fit beside each other; the error shows in full under the list
    #: (and in its own column where the terminal is wider).
    COLUMNS = (("State", 9), ("Source", 14), ("Record", 14), ("Change", 20), ("Tries", 5))

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[OutboxEntry] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="outbox"):
            yield Static(id="outbox-title")
            yield DataTable(id="outbox-list", cursor_type="row")
            with VerticalScroll(id="outbox-detail"):
                yield Static(id="outbox-detail-text")
        yield Footer()

    #: Each column's cell padding, the dialog's border and padding.
    PADDING = 2 * 6 + 4

    def on_mount(self) -> None:
        self._set_columns()
        self.query_one("#outbox-list", DataTable).focus()
        self.follow_store()

    def on_resize(self) -> None:
        self._set_columns()
        self._show()

    def _set_columns(self) -> None:
        """The error takes what the others leave: the list never scrolls sideways."""
        table = self.query_one("#outbox-list", DataTable)
        table.clear(columns=True)
        for title, width in self.COLUMNS:
            table.add_column(title, key=title, width=width)
        rest = self.size.width - self.PADDING - sum(w for _, w in self.COLUMNS) - 2
        if rest >= 10:  # at 80 columns the error is under the list alone
            table.add_column("Error", key="Error", width=rest)

    def refresh_data(self) -> None:
        self.run_worker(self._load(), group="outbox-view", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        db, user = self.crm.store.db, self.crm.store.user_id
        found = await asyncio.to_thread(db.outbox, user, OPEN_STATES, None, LISTED) if db else []
        self.entries = found
        self._show()

    def _show(self) -> None:
        table = self.query_one("#outbox-list", DataTable)
        kept = self.selected
        table.clear()
        shown = len(table.columns)
        for entry in self.entries:
            table.add_row(*self._cells(entry)[:shown], key=str(entry.id))
        if kept is not None and str(kept.id) in table.rows:
            table.move_cursor(row=table.get_row_index(str(kept.id)))
        title = Text("Outbox", style="bold")
        if self.entries:
            title.append(f": {len(self.entries)} not sent yet, newest first", style="")
        else:
            title.append(": nothing waits; every change reached its CRM (see Audit, F4)")
        self.query_one("#outbox-title", Static).update(title)
        self._show_detail()

    def _cells(self, entry: OutboxEntry) -> list[Text]:
        return [
            safe(entry.state, STATE_STYLE.get(entry.state, "")),
            safe(vendor(entry.source)),
            safe(cut(label_of(self.crm, entry), 14)),
            safe(cut(changes(entry, 20), 20)),
            safe(str(entry.attempts)),
            safe(entry.error or ""),
        ]

    @property
    def selected(self) -> OutboxEntry | None:
        table = self.query_one("#outbox-list", DataTable)
        if not table.row_count or table.cursor_row >= len(self.entries):
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((e for e in self.entries if str(e.id) == key), None)

    def _show_detail(self) -> None:
        entry = self.selected
        lines = write_details(entry, label_of(self.crm, entry)) if entry else []
        self.query_one("#outbox-detail-text", Static).update(safe_block("\n".join(lines)))
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each key only where it applies to the highlighted entry (dimmed otherwise)."""
        entry = self.selected
        state = entry.state if entry else None
        allowed = {
            "retry": state in ("pending", "failed", "unsure"),
            "drop": state in ("pending", "failed", "conflict", "unsure"),
            "resolve": state == "conflict",
            "open": bool(entry and entry.record_id),
        }
        return allowed.get(action, True) or None

    def action_retry(self) -> None:
        if self.selected is not None:
            self.crm.decide_edit(self.selected.id, "retry")

    def action_drop(self) -> None:
        entry = self.selected
        if entry is None:
            return
        what = KIND_OF_ACTION[entry.action]
        question = (
            f"Drop this {what} of {label_of(self.crm, entry)}? {vendor(entry.source)} keeps"
            f" what it has: {changes(entry)}"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.crm.decide_edit(entry.id, "drop")

        self.app.push_screen(ConfirmScreen(question), answered)

    def action_resolve(self) -> None:
        if self.selected is not None and self.selected.state == "conflict":
            self.app.push_screen(ConflictScreen(self.selected))

    def action_open(self) -> None:
        if self.selected is not None:
            open_record(self.crm, self.selected)


# -- a conflict -------------------------------------------------------------------------------


class ConflictScreen(ModalScreen[bool]):
    """The three versions of each field an edit changes: what the person saw, what the
    vendor has now, what they want; per field they keep theirs or take the vendor's (a
    merge, when the fields differ), then send."""

    BINDINGS = [
        Binding("m", "choose('mine')", "Keep yours", id="conflict.mine"),
        Binding("t", "choose('theirs')", "Take theirs", id="conflict.theirs"),
        Binding("space", "toggle", "Switch", id="conflict.toggle", show=False),
        Binding("M", "choose_all('mine')", "All yours", id="conflict.all_mine", show=False),
        Binding("T", "choose_all('theirs')", "All theirs", id="conflict.all_theirs", show=False),
        Binding("ctrl+s", "send", "Send", id="conflict.send", priority=True),
        Binding("escape", "later", "Later", id="conflict.later"),
    ]
    FIXED = 12 + 7  # the field and the choice columns
    PADDING = 2 * 5 + 4  # each column's cell padding, the dialog's border and padding

    def __init__(self, entry: OutboxEntry) -> None:
        super().__init__()
        self.entry = entry
        self.versions: list[Versions] = three_versions(entry)
        self.choices: dict[str, Choice] = {v.field: "mine" for v in self.versions}

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def compose(self) -> ComposeResult:
        where = vendor(self.entry.source)
        title = f"{label_of(self.crm, self.entry)}: changed at {where} since you edited it"
        with Vertical(id="conflict"):
            yield Static(safe(title, "bold"), id="conflict-title")
            yield Static(
                "Per field: m keeps yours, t takes theirs (space switches; M, T: every field)."
                " ctrl+s sends, esc decides later.",
                id="conflict-hint",
                markup=False,
            )
            yield DataTable(id="versions", cursor_type="row")
            with VerticalScroll(id="conflict-field"):
                yield Static(id="conflict-field-text")
        yield Footer()

    def on_mount(self) -> None:
        self._build()
        self.query_one("#versions", DataTable).focus()

    def on_resize(self) -> None:
        self._build()

    def _value_width(self) -> int:
        return max(8, (self.size.width - self.FIXED - self.PADDING) // 3)

    def _build(self) -> None:
        """The columns for this width, the rows with the choices made so far."""
        table = self.query_one("#versions", DataTable)
        row = table.cursor_row
        width = self._value_width()
        table.clear(columns=True)
        table.add_column("Field", key="field", width=12)
        table.add_column("You saw", key="saw", width=width)
        theirs = cut(f"Now at {vendor(self.entry.source)}", width)
        table.add_column(theirs, key="theirs", width=width)
        table.add_column("Yours", key="mine", width=width)
        table.add_column("Keep", key="keep", width=7)
        for version in self.versions:
            table.add_row(*self._cells(version, width), key=version.field)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        self._show_field()

    def _cells(self, version: Versions, width: int) -> list[Text]:
        mine = self.choices[version.field] == "mine"
        return [
            safe(cut(version.label, 12), "yellow" if version.changed else ""),
            safe(cut(version.saw, width), "dim"),
            safe(cut(version.theirs, width), "" if mine else "bold green"),
            safe(cut(version.mine, width), "bold green" if mine else ""),
            safe("yours" if mine else "theirs", "bold"),
        ]

    @property
    def current(self) -> Versions | None:
        table = self.query_one("#versions", DataTable)
        at = table.cursor_row
        return self.versions[at] if 0 <= at < len(self.versions) else None

    def _show_field(self) -> None:
        """The highlighted field's three versions in full (a long value is cut above)."""
        version = self.current
        text = Text()
        if version is not None:
            where = vendor(self.entry.source)
            text.append(f"{version.label}", style="bold")
            if version.changed:
                text.append(f"  changed at {where} since you saw it", style="yellow")
            for name, value in (
                ("You saw", version.saw),
                (f"Now at {where}", version.theirs),
                ("Yours", version.mine),
            ):
                text.append(f"\n{name}: ", style="bold")
                text.append_text(safe_block(value))
        self.query_one("#conflict-field-text", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_field()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle()

    def _set(self, fields: list[str], choice: Choice) -> None:
        for name in fields:
            self.choices[name] = choice
        self._build()

    def action_choose(self, choice: Choice) -> None:
        if self.current is not None:
            self._set([self.current.field], choice)

    def action_choose_all(self, choice: Choice) -> None:
        self._set(list(self.choices), choice)

    def action_toggle(self) -> None:
        if self.current is not None:
            field = self.current.field
            self._set([field], "theirs" if self.choices[field] == "mine" else "mine")

    def action_send(self) -> None:
        self.crm.decide_edit(self.entry.id, "settle", dict(self.choices))
        self.dismiss(True)

    def action_later(self) -> None:
        self.dismiss(False)


# -- one write, from the Audit ----------------------------------------------------------------


class WriteScreen(ModalScreen[None]):
    """Everything about one write: who, when, each field before and after, the vendor's
    answer or error."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="write.close"),
        Binding("o", "open", "Open record", id="write.open"),
    ]

    def __init__(self, entry: OutboxEntry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        crm = cast("CrmApp", self.app)
        lines = write_details(self.entry, label_of(crm, self.entry))
        with VerticalScroll(id="write"):
            yield Static(safe_block("\n".join(lines)), id="write-text")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.entry.record_id) if action == "open" else True

    def action_open(self) -> None:
        open_record(cast("CrmApp", self.app), self.entry)
