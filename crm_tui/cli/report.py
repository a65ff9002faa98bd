"""`crm-tui report pipeline`: the Pipeline screen's figures, headless."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Runtime

if TYPE_CHECKING:
    from crm_tui.insights import Pipeline
    from crm_tui.insights.report import Chart

_CHARTS = ("stages", "closings", "leads", "health")


@click.group("report")
def report_group() -> None:
    """Figures from the cache, headless (the app's Pipeline screen, F7).

    Example: crm-tui report pipeline --json
    """


def _as_of(value: str | None) -> date | datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@report_group.command("pipeline")
@click.option("--filter", "filter_text", default="", help="The query language: source:S stage:X")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The day counted as today.")
@click.option(
    "--chart",
    type=click.Choice(_CHARTS),
    help="One chart only (--csv prints one: stages unless named).",
)
@click.option("--vendor-stages", is_flag=True, help="Stages as each CRM names them.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one chart's numbers as CSV.")
@headless(json_help=None)
def report_pipeline(
    rt: Runtime,
    filter_text: str,
    as_of: str | None,
    chart: Chart | None,
    vendor_stages: bool,
    as_csv: bool,
) -> Reply | None:
    """Deals by stage, closings by month (past 12, next 6; GCI where the CRM sends it),
    lead flow by week (last 26) and sync health (last 30 runs): the Pipeline screen's
    figures, from the cache (no request to any CRM).

    Example: crm-tui report pipeline --filter "source:hubspot amount>500k" --chart closings --csv
    """
    if rt.json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    now = _as_of(as_of)
    pipeline = _pipeline(rt, filter_text, now)
    charts = (chart,) if chart else _CHARTS
    if as_csv:
        click.echo(pipeline.table(chart or "stages", vendor=vendor_stages).to_csv(), nl=False)
        return None
    return Reply(pipeline.to_json(charts), lambda: _print_report(pipeline, charts, vendor_stages))


def _pipeline(rt: Runtime, filter_text: str, now: date | datetime) -> Pipeline:
    from crm_tui.fields.service import columns
    from crm_tui.insights import build_pipeline
    from crm_tui.insights.report import check_filter, filtered
    from crm_tui.search.index import SearchIndex
    from crm_tui.search.stored import store_index

    declared = {c.name: c for c in columns()}
    check_filter(filter_text, declared)  # a usage error before the cache is read
    store = rt.store
    index: SearchIndex | None = None

    def matching(text: str, kind: Any) -> Any:
        nonlocal index
        if index is None:  # only a filter needs the index
            index = store_index(store, store.shelf, declared)
        return index.matching(text, kind)

    deals = filtered("deals", filter_text, lambda: store.records("deals"), matching)
    contacts = filtered("contacts", filter_text, lambda: store.records("contacts"), matching)
    runs = store.db.recent_runs(store.user_id) if store.db is not None else []
    return build_pipeline(
        deals,
        contacts,
        runs,
        store.statuses(),
        now,
        filter_text=filter_text,  # type: ignore[arg-type]
    )


def _print_report(pipeline: Pipeline, charts: tuple[str, ...], vendor: bool) -> None:
    from crm_tui.insights.report import CHART_TITLES

    scope = f", filter {pipeline.filter!r}" if pipeline.filter else ""
    click.echo(
        f"As of {pipeline.as_of}: {pipeline.deal_count:,} deals,"
        f" {pipeline.contact_count:,} contacts{scope}"
    )
    for chart in charts:
        figures = pipeline.table(chart, vendor=vendor)  # type: ignore[arg-type]
        click.echo(f"\n{CHART_TITLES[chart]}")  # type: ignore[index]
        if figures.rows:
            table([["" if v is None else v for v in row] for row in figures.rows], figures.headers)
        else:
            click.echo("(nothing)")


COMMANDS: tuple[click.Command, ...] = (report_group,)
