"""Record detail: mapped fields, source, ids and times, and the original payload."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import Contact, Record
from crm_tui.timefmt import exact
from crm_tui.widgets.safe import safe, safe_block

_URL_KEYS = ("brivity_contact_detail_url", "sourceUrl", "url")
_HIDDEN = {"raw", "id", "source", "user_id"}


def field_rows(record: Record) -> list[tuple[str, str]]:
    rows = [("id", record.id), ("source", DISPLAY_NAMES.get(record.source, record.source))]
    for name in type(record).__dataclass_fields__:
        if name in _HIDDEN:
            continue
        value = getattr(record, name)
        if name == "tags":
            value = ", ".join(value)
        elif name in ("remote_created", "remote_updated", "synced_at"):
            value = exact(value) if value else ""
        rows.append((name, "" if value is None else str(value)))
    return rows


def source_url(record: Record) -> str | None:
    metadata = record.metadata
    for key in _URL_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return None


class RecordScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="detail.close"),
        Binding("y", "copy", "Copy value", id="detail.copy"),
        Binding("o", "open_source", "Open in CRM", id="detail.open"),
    ]

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record
        self.url = source_url(record)

    def compose(self) -> ComposeResult:
        record = self.record
        title = record.name if isinstance(record, Contact) else (record.name or record.id)
        with Vertical(id="record"):
            badge = Text(
                f" {DISPLAY_NAMES.get(record.source, record.source)} ", style="bold reverse"
            )
            badge.append("  ")
            badge.append_text(safe(title or "(no name)", "bold"))
            if record.source != "local":
                badge.append(
                    f"   read-only: edit in {DISPLAY_NAMES.get(record.source)}", style="dim"
                )
            yield Static(badge, id="record-title")
            table: DataTable[Text] = DataTable(id="fields", cursor_type="row")
            yield table
            with VerticalScroll(id="payload"):
                payload = json.dumps(record.metadata, indent=2, ensure_ascii=False)
                yield Static(safe_block(payload), id="payload-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#fields", DataTable)
        table.add_column("Field", key="field", width=16)
        table.add_column("Value", key="value")
        for name, value in field_rows(self.record):
            table.add_row(safe(name, "bold"), safe(value), key=name)
        table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_source":
            return self.url is not None
        return True

    def action_copy(self) -> None:
        table = self.query_one("#fields", DataTable)
        if not table.row_count:
            return
        name, value = field_rows(self.record)[table.cursor_row]
        self.app.copy_to_clipboard(value)
        self.notify(f"Copied {name}", markup=False)

    def action_open_source(self) -> None:
        if self.url:
            self.app.open_url(self.url)
