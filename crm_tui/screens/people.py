"""People: one row per person found in several records, the most valuable work first.

Sections (`v`): to review, names that differ, possible (name and place only), merged, and
"not the same person". `f`, `c` and `/` narrow the list (letters typed in it go to the find
box); ctrl+a merges every cluster shown after one confirmation; ctrl+x marks one as not the
same person (or takes that back); ctrl+z undoes a merge. Decisions take ctrl- keys, which no
name typed into the list contains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.dedup import Cluster
from crm_tui.dedup.clusters import EMPTY as EMPTY_PEOPLE
from crm_tui.dedup.review import SECTIONS, bulk_mergeable, merge_all, plan_bulk, select
from crm_tui.models import Record, RecordKind
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.cluster import ClusterScreen, reject_cluster, undo_merge_of
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.export_view import ExportView
from crm_tui.screens.typing import TypeToFilter
from crm_tui.sources.registry import SHORT_NAMES
from crm_tui.widgets.record_table import Column, RecordTable


def badges(sources: tuple[str, ...]) -> str:
    return " ".join(SHORT_NAMES.get(s, s[:3].upper()) for s in sources)


def evidence(cluster: Cluster) -> str:
    if cluster.possible:
        places = sorted({link.keys[-1] for link in cluster.links}, reverse=True)
        return f"same name, same {' or '.join(places)}; no shared e-mail or phone"
    keys = sorted({k for link in cluster.links for k in link.keys})
    notes = ["names differ: check"] if cluster.flagged else []
    if cluster.shared:
        notes.append("shared contact point")
    return "+".join(keys) + (f" ({'; '.join(notes)})" if notes else "")


#: What an empty section means, and what to do.
EMPTY_HINTS = {
    "open": "nothing left to review (v shows the other sections)",
    "names_differ": "no linked records whose names differ",
    "possible": "no records that only share a name and a place",
    "merged": "nothing merged yet: enter on a cluster, then m; or ctrl+a for all shown",
    "rejected": "nothing marked as not the same person (ctrl+x on a cluster)",
}


class PeopleScreen(TypeToFilter, ExportView, ModeScreen):
    BINDINGS = [
        Binding("v", "next_section", "Section", id="people.section"),
        Binding("f", "next_source", "Filter source", id="people.filter"),
        Binding("c", "next_confidence", "Min confidence", id="people.confidence"),
        Binding("slash", "find", "Find", id="people.find"),
        Binding("ctrl+x", "reject", "Not the same", id="people.reject"),
        Binding("ctrl+a", "merge_shown", "Merge all shown", id="people.merge_all"),
        Binding("ctrl+z", "undo_merge", "Undo merge", id="people.undo"),
        Binding("escape", "clear_find", "Clear find", show=False, id="people.clear"),
    ]
    CONFIDENCE_STEPS = (0.0, 0.9, 0.95)

    def __init__(self) -> None:
        super().__init__()
        self.section = "open"
        self.source: str | None = None
        self.min_confidence = 0.0
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="people-summary", markup=False)
        yield Input(
            placeholder="find by name, e-mail or source", id="people-find", select_on_focus=False
        )
        yield RecordTable(self._columns(), id="clusters")
        yield Footer()

    def _columns(self) -> list[Column]:
        return [
            Column("Records", 7, lambda c: len(c.members)),
            Column("Sources", 24, lambda c: badges(c.sources)),
            Column("Sure", 5, lambda c: f"{c.confidence:.2f}"),
            Column("Name", 26, self._person_name),
            Column("Latest", 10, lambda c: c.latest[:10]),
            Column("Evidence", 34, evidence),
        ]

    def _person_name(self, cluster: Cluster) -> str:
        record = self.crm.store.get("contacts", cluster.members[0])
        return record.name if record is not None else ""

    def _findable(self, record_id: str) -> str:
        record = self.crm.store.get("contacts", record_id)
        return f"{record.name} {record.email or ''}" if record is not None else ""

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#people-find", Input).display = False
        self.query_one(RecordTable).focus()

    def filter_box(self) -> Input:
        return self.query_one("#people-find", Input)

    def typing_lists(self) -> tuple[Widget, ...]:
        return (self.query_one(RecordTable),)

    async def view_records(self) -> tuple[RecordKind, Sequence[Record]]:
        """Every record of the clusters shown."""
        get, shown = self.crm.store.get, list(self.shown)

        def members() -> list[Record]:
            found = (get("contacts", m) for c in shown for m in c.members)
            return [r for r in found if r is not None]

        return "contacts", await asyncio.to_thread(members)

    @property
    def shown(self) -> list[Cluster]:
        return self.query_one(RecordTable).rows  # type: ignore[no-any-return]

    def refresh_data(self) -> None:
        if self.text:  # reading every member's name: off the loop, once typing pauses
            self.run_worker(self._found(), group="people-find", exclusive=True, exit_on_error=False)
        else:
            self._show(self._selected())

    def _why_empty(self) -> str:
        """Why nothing is shown, and what to do about it."""
        crm = self.crm
        contacts = crm.store.count("contacts") if crm.loaded else 0
        if not crm.loaded:
            return "Loading the cache…"
        if not contacts:
            return (
                "Nothing synced yet: no contacts to compare. Sync on Status (F1, then a),"
                " or import a CSV export (crm-tui import --help)."
            )
        if (
            crm.people is EMPTY_PEOPLE
            and crm.workers
            and any(w.group == "people" and not w.is_finished for w in crm.workers)
        ):
            return f"Looking for duplicates among {contacts:,} contacts…"
        if self.text or self.source or self.min_confidence:
            return "No cluster matches the find or the filters (esc clears the find; f, c step)."
        if not crm.people.clusters:
            return f"No duplicates found among {contacts:,} contacts."
        return EMPTY_HINTS[self.section].capitalize() + "."

    def _selected(self) -> list[Cluster]:
        return select(
            self.crm.review.sections[self.section],
            self.min_confidence,
            self.source,
            self.text,
            self._findable,
        )

    async def _found(self) -> None:
        await asyncio.sleep(0.15)
        self._show(await asyncio.to_thread(self._selected))

    def _show(self, clusters: list[Cluster]) -> None:
        self.query_one(RecordTable).set_rows(clusters)
        counts = self.crm.review.counts()
        sections = "  ".join(
            f"[{title} {counts[name]:,}]" if name == self.section else f"{title} {counts[name]:,}"
            for name, title in SECTIONS.items()
        )
        where = DISPLAY_NAMES.get(self.source, self.source) if self.source else "all sources"
        find = f", matching {self.text!r}" if self.text else ""
        linked = sum(len(c.members) for c in clusters)
        empty = f"\n{self._why_empty()}" if not clusters else ""
        self.query_one("#people-summary", Static).update(
            f"{sections}\n{len(clusters):,} shown ({linked:,} records) · {where} · confidence"
            f" >= {self.min_confidence:.2f}{find}{empty}"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that do nothing in this section are not offered."""
        if action == "merge_shown":
            return self.section == "open"
        if action == "reject":
            return self.section != "merged"
        return True

    def on_record_table_selected(self, event: RecordTable.Selected) -> None:
        self.app.push_screen(ClusterScreen(event.row))

    def action_next_section(self) -> None:
        names = list(SECTIONS)
        self.section = names[(names.index(self.section) + 1) % len(names)]
        self.refresh_bindings()
        self.refresh_data()

    def action_next_source(self) -> None:
        sources: list[str | None] = [None, *self.crm.store.sources()]
        self.source = sources[(sources.index(self.source) + 1) % len(sources)]
        self.refresh_data()

    def action_next_confidence(self) -> None:
        steps = self.CONFIDENCE_STEPS
        at = steps.index(self.min_confidence) if self.min_confidence in steps else 0
        self.min_confidence = steps[(at + 1) % len(steps)]
        self.refresh_data()

    def action_find(self) -> None:
        self.focus_box()

    @on(Input.Changed, "#people-find")
    def _find_changed(self, event: Input.Changed) -> None:
        self.text = event.value
        self.refresh_data()

    @on(Input.Submitted, "#people-find")
    def _find_done(self) -> None:
        self.query_one(RecordTable).focus()

    def action_clear_find(self) -> None:
        find = self.query_one("#people-find", Input)
        find.value, find.display = "", False
        self.text = ""
        self.query_one(RecordTable).focus()
        self.refresh_data()

    def action_reject(self) -> None:
        cluster = self.query_one(RecordTable).current
        if cluster is not None and cluster.settled:
            self.notify("Merged already: ctrl+z undoes the merge", markup=False)
        elif cluster is not None:
            reject_cluster(self.crm, cluster, undo=self.section == "rejected")

    def action_undo_merge(self) -> None:
        cluster = self.query_one(RecordTable).current
        undo_merge_of(self.crm, cluster if self.section == "merged" else None)

    def action_merge_shown(self) -> None:
        if self.crm.writes_blocked():
            return
        chosen = bulk_mergeable(self.shown)
        if not chosen:
            self.notify(
                "Nothing here merges in bulk: names that differ and possible matches are "
                "merged one at a time (enter, then m)",
                markup=False,
            )
            return
        plan = plan_bulk(chosen)
        unsure = sum(c.confidence < 0.95 for c in chosen)
        shared = sum(bool(c.shared) for c in chosen)
        notes = [f"{unsure:,} of them below 0.95 (c raises the floor)"] if unsure else []
        if shared:
            notes.append(f"{shared:,} with a contact point another person uses")
        question = (
            f"Merge {plan.people:,} people ({plan.records:,} records) into the local CRM, "
            f"at confidence >= {self.min_confidence:.2f}?\n"
            + (f"{'; '.join(notes)}.\n" if notes else "")
            + "Each becomes one local contact; the vendors' records stay as they are. "
            "Each merge can be undone from the Merged section (v to reach it, then ctrl+z)."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(
                    self._merge(chosen), group="local", exit_on_error=False, name="merge all"
                )

        self.app.push_screen(ConfirmScreen(question), answered)

    async def _merge(self, chosen: list[Cluster]) -> None:
        told = 0

        def progress(done: int, total: int) -> None:
            nonlocal told
            if done < total and done - told >= total // 5:  # a few notes, not thousands
                told = done
                self.notify(f"Merged {done:,} of {total:,}", markup=False, timeout=2)

        report = await merge_all(self.crm.local, chosen, progress)
        failed = f"; {len(report.failed)} refused by the local CRM" if report.failed else ""
        self.notify(
            f"Merged {report.people:,} people ({report.records:,} records){failed}",
            markup=False,
            severity="warning" if report.failed else "information",
        )
        self.crm.last_merge = None  # each one is undone from the Merged section
