"""The local CRM's form: one input per field, every error shown under its field.

It fits 80x24: the fields scroll in one or two columns (as the width allows) while the
title, the buttons and the footer stay put. Status, stage and tags suggest the values the
cache already holds; amounts and dates are read leniently and the reading is shown.

The same form edits a vendor's record (screens/vendor.py): a `FormTarget` names the fields
its source lets crm-tui write and where the values go."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ItemGrid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Footer, Input, Label, Static

from crm_tui.config import ConfigError
from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.formats import field_label, format_amount, format_date, parse_amount, parse_date
from crm_tui.local_crm import ValidationFailed, validate
from crm_tui.models import CONTACT_EDITABLE, DEAL_EDITABLE, Record, RecordKind
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.sources.errors import SourceError
from crm_tui.suggestions import used_values
from crm_tui.writeback.service import EditRefused

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

_PLACEHOLDERS = {
    "amount": "450k, $1.2M, 1,250,000",
    "close_date": "12/15/2026, Dec 15 2026, 2026-12-15",
    "tags": "comma, separated",
    "probability": "0-100",
    "currency": "USD",
}
_LABELS = {"contact_remote_id": "Contact (its id)", "probability": "Probability %"}
#: Checked as soon as the person leaves the field (the others only on save: a missing
#: name is not an error while the form is still being filled in).
_CHECKED_ON_LEAVE = ("amount", "close_date", "probability", "currency", "email", "phone")


def _shown(record: Record | None, name: str) -> str:
    if record is None:
        return ""
    if name.startswith(CUSTOM_PREFIX):  # as stored, so that it reads back as typed
        value = record.custom.get(name.removeprefix(CUSTOM_PREFIX))
        if isinstance(value, tuple):
            return ", ".join(value)
        return (
            ""
            if value is None
            else format(value, "f")
            if isinstance(value, Decimal)
            else str(value)
        )
    value = getattr(record, name, None)
    if name == "tags":
        return ", ".join(value or ())
    return "" if value is None else str(value)


def _slot(name: str) -> str:
    """A field's name as a widget id (`custom.lender` -> `custom-lender`: ids take no dot)."""
    return name.replace(".", "-")


