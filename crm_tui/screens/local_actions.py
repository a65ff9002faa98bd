"""New, edit, delete and undo for local records on the screens that list records. ctrl+e
on a vendor's record opens the same form over the fields its source lets crm-tui write (see
screens/vendor.py); a read-only source's records say where to edit them, and only local
records are deleted here.

The keys are ctrl- combinations (and `delete`): no name typed into a list contains them, so
typing "dyer" can never delete a record (see screens/typing.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.screen import Screen

from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import Record, RecordKind
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.local_form import LocalFormScreen
from crm_tui.screens.vendor import open_editor, saved_locally

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

LOCAL_BINDINGS = [
    Binding("ctrl+n", "local_new", "New", id="local.new"),
    Binding("ctrl+e", "local_edit", "Edit", id="local.edit"),
    Binding("delete,ctrl+d", "local_delete", "Delete", id="local.delete"),
    Binding("ctrl+z", "local_undo", "Undo delete", id="local.undo"),
]


class LocalActions(Screen[None]):
    """Mixed into a screen that has `kind` and a `selected_record()`."""

    BINDINGS = LOCAL_BINDINGS
    kind: RecordKind

    def selected_record(self) -> Record | None:
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Undo is offered only when there is a delete to undo."""
        if action == "local_undo":
            return cast("CrmApp", self.app).local.last_deleted is not None
        return True

    def _deletable(self) -> Record | None:
        record = self.selected_record()
        if record is None:
            return None
        if record.source != "local":
            where = DISPLAY_NAMES.get(record.source, record.source)
            self.notify(f"Only local records are deleted here: delete it in {where}", markup=False)
            return None
        return record

    def action_local_new(self) -> None:
        if not cast("CrmApp", self.app).writes_blocked():
            self.app.push_screen(LocalFormScreen(self.kind), saved_locally(self.app))

    def action_local_edit(self) -> None:
        record = self.selected_record()
        if record is not None:
            open_editor(cast("CrmApp", self.app), record)

    def action_local_delete(self) -> None:
        crm = cast("CrmApp", self.app)
        record = None if crm.writes_blocked() else self._deletable()
        if record is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._deleted(record.id), group="local", exit_on_error=False)
                self.notify(f"Deleted {record.id}: ctrl+z brings it back", markup=False)

        self.app.push_screen(ConfirmScreen(f"Delete local record {record.id}?"), answered)

    async def _deleted(self, record_id: str) -> None:
        await cast("CrmApp", self.app).local.delete(record_id)
        self.refresh_bindings()  # undo is on offer now

    def action_local_undo(self) -> None:
        crm = cast("CrmApp", self.app)
        if crm.local.last_deleted is None:
            self.notify("Nothing to undo", markup=False)
            return
        self.run_worker(self._undone(), group="local", exit_on_error=False)

    async def _undone(self) -> None:
        await cast("CrmApp", self.app).local.undo_delete()
        self.refresh_bindings()  # nothing left to undo
