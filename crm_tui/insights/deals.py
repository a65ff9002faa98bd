"""Deals by stage and closings by month, added up per group of a DealTable (dealtable.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crm_tui.insights.dealtable import DealTable
from crm_tui.insights.groups import source_order
from crm_tui.insights.periods import month_label, months_around
from crm_tui.insights.table import Table, cents, joined_filter, money, quoted
from crm_tui.models import Deal
from crm_tui.text import single_line
from crm_tui.vocabulary import SHARED_STATUSES, filter_token, record_shared_status

#: Deals whose stage maps onto no shared stage (a Pipedrive stage id, say).
OTHER = "other"


def deal_table(deals: Sequence[Deal] | DealTable) -> DealTable:
    return deals if isinstance(deals, DealTable) else DealTable.of(deals)


@functools.lru_cache(maxsize=4096)
def shared_stage(source: str, stage: str | None, status: str | None) -> str:
    """The shared stage of deals holding these values, as everywhere else (vocabulary)."""
    probe = Deal("", source, "", "", stage=stage, status=status)
    return record_shared_status(probe) or OTHER


def vendor_stage(stage: str | None, status: str | None) -> str:
    return single_line(stage or status or "").strip() or "(none)"


# -- deals by stage ------------------------------------------------------------------------

Cell = tuple[int, float]  # count, volume


@dataclass(frozen=True)
class StageFigures:
    """Deals per stage and source. `vendor`: each vendor's own stages instead of the shared
    vocabulary (a stage is then "source: value")."""

    vendor: bool
    stages: tuple[str, ...]
    sources: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]

    def total(self, stage: str) -> Cell:
        parts = [self.cells[(stage, s)] for s in self.sources if (stage, s) in self.cells]
        return sum(c for c, _ in parts), cents(sum(v for _, v in parts))

    def filter_for(self, stage: str, source: str | None = None) -> str:
        """The Browse filter for one bar (or one source's part of it); "" where the query
        language cannot say it (deals of no shared stage)."""
        if self.vendor:
            owner = source or self._owner(stage)
            value = self.label(stage)
            if owner is None or value == "(none)":
                return ""
            return joined_filter(f"source:{owner}", f"stage:{quoted(value)}")
        if stage == OTHER:
            return ""
        return joined_filter(f"source:{source}" if source else "", f"stage:{filter_token(stage)}")

    def _owner(self, stage: str) -> str | None:
        owners = [s for s in self.sources if (stage, s) in self.cells]
        return owners[0] if len(owners) == 1 else None

    def table(self) -> Table:
        """A row per stage and source; in the shared view a row for all sources first."""
        rows: list[tuple[Any, ...]] = []
        filters: list[str] = []
        for stage in self.stages:
            if not self.vendor:
                rows.append((stage, "all", *self.total(stage)))
                filters.append(self.filter_for(stage))
            for source in self.sources:
                if (stage, source) in self.cells:
                    count, volume = self.cells[(stage, source)]
                    rows.append((self.label(stage), source, count, cents(volume)))
                    filters.append(self.filter_for(stage, source))
        return Table(("stage", "source", "count", "volume"), tuple(rows), tuple(filters))

    def label(self, stage: str) -> str:
        """A stage as shown: in the vendor view, the vendor's value without its source."""
        return stage.split(": ", 1)[1] if self.vendor and ": " in stage else stage

    def to_json(self) -> dict[str, Any]:
        return {
            "view": "vendor" if self.vendor else "shared",
            "stages": [self._stage_json(stage) for stage in self.stages],
        }

    def _stage_json(self, stage: str) -> dict[str, Any]:
        count, volume = self.total(stage)
        by_source = [
            {"source": s, "count": c, "volume": cents(v), "filter": self.filter_for(stage, s)}
            for s in self.sources
            if (stage, s) in self.cells
            for c, v in (self.cells[(stage, s)],)
        ]
        filter_ = self.filter_for(stage)
        shown = {"stage": self.label(stage), "count": count, "volume": volume}
        return shown | {"filter": filter_, "sources": by_source}

    def caption(self, stage: str) -> str:
        count, volume = self.total(stage)
        return f"{stage}: {count:,} deal{'s' if count != 1 else ''}, {money(volume)}"


def pipeline_by_stage(deals: Sequence[Deal] | DealTable, *, vendor: bool = False) -> StageFigures:
    """Count and volume of deals per stage and source: the shared stages in the
    vocabulary's order (deals of no shared stage last, as "other"), or with `vendor` each
    source's own stage values, most held first."""
    table = deal_table(deals)
    cells: dict[tuple[str, str], Cell] = {}
    sources: dict[str, None] = {}
    heads, counts, volumes = table.by_head()  # the close dates do not matter here
    for (source, stage, status), count, volume in zip(heads, counts, volumes, strict=True):
        if vendor:
            label = f"{source}: {vendor_stage(stage, status)}"
        else:
            label = shared_stage(source, stage, status)
        was_count, was_volume = cells.get((label, source), (0, 0.0))
        cells[(label, source)] = (was_count + count, was_volume + volume)
        sources[source] = None
    stages = _stage_order({label for label, _ in cells}, cells, vendor)
    return StageFigures(vendor, stages, source_order(sources), cells)


def _stage_order(
    labels: set[str], cells: dict[tuple[str, str], Cell], vendor: bool
) -> tuple[str, ...]:
    if not vendor:
        return tuple(s for s in (*SHARED_STATUSES, OTHER) if s in labels)
    held = {label: sum(c for (lb, _), (c, _) in cells.items() if lb == label) for label in labels}
    return tuple(sorted(labels, key=lambda label: (-held[label], label)))


# -- closings by month ---------------------------------------------------------------------

ClosingCell = tuple[int, float, float | None]  # count, volume, GCI (None: not carried)


@dataclass(frozen=True)
class ClosingFigures:
    """Deals closing per month (the past 12, this one among them, and the next 6), per
    source: count, volume, and GCI where the source carries a commission."""

    months: tuple[str, ...]
    current: str
    sources: tuple[str, ...]
    cells: dict[tuple[str, str], ClosingCell]

    @property
    def gci_sources(self) -> tuple[str, ...]:
        return tuple(
            s
            for s in self.sources
            if any(c[2] is not None for (_, src), c in self.cells.items() if src == s)
        )

    def total(self, month: str) -> ClosingCell:
        parts = [self.cells[(month, s)] for s in self.sources if (month, s) in self.cells]
        gcis = [g for _, _, g in parts if g is not None]
        return (
            sum(c for c, _, _ in parts),
            cents(sum(v for _, v, _ in parts)),
            cents(sum(gcis)) if gcis else None,
        )

    def filter_for(self, month: str, source: str | None = None) -> str:
        return joined_filter(f"source:{source}" if source else "", f"closing:{month}")

    def table(self) -> Table:
        rows: list[tuple[Any, ...]] = []
        filters: list[str] = []
        for month in self.months:
            rows.append((month, "all", *self.total(month)))
            filters.append(self.filter_for(month))
            for source in self.sources:
                if (month, source) in self.cells:
                    count, volume, gci = self.cells[(month, source)]
                    rows.append((month, source, count, cents(volume), _cents(gci)))
                    filters.append(self.filter_for(month, source))
        return Table(("month", "source", "count", "volume", "gci"), tuple(rows), tuple(filters))

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "gciSources": list(self.gci_sources),
            "months": [self._month_json(month) for month in self.months],
        }

    def _month_json(self, month: str) -> dict[str, Any]:
        count, volume, gci = self.total(month)
        by_source = [
            {"source": s, "count": c, "volume": cents(v), "gci": _cents(g)}
            for s in self.sources
            if (month, s) in self.cells
            for c, v, g in (self.cells[(month, s)],)
        ]
        return {
            "month": month,
            "count": count,
            "volume": volume,
            "gci": gci,
            "filter": self.filter_for(month),
            "sources": by_source,
        }

    def caption(self, month: str) -> str:
        count, volume, gci = self.total(month)
        text = f"{month_label(month)} {month[:4]}: {count:,} closing{'s' if count != 1 else ''}"
        text += f", {money(volume)}"
        return text + (f", GCI {money(gci)}" if gci is not None else "")


def _cents(value: float | None) -> float | None:
    return None if value is None else cents(value)


def closings_by_month(
    deals: Sequence[Deal] | DealTable,
    now: date | datetime,
    *,
    past: int = 12,
    ahead: int = 6,
) -> ClosingFigures:
    """Deals by the month of their close date, from `past` months ending with the current
    one through `ahead` months after it."""
    table = deal_table(deals)
    months = months_around(now, past, ahead)
    window = set(months)
    groups = [n for n, key in enumerate(table.keys) if key[3] is not None and key[3][:7] in window]
    gci = table.gci_of(groups)
    cells: dict[tuple[str, str], ClosingCell] = {}
    for n in groups:
        source, _, _, closing = table.keys[n]
        at = (closing[:7], source)  # type: ignore[index]
        count, volume, was = cells.get(at, (0, 0.0, None))
        more = gci[n]
        total = was if more is None else (was or 0.0) + more
        cells[at] = (count + int(table.counts[n]), volume + float(table.volumes[n]), total)
    sources = source_order(source for _, source in cells)
    return ClosingFigures(months, months[past - 1], sources, cells)
