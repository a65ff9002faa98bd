"""Audit: sync runs newest first; a run opens to its streams and quarantined records."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.screens.base import ModeScreen
from crm_tui.timefmt import exact, parse_utc
from crm_tui.widgets.safe import safe, safe_block

OUTCOME_STYLE = {
    "success": "green",
    "partial": "yellow",
    "failed": "red",
    "cancelled": "dim",
    "skipped": "dim",
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


class AuditScreen(ModeScreen):
    BINDINGS = [Binding("r", "reload", "Reload", id="audit.reload")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Sync runs, newest first. Enter opens a run.", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns(*RUN_COLUMNS)
        super().on_mount()

    def on_store_change(self, change: Any) -> None:
        if change.status_only:  # a run ends with a status change; reload then
            super().on_store_change(change)

    def refresh_data(self) -> None:
        db = self.crm.store.db
        table = self.query_one("#runs", DataTable)
        table.clear()
        self.runs = db.list_runs(self.crm.store.user_id) if db else []
        for run in self.runs:
            table.add_row(*run_cells(run), key=str(run["id"]))

    def action_reload(self) -> None:
        self.refresh_data()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        db = self.crm.store.db
        run = next((r for r in self.runs if str(r["id"]) == event.row_key.value), None)
        if run is None or db is None:
            return
        quarantine = []
        for stream in run["streams"]:
            quarantine.extend(db.list_quarantine(self.crm.store.user_id, stream["id"]))
        self.app.push_screen(RunScreen(run, quarantine))
