"""The local CRM's form: one input per field, every error shown under its field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from crm_tui.local_crm import ValidationFailed
from crm_tui.models import CONTACT_EDITABLE, DEAL_EDITABLE, Record, RecordKind

if TYPE_CHECKING:
    from crm_tui.app import CrmApp


def _shown(record: Record | None, name: str) -> str:
    if record is None:
        return ""
    value = getattr(record, name, None)
    if name == "tags":
        return ", ".join(value or ())
    return "" if value is None else str(value)


class LocalFormScreen(ModalScreen[Record | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="form.save", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", id="form.cancel"),
    ]

    def __init__(self, kind: RecordKind, record: Record | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.record = record
        self.fields = CONTACT_EDITABLE if kind == "contacts" else DEAL_EDITABLE

    def compose(self) -> ComposeResult:
        what = "contact" if self.kind == "contacts" else "deal"
        title = f"Edit local {what} {self.record.id}" if self.record else f"New local {what}"
        with VerticalScroll(id="form"):
            yield Static(title, id="form-title", markup=False)
            for name in self.fields:
                yield Label(name.replace("_", " "), markup=False)
                yield Input(_shown(self.record, name), id=f"field-{name}")
                yield Label("", id=f"error-{name}", classes="field-error", markup=False)
            with Horizontal(id="form-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#field-{self.fields[0]}", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.fields:
            value = self.query_one(f"#field-{name}", Input).value
            if self.record is not None or value.strip():
                out[name] = value
        return out

    def action_save(self) -> None:
        self.run_worker(self._save(), group="form", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        local = cast("CrmApp", self.app).local
        for name in self.fields:
            self.query_one(f"#error-{name}", Label).display = False
        try:
            if self.record is None:
                saved = await local.add(self.kind, self.values())
            else:
                saved = await local.edit(self.record.id, self.values())
        except ValidationFailed as exc:
            for name, message in exc.errors.items():
                if name in self.fields:
                    label = self.query_one(f"#error-{name}", Label)
                    label.update(message)
                    label.display = True
            return
        self.dismiss(saved)
