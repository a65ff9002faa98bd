"""What each Pipeline chart draws, from the figures (crm_tui/insights) and the screen's
choices (measure, view): bar specs, titles, legends and the filter a bar opens in Browse.
Kept apart from the screen so that each piece is small and testable without an app."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from rich.text import Text

from crm_tui.config import DISPLAY_NAMES, SOURCE_NAMES
from crm_tui.insights import Pipeline
from crm_tui.insights.deals import OTHER
from crm_tui.insights.health import SyncHealth
from crm_tui.insights.periods import month_label
from crm_tui.insights.report import CHART_TITLES, Chart
from crm_tui.models import RateReading
from crm_tui.sources.registry import SHORT_NAMES
from crm_tui.vocabulary import SHARED_STATUSES
from crm_tui.widgets.charts import BarSpec, HealthRow, Series, color_of, legend

#: What `m` cycles through per chart, the first shown first.
MEASURES: dict[Chart, tuple[str, ...]] = {
    "stages": ("count", "volume"),
    "closings": ("volume", "count", "gci"),
    "leads": ("count",),
    "health": ("runs",),
}
_MEASURE_AT = {"count": 0, "volume": 1, "gci": 2}
State = Mapping[str, Any]


def source_color(source: str) -> tuple[int, int, int]:
    """One colour per source on every chart (the registry's order)."""
    at = SOURCE_NAMES.index(source) if source in SOURCE_NAMES else len(SOURCE_NAMES)
    return color_of(at)


def stage_color(stage: str) -> tuple[int, int, int]:
    at = SHARED_STATUSES.index(stage) if stage in SHARED_STATUSES else len(SHARED_STATUSES)
    return color_of(at)


def display(source: str) -> str:
    return DISPLAY_NAMES.get(source, source)


def spec_for(
    chart: Chart, pipeline: Pipeline, state: State, selected: int | None, width: int
) -> BarSpec:
    if chart == "stages":
        return _stages_spec(pipeline, state, selected)
    if chart == "closings":
        return _closings_spec(pipeline, state, selected)
    return _leads_spec(pipeline, state, selected, width)


def _stages_spec(pipeline: Pipeline, state: State, selected: int | None) -> BarSpec:
    figures = pipeline.vendor_stages if state["vendor"] else pipeline.stages
    at = _MEASURE_AT[state["measure"]]
    labels = tuple(_stage_label(figures.vendor, stage) for stage in figures.stages)
    series = tuple(
        Series(
            display(source),
            tuple(
                float(figures.cells.get((stage, source), (0, 0.0))[at]) for stage in figures.stages
            ),
            source_color(source),
        )
        for source in figures.sources
    )
    return BarSpec(labels, series, horizontal=True, selected=selected, money=at == 1)


def _stage_label(vendor: bool, stage: str) -> str:
    """A shared stage as it is named; a vendor's as "FUB Offer Submitted"."""
    if not vendor or ": " not in stage:
        return stage
    source, value = stage.split(": ", 1)
    return f"{SHORT_NAMES.get(source, source)} {value}"


def _closings_spec(pipeline: Pipeline, state: State, selected: int | None) -> BarSpec:
    figures = pipeline.closings
    at = _MEASURE_AT[state["measure"]]
    series = tuple(
        Series(
            display(source),
            tuple(
                float(figures.cells.get((month, source), (0, 0.0, None))[at] or 0)
                for month in figures.months
            ),
            source_color(source),
        )
        for source in figures.sources
    )
    labels = tuple(month_label(m) for m in figures.months)
    return BarSpec(labels, series, selected=selected, money=at > 0)


def _leads_spec(pipeline: Pipeline, state: State, selected: int | None, width: int) -> BarSpec:
    flow, split = pipeline.leads, state["split"]
    counts = flow.by(split)
    groups = flow.groups(split)
    color = source_color if split == "source" else stage_color
    series = tuple(
        Series(
            display(group) if split == "source" else group,
            tuple(float(counts.get((week, group), 0)) for week in flow.weeks),
            color(group),
        )
        for group in groups
    )
    labels = tuple(f"{week:%b %d}" for week in flow.weeks)
    return BarSpec(labels, series, selected=selected, tick_every=2 if width >= 160 else 4)


def title_for(chart: Chart, pipeline: Pipeline, state: State) -> Text:
    """The chart's name, what it measures, and what `m` / `v` would change."""
    parts = [CHART_TITLES[chart]]
    if chart == "stages":
        parts += [state["measure"], "each CRM's stages" if state["vendor"] else "shared stages"]
    elif chart == "closings":
        months = pipeline.closings.months
        parts += [
            "GCI" if state["measure"] == "gci" else state["measure"],
            f"{_month_year(months[0])} - {_month_year(months[-1])}",
        ]
    elif chart == "leads":
        parts += [f"new contacts a week, by {state['split']}", f"last {len(pipeline.leads.weeks)}"]
    else:
        parts += ["last 30 runs per source, rate budget left"]
    return Text(" · ".join(parts), no_wrap=True, overflow="ellipsis")


def _month_year(key: str) -> str:
    return f"{month_label(key)} {key[:4]}"


def legend_for(chart: Chart, pipeline: Pipeline, state: State) -> Text:
    if chart == "health":
        return Text("duration, records written and failed streams per run, oldest first")
    if chart == "leads" and state["split"] == "stage":
        return legend([(stage, stage_color(stage)) for stage in pipeline.leads.stages])
    if chart == "leads":
        sources = pipeline.leads.sources
    elif chart == "closings":
        sources = pipeline.closings.sources
    else:
        figures = pipeline.vendor_stages if state["vendor"] else pipeline.stages
        sources = figures.sources
    names = legend([(display(s), source_color(s)) for s in sources])
    if chart == "closings" and state["measure"] == "gci":
        gci = {display(s) for s in pipeline.closings.gci_sources}
        names.append(f"   (GCI from {', '.join(sorted(gci)) or 'no source'})")
    return names


def health_rows(health: SyncHealth) -> list[HealthRow]:
    rows = []
    for source in health.sources:
        last = source.runs[-1].outcome if source.runs else "no run yet"
        note = f"{_budget(source.rate) or 'no rate header'} · {last}"
        rows.append(
            HealthRow(
                display(source.source),
                tuple(source.series("seconds")),
                tuple(source.series("records")),
                tuple(source.series("failures")),
                note,
            )
        )
    return rows


def _budget(rate: RateReading | None) -> str:
    """ "180/250 per 10 s": the rate budget left, short enough for its column."""
    if rate is None or rate.remaining is None:
        return ""
    text = f"{rate.remaining}" + (f"/{rate.limit}" if rate.limit is not None else "")
    return text + (f" per {rate.window:g} s" if rate.window else "")


def drill_filter(chart: Chart, pipeline: Pipeline, bar: Any, state: State) -> str:
    """The Browse filter for a bar of the chart (its records, every source's)."""
    if chart == "stages":
        figures = pipeline.vendor_stages if state["vendor"] else pipeline.stages
        return figures.filter_for(bar) if bar != OTHER or figures.vendor else ""
    if chart == "closings":
        return pipeline.closings.filter_for(bar)
    if chart == "leads" and isinstance(bar, date):
        return pipeline.leads.filter_for(bar)
    return pipeline.health.filter_for(bar)
