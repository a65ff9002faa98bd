"""Audit: sync runs and writes (edits, notes, leads sent to a CRM) newest first; a run opens
to its streams and quarantined records, a write to who changed what, before and after, and
what the CRM answered.

`/` (or letters typed in the list) filters the runs by any word of their row: a source,
an outcome, an error. g / G go to the newest and the oldest run.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Input, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.outbox import STATE_STYLE, WriteScreen, label_of
from crm_tui.screens.typing import TypeToFilter
from crm_tui.store.db import Database
from crm_tui.store.errors import StoreError
from crm_tui.store.outbox import OutboxEntry
from crm_tui.text import single_line
from crm_tui.timefmt import exact, parse_utc
from crm_tui.widgets.safe import safe, safe_block
from crm_tui.writeback.shown import by_time, write_row

OUTCOME_STYLE = {
    "success": "green",
    "partial": "yellow",
    "failed": "red",
    "cancelled": "dim",
    "skipped": "dim",
    "interrupted": "magenta",
}


def duration(run: dict[str, Any]) -> str:
    start, end = parse_utc(run.get("started_at")), parse_utc(run.get("ended_at"))
    if start is None or end is None:
        return "running"
    return f"{(end - start).total_seconds():.0f} s"


def run_cells(run: dict[str, Any]) -> list[Text]:
    outcome = run.get("outcome") or "running"
    return [
        safe(exact(run["started_at"])),
        safe(DISPLAY_NAMES.get(run["source"], run["source"])),
        safe(run.get("stream") or "all"),
        safe(outcome, OUTCOME_STYLE.get(outcome, "")),
        safe(duration(run)),
        safe(f"{run['records_read']:,}"),
        safe(f"{run['records_written']:,}"),
        safe(str(run["quarantined"])),
        safe(str(run["duplicates"])),
        safe(str(run["retries"])),
        safe(run.get("error_message") or ""),
    ]


RUN_COLUMNS = (
    "Started",
    "Source",
    "Stream",
    "Outcome",
    "Took",
    "Read",
    "Written",
    "Quarantined",
    "Duplicates",
    "Retries",
    "Error",
)
#: Under WIDE_AT columns, what went right or wrong first; a run's counts are one `enter` away.
NARROW_COLUMNS = ("Started", "Source", "Outcome", "Took", "Read", "Error")
WIDE_AT = 120
#: Once there are writes: what each row is (sync, edit, note, lead), and "Details" for the
#: error of a run or the change a write made.
WRITE_COLUMNS = ("Started", "What", *RUN_COLUMNS[1:-1], "Details")
NARROW_WRITE_COLUMNS = ("Started", "What", "Source", "Outcome", "Details")


def shown_columns(width: int, writes: bool = False) -> tuple[str, ...]:
    """The columns that fit `width` cells, by title."""
    if writes:
        return WRITE_COLUMNS if width >= WIDE_AT else NARROW_WRITE_COLUMNS
    return RUN_COLUMNS if width >= WIDE_AT else NARROW_COLUMNS


def run_row(run: dict[str, Any]) -> dict[str, Text]:
    """A run's cells by column title, under either set of columns."""
    row = dict(zip(RUN_COLUMNS, run_cells(run), strict=True))
    return {**row, "What": safe("sync"), "Details": row["Error"]}


def write_cells(entry: OutboxEntry, label: str) -> dict[str, Text]:
    row = {name: safe(value) for name, value in write_row(entry, label).items()}
    row["Outcome"] = safe(entry.state, STATE_STYLE.get(entry.state, ""))
    return row


class RunScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="run.close")]

    def __init__(self, run: dict[str, Any], quarantine: list[dict[str, Any]]) -> None:
        super().__init__()
        self.run_row = run
        self.quarantine = quarantine

    def compose(self) -> ComposeResult:
        with Vertical(id="run"):
            yield Static(
                safe_block(
                    f"Run {self.run_row['id']}: {self.run_row.get('error_message') or 'no error'}"
                )
            )
            yield DataTable(id="streams", cursor_type="row")
            yield Static(f"Quarantined records: {len(self.quarantine)}", markup=False)
            yield DataTable(id="quarantine", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        streams = self.query_one("#streams", DataTable)
        streams.add_columns(*RUN_COLUMNS)
        for row in self.run_row["streams"]:
            streams.add_row(*run_cells(row))
        table = self.query_one("#quarantine", DataTable)
        table.add_columns("Stream", "Reason", "Payload")
        for item in self.quarantine:
            payload = json.loads(item["payload"])
            table.add_row(
                safe(item["stream"]),
                safe(item["reason"]),
                safe(json.dumps(payload, ensure_ascii=False)[:300]),
            )


def read_audit(db: Database, user: str) -> tuple[list[dict[str, Any]], list[OutboxEntry]]:
    """The runs and the latest writes, in one trip off the event loop."""
    return db.list_runs(user), db.outbox(user, limit=200)


def quarantine_of(db: Database, user: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The records each of a run's streams quarantined."""
    return [item for stream in run["streams"] for item in db.list_quarantine(user, stream["id"])]


def run_matches(cells: list[Text], words: list[str]) -> bool:
    """Whether every word of a filter is in the run's row (any column, any case)."""
    row = " ".join(c.plain for c in cells).casefold()
    return all(word in row for word in words)


class AuditScreen(TypeToFilter, ModeScreen):
    BINDINGS = [
        Binding("r", "reload", "Reload", id="audit.reload"),
        Binding("slash", "find", "Filter", id="audit.find"),
        Binding("g", "jump(0)", "Newest", show=False, id="audit.top"),
        Binding("G", "jump(-1)", "Oldest", show=False, id="audit.bottom"),
        Binding("escape", "clear_find", "Clear filter", show=False, id="audit.clear"),
    ]
    runs: list[dict[str, Any]] = []
    writes: list[OutboxEntry] = []
    shown: tuple[str, ...] = ()
    loaded = False  # the first read is done: an empty list means no runs, not "not yet"
    problem: str | None = None  # why the last read failed

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "Sync runs, newest first. Enter opens a run.", id="audit-summary", markup=False
        )
        yield Input(
            placeholder="filter runs: a source, an outcome, words of an error (esc clears)",
            id="audit-find",
            select_on_focus=False,
        )
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns()
        self.query_one("#audit-find", Input).display = False
        super().on_mount()
        self.query_one("#runs", DataTable).focus()

    def _set_columns(self) -> bool:
        """The columns for this width (and whether writes are listed); True when they
        changed."""
        shown = shown_columns(self.size.width or 80, bool(self.writes))
        if shown == self.shown:
            return False
        self.shown = shown
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        table.add_columns(*shown)
        return True

    def on_resize(self) -> None:
        if self._set_columns():
            self._show()

    def filter_box(self) -> Input:
        return self.query_one("#audit-find", Input)

    def typing_lists(self) -> tuple[Widget, ...]:
        return (self.query_one("#runs", DataTable),)

    def on_store_change(self, change: Any) -> None:
        if change.status_only:  # a run ends with a status change; reload then
            super().on_store_change(change)

    def refresh_data(self) -> None:
        self.run_worker(self._load, group="audit", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        """Read the runs and writes off the event loop, then show them."""
        db, user = self.crm.store.db, self.crm.store.user_id
        try:
            if db is not None:
                self.runs, self.writes = await asyncio.to_thread(read_audit, db, user)
            self.problem = None
        except (StoreError, sqlite3.Error) as exc:  # the list says so; r tries again
            self.problem = single_line(str(exc))
        self.loaded = True
        self._set_columns()
        self._show()

    def _rows(self) -> list[tuple[str, dict[str, Text]]]:
        """Every run and write, newest first: its row key and cells by column title."""
        rows = []
        for item in by_time(self.runs, self.writes):
            if isinstance(item, OutboxEntry):
                cells = write_cells(item, label_of(self.crm, item))
                rows.append((f"write:{item.id}", cells))
            else:
                rows.append((str(item["id"]), run_row(item)))
        return rows

    def _show(self) -> None:
        table = self.query_one("#runs", DataTable)
        selected = self._selected_key()
        table.clear()
        words = self.filter_box().value.casefold().split()
        for key, cells in self._rows():
            if run_matches(list(cells.values()), words):  # every field, shown or not
                table.add_row(*(cells[name] for name in self.shown), key=key)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#audit-summary", Static).update(self._summary(table.row_count, words))

    def _selected_key(self) -> Any:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key

    def _summary(self, shown: int, words: list[str]) -> str:
        """What the list holds, and why it is empty when it is."""
        if not self.loaded:
            return "Reading the sync runs…"
        if self.problem:
            return f"Could not read the sync runs ({self.problem}): r tries again."
        if not self.runs and not self.writes:
            return "No sync runs yet: on Status (F1) press a to sync every source."
        if words and not shown:
            return f"No run matches {' '.join(words)!r}: esc clears the filter."
        matching = f" matching {' '.join(words)!r}" if words else ""
        if self.writes:
            return f"{shown:,} syncs and writes{matching}, newest first. Enter opens one."
        return f"{shown:,} sync runs{matching}, newest first. Enter opens a run, / filters."

    @on(Input.Changed, "#audit-find")
    def _find_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#audit-find")
    def _find_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_find(self) -> None:
        self.focus_box()

    def action_clear_find(self) -> None:
        box = self.filter_box()
        box.value, box.display = "", False
        self.query_one("#runs", DataTable).focus()

    def action_jump(self, where: int) -> None:
        table = self.query_one("#runs", DataTable)
        if table.row_count:
            table.move_cursor(row=0 if where == 0 else table.row_count - 1)

    def action_reload(self) -> None:
        self.refresh_data()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key.startswith("write:"):
            entry = next((w for w in self.writes if f"write:{w.id}" == key), None)
            if entry is not None:
                self.app.push_screen(WriteScreen(entry))
            return
        run = next((r for r in self.runs if str(r["id"]) == event.row_key.value), None)
        if run is not None and self.crm.store.db is not None:
            self.run_worker(self._open_run(run), group="audit-run", exit_on_error=False)

    async def _open_run(self, run: dict[str, Any]) -> None:
        db, user = self.crm.store.db, self.crm.store.user_id
        if db is not None:
            quarantine = await asyncio.to_thread(quarantine_of, db, user, run)
            self.app.push_screen(RunScreen(run, quarantine))
