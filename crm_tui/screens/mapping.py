"""Mapping: which payload field fills each unified field and custom column of a stream.

Left, the stream's targets and what maps to each now; right, the fields found in the cached
payloads (fill rates, samples; `~` when estimated from a sample); below, ten records before
and after the change the two highlights make. `s` saves it (mappings.toml), reloads the
engine's maps and re-maps the cached stream with a progress bar; a refusal shows its reason
and changes nothing. Everything from a CRM is shown as Text, never parsed as markup.

By keyboard: `tab` / `shift+tab` go targets → payload fields → preview and round; `→` / `←`
move between the two lists, `enter` on a target goes to its payload field. The focused part
is marked (a bar on its left, its header in the accent colour) and the footer leads with
its own keys. Each list fits its columns to its width: the least useful column is left out
first, long values end in `…`; nothing scrolls sideways.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.cells import cell_len
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
from crm_tui.widgets.columns import WIDEST, need
from crm_tui.widgets.safe import safe

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

NEW_COLUMN = "+new"  # the targets' last row: declare a custom column
LISTS = ("mapping-targets", "mapping-fields", "mapping-preview")  # the tab order


def cell(value: object, style: str = "") -> Text:
    """An untrusted value for a fitted column: the safe helper's Text, cut with `…`."""
    text = safe(value, style)
    text.overflow = "ellipsis"
    return text


def cut_middle(text: Text, width: int) -> Text:
    """`text` in `width` cells: a third of them its start, `…`, the rest its end (styles
    kept: slices of the same Text, still never markup)."""
    if cell_len(text.plain) <= width or width < 5:
        return text  # fits, or too narrow to keep both ends: the ellipsis at the end
    plain = text.plain
    head = tail = 0  # characters; the budgets are cells (wide characters take two)
    while head < len(plain) and cell_len(plain[: head + 1]) <= (width - 1) // 3:
        head += 1
    room = width - 1 - cell_len(plain[:head])
    while tail < len(plain) - head and cell_len(plain[len(plain) - tail - 1 :]) <= room:
        tail += 1
    shown = text[:head] + Text("…", style=text.style) + text[len(text) - tail :]
    shown.no_wrap, shown.overflow = True, "ellipsis"
    return shown


@dataclass(frozen=True, slots=True)
class Col:
    key: str
    title: str
    least: int  # narrower than this, the column is left out
    priority: int  # 0 is always shown; the highest goes first when the width is short
    elastic: bool = False  # takes the width the others leave (shared when several do)
    most: int = WIDEST  # no wider than this, whatever its values need
    room: int = 0  # elastic: kept for it before a less useful column may join
    #: a payload path is cut in the middle: its end tells `addresses[0].city` from
    #: `addresses[0].street`, which an ellipsis at the end would not
    middle: bool = False


Row = tuple[str, dict[str, Text]]  # a row's key and its cells by column key
GAP = 2  # what a column costs beside its text: a cell's padding, one each side


def fitted(columns: Sequence[Col], rows: Sequence[Row], width: int) -> list[tuple[Col, int]]:
    """The columns shown at `width`, in their order, with their widths.

    By priority, a column joins while the ones before it still have what their values need
    (an elastic one its least and its room): at 80 columns a payload path is not cut to
    make room for a column the other list says too. Priority 0 is always shown, cut if it
    must be, each to a fair share of the width: a target's name and its From path are what
    the list is for, and one must not leave the other a single cell."""
    order = sorted(columns, key=lambda c: c.priority)
    wants = {c.key: _wanted(c, rows) for c in order}
    chosen: dict[str, int] = {}
    used = kept = 0
    for n, col in enumerate(order):
        wanted = wants[col.key]
        if col.priority == 0:
            wanted = _essential_width(order[n:], wants, width - used - kept)
        elif used + wanted + GAP + kept > width:
            break  # and every less useful one with it: none shown in its place
        chosen[col.key] = wanted
        used += wanted + GAP
        kept += max(col.room - wanted, 0) if col.elastic else 0
    spare = max(width - used, 0)
    elastic = [c for c in columns if c.elastic and c.key in chosen]
    for i, col in enumerate(elastic):  # the rest shared, the last ones a cell more
        share = spare // (len(elastic) - i)
        chosen[col.key] += share
        spare -= share
    return [(c, chosen[c.key]) for c in columns if c.key in chosen]


