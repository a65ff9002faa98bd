"""Changing a vendor's record from the app: the local form limited to the fields its source
lets crm-tui write, and a note for a contact (Follow Up Boss). What is saved waits in the
outbox, shown on the record at once, and the app sends it (CrmApp.drain_outbox).

`open_editor` is the one way in, from the lists (ctrl+e) and the record detail (`e`): a
local record gets the local CRM's form, a vendor's its own, a read-only source a notice
saying where to edit it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.local_crm import ValidationFailed
from crm_tui.models import Record, kind_of
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.local_form import Choices, FormTarget, LocalFormScreen
from crm_tui.writeback.service import EditRefused
from crm_tui.writeback.shown import vendor

if TYPE_CHECKING:
    from crm_tui.app import CrmApp


def vendor_form(app: CrmApp, record: Record) -> LocalFormScreen:
    """The local form over the fields `record`'s source writes; saving puts the edit in
    the outbox (the cache shows it at once) and answers the record as shown now."""
    writeback, kind = app.writeback, kind_of(record)
    what = "contact" if kind == "contacts" else "deal"

    async def save(values: dict[str, Any]) -> Record:
        await writeback.edit(record, values)
        return app.store.get(kind, record.id) or record

    def listed(name: str) -> Choices:
        async def read() -> list[str]:
            source = app.engine.source(record.source)
            return list(await source.choices(kind, name, record.metadata))

        return read

    spec = app.engine.connectors[record.source].writes.update[kind]
    title = f"Edit in {vendor(record.source)}: {what} {record.id}"
    choices = {name: listed(name) for name in spec.choices}
    custom = writeback.custom_writable(record)
    labels = {}
    for name in custom:  # a custom column by its label, as Browse and the record show it
        column = app.engine.columns.get(name.removeprefix(CUSTOM_PREFIX))
        labels[name] = column.label if column else name
    fields = (*writeback.writable(record), *custom)
    target = FormTarget(title, fields, save, True, choices, labels)
    return LocalFormScreen(kind, record, target)


def open_editor(app: CrmApp, record: Record) -> None:
    """The form that edits `record`, or a notice saying why it cannot be edited here."""
    if app.writes_blocked():
        return
    if record.source == "local":
        app.push_screen(LocalFormScreen(kind_of(record), record), saved_locally(app))
        return
    reason = app.writeback.refusal(record)
    if reason is not None:
        app.notify(reason, markup=False)
        return
    app.push_screen(vendor_form(app, record), _saved_for_vendor(app, record.source))


def saved_locally(app: CrmApp) -> Any:
    """What a closed local form says: the record's id when it saved one."""

    def saved(record: Record | None) -> None:
        if record is not None:
            app.notify(f"Saved {record.id}", markup=False)

    return saved


def _saved_for_vendor(app: CrmApp, source: str) -> Any:
    def saved(result: object) -> None:
        if result:
            app.notify(f"Saved: sending it to {vendor(source)}…", markup=False)
            app.drain_outbox([source])

    return saved


def add_note(app: CrmApp, record: Record) -> None:
    if app.writes_blocked():
        return
    reason = app.writeback.refusal(record)
    if not app.writeback.takes_notes(record) or reason is not None:
        app.notify(reason or f"{vendor(record.source)} takes no notes from crm-tui", markup=False)
        return
    app.push_screen(NoteScreen(record), _saved_for_vendor(app, record.source))


class NoteScreen(ModalScreen[bool]):
    """A note for a contact at its vendor: a subject (where the vendor keeps one) and the
    text, saved to the outbox, then sent."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="note.save", priority=True),
        Binding("escape", "cancel", "Cancel", id="note.cancel"),
    ]

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def _has_subject(self) -> bool:
        note = self.crm.engine.connectors[self.record.source].writes.note
        return bool(note and note.subject)

    def compose(self) -> ComposeResult:
        name = getattr(self.record, "name", "") or self.record.id
        with Vertical(id="note"):
            title = f"Note for {name} in {vendor(self.record.source)}"
            yield Static(title, id="note-title", markup=False)
            if self._has_subject():
                yield Label("Subject (optional)", markup=False)
                yield Input(id="note-subject", compact=True)
            yield Label("Note", markup=False)
            yield TextArea(id="note-text", soft_wrap=True)
            yield Label("", id="note-error", classes="field-error", markup=False)
            with Horizontal(id="note-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#note-text", TextArea).focus()

    def _subject(self) -> str:
        found = self.query("#note-subject")
        return found.first(Input).value.strip() if found else ""

    def _text(self) -> str:
        return self.query_one("#note-text", TextArea).text

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        if not (self._text().strip() or self._subject()):
            self.dismiss(False)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(False)

        self.app.push_screen(ConfirmScreen("Discard this note?"), answered)

    @work(group="form", exclusive=True, exit_on_error=False)
    async def action_save(self) -> None:
        error = self.query_one("#note-error", Label)
        try:
            await self.crm.writeback.note(self.record, self._text(), self._subject() or None)
        except ValidationFailed as exc:
            error.update(" ".join(exc.errors.values()))
            error.display = True
            return
        except EditRefused as exc:  # the source takes no notes after all
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.dismiss(True)
