"""One person's records side by side, differences marked, and a merge into the local CRM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.dedup import Cluster
from crm_tui.dedup.keys import PhoneKeys
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.merge import (
    AlreadyUndone,
    FieldChoice,
    MergeResult,
    NewerMerge,
    cluster_records,
    merge_cluster,
    plan_merge,
    undo_merge,
)
from crm_tui.formats import field_label
from crm_tui.models import Contact
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.store.decisions import MergeEntry
from crm_tui.text import fold
from crm_tui.widgets.safe import safe

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

DIFFERS = "bold yellow"
#: Fields of the merged record a confirmation lists (it must fit 80x24 with its buttons).
PREVIEW_FIELDS = 9
#: Widths of the compare view's columns: the field names, the merged record, each record.
FIELD_WIDTH, RECORD_MIN, RECORD_MAX = 13, 20, 44


def _shown(value: object) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def merged_preview(plan: dict[str, FieldChoice]) -> str:
    """The merged record as a confirmation shows it: its non-empty fields, one a line."""
    lines = [
        f"  {name.replace('_', ' ')}: {_cut(_shown(choice.value), 40)}"
        for name, choice in plan.items()
        if _shown(choice.value)
    ]
    more = len(lines) - PREVIEW_FIELDS
    if more > 0:
        lines = [*lines[:PREVIEW_FIELDS], f"  … and {more} more (shown in the compare view)"]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    """At most `width` cells (a wide character takes two)."""
    return text if cell_len(text) <= width else set_cell_size(text, width - 1) + "…"


def record_columns(width: int, records: int) -> tuple[int, int]:
    """(the width of the merged record's column and of each record's, how many records
    fit) in a compare view `width` cells wide: at 80 columns one record beside the merged
    one, the others a left/right away; at 200 every record, as wide as the room allows."""
    pad = 2  # a DataTable cell's padding
    room = width - (FIELD_WIDTH + pad) - 2  # and the scrollbar
    fit = max(1, min(records, room // (RECORD_MIN + pad) - 1))
    return max(RECORD_MIN, min(RECORD_MAX, room // (fit + 1) - pad)), fit


def undo_merge_of(crm: CrmApp, cluster: Cluster | None) -> None:
    """Undo the merge that settled `cluster` (chosen in the Merged section), or without
    one this app's last merge: never one a person cannot see."""
    if cluster is not None:
        entry: MergeResult | MergeEntry | None = crm.review.entry_for(cluster)
    else:
        entry = crm.last_merge
    if entry is None:
        where = "this merge was made before the journal" if cluster else "no merge here yet"
        crm.notify(f"Nothing to undo: {where}; pick one in the Merged section", markup=False)
        return
    if crm.writes_blocked():
        return
    crm.last_merge = None
    record_id = entry.record.id if isinstance(entry, MergeResult) else entry.local_id
    found = crm.store.get("contacts", record_id)
    name = found.name if found is not None else record_id

    async def undo() -> None:
        try:
            await undo_merge(crm.local, entry)
        except (AlreadyUndone, NewerMerge) as exc:
            crm.notify(str(exc), markup=False, severity="warning")
            return
        verb = "removed" if entry.created else "restored as it was"
        crm.notify(f"Merge undone: {name} ({record_id}) {verb}", markup=False)
        crm.refresh_review()

    crm.run_worker(undo(), group="local", exit_on_error=False, name="undo merge")


def reject_cluster(crm: CrmApp, cluster: Cluster, undo: bool = False) -> None:
    """Mark `cluster` "not the same person" for this user (or take that back)."""
    db = crm.store.db
    if db is None or crm.writes_blocked():
        return

    async def decide() -> None:
        user = crm.store.user_id
        if undo:
            await crm.store.in_writer(db.unreject, user, cluster.members, cluster.possible)
            crm.notify(f"{cluster.id} is back for review", markup=False)
        else:
            await crm.store.in_writer(db.reject, user, cluster.id, cluster.members)
            crm.notify(
                f"{cluster.id}: not the same person (v shows them; ctrl+x on People takes it back)",
                markup=False,
            )
        crm.refresh_review()

    crm.run_worker(decide(), group="local", exit_on_error=False, name="reject duplicate")


class ClusterScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="cluster.close"),
        Binding("space", "next_value", "Other value", id="cluster.choose"),
        Binding("m", "merge", "Merge into local", id="cluster.merge"),
        Binding("x", "reject", "Not the same", id="cluster.reject"),
        Binding("u", "undo_merge", "Undo merge", id="cluster.undo"),
    ]

    def __init__(self, cluster: Cluster) -> None:
        super().__init__()
        self.cluster = cluster
        self.records: list[Contact] = []
        self.plan: dict[str, FieldChoice] = {}
        self.phones = PhoneKeys()

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="cluster"):
            yield Static(id="cluster-title")
            # the field names and the merged record stay; the records scroll beside them
            yield DataTable(id="compare", cursor_type="cell", zebra_stripes=True, fixed_columns=2)
            with VerticalScroll(id="evidence"):
                yield Static(id="evidence-text")
        yield Footer()

    def on_mount(self) -> None:
        store = self.crm.store
        self.phones = PhoneKeys(self.crm.settings.crm_phone_region)
        self.records = cluster_records(store, self.cluster)
        self.plan = plan_merge(self.records)
        self._title()
        self._evidence()
        table = self.query_one("#compare", DataTable)
        table.add_column("Field", key="field", width=FIELD_WIDTH)
        width, _ = record_columns(self._room(), len(self.records))
        table.add_column("Merged into local", key="merged", width=width)
        for record in self.records:
            label = f"{DISPLAY_NAMES.get(record.source, record.source)} {record.remote_id}"
            table.add_column(safe(label, "bold"), key=record.id, width=width)
        for name in self.plan:
            table.add_row(*self._cells(name), key=name)
        table.add_row(
            safe("updated", "dim"),
            Text(""),
            *(safe(r.remote_updated or r.remote_created or "", "dim") for r in self.records),
            key="updated",
        )
        table.focus()

    def _room(self) -> int:
        """The compare view's width in cells (before the first layout: the app's, less the
        dialog's border and padding)."""
        table = self.query_one("#compare", DataTable)
        return table.size.width or int(self.app.size.width * 0.95) - 4

    def on_resize(self) -> None:
        """Record columns as wide as the room allows, at every size."""
        table = self.query_one("#compare", DataTable)
        width, _ = record_columns(self._room(), len(self.records))
        changed = False
        for key in ("merged", *(r.id for r in self.records)):
            column = table.columns.get(cast("Any", key))
            if column is not None and column.width != width:
                column.width, changed = width, True
        if changed:  # DataTable re-measures only when told (no public call for a width)
            table._require_update_dimensions = True
            table._clear_caches()
            table.refresh(layout=True)

    def _title(self) -> None:
        c = self.cluster
        where = ", ".join(DISPLAY_NAMES.get(s, s) for s in c.sources)
        title = Text(f" {c.id} ", style="bold reverse")
        title.append(f"  {len(c.members)} records")
        _, fit = record_columns(self._room(), len(self.records))
        if fit < len(self.records):  # first: the title is cut at 80 columns
            title.append(f" ({fit} shown, ←/→ for the others)", style="dim")
        if c.flagged:
            title.append("  ⚠ names differ: check before merging", style="bold red")
        title.append(f" · {where} · confidence {c.confidence:.2f}")
        self.query_one("#cluster-title", Static).update(title)

    def _evidence(self) -> None:
        lines = Text("Evidence\n", style="bold")
        for link in self.cluster.links:
            lines.append_text(safe(f"  {link.a} ↔ {link.b}"))
            lines.append(f": {' + '.join(link.keys)}, names {link.names}, {link.confidence:.2f}\n")
        for point in self.cluster.shared:
            lines.append_text(safe(f"  ⚑ {point.note}", "yellow"))
            lines.append("\n")
        lines.append(
            "space: take another record's value for this field   m: merge into local   "
            "x: not the same person   u: undo the last merge   enter: open the record",
            style="dim",
        )
        self.query_one("#evidence-text", Static).update(lines)

    def _same_as(self, name: str, value: str) -> str | None:
        """What two values are compared as: a phone by its number, not its formatting."""
        if name == "phone":
            return self.phones(value)
        if name == "email":
            return mailbox_key(value)
        return fold(value).strip() or None

    def _cells(self, name: str) -> list[Text]:
        choice = self.plan[name]
        values = [_shown(getattr(r, name)) for r in self.records]
        differs = len({self._same_as(name, v) for v in values if v} - {None}) > 1
        label = ("≠ " if differs else "  ") + field_label(name)
        cells = [safe(label, DIFFERS if differs else "bold")]
        cells.append(safe(_shown(choice.value), "bold"))
        for record, value in zip(self.records, values, strict=True):
            style = DIFFERS if differs and value else ""
            if record.id == choice.record_id:
                style += " underline"
            cells.append(safe(value, style.strip()))
        return cells

    def _redraw_row(self, name: str) -> None:
        table = self.query_one("#compare", DataTable)
        for column, cell in zip(table.columns, self._cells(name), strict=False):
            table.update_cell(name, column, cell)

    def _cursor(self) -> tuple[str, str]:
        table = self.query_one("#compare", DataTable)
        key = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(key.row_key.value), str(key.column_key.value)

    def action_next_value(self) -> None:
        row, _ = self._cursor()
        choice = self.plan.get(row)
        if choice is None or len(choice.candidates) < 2:
            return
        at = next(
            (i for i, (rid, _) in enumerate(choice.candidates) if rid == choice.record_id), -1
        )
        record_id, value = choice.candidates[(at + 1) % len(choice.candidates)]
        self.plan[row] = FieldChoice(row, value, record_id, choice.candidates)
        self._redraw_row(row)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """enter on a record's column opens that record."""
        record = self.crm.store.get("contacts", str(event.cell_key.column_key.value))
        if record is not None:
            self.app.push_screen(RecordScreen(record))

    def action_merge(self) -> None:
        if self.crm.writes_blocked():
            return
        if not (self.cluster.flagged or self.cluster.possible):
            self._merge()
            return
        why = "their names differ" if self.cluster.flagged else "only name and place agree"
        name = " ".join(
            str(self.plan[f].value) for f in ("first_name", "last_name") if self.plan[f].value
        )
        question = (
            f"These {len(self.cluster.members)} records may not be one person: {why}.\n"
            f"Merge them into one local contact named {name}?\n\n"
            f"The merged record will be:\n{merged_preview(self.plan)}"
        )
        self.app.push_screen(ConfirmScreen(question), lambda yes: self._merge() if yes else None)

    def _merge(self) -> None:
        async def merge() -> None:
            result: MergeResult = await merge_cluster(
                self.crm.local, self.cluster, self.records, plan=self.plan
            )
            self.crm.last_merge = result
            verb = "Created" if result.created else "Updated"
            self.notify(
                f"{verb} {result.record.name} ({result.record.id}): ctrl+z on People undoes",
                markup=False,
            )
            self.dismiss()

        self.run_worker(merge(), group="local", exit_on_error=False, name="merge into local")

    def action_undo_merge(self) -> None:
        undo_merge_of(self.crm, None)

    def action_reject(self) -> None:
        if self.cluster.settled:
            self.notify("Merged already: ctrl+z on People's Merged section undoes it", markup=False)
            return
        reject_cluster(self.crm, self.cluster)
        self.dismiss()