def _wanted(col: Col, rows: Sequence[Row]) -> int:
    values = (cells[col.key] for _, cells in rows)
    return col.least if col.elastic else min(col.most, need(col.title, values, col.least))


def _essential_width(rest: Sequence[Col], wants: dict[str, int], left: int) -> int:
    """The width of `rest[0]`, an always-shown column, when `left` cells remain for it and
    the always-shown columns after it: what it needs if all of them fit, else at most a
    fair share (the last one takes whatever is left)."""
    essentials = [c for c in rest if c.priority == 0]
    if sum(wants[c.key] + GAP for c in essentials) <= left:
        return wants[rest[0].key]
    fair = left // len(essentials) - GAP
    return max(min(wants[rest[0].key], fair) if len(essentials) > 1 else left - GAP, 1)


class FittedTable(DataTable[Text]):
    """A list whose columns fit its width (on resize and on new rows): never a sideways
    scroll, which at 80 columns hid the From paths."""

    COLUMNS: ClassVar[tuple[Col, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data: list[Row] = []
        self.shown: list[tuple[Col, int]] = []

    def set_rows(self, rows: Sequence[Row], keep: str | None = None) -> None:
        """New rows; the cursor stays on the row `keep` names (else on the same key)."""
        keep = keep or current_key(self)
        self.data = list(rows)
        self._build(keep)

    def on_resize(self) -> None:
        self._build(current_key(self))

    def _build(self, keep: str | None) -> None:
        # The vertical scrollbar's cells are always kept (the content region counts them,
        # shown or not): rows that arrive later would push the last cells out of sight.
        width = self.content_region.width - self.styles.scrollbar_size_vertical
        shown = fitted(self.COLUMNS, self.data, max(width, 1))
        if shown != self.shown:
            self.clear(columns=True)
            for col, size in shown:
                self.add_column(col.title, width=size, key=col.key)
            self.shown = shown
        else:
            self.clear()
        for key, cells in self.data:
            fitted_cells = (
                cut_middle(cells[col.key], size) if col.middle else cells[col.key]
                for col, size in shown
            )
            self.add_row(*fitted_cells, key=key)
        if keep is not None and self.row_count:
            with contextlib.suppress(RowDoesNotExist):  # gone after a rescan: stay put
                self.move_cursor(row=self.get_row_index(keep), animate=False)


class MappingTargets(FittedTable):
    """The stream's fields and custom columns, and the payload path each is filled from."""

    COLUMNS = (
        Col("field", "Field", 10, 0, most=24),
        Col("from", "From", 8, 0, elastic=True, middle=True),
    )
    BINDINGS = [
        Binding("enter", "select_cursor", "Pick", id="mapping.pick"),
        Binding("right", "screen.focus_list(1)", "Payload fields", id="mapping.right"),
    ]


class MappingFields(FittedTable):
    """The paths found in the cached payloads: the path, then what decides a mapping."""

    COLUMNS = (
        Col("path", "Path", 12, 0, middle=True),
        Col("fill", "Fill", 4, 1),
        Col("mapped", "Mapped to", 9, 3),  # the targets' From says it too
        Col("types", "Types", 6, 4),
        # last, as it takes what is left; at 120 columns a sample says more than a type
        Col("samples", "Samples", 8, 2, elastic=True, room=24),
    )
    BINDINGS = [Binding("left", "screen.focus_list(0)", "Fields", id="mapping.left")]


class MappingPreview(FittedTable):
    """Ten records now and after the change (focusable: at 24 rows it scrolls)."""

    COLUMNS = (
        Col("record", "Record", 12, 0, most=24),
        Col("now", "Now", 8, 0, elastic=True),
        Col("after", "After", 8, 0, elastic=True),
    )


def current_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


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
            yield MappingTargets(id="mapping-targets", cursor_type="row")
            yield MappingFields(id="mapping-fields", cursor_type="row")
        yield MappingPreview(id="mapping-preview", cursor_type="none", show_cursor=False)
        yield Static(id="mapping-hint", markup=False)
        yield Static(id="mapping-status", markup=False)
        yield ProgressBar(id="mapping-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mapping-progress", ProgressBar).display = False
        # left to right, as the work goes: what to fill, then where from
        self.query_one("#mapping-targets", DataTable).focus()
        self.action_discover()

    def list_(self, index: int) -> FittedTable:
        """The targets (0), the payload fields (1) or the preview (2)."""
        return self.query_one(f"#{LISTS[index]}", FittedTable)

    def action_focus_list(self, index: int) -> None:
        self.list_(index).focus()

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
        rows: list[Row] = []
        for target in self._targets():
            label = target.label + (f" ({target.type})" if target.type else "")
            style = "dim" if target.spec == COMPUTED or not target.spec else ""
            rows.append(
                (target.name, {"field": cell(label), "from": cell(target.spec or "—", style)})
            )
        # short: its label would otherwise set the width of every target's name
        new = Text("+ new column", "italic", no_wrap=True, overflow="ellipsis")
        keys = Text("n or enter", "dim italic", no_wrap=True, overflow="ellipsis")
        rows.append((NEW_COLUMN, {"field": new, "from": keys}))
        self.list_(0).set_rows(rows, keep=select)

    def _fill_fields(self) -> None:
        found = self.discovery
        rows: list[Row] = []
        for info in found.fields if found else ():
            path = info.path + (f" ({info.vendor_label})" if info.vendor_label else "")
            cells = {
                "path": cell(path),
                "fill": cell(info.fill_text(found.estimated), "dim" if not info.filled else ""),
                "samples": cell(" · ".join(info.samples)),
                "mapped": cell(", ".join(info.mapped_to)),
                "types": cell(",".join(info.types)),
            }
            rows.append((info.path, cells))
        self.list_(1).set_rows(rows)

    # -- the edit and its preview ----------------------------------------------------------

    @property
    def target(self) -> str | None:
        return current_key(self.list_(0))

    @property
    def path(self) -> str | None:
        return current_key(self.list_(1))

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
            self.action_focus_list(1)

    def _show_preview(self) -> None:
        """Ten records mapped as they are and as the change would map them: microseconds a
        record, so on the loop, as the cursor moves."""
        table = self.list_(2)
        edit = self.edit()
        if edit is None or self.discovery is None or self.mappings is None:
            table.set_rows([])
            self._hint("pick a field on the left (enter), then its payload field on the right")
            return
        stream = self.crm.store.stream(self.stream, self.source)
        records = list(itertools.islice(stream.values(), PREVIEW_RECORDS))
        try:
            rows: list[PreviewRow] | str = preview(self.crm.settings, records, self.mappings, edit)
        except (ConfigError, MappingRefused) as exc:
            rows = str(exc)
        if isinstance(rows, str):
            table.set_rows([])
            self._hint(rows, "bold red")
            return
        table.set_rows(
            [
                (
                    str(i),
                    {
                        "record": cell(r.record),
                        "now": cell(r.before),
                        "after": cell(r.after, "bold green" if r.after != r.before else ""),
                    },
                )
                for i, r in enumerate(rows)
            ]
        )
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
        """The dialog; then the new column is the target and the payload fields have the
        focus (its path is the next thing to pick). Cancelled: focus where it was."""
        was = self.focused if isinstance(self.focused, FittedTable) else self.list_(0)

        def made(column: Column | None) -> None:
            if column is not None:
                self.new_column = column
                self._fill_targets(select=CUSTOM_PREFIX + column.name)
                self._show_preview()
            # after the dialog is gone: a focus set while it is up goes to it, not here
            back = was if column is None else self.list_(1)
            self.call_after_refresh(back.focus)

        self.app.push_screen(ColumnScreen(), made)

    def action_toggle_stream(self) -> None:
        if self.saving:
            return
        self.stream = "deals" if self.stream == "contacts" else "contacts"
        self.discovery = None
        self._say("")
        for index in range(len(LISTS)):
            self.list_(index).set_rows([])
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
