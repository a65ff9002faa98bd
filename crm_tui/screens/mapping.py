"""Mapping: which payload field fills each unified field and custom column of a stream.

Left, the stream's targets and what maps to each now; right, the fields found in the cached
payloads (fill rates, samples; `~` when estimated from a sample); below, ten records before
and after the change the two highlights make. `s` saves it (mappings.toml), reloads the
engine's maps and re-maps the cached stream with a progress bar; a refusal shows its reason
and changes nothing. Everything from a CRM is shown as Text, never parsed as markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Select, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import get_current_worker

from crm_tui.config import DISPLAY_NAMES, ConfigError
from crm_tui.custom_columns import COLUMN_TYPES, CUSTOM_PREFIX, Column, is_column_name
from crm_tui.fields.discover import COMPUTED, Discovery, TargetInfo
from crm_tui.fields.edit import PREVIEW_RECORDS, Edit, PreviewRow, apply, preview
from crm_tui.fields.service import current_mappings, discover_stream, remap
from crm_tui.models import RecordKind
from crm_tui.sources.mapping import Mappings
from crm_tui.sources.mapping_file import MappingRefused
from crm_tui.store.errors import StoreError
from crm_tui.widgets.safe import safe

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

NEW_COLUMN = "+new"  # the targets' last row: declare a custom column


class ColumnScreen(ModalScreen[Column | None]):
    """Name, label and type of a new custom column."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="column.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="column-dialog"):
            yield Static("New custom column", id="column-title")
            yield Input(placeholder="name: letters, digits, _ (lender)", id="column-name")
            yield Input(placeholder="label people read (Lender)", id="column-label")
            yield Select(
                [(t, t) for t in COLUMN_TYPES], allow_blank=False, value="text", id="column-type"
            )
            yield Static(id="column-problem", markup=False)
            yield Static("enter: done · esc: cancel", id="column-help")

    def on_mount(self) -> None:
        self.query_one("#column-name", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "column-name":
            self.query_one("#column-label", Input).focus()
            return
        name = self.query_one("#column-name", Input).value.strip()
        label = self.query_one("#column-label", Input).value.strip()
        type_ = str(self.query_one("#column-type", Select).value)
        if not is_column_name(name):
            problem = "name: a letter or _, then letters, digits or _ (at most 64)"
        elif not label:
            problem = "label: say what people should read"
        else:
            self.dismiss(Column(name, label, type_))
            return
        self.query_one("#column-problem", Static).update(problem)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MappingScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "save", "Save", id="mapping.save"),
        Binding("u", "unmap", "Unmap", id="mapping.unmap"),
        Binding("n", "new_column", "New column", id="mapping.new"),
        Binding("ctrl+t", "toggle_stream", "Contacts/Deals", id="mapping.stream"),
        Binding("ctrl+r", "discover", "Rescan", id="mapping.rescan"),
        Binding("escape", "close", "Back", id="mapping.back"),
    ]

    def __init__(self, source: str, stream: RecordKind = "contacts") -> None:
        super().__init__()
        self.source = source
        self.stream: RecordKind = stream
        self.discovery: Discovery | None = None
        #: mappings.toml as the discovery read it: the preview edits these, so that moving
        #: the cursor reads no file on the event loop
        self.mappings: Mappings | None = None
        self.new_column: Column | None = None  # declared here, not saved yet
        self.problem = ""  # the last refusal, shown until the next change
        self.saving = False

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="mapping-title", markup=False)
        with Horizontal(id="mapping-lists"):
            yield DataTable(id="mapping-targets", cursor_type="row", zebra_stripes=False)
            yield DataTable(id="mapping-fields", cursor_type="row")
        yield DataTable(id="mapping-preview", cursor_type="none", show_cursor=False)
        yield Static(id="mapping-hint", markup=False)
        yield Static(id="mapping-status", markup=False)
        yield ProgressBar(id="mapping-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mapping-targets", DataTable).add_columns("Field", "From")
        self.query_one("#mapping-fields", DataTable).add_columns(
            # what decides a mapping first: 80 cells show path, fill and what reads it
            "Path",
            "Fill",
            "Mapped to",
            "Samples",
            "Types",
        )
        self.query_one("#mapping-preview", DataTable).add_columns("Record", "Now", "After")
        self.query_one("#mapping-progress", ProgressBar).display = False
        self.query_one("#mapping-fields", DataTable).focus()
        self.action_discover()

    # -- discovery (blocking: a thread) ----------------------------------------------------

    def action_discover(self) -> None:
        self._title("reading the cached payloads…")
        self._discover(self.source, self.stream)

    @work(thread=True, exclusive=True, group="mapping-discover", exit_on_error=False)
    def _discover(self, source: str, stream: RecordKind) -> None:
        crm = self.crm
        mappings = None
        try:
            mappings = current_mappings()
            found: Discovery | str = discover_stream(crm.store.db, crm.settings, source, stream)
        except (ConfigError, MappingRefused, StoreError) as exc:
            found = str(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_discovery, found, mappings)

    def _show_discovery(self, found: Discovery | str, mappings: Mappings | None) -> None:
        if not self.is_attached:
            return  # closed while the thread read
        if isinstance(found, str) or mappings is None:
            self._say(str(found), refused=True)
            return
        self.discovery, self.mappings = found, mappings
        self._title()
        self._fill_targets()
        self._fill_fields()
        self._show_preview()

    def _title(self, note: str = "") -> None:
        name = DISPLAY_NAMES.get(self.source, self.source)
        text = f"{name} · {self.stream}"
        found = self.discovery
        if note:
            text += f" · {note}"
        elif found is not None and not found.total:
            text += " · nothing cached yet: sync this source first (Status: s)"
        elif found is not None:
            sampled = f", {found.sampled:,} sampled (~: estimated)" if found.estimated else ""
            text += f" · {found.total:,} cached{sampled}"
        self.query_one("#mapping-title", Static).update(text)

    def _targets(self) -> list[TargetInfo]:
        found = list(self.discovery.targets) if self.discovery else []
        column = self.new_column
        if column is not None and all(t.name != CUSTOM_PREFIX + column.name for t in found):
            found.append(
                TargetInfo(CUSTOM_PREFIX + column.name, column.label, "", (), "", column.type)
            )
        return found

    def _fill_targets(self, select: str | None = None) -> None:
        table = self.query_one("#mapping-targets", DataTable)
        keep = select or self._current(table)
        table.clear()
        for target in self._targets():
            label = target.label + (f" ({target.type})" if target.type else "")
            spec = target.spec or "—"
            style = "dim" if target.spec == COMPUTED or not target.spec else ""
            table.add_row(safe(label), safe(spec, style), key=target.name)
        table.add_row(Text("+ new custom column (n)", "italic"), Text(""), key=NEW_COLUMN)
        self._move_to(table, keep)

    def _fill_fields(self) -> None:
        table = self.query_one("#mapping-fields", DataTable)
        keep = self._current(table)
        table.clear()
        found = self.discovery
        if found is None:
            return
        for info in found.fields:
            path = info.path + (f" ({info.vendor_label})" if info.vendor_label else "")
            table.add_row(
                safe(path),
                safe(info.fill_text(found.estimated), "dim" if not info.filled else ""),
                safe(", ".join(info.mapped_to)),
                safe(" · ".join(info.samples)),
                safe(",".join(info.types)),
                key=info.path,
            )
        self._move_to(table, keep)

    @staticmethod
    def _current(table: DataTable[Any]) -> str | None:
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @staticmethod
    def _move_to(table: DataTable[Any], key: str | None) -> None:
        if key is None or not table.row_count:
            return
        with contextlib.suppress(RowDoesNotExist):  # gone after a rescan: stay put
            table.move_cursor(row=table.get_row_index(key))

    # -- the edit and its preview ----------------------------------------------------------

    @property
    def target(self) -> str | None:
        return self._current(self.query_one("#mapping-targets", DataTable))

    @property
    def path(self) -> str | None:
        return self._current(self.query_one("#mapping-fields", DataTable))

    def edit(self, *, unmap: bool = False) -> Edit | None:
        target = self.target
        if target is None or target == NEW_COLUMN:
            return None
        column = None
        if self.new_column is not None and target == CUSTOM_PREFIX + self.new_column.name:
            column = self.new_column
        spec = None if unmap else self.path
        if spec is None and not unmap:
            return None
        return Edit(self.source, self.stream, target, spec, column)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id in ("mapping-targets", "mapping-fields"):
            self._show_preview()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "mapping-targets" and self.target == NEW_COLUMN:
            self.action_new_column()
        elif event.data_table.id == "mapping-targets":
            self.query_one("#mapping-fields", DataTable).focus()

    def _show_preview(self) -> None:
        """Ten records mapped as they are and as the change would map them: microseconds a
        record, so on the loop, as the cursor moves."""
        table = self.query_one("#mapping-preview", DataTable)
        table.clear()
        edit = self.edit()
        if edit is None or self.discovery is None or self.mappings is None:
            self._hint("pick a field on the left, a payload field on the right (tab moves)")
            return
        stream = self.crm.store.stream(self.stream, self.source)
        records = list(itertools.islice(stream.values(), PREVIEW_RECORDS))
        try:
            rows: list[PreviewRow] | str = preview(self.crm.settings, records, self.mappings, edit)
        except (ConfigError, MappingRefused) as exc:
            rows = str(exc)
        if isinstance(rows, str):
            self._hint(rows, "bold red")
            return
        for row in rows:
            changed = "bold green" if row.after != row.before else ""
            table.add_row(safe(row.record), safe(row.before), safe(row.after, changed))
        note = ""
        info = next((f for f in self.discovery.fields if f.path == edit.spec), None)
        if info is not None and not info.filled:
            note = " · no cached record holds it: values come with the next sync"
        self._hint(f"{edit.describe()} · s: save{note}")

    def _hint(self, text: str, style: str = "") -> None:
        """What the highlights would do (changes as the cursors move)."""
        self.query_one("#mapping-hint", Static).update(Text(text, style))

    def _say(self, text: str, *, refused: bool = False, style: str = "") -> None:
        """The last save's outcome: it stays until the next save or stream."""
        self.problem = text if refused else ""
        shown = Text(text, "bold red" if refused else style)
        self.query_one("#mapping-status", Static).update(shown)

    # -- actions ---------------------------------------------------------------------------

    def action_new_column(self) -> None:
        def made(column: Column | None) -> None:
            if column is None:
                return
            self.new_column = column
            self._fill_targets(select=CUSTOM_PREFIX + column.name)
            self.query_one("#mapping-fields", DataTable).focus()
            self._show_preview()

        self.app.push_screen(ColumnScreen(), made)

    def action_toggle_stream(self) -> None:
        if self.saving:
            return
        self.stream = "deals" if self.stream == "contacts" else "contacts"
        self.discovery = None
        self._say("")
        self.query_one("#mapping-targets", DataTable).clear()
        self.query_one("#mapping-fields", DataTable).clear()
        self.query_one("#mapping-preview", DataTable).clear()
        self.action_discover()

    def action_save(self) -> None:
        edit = self.edit()
        if edit is None:
            self._say("pick a field on the left and a payload field on the right", refused=True)
            return
        self._start(edit)

    def action_unmap(self) -> None:
        edit = self.edit(unmap=True)
        if edit is None:
            self._say("pick the field to unmap on the left", refused=True)
            return
        self._start(edit)

    def action_close(self) -> None:
        if not self.saving:
            self.dismiss()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("save", "unmap", "toggle_stream", "close") and self.saving:
            return None  # shown dimmed while a save and its re-map run
        if self.crm.read_only_reason and action in ("save", "unmap"):
            return None
        return True

    def _start(self, edit: Edit) -> None:
        self.saving = True
        self.problem = ""
        self.refresh_bindings()
        self._say(f"saving {edit.describe()}…")
        self._save(edit)

    @work(group="mapping", exit_on_error=False)
    async def _save(self, edit: Edit) -> None:
        """Save (a thread: a file lock and a read of the cache), reload the engine's maps,
        re-map the cached stream; any refusal is shown, and the file put back."""
        crm = self.crm
        try:
            saved = await asyncio.to_thread(apply, crm.store.db, crm.settings, edit)
        except (MappingRefused, ConfigError, StoreError) as exc:
            return self._done(str(exc), refused=True)
        try:
            await self._reload()
            bar = self.query_one("#mapping-progress", ProgressBar)
            bar.update(total=None, progress=0)
            bar.display = True
            report = await remap(crm.store, crm.settings, edit.source, edit.stream, self._progress)
        except (StoreError, ConfigError) as exc:
            # the re-map could not run (busy, a map gone wrong): nothing may change
            put_back = saved is None or await asyncio.to_thread(saved.undo)
            await self._reload()
            said = "" if put_back else "; mappings.toml not put back: it was saved again since"
            return self._done(f"{exc}{said}", refused=True)
        if edit.column is not None:
            self.new_column = None  # saved: discovery lists it now
        self._done(f"saved {edit.describe()} · {report.written:,} re-mapped, {report.kept} kept")

    async def _reload(self) -> None:
        await self.crm.engine.reload_mappings()
        self.crm.index.columns = self.crm.engine.columns
        self.crm.local.reload_columns()  # a local record's custom values read by type

    def _progress(self, done: int, total: int) -> None:
        """Called from the re-map's thread."""
        self.app.call_from_thread(self._advance, done, total)

    def _advance(self, done: int, total: int) -> None:
        self.query_one("#mapping-progress", ProgressBar).update(total=total, progress=done)

    def _done(self, message: str, *, refused: bool = False) -> None:
        self.saving = False
        self.query_one("#mapping-progress", ProgressBar).display = False
        self.refresh_bindings()
        self._say(message, refused=refused, style="green")
        if not refused:
            self.action_discover()  # what maps to what now
