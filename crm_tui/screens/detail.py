"""Record detail: the fields as people read them (labels, money, local times, one phone
format; `v` shows them as stored), links between a deal and its contact, the source's web
page, and the original payload. `e` edits (the local CRM's record, or a vendor's where it
lets crm-tui write), `N` adds a note; an edit not sent yet, refused or in conflict shows
under the title, and `c` resolves a conflict."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.custom_columns import CUSTOM_PREFIX, Column, custom_json
from crm_tui.fields.shown import shown_value
from crm_tui.formats import field_label, format_amount, format_date, local_time, utc_time
from crm_tui.models import Contact, Deal, Record, kind_of
from crm_tui.phones import format_phone
from crm_tui.screens.outbox import ConflictScreen
from crm_tui.screens.vendor import add_note, open_editor
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store import StoreChange
from crm_tui.store.outbox import OPEN_STATES, OutboxEntry
from crm_tui.vocabulary import record_shared_status
from crm_tui.widgets.safe import safe, safe_block
from crm_tui.writeback.shown import record_mark

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

_HIDDEN = {"raw", "id", "source", "user_id", "deleted", "custom"}  # custom: rows of their own
_TIMES = ("remote_created", "remote_updated", "synced_at")
MAX_DEALS_LISTED = 200
MARK_STYLE = {"pending": "yellow", "failed": "bold red", "conflict": "bold magenta"}


@dataclass(frozen=True, slots=True)
class Row:
    key: str  # a field's name, or `deal:<id>` / `contact` for a link
    label: str
    value: str
    link: str | None = None  # the id of the record `enter` opens


def field_rows(
    record: Record,
    *,
    stored: bool = False,
    region: str = "US",
    contact: Contact | None = None,
    deals: tuple[Deal, ...] = (),
    columns: Mapping[str, Column] | None = None,
) -> list[Row]:
    """The detail's rows: formatted for people, or (`stored`) exactly as kept in the cache,
    times in UTC. `contact` and `deals` are the linked records found in the cache;
    `columns` the declared custom columns (their labels and types)."""
    rows = [
        Row("id", "Record id", record.id),
        Row("source", "Source", DISPLAY_NAMES.get(record.source, record.source)),
    ]
    for name in type(record).__dataclass_fields__:
        if name in _HIDDEN:
            continue
        value = getattr(record, name)
        link = None
        if name == "tags":
            shown = ", ".join(value)
        elif value is None or value == "":
            shown = ""
        elif stored:
            shown = utc_time(value) if name in _TIMES else str(value)
        elif name in _TIMES:
            shown = local_time(value)
        elif name == "amount" and isinstance(record, Deal):
            shown = format_amount(value, record.currency)
        elif name == "close_date":
            shown = format_date(value)
        elif name == "phone":
            shown = format_phone(value, region)
        elif name == "probability":
            shown = f"{value}%"
        else:
            shown = str(value)
        if name == "contact_remote_id" and contact is not None:
            link = contact.id
            if not stored:
                shown = contact.name or contact.email or contact.id
        rows.append(Row(name, field_label(name), shown, link))
    rows += custom_rows(record, columns or {}, stored=stored)
    shared = record_shared_status(record)
    if shared is not None:  # the vendor's own stage and status stay above, as they were
        at = next((i + 1 for i, row in enumerate(rows) if row.key == "stage"), len(rows))
        rows.insert(at, Row("shared_status", "Shared status", shared))
    if record.deleted:
        rows.append(Row("deleted", "Deleted", "yes: gone from the source"))
    for deal in deals[:MAX_DEALS_LISTED]:
        parts = [deal.name or deal.id, format_amount(deal.amount, deal.currency), deal.stage]
        value = " · ".join(p for p in parts if p)
        rows.append(Row(f"deal:{deal.id}", "Deal", value, deal.id))
    if len(deals) > MAX_DEALS_LISTED:
        rows.append(Row("deals-more", "", f"and {len(deals) - MAX_DEALS_LISTED:,} more deals"))
    return rows


def custom_rows(record: Record, columns: Mapping[str, Column], *, stored: bool) -> list[Row]:
    """A row per custom value, labelled; declared columns in the file's order, then any
    value whose column is no longer declared (under its name)."""
    names = [n for n in columns if n in record.custom]
    names += [n for n in record.custom if n not in columns]
    rows = []
    for name in names:
        column = columns.get(name) or Column.implied(name)
        value = record.custom[name]
        if value is None:
            shown = f"(not read as {column.type})"
        elif stored:  # as `--json` prints it
            kept = custom_json({name: value})[name]
            shown = kept if isinstance(kept, str) else json.dumps(kept, ensure_ascii=False)
        else:
            shown = shown_value(value, column.type)
        rows.append(Row(f"{CUSTOM_PREFIX}{name}", column.label, shown))
    return rows


def source_url(record: Record) -> str | None:
    """The record's page in its CRM, as the source declares it."""
    cls = CONNECTORS.get(record.source)
    return cls.web_url(record) if cls is not None else None


