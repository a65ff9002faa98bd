"""`status`, `cached-data`, `contacts`, `deals`, `search` and `clear-cache`: what the cache
holds, read without a request to any CRM, and dropping it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.cold import ColdRecords, cold_statuses, echo_listing
from crm_tui.cli.command import Reply, headless
from crm_tui.cli.marks import Marks, record_marks
from crm_tui.cli.options import (
    SOURCE_CHOICE,
    TYPE_CHOICE,
    declared_columns,
    record_kind,
    with_default,
)
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Runtime, run
from crm_tui.config import DISPLAY_NAMES, SOURCE_NAMES, Settings
from crm_tui.models import RecordKind, utc_now
from crm_tui.sync.shown import synced_elsewhere
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.models import Record
    from crm_tui.search.index import SearchResult


@click.command("status")
@headless(snapshot=False)
def status(rt: Runtime) -> Reply:
    """Each source's sync status and counts (guide: GET sync-status).

    Example: crm-tui status --json
    """
    settings = rt.settings
    statuses = cold_statuses(rt.unloaded_store, settings)  # counted, no record read
    payload = {
        "success": True,
        "timestamp": utc_now(),
        "status": {name: s.to_guide() for name, s in statuses.items()},
        # beside the guide's shape: what each vendor's headers said was left
        "rateBudgets": {n: s.rate.to_json() for n, s in statuses.items() if s.rate},
    }
    return Reply(payload, lambda: _status_table(settings, statuses))


def _status_table(settings: Settings, statuses: dict[str, Any]) -> None:
    rows = []
    for name, s in statuses.items():
        cfg = settings.source_config(name) if name in SOURCE_NAMES else None
        note = s.last_error or ""
        if not note and cfg and not cfg.enabled:
            synced = synced_elsewhere(s, settings)
            note = "synced by the team's worker" if synced else "missing " + ", ".join(cfg.missing)
        rows.append(
            (
                DISPLAY_NAMES.get(name, name),
                s.state,
                s.last_sync or "never",
                s.contact_count,
                s.deal_count,
                s.rate.describe() if s.rate else "",
                note,
            )
        )
    headers = ("SOURCE", "STATUS", "LAST SYNC", "CONTACTS", "DEALS", "RATE BUDGET")
    table(rows, (*headers, "NOTE"))


@click.command("cached-data")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@headless()
def cached_data(rt: Runtime, source: str | None) -> Reply:
    """Everything in the cache by source (guide: GET cached-data).

    Example: crm-tui cached-data --source brivity --json
    """
    store = rt.store
    payload = {"success": True, "timestamp": utc_now(), "data": store.get_cached_data(source)}

    def human() -> None:
        rows = [
            (n, d["syncStatus"], d["lastSync"] or "never", len(d["contacts"]), len(d["deals"]))
            for n, d in payload["data"].items()
        ]
        table(rows, ("SOURCE", "STATUS", "LAST SYNC", "CONTACTS", "DEALS"))

    return Reply(payload, human)


def _records_command(kind: RecordKind) -> click.Command:
    """`crm-tui contacts` and `crm-tui deals`."""

    @click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
    @click.option("--limit", type=click.IntRange(0), default=0, help="At most N (0: all).")
    @headless(snapshot=False)
    def records(rt: Runtime, source: str | None, limit: int) -> None:
        # read a batch at a time, never the whole cache: `contacts --json | head` at a
        # million records costs what it prints
        with rt.database.consistent_reads():
            cold = ColdRecords(rt.database, rt.unloaded_store.user_id)
            found: Iterable[Record] = cold.records(kind, source)
            if limit:
                found = itertools.islice(found, limit)
            # edits still on their way to the vendor
            marks = record_marks(rt.unloaded_store, cold.pending)
            if rt.json:
                echo_listing(kind, found, marks)
            else:
                _records_table(kind, list(found), marks)

    records.__doc__ = (
        f"Cached {kind} (guide: GET {kind}).\n\n"
        f"    Example: crm-tui {kind} --source followupboss --json"
    )
    return click.command(kind)(records)


def _records_table(kind: RecordKind, records: list[Record], marks: Marks) -> None:
    rows: list[tuple[Any, ...]]
    if kind == "contacts":
        rows = [(r.source, r.name, r.email, r.phone, r.company, r.status) for r in records]
        headers = ("SOURCE", "NAME", "EMAIL", "PHONE", "COMPANY", "STATUS")
    else:
        rows = [(r.source, r.name, r.amount, r.stage, r.close_date) for r in records]
        headers = ("SOURCE", "NAME", "AMOUNT", "STAGE", "CLOSE DATE")
    table(*marks.column([r.id for r in records], rows, headers))


@click.command("search")
@click.argument("query")
@click.option("--type", "kind", type=TYPE_CHOICE, default="contact", show_default=True)
@click.option("--source", "sources", type=SOURCE_CHOICE, multiple=True, help="Only these.")
@with_default("--limit", kind=click.IntRange(1, 10_000), default=50, help="Results per source.")
@headless()
def search(rt: Runtime, query: str, kind: str, sources: tuple[str, ...], limit: int) -> Reply:
    """Search every source at once (guide: GET search).

    Filters: source:S status:X stage:X city:X tag:X, and for deals amount>N amount<=N
    closing:2026-12.

    Example: crm-tui search "jo sm" --json
    """
    from crm_tui.search.stored import store_index

    store = rt.store
    index = store_index(store, store.shelf, declared_columns(), kinds=(record_kind(kind),))
    result = index.search(query, record_kind(kind), sources or None, limit)
    marks = record_marks(rt.store)  # edits still on their way to the vendor
    payload = result.to_guide()
    for hits in payload["results"].values():
        for hit in hits:
            marks.json(hit)
    return Reply(payload, lambda: _print_hits(result, kind, marks))


def _print_hits(result: SearchResult, kind: str, marks: Marks) -> None:
    for source, hits in result.groups.items():
        click.echo(f"{DISPLAY_NAMES.get(source, source)} ({result.counts[source]})")
        for hit in hits:
            r = hit.record
            extra = (
                (r.email or r.phone or "")
                if kind == "contact"
                else (f"{r.amount:,.0f}" if r.amount is not None else "")
            )
            mark = f"  ({marks.label(r.id)})" if marks.label(r.id) else ""
            click.echo(f"  {single_line(r.name or '')}  {single_line(extra)}  [{r.id}]{mark}")
    click.echo(f"{result.total} result(s)")


@click.command("clear-cache")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source (default: all).")
@headless()
def clear_cache(rt: Runtime, source: str | None) -> Reply:
    """Drop cached records for one source or all (guide: POST cache/clear).

    The local CRM's own rows are kept; only its cached copy is cleared.

    Example: crm-tui clear-cache --source brivity --json
    """
    imported = run(rt.writable_store(loaded=False).clear(source))
    message = f"Cache cleared for {source}" if source else "Cache cleared for all sources"
    if imported:
        message += f" ({imported} imported record(s) too: import their files again)"
    return Reply({"success": True, "message": message}, lambda: click.echo(message))


COMMANDS: tuple[click.Command, ...] = (
    status,
    cached_data,
    _records_command("contacts"),
    _records_command("deals"),
    search,
    clear_cache,
)