class ValueSuggester(Suggester):
    """Completes the value being typed from `values` (for tags: the last comma-separated
    item). The values are filled in later, once read from the store."""

    def __init__(self, listed: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self.values: list[str] = []
        self.listed = listed

    async def get_suggestion(self, value: str) -> str | None:
        head, comma, last = value.rpartition(",") if self.listed else ("", "", value)
        typed = last.lstrip().casefold()
        if not typed:
            return None
        for candidate in self.values:
            if candidate.casefold().startswith(typed) and candidate.casefold() != typed:
                return f"{head}{comma}{last[: len(last) - len(last.lstrip())]}{candidate}"
        return None


#: Saves the form's values; returns the record as saved. Raises ValidationFailed (shown
#: under the fields) or another ValueError (said in a notice; the form stays open).
Save = Callable[[dict[str, Any]], Awaitable[Record]]
#: Reads the values a vendor lists for a field (its stages).
Choices = Callable[[], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class FormTarget:
    """Where a form's values go, and which fields it shows. `changed_only`: only what the
    person changed is saved (a vendor's edit sends nothing they did not touch). `choices`:
    fields whose values the vendor lists, suggested from its list, not the cache's."""

    title: str
    fields: tuple[str, ...]
    save: Save
    changed_only: bool = False
    choices: Mapping[str, Choices] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # beside the fields' own


class LocalFormScreen(ModalScreen[Record | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="form.save", priority=True),
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
    ]

    def __init__(
        self, kind: RecordKind, record: Record | None = None, target: FormTarget | None = None
    ) -> None:
        super().__init__()
        self.kind = kind
        self.record = record
        self.target = target or self._local_target()
        self.fields = self.target.fields
        self.suggesters = {
            name: ValueSuggester(listed=name == "tags")
            for name in ("status", "stage", "tags", *self.target.choices)
            if name in self.fields
        }
        self.initial: dict[str, str] = {name: _shown(record, name) for name in self.fields}
        self._errored: dict[str, str | None] = {}

    def _named(self, slot: str) -> str:
        """The field whose widget id holds `slot`."""
        return next((name for name in self.fields if _slot(name) == slot), slot)

    def _label(self, name: str) -> str:
        return self.target.labels.get(name) or _LABELS.get(name) or field_label(name)

    def _local_target(self) -> FormTarget:
        what = "contact" if self.kind == "contacts" else "deal"
        title = f"Edit local {what} {self.record.id}" if self.record else f"New local {what}"
        fields = CONTACT_EDITABLE if self.kind == "contacts" else DEAL_EDITABLE
        return FormTarget(title, fields, self._save_local)

    async def _save_local(self, values: dict[str, Any]) -> Record:
        local = cast("CrmApp", self.app).local
        if self.record is None:
            return await local.add(self.kind, values)
        return await local.edit(self.record.id, values)

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Static(self.target.title, id="form-title", markup=False)
            with VerticalScroll(id="form-body"), ItemGrid(id="form-grid", min_column_width=36):
                for name in self.fields:
                    with Vertical(classes="form-field"):
                        yield Label(self._label(name), markup=False)
                        yield Input(
                            self.initial[name],
                            id=f"field-{_slot(name)}",
                            placeholder=_PLACEHOLDERS.get(name, ""),
                            suggester=self.suggesters.get(name),
                            compact=True,
                        )
                        yield Label(
                            "", id=f"error-{_slot(name)}", classes="field-error", markup=False
                        )
                        yield Label("", id=f"reading-{_slot(name)}", classes="field-reading")
            with Horizontal(id="form-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    #: Rows around the fields: the footer, the border, the title and the buttons.
    CHROME_ROWS = 7

    def on_resize(self) -> None:
        """The dialog is as tall as its fields, up to the screen; the fields scroll within
        it so the buttons stay in view."""
        body = self.query_one("#form-body", VerticalScroll)
        body.styles.max_height = max(3, self.size.height - self.CHROME_ROWS)

    def on_mount(self) -> None:
        self.on_resize()
        self.query_one(f"#field-{_slot(self.fields[0])}", Input).focus()
        for name in self.fields:
            self._show_reading(name)
        if set(self.suggesters) - set(self.target.choices):
            store = cast("CrmApp", self.app).store
            # Each stream as it is now (a sync replaces a stream, never changes it in
            # place), read in the thread: a million records decoded from disk.
            streams = [store.stream(self.kind, s) for s in store.sources()]
            self._load_suggestions(streams)
        for name in self.target.choices:
            if name in self.suggesters:
                self.run_worker(self._load_choices(name), group="form-choices", exit_on_error=False)

    @work(group="form-suggestions", exclusive=True, thread=True, exit_on_error=False)
    def _load_suggestions(self, streams: list[Mapping[str, Record]]) -> None:
        names = tuple(n for n in self.suggesters if n not in self.target.choices)
        values = used_values((r for part in streams for r in part.values()), names)
        for name in names:
            self.suggesters[name].values = values.get(name, [])

    async def _load_choices(self, name: str) -> None:
        """The vendor's own values; none when it cannot be asked now (saving checks)."""
        try:
            self.suggesters[name].values = await self.target.choices[name]()
        except (SourceError, ConfigError):
            self.suggesters[name].values = []

    # -- what was typed ------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.fields:
            value = self.query_one(f"#field-{_slot(name)}", Input).value
            if self.target.changed_only and value == self.initial[name]:
                continue
            if self.record is not None or value.strip():
                out[name] = value
        return out

    def is_dirty(self) -> bool:
        return any(
            self.query_one(f"#field-{_slot(name)}", Input).value != self.initial[name]
            for name in self.fields
        )

    def _set_error(self, name: str, message: str) -> None:
        # Remembered with the value it is about: a Changed event still in the queue for
        # that same value must not wipe it.
        self._errored[name] = (
            self.query_one(f"#field-{_slot(name)}", Input).value if message else None
        )
        label = self.query_one(f"#error-{_slot(name)}", Label)
        label.update(message)
        label.display = bool(message)

    def _show_reading(self, name: str) -> None:
        """How a lenient field was read (`03/04/2026` -> `Mar 4, 2026`), so a misreading
        shows before it is saved."""
        if name not in ("amount", "close_date"):
            return
        text = self.query_one(f"#field-{_slot(name)}", Input).value.strip()
        reading = ""
        try:
            if text and name == "amount":
                currency = self._currency()
                reading = format_amount(parse_amount(text), currency.upper())
            elif text:
                reading = format_date(parse_date(text).isoformat())
        except ValueError:
            reading = ""
        label = self.query_one(f"#reading-{_slot(name)}", Label)
        label.update(Text(f"= {reading}") if reading and reading != text else "")
        label.display = bool(reading and reading != text)

    def _currency(self) -> str:
        """The amount's currency: as typed, or the record's where the form has no such
        field (a vendor's deal), else USD."""
        if "currency" in self.fields:
            return self.query_one("#field-currency", Input).value.strip() or "USD"
        return str(getattr(self.record, "currency", None) or "USD")

    def on_input_changed(self, event: Input.Changed) -> None:
        name = self._named((event.input.id or "").removeprefix("field-"))
        if name in self.fields:
            if self._errored.get(name) not in (None, event.value):
                self._set_error(name, "")
            self._show_reading(name)

    def on_descendant_blur(self, event: Any) -> None:
        widget = event.widget
        if not isinstance(widget, Input) or not widget.id:
            return
        name = self._named(widget.id.removeprefix("field-"))
        if name not in _CHECKED_ON_LEAVE or not widget.value.strip():
            return
        cfg = getattr(self.app, "settings", None)
        region = getattr(cfg, "crm_phone_region", "US")
        try:
            validate(self.kind, {name: widget.value}, region)
        except ValidationFailed as exc:
            if name in exc.errors:
                self._set_error(name, exc.errors[name])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves to the next field; on the last one it saves."""
        event.stop()
        if event.input.id == f"field-{_slot(self.fields[-1])}":
            self.action_save()
        else:
            self.focus_next(Input)

    # -- actions -------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        if not self.is_dirty():
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        what = "contact" if self.kind == "contacts" else "deal"
        self.app.push_screen(ConfirmScreen(f"Discard your changes to this {what}?"), answered)

    def action_save(self) -> None:
        self.run_worker(self._save(), group="form", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        for name in self.fields:
            self._set_error(name, "")
        try:
            saved = await self.target.save(self.values())
        except ValidationFailed as exc:
            self._show_errors(exc.errors)
            return
        except EditRefused as exc:  # nothing to send, not writable: said, the form stays
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.dismiss(saved)

    def _show_errors(self, errors: dict[str, str]) -> None:
        """Each error under its field, the first such field focused; an error about no
        field of the form in a notice, so that no refusal goes unsaid."""
        first = None
        for name, message in errors.items():
            if name in self.fields:
                self._set_error(name, message)
                first = first or name
            else:
                self.notify(f"{name}: {message}", severity="warning", markup=False)
        if first is not None:
            self.query_one(f"#field-{_slot(first)}", Input).focus()
