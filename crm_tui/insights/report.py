"""The four charts together, for one filter and one "now": what the Pipeline screen draws
and `crm-tui report pipeline` prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from crm_tui.custom_columns import Column
from crm_tui.insights.deals import (
    ClosingFigures,
    DealTable,
    StageFigures,
    closings_by_month,
    pipeline_by_stage,
)
from crm_tui.insights.health import SyncHealth, sync_health
from crm_tui.insights.leads import LeadFlow, lead_flow
from crm_tui.insights.periods import today_of
from crm_tui.insights.table import Table
from crm_tui.models import Contact, Deal, Record, RecordKind, SourceStatus
from crm_tui.search.query import MIN_QUERY, parse_query, words_for

Chart = Literal["stages", "closings", "leads", "health"]
CHARTS: tuple[Chart, ...] = ("stages", "closings", "leads", "health")
CHART_TITLES: dict[Chart, str] = {
    "stages": "Deals by stage",
    "closings": "Closings by month",
    "leads": "Lead flow",
    "health": "Sync health",
}
#: Every record matching a query, as the search index lists them (Browse's filter).
Matching = Callable[[str, RecordKind], Sequence[Record]]


@dataclass(frozen=True)
class DealFigures:
    """The three deal charts of one table on one day: what the app keeps warm."""

    deal_count: int
    stages: StageFigures
    vendor_stages: StageFigures
    closings: ClosingFigures


def deal_figures(deals: Sequence[Deal] | DealTable, now: date | datetime) -> DealFigures:
    table = deals if isinstance(deals, DealTable) else DealTable.of(deals)
    return DealFigures(
        deal_count=int(table.counts.sum()),  # live deals: a patch's replaced ones left out
        stages=pipeline_by_stage(table),
        vendor_stages=pipeline_by_stage(table, vendor=True),
        closings=closings_by_month(table, now),
    )


@dataclass(frozen=True)
class ContactFigures:
    contact_count: int
    leads: LeadFlow


@dataclass(frozen=True)
class Pipeline:
    as_of: date
    filter: str
    deal_count: int
    contact_count: int
    stages: StageFigures
    vendor_stages: StageFigures
    closings: ClosingFigures
    leads: LeadFlow
    health: SyncHealth

    def table(self, chart: Chart, *, vendor: bool = False) -> Table:
        if chart == "stages":
            return (self.vendor_stages if vendor else self.stages).table()
        return getattr(self, chart).table()

    def to_json(self, charts: Iterable[Chart] = CHARTS) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "success": True,
            "asOf": self.as_of.isoformat(),
            "filter": self.filter,
            "deals": self.deal_count,
            "contacts": self.contact_count,
        }
        for chart in charts:
            if chart == "stages":
                payload["stages"] = self.stages.to_json()
                payload["vendorStages"] = self.vendor_stages.to_json()
            else:
                payload[_JSON_KEYS[chart]] = getattr(self, chart).to_json()
        return payload


_JSON_KEYS = {"closings": "closings", "leads": "leadFlow", "health": "syncHealth"}


def build_pipeline(
    deals: Sequence[Deal] | DealTable | DealFigures,
    contacts: Sequence[Contact] | ContactFigures,
    runs: Iterable[Mapping[str, Any]],
    statuses: Mapping[str, SourceStatus],
    now: date | datetime,
    *,
    filter_text: str = "",
) -> Pipeline:
    """Every chart from records already filtered (`filtered()`), the audit rows and the
    sources' statuses. Sync health keeps the filter's `source:` sources only."""
    figures = deals if isinstance(deals, DealFigures) else deal_figures(deals, now)
    if not isinstance(contacts, ContactFigures):
        contacts = ContactFigures(len(contacts), lead_flow(contacts, now))
    wanted = filter_sources(filter_text)
    health = sync_health(runs, statuses)
    if wanted:
        health = SyncHealth(tuple(s for s in health.sources if s.source in wanted))
    return Pipeline(
        as_of=today_of(now),
        filter=filter_text.strip(),
        deal_count=figures.deal_count,
        contact_count=contacts.contact_count,
        stages=figures.stages,
        vendor_stages=figures.vendor_stages,
        closings=figures.closings,
        leads=contacts.leads,
        health=health,
    )


def filter_sources(text: str) -> list[str]:
    """The sources a filter names (`source:`), checked: an unknown one is a QueryError."""
    words = " ".join(w for w in words_for(text, "deals").split() if w.startswith("source:"))
    return parse_query(words, "deals").sources if words else []


def check_filter(text: str, columns: Mapping[str, Column] | None = None) -> None:
    """Raise QueryError when a filter cannot run for the kind of any chart it applies to
    (`columns`: the custom columns, filter keys too)."""
    for kind in ("deals", "contacts"):
        part = words_for(text, kind)
        if part.strip():
            parse_query(part, kind, columns)


def filtered(
    kind: RecordKind, text: str, everything: Callable[[], Sequence[Record]], matching: Matching
) -> Sequence[Record]:
    """The records of `kind` a Pipeline filter keeps: every one without a filter of that
    kind, else what Browse's filter would list (the same index, the same query language)."""
    part = words_for(text, kind).strip()
    if not part:
        return everything()
    if len(part) < MIN_QUERY:
        parse_query(part, kind)  # says why: too short
    return matching(part, kind)
