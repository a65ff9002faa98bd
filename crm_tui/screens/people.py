"""People: one row per person found in several records, largest clusters first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.dedup import Cluster
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.cluster import ClusterScreen, undo_last_merge
from crm_tui.sources.registry import SHORT_NAMES
from crm_tui.widgets.record_table import Column, RecordTable


def badges(sources: tuple[str, ...]) -> str:
    return " ".join(SHORT_NAMES.get(s, s[:3].upper()) for s in sources)


def evidence(cluster: Cluster) -> str:
    keys = sorted({k for link in cluster.links for k in link.keys})
    notes = ["names differ: check"] if cluster.flagged else []
    if cluster.shared:
        notes.append("shared contact point")
    return "+".join(keys) + (f" ({'; '.join(notes)})" if notes else "")


class PeopleScreen(ModeScreen):
    BINDINGS = [
        Binding("f", "next_source", "Filter source", id="people.filter"),
        Binding("c", "next_confidence", "Min confidence", id="people.confidence"),
        Binding("u", "undo_merge", "Undo merge", id="people.undo"),
    ]
    CONFIDENCE_STEPS = (0.0, 0.9, 0.95)

    def __init__(self) -> None:
        super().__init__()
        self.source: str | None = None
        self.min_confidence = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="people-summary", markup=False)
        yield RecordTable(self._columns(), id="clusters")
        yield Footer()

    def _columns(self) -> list[Column]:
        return [
            Column("Records", 7, lambda c: len(c.members)),
            Column("Sources", 16, lambda c: badges(c.sources)),
            Column("Sure", 5, lambda c: f"{c.confidence:.2f}"),
            Column("Name", 26, self._person_name),
            Column("Evidence", 48, evidence),
        ]

    def _person_name(self, cluster: Cluster) -> str:
        record = self.crm.store.get("contacts", cluster.members[0])
        return record.name if record is not None else ""

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RecordTable).focus()

    def refresh_data(self) -> None:
        people = self.crm.people
        clusters = people.select(self.min_confidence, self.source)
        self.query_one(RecordTable).set_rows(clusters)
        where = DISPLAY_NAMES.get(self.source, self.source) if self.source else "all sources"
        linked = sum(len(c.members) for c in clusters)
        self.query_one("#people-summary", Static).update(
            f"{len(clusters):,} people held more than once ({linked:,} records), {where}, "
            f"confidence >= {self.min_confidence:.2f}   enter: compare and merge  f: source  "
            "c: confidence  u: undo merge"
        )

    def on_record_table_selected(self, event: RecordTable.Selected) -> None:
        self.app.push_screen(ClusterScreen(event.row))

    def action_next_source(self) -> None:
        sources: list[str | None] = [None, *self.crm.store.sources()]
        self.source = sources[(sources.index(self.source) + 1) % len(sources)]
        self.refresh_data()

    def action_next_confidence(self) -> None:
        steps = self.CONFIDENCE_STEPS
        at = steps.index(self.min_confidence) if self.min_confidence in steps else 0
        self.min_confidence = steps[(at + 1) % len(steps)]
        self.refresh_data()

    def action_undo_merge(self) -> None:
        undo_last_merge(self.crm)
