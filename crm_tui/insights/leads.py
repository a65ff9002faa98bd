"""Lead flow: new contacts per week (by the vendor's creation time), by source and by shared
stage, over the last 26 weeks."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crm_tui.insights.deals import OTHER
from crm_tui.insights.groups import PerSegment, group_codes, source_order
from crm_tui.insights.periods import weeks_until
from crm_tui.insights.table import Table, joined_filter
from crm_tui.lazyrows import read_slices
from crm_tui.models import Contact
from crm_tui.search.matched import MatchedRecords
from crm_tui.vocabulary import SHARED_STATUSES, filter_token, record_shared_status

if TYPE_CHECKING:
    from crm_tui.search.index import Segment

Split = Literal["source", "stage"]
LeadKey = tuple[str, str | None, str | None, str]  # source, stage, status, day created


def _lead_key(contact: Contact) -> LeadKey:
    return (contact.source, contact.stage, contact.status, (contact.remote_created or "")[:10])


@functools.lru_cache(maxsize=4096)
def shared_contact_stage(source: str, stage: str | None, status: str | None) -> str:
    probe = Contact("", source, "", "", stage=stage, status=status)
    return record_shared_status(probe) or OTHER


@dataclass(frozen=True)
class LeadFlow:
    """New contacts per week, source and shared stage; `undated` counts per source the
    contacts whose vendor gives no creation time (Brivity's API has none)."""

    weeks: tuple[date, ...]
    cells: dict[tuple[date, str, str], int]  # (week, source, stage) -> new contacts
    undated: dict[str, int]

    @property
    def sources(self) -> tuple[str, ...]:
        return source_order(source for _, source, _ in self.cells)

    @property
    def stages(self) -> tuple[str, ...]:
        held = {stage for _, _, stage in self.cells}
        return tuple(s for s in (*SHARED_STATUSES, OTHER) if s in held)

    def groups(self, split: Split) -> tuple[str, ...]:
        return self.sources if split == "source" else self.stages

    def by(self, split: Split) -> dict[tuple[date, str], int]:
        """Per (week, source) or (week, stage): how many new contacts."""
        out: dict[tuple[date, str], int] = {}
        for (week, source, stage), count in self.cells.items():
            key = (week, source if split == "source" else stage)
            out[key] = out.get(key, 0) + count
        return out

    def total(self, week: date) -> int:
        return sum(n for (w, _, _), n in self.cells.items() if w == week)

    def filter_for(
        self, week: date | None = None, source: str | None = None, stage: str | None = None
    ) -> str:
        """The Browse filter for a week's contacts (of one source or stage)."""
        shared = f"status:{filter_token(stage)}" if stage and stage != OTHER else ""
        created = f"created:{week}..{week + timedelta(days=6)}" if week else ""
        return joined_filter(created, f"source:{source}" if source else "", shared)

    def table(self) -> Table:
        rows: list[tuple[Any, ...]] = []
        filters: list[str] = []
        for week in self.weeks:
            for source in self.sources:
                for stage in self.stages:
                    count = self.cells.get((week, source, stage), 0)
                    if count:
                        rows.append((week.isoformat(), source, stage, count))
                        filters.append(self.filter_for(week, source, stage))
        return Table(("week", "source", "stage", "new"), tuple(rows), tuple(filters))

    def to_json(self) -> dict[str, Any]:
        by_source, by_stage = self.by("source"), self.by("stage")
        return {
            "weeks": [
                {
                    "week": week.isoformat(),
                    "count": self.total(week),
                    "bySource": {
                        s: by_source[(week, s)] for s in self.sources if (week, s) in by_source
                    },
                    "byStage": {
                        s: by_stage[(week, s)] for s in self.stages if (week, s) in by_stage
                    },
                }
                for week in self.weeks
            ],
            "undated": dict(self.undated),
        }

    def caption(self, week: date) -> str:
        count = self.total(week)
        end = week + timedelta(days=6)
        return f"week of {week:%b %d} - {end:%b %d}: {count:,} new contact{'s' * (count != 1)}"


LeadGroups = tuple[list[LeadKey], list[int]]  # each distinct key, and how many hold it


def lead_groups(contacts: Sequence[Contact]) -> LeadGroups:
    """Contacts reduced to their distinct (source, stage, status, day created): the part of
    the lead flow worth keeping per search-index segment (it costs a pass over them)."""
    keys, codes = group_codes(
        [key for part in read_slices(contacts) for key in map(_lead_key, part)]
    )
    return keys, np.bincount(codes, minlength=len(keys)).tolist()


def lead_flow(contacts: Sequence[Contact], now: date | datetime, *, weeks: int = 26) -> LeadFlow:
    """New contacts per week of their vendor creation time (UTC), the last `weeks` weeks
    through the current one, by source and shared stage."""
    if isinstance(contacts, MatchedRecords):  # a filter's: counted from the facets
        parts = [_segment_groups(seg, ~hit) for seg, hit in contacts.by_segment()]
        return flow_of_groups(parts, now, weeks=weeks)
    return flow_of_groups([lead_groups(contacts)], now, weeks=weeks)


def flow_of_groups(
    parts: Sequence[LeadGroups], now: date | datetime, *, weeks: int = 26
) -> LeadFlow:
    mondays = weeks_until(now, weeks)
    first, window = mondays[0], set(mondays)
    cells: dict[tuple[date, str, str], int] = {}
    undated: dict[str, int] = {}
    for keys, counts in parts:
        for (source, stage, status, day), count in zip(keys, counts, strict=True):
            if not day:
                undated[source] = undated.get(source, 0) + count
                continue
            week = _monday(day)
            if week is None or week < first or week not in window:
                continue
            at = (week, source, shared_contact_stage(source, stage, status))
            cells[at] = cells.get(at, 0) + count
    return LeadFlow(mondays, cells, undated)


@functools.lru_cache(maxsize=8192)
def _monday(day: str) -> date | None:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return None
    return parsed - timedelta(days=parsed.weekday())


class SegmentLeads:
    """The lead flow's groups per search-index segment of contacts, kept while that segment
    is the index's (as SegmentTables keeps the deals'): a sync of one source redoes that
    source's groups only, so the Pipeline never passes over every contact to open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._groups = PerSegment(_segment_groups)

    def flow(
        self, parts: Sequence[tuple[str, Segment, np.ndarray | None]], now: date | datetime
    ) -> tuple[LeadFlow, int]:
        """The lead flow of every contact indexed now, and how many there are; call with
        `lock` held."""
        held = self._groups.values(parts)
        return flow_of_groups(held, now), sum(sum(counts) for _, counts in held)


def _segment_groups(segment: Segment, dead: np.ndarray | None) -> LeadGroups:
    """A segment's lead groups from its facets (per record the codes of its stage, status
    and day created: arrays, mapped from disk after a start), leaving out `dead` records.
    Only one record per distinct (stage, status) is read, for the values as the vendor
    spelt them (the facets hold them folded)."""
    facets, records = segment.facets(), segment.records
    live = np.arange(len(records)) if dead is None else np.flatnonzero(~dead)
    if not len(live):
        return [], []
    statuses = len(facets.values["status"])
    heads = facets.codes["stage"][live].astype(np.int64) * statuses + facets.codes["status"][live]
    _, first, head_of = np.unique(heads, return_index=True, return_inverse=True)
    spelt = [_lead_key(records[at])[:3] for at in live[first].tolist()]
    days, day_codes = facets.created_days()
    combined = head_of.reshape(-1).astype(np.int64) * len(days) + day_codes[live]
    groups, counts = np.unique(combined, return_counts=True)
    keys: list[LeadKey] = [
        (*spelt[group // len(days)], days[group % len(days)]) for group in groups.tolist()
    ]
    return keys, counts.tolist()
