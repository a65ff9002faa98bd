"""A sync's result: the guide's shape with each stream beside it, as JSON or a table, and
the exit code it ends with.

A stream's report keeps the class of the error that stopped it by name (it is stored with
the run); the names compared here come from the classes themselves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.errors import EXIT_BUSY, EXIT_CONFIG, EXIT_REMOTE
from crm_tui.cli.outbox import outbox_summary
from crm_tui.cli.output import table
from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import Failure, Outcome
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.cli.runtime import Runtime


def sync_exit_code(reports: dict[str, Any]) -> int:
    failures = {s.failure for r in reports.values() for s in r.streams.values()}
    if Failure.AUTH in failures:
        return EXIT_CONFIG
    return EXIT_BUSY if failures <= {Failure.BUSY, None} else EXIT_REMOTE


def sync_payload(rt: Runtime, reports: dict[str, Any], sources: tuple[str, ...]) -> dict[str, Any]:
    """The guide's sync result, with how each stream was read beside it under `streams`."""
    from crm_tui.sync.engine import guide_sync_result

    message = (
        "Sync initiated for all enabled CRM sources"
        if not sources
        else f"Sync completed for {', '.join(sources)}"
    )
    if all(r.outcome is Outcome.SKIPPED for r in reports.values()):
        message = "Sync skipped: another process is syncing it (run again, or drop --no-wait)"
    payload = guide_sync_result(reports, message)
    payload["streams"] = {
        name: {stream: _stream_json(s) for stream, s in report.streams.items()}
        for name, report in reports.items()
    }
    if not payload["success"]:
        payload.update(_sync_failure(rt, reports))
    return payload


def sync_table(reports: dict[str, Any], sent: Sequence[Any] = ()) -> None:
    from crm_tui.sources.messages import one_line

    rows = [
        (
            DISPLAY_NAMES.get(name, name),
            stream,
            s.mode,
            s.outcome,
            s.written,
            s.deleted,
            s.requests,
            one_line(s.error or ""),
        )
        for name, report in reports.items()
        for stream, s in report.streams.items()
    ]
    headers = ("SOURCE", "STREAM", "MODE", "OUTCOME", "RECORDS", "DELETED", "REQUESTS")
    table(rows, (*headers, "ERROR"))
    if sent:
        click.echo(single_line(outbox_summary(sent)))


def _stream_json(report: Any) -> dict[str, Any]:
    """How one stream was synced, beside the guide's result: mode, counts, watermark."""
    return {
        "mode": report.mode,
        "outcome": str(report.outcome),
        "read": report.read,
        "written": report.written,
        "deleted": report.deleted,
        "quarantined": report.quarantined,
        "requests": report.requests,
        "pages": report.pages,
        "watermark": report.watermark,
    }


def _sync_failure(rt: Runtime, reports: dict[str, Any]) -> dict[str, str]:
    """The failure shape's `error` and `details` beside the guide's sync result, so a script
    reads a failed sync the way it reads any other failure."""
    from crm_tui.sources.messages import one_line, problem_of

    streams = [
        (name, stream)
        for name, report in reports.items()
        for stream in report.streams.values()
        if stream.error
    ]
    auth = [(name, s) for name, s in streams if s.failure is Failure.AUTH]
    shown = auth or streams
    failing = dict.fromkeys(n for n, _ in shown)  # each source once, its problem once
    details = "; ".join(
        f"{DISPLAY_NAMES.get(n, n)}: {one_line(problem_of(reports[n]))}" for n in failing
    )
    if not shown:
        details = "; ".join(f"{n}: {r.error}" for n, r in reports.items() if r.error)
    busy = bool(streams) and all(s.failure is Failure.BUSY for _, s in streams)
    error = "Authentication failed" if auth else "Busy" if busy else "Sync failed"
    return {"error": error, "details": rt.masker(single_line(details))}
