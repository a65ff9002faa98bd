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
from crm_tui.sources.registry import CONNECTORS
from crm_tui.timefmt import exact
from crm_tui.widgets.safe import safe, safe_block

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
    """The record's page in its CRM, as the source declares it."""
    cls = CONNECTORS.get(record.source)
    return cls.web_url(record) if cls is not None else None


class RecordScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="detail.close"),
        Binding("y", "copy", "Copy value", id="detail.copy"),
        Binding("o", "open_source", "Open in CRM", id="detail.open"),
        Binding("a", "also_in", "Same person elsewhere", id="detail.also"),
    ]

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record
        self.url = source_url(record)
        self.also_in: list[str] = []
        self.shared: list[str] = []

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
            yield Static(id="also-in")
            table: DataTable[Text] = DataTable(id="fields", cursor_type="row")
            yield table
            with VerticalScroll(id="payload"):
                payload = json.dumps(record.metadata, indent=2, ensure_ascii=False)
                yield Static(safe_block(payload), id="payload-text")
        yield Footer()

    def on_mount(self) -> None:
        review = getattr(self.app, "review", None)
        if review is not None:
            self.also_in = review.also_in(self.record.id)
            shared = review.people.shared_by_record.get(self.record.id, ())
            self.shared = [p.note for p in shared]
        self._show_also_in()
        table = self.query_one("#fields", DataTable)
        table.add_column("Field", key="field", width=16)
        table.add_column("Value", key="value")
        for name, value in field_rows(self.record):
            table.add_row(safe(name, "bold"), safe(value), key=name)
        table.focus()

    def _show_also_in(self) -> None:
        line = Text()
        if self.also_in:
            sources = dict.fromkeys(m.split(":", 1)[0] for m in self.also_in)
            line.append("Also in: ", style="bold")
            line.append(", ".join(DISPLAY_NAMES.get(s, s) for s in sources))
            line.append("   a: jump to the next one", style="dim")
        for note in self.shared:
            line.append("\n" if line else "")
            line.append_text(safe(f"⚑ {note}", "yellow"))
        self.query_one("#also-in", Static).update(line)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_source":
            return self.url is not None
        if action == "also_in":
            return bool(self.also_in)
        return True

    def action_also_in(self) -> None:
        """Open the same person's record in the next source (from there, the next...)."""
        store = getattr(self.app, "store", None)
        record = store.get("contacts", self.also_in[0]) if store and self.also_in else None
        if record is not None:
            self.app.switch_screen(RecordScreen(record))

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