def can_open_browser(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a browser would open where the person sits. Over SSH it would open on the
    server, if anywhere; on a Linux console without a display `webbrowser` would start a
    text browser inside this terminal, over the app."""
    env = os.environ if environ is None else environ
    if env.get("SSH_CONNECTION") or env.get("SSH_TTY"):
        return False
    if sys.platform not in ("darwin", "win32") and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


class RecordScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="detail.close"),
        Binding("y", "copy", "Copy value", id="detail.copy"),
        Binding("v", "toggle_stored", "As stored", id="detail.stored"),
        Binding("o", "open_source", "Open in CRM", id="detail.open"),
        Binding("a", "also_in", "Same person elsewhere", id="detail.also"),
        Binding("e", "edit", "Edit", id="detail.edit"),
        Binding("N", "note", "Add note", id="detail.note"),
        Binding("c", "resolve", "Resolve conflict", id="detail.resolve"),
    ]

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record
        self.url = source_url(record)
        self.also_in: list[str] = []
        self.shared: list[str] = []
        self.stored = False
        self.rows: list[Row] = []
        self.contact: Contact | None = None
        self.deals: tuple[Deal, ...] = ()
        self.marks: list[OutboxEntry] = []  # this record's open outbox entries

    def compose(self) -> ComposeResult:
        record = self.record
        title = record.name if isinstance(record, Contact) else (record.name or record.id)
        with Vertical(id="record"):
            badge = Text(
                f" {DISPLAY_NAMES.get(record.source, record.source)} ", style="bold reverse"
            )
            badge.append("  ")
            badge.append_text(safe(title or "(no name)", "bold"))
            badge.append(self._where_edited(), style="dim")
            yield Static(badge, id="record-title")
            yield Static(id="outbox-mark")
            yield Static(id="also-in")
            table: DataTable[Text] = DataTable(id="fields", cursor_type="row")
            yield table
            with VerticalScroll(id="payload"):
                payload = json.dumps(record.metadata, indent=2, ensure_ascii=False)
                yield Static(safe_block(payload), id="payload-text")
        yield Footer()

    def _refusal(self) -> str | None:
        """Why `e` cannot edit this record (None: it can)."""
        if self.record.source == "local":
            return None
        writeback = getattr(self.app, "writeback", None)
        return writeback.refusal(self.record) if writeback else "Read-only here"

    def _where_edited(self) -> str:
        where = DISPLAY_NAMES.get(self.record.source, self.record.source)
        if self.record.source == "local":
            return ""
        if self._refusal() is not None:
            return f"   read-only: edit in {where}"
        # the keys said here too: at 80 columns the footer has no room left for them
        note = " · N note" if self.check_action("note", ()) else ""
        return f"   e edit{note} · sent to {where}"

    def on_mount(self) -> None:
        review = getattr(self.app, "review", None)
        if review is not None:
            self.also_in = review.also_in(self.record.id)
            shared = review.people.shared_by_record.get(self.record.id, ())
            self.shared = [p.note for p in shared]
        self._find_links()
        self._show_also_in()
        table = self.query_one("#fields", DataTable)
        table.add_column("Field", key="field", width=16)
        table.add_column("Value", key="value")
        self._fill()
        table.focus()
        signal = getattr(self.app, "store_changed", None)
        if signal is not None:
            signal.subscribe(self, self._on_store_change)
        self._load_marks()

    def _on_store_change(self, change: StoreChange) -> None:
        """This record changed (an edit saved, sent, refused or dropped; a sync): shown
        again as the cache has it, with its outbox marks read again."""
        record = self.record
        kind = kind_of(record)
        if change.status_only or kind not in change.kinds:
            return
        if change.ids is not None and record.id not in change.ids:
            return
        store = getattr(self.app, "store", None)
        fresh = store.get(kind, record.id) if store is not None else None
        if fresh is not None and fresh is not record:
            self.record = fresh
            self._fill()
        self._load_marks()

    @work(group="detail-marks", exclusive=True, exit_on_error=False)
    async def _load_marks(self) -> None:
        store = getattr(self.app, "store", None)
        db = store.db if store is not None else None
        if db is None or self.record.source == "local":
            return
        user, record_id = store.user_id, self.record.id
        self.marks = await asyncio.to_thread(db.outbox, user, OPEN_STATES, None, 20, record_id)
        self._show_marks()

    def _show_marks(self) -> None:
        text = Text()
        for entry in reversed(self.marks):  # oldest first, as they will be sent
            line, tone = record_mark(entry)
            text.append("\n" if text else "")
            text.append_text(safe(line, MARK_STYLE[tone]))
        mark = self.query_one("#outbox-mark", Static)
        mark.update(text)
        mark.display = bool(self.marks)
        self.refresh_bindings()

    def _find_links(self) -> None:
        """A deal's contact and a contact's deals, from the same source in the cache."""
        store = getattr(self.app, "store", None)
        record = self.record
        if store is None:
            return
        if isinstance(record, Deal) and record.contact_remote_id:
            found = store.get("contacts", f"{record.source}:{record.contact_remote_id}")
            self.contact = found if isinstance(found, Contact) else None
        elif isinstance(record, Contact):
            # the stream as it is now (a sync replaces it, never changes it in place),
            # scanned off the loop: a source may hold 200,000 deals, read from disk
            deals = store.stream("deals", record.source)
            self.run_worker(self._show_deals(deals, record.remote_id), group="detail-links")

    async def _show_deals(self, deals: Mapping[str, Record], remote_id: str) -> None:
        def theirs() -> tuple[Deal, ...]:
            return tuple(
                d
                for d in deals.values()
                if isinstance(d, Deal) and d.contact_remote_id == remote_id and not d.deleted
            )

        self.deals = await asyncio.to_thread(theirs)
        if self.deals and self.is_attached:
            self._fill()

    def _region(self) -> str:
        settings = getattr(self.app, "settings", None)
        return str(getattr(settings, "crm_phone_region", "US"))

    def _fill(self) -> None:
        table = self.query_one("#fields", DataTable)
        row = table.cursor_row
        table.clear()
        index = getattr(self.app, "index", None)
        self.rows = field_rows(
            self.record,
            stored=self.stored,
            region=self._region(),
            contact=self.contact,
            deals=self.deals,
            columns=getattr(index, "columns", None),
        )
        for item in self.rows:
            value = safe(item.value, "underline" if item.link else "")
            if item.link:
                value.append("  enter: open", style="dim")
            table.add_row(safe(item.label, "bold"), value, key=item.key)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

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
        if action == "edit":
            return self._refusal() is None
        if action == "note":
            writeback = getattr(self.app, "writeback", None)
            takes = writeback is not None and writeback.takes_notes(self.record)
            return takes and self._refusal() is None
        if action == "resolve":
            return any(m.state == "conflict" for m in self.marks)
        return True

    def action_edit(self) -> None:
        open_editor(cast("CrmApp", self.app), self.record)

    def action_note(self) -> None:
        add_note(cast("CrmApp", self.app), self.record)

    def action_resolve(self) -> None:
        conflict = next((m for m in self.marks if m.state == "conflict"), None)
        if conflict is not None:
            self.app.push_screen(ConflictScreen(conflict))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """`enter` on a link opens the record it names; esc comes back here."""
        row = self.rows[event.cursor_row] if event.cursor_row < len(self.rows) else None
        store = getattr(self.app, "store", None)
        if row is None or row.link is None or store is None:
            return
        kind = "deals" if row.key.startswith("deal:") else "contacts"
        record = store.get(kind, row.link)
        if record is not None:
            self.app.push_screen(RecordScreen(record))

    def action_toggle_stored(self) -> None:
        self.stored = not self.stored
        self._fill()
        shown = "as stored (times in UTC)" if self.stored else "formatted (local time)"
        self.notify(f"Values {shown}: v switches back", markup=False, timeout=3)

    def action_also_in(self) -> None:
        """Open the same person's record in the next source (from there, the next...)."""
        store = getattr(self.app, "store", None)
        record = store.get("contacts", self.also_in[0]) if store and self.also_in else None
        if record is not None:
            self.app.switch_screen(RecordScreen(record))

    def action_copy(self) -> None:
        table = self.query_one("#fields", DataTable)
        if not table.row_count or table.cursor_row >= len(self.rows):
            return
        row = self.rows[table.cursor_row]
        self.app.copy_to_clipboard(row.value)
        self.notify(f"Copied {row.label or 'value'}", markup=False)

    def action_open_source(self) -> None:
        if not self.url:
            return
        where = DISPLAY_NAMES.get(self.record.source, self.record.source)
        if can_open_browser():
            self.app.open_url(self.url)
            self.notify(f"Opening the record in {where} in your browser", markup=False)
            return
        # OSC 52: the terminal the person sits at takes it, over SSH too.
        self.app.copy_to_clipboard(self.url)
        self.notify(
            f"No browser here: the link to {where} is in your clipboard\n{self.url}",
            markup=False,
            timeout=8,
        )
