"""`crm-tui sync`: once, or `--watch` every interval, each run sending the outbox first."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_CONFIG, EXIT_USAGE, CliError
from crm_tui.cli.options import SOURCE_CHOICE, declared_columns
from crm_tui.cli.outbox import outbox_summary, send_outbox
from crm_tui.cli.runtime import Engine, Runtime, run
from crm_tui.cli.sync_report import sync_exit_code, sync_payload, sync_table
from crm_tui.config import DISPLAY_NAMES
from crm_tui.models import RecordKind, utc_now
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.store import CacheStore
    from crm_tui.store.outbox import OutboxEntry
    from crm_tui.team.worker import TeamSync


def _progress_printer(store: CacheStore) -> Callable[[], None]:
    """A one-line progress display on stderr, for terminals only."""
    if not sys.stderr.isatty():
        return lambda: None

    def show(_change: Any) -> None:
        parts = []
        for name, s in store.statuses().items():
            if s.progress is not None:
                of = f"/{s.progress.total}" if s.progress.total else ""
                parts.append(f"{name} {s.progress.stream} {s.progress.records}{of}")
        if parts:
            sys.stderr.write("\r\x1b[K" + "  ".join(parts))
            sys.stderr.flush()

    unsubscribe = store.subscribe(show)

    def done() -> None:
        unsubscribe()
        sys.stderr.write("\r\x1b[K")

    return done


def _say_when_waiting(store: CacheStore) -> None:
    """One line on stderr each time a sync starts waiting for another process: a cron
    log then says why a run took longer."""
    said: dict[str, str | None] = {}

    def show(_change: Any) -> None:
        for name, status in store.statuses().items():
            who = status.waiting_for
            if who and said.get(name) != who:
                prefix = "\r\x1b[K" if sys.stderr.isatty() else ""
                click.echo(f"{prefix}{DISPLAY_NAMES.get(name, name)}: waiting for {who}", err=True)
            said[name] = who

    store.subscribe(show)


@click.command("sync")
@click.argument("sources", nargs=-1, type=SOURCE_CHOICE)
@click.option("--watch", is_flag=True, help="Keep running, syncing every interval.")
@click.option("--interval", type=click.FloatRange(min=0.05), help="Minutes between runs.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="When another process is syncing a stream, skip it and exit 5 instead of waiting.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Read every stream in full (a reconcile), not only what changed since the last sync.",
)
@click.option(
    "--team",
    type=click.Path(path_type=Path, file_okay=False),
    help="Sync every person with a USER.env (their keys) in this folder: a team's worker.",
)
@headless()
def sync(
    rt: Runtime,
    sources: tuple[str, ...],
    watch: bool,
    interval: float | None,
    no_wait: bool,
    full: bool,
    team: Path | None,
) -> Reply | None:
    """Sync the named sources, or every enabled one (guide: POST sync-all, sync/SOURCE).

    Writes waiting in their outbox (crm-tui edit, note, lead create) are sent first, so the
    sync reads back the vendor's new values; how each ended is under `outbox`.

    A stream whose vendor can say what changed (Follow Up Boss people, HubSpot, Pipedrive)
    is read from its watermark on; in full the first time, when its last full read is older
    than CRM_FULL_SYNC_HOURS, and with --full. The others are read in full every time.

    One process writes a stream at a time: a sync that finds another process syncing the
    same stream waits for it (and says so on stderr), or with --no-wait skips it and exits 5.

    With --team DIR, one worker syncs everyone with a DIR/USER.env into the team database
    (README: Team); their apps then need no keys of their own.

    Example: crm-tui sync followupboss --json; crm-tui sync --full; crm-tui sync --watch
    """
    if team is not None:
        if sources:
            raise click.UsageError("--team syncs every source of every person: name none")
        return _sync_team(rt, team, watch, interval, full)
    # The records are not read: a sync writes them, and an incremental one a few of
    # them (reading a million would be most of its time). Statuses are.
    store = rt.writable_store(loaded=False)
    store.load_statuses_sync()
    engine = Engine(rt, store, wait=not no_wait)
    _say_when_waiting(store)
    names = list(sources) or None
    if watch:
        run(_watch(rt, engine, names, _watch_minutes(rt, interval)))
        return None
    sent, reports, settled = run(_sync_once(rt, engine, names, full))
    payload = sync_payload(rt, reports, sources)
    payload["outbox"] = [entry.to_json() for entry in sent]
    payload["artifacts"] = settled
    code = 0 if payload["success"] else sync_exit_code(reports)
    return Reply(payload, lambda: sync_table(reports, sent), code)


def _sync_team(
    rt: Runtime, folder: Path, watch: bool, interval: float | None, full: bool
) -> Reply | None:
    from crm_tui.team.worker import TeamSync

    rt.writable_store(loaded=False)  # a read-only database fails here, before any request
    team = TeamSync(rt.settings, rt.database, folder)
    for user, why in team.skipped.items():
        click.echo(f"warning: {user} is not synced: {why}", err=True)
    for said in team.warnings:
        click.echo(f"warning: {single_line(said)}", err=True)
    if watch:
        run(_watch_team(team, _watch_minutes(rt, interval)))
        return None

    async def once() -> dict[str, dict[str, Any]]:
        try:
            return await team.sync_once(full)
        finally:
            await team.aclose()

    found = run(once())
    users = {user: sync_payload(rt, reports, ()) for user, reports in found.items()}
    payload = {
        "success": all(u["success"] for u in users.values()) and not team.skipped,
        "users": users,
        "skipped": team.skipped,
    }
    failed = [reports for user, reports in found.items() if not users[user]["success"]]
    code = max((sync_exit_code(reports) for reports in failed), default=0)
    if team.skipped:  # the others were synced; the run still asks for someone's attention
        code = max(code, EXIT_CONFIG)

    def human() -> None:
        for user, reports in found.items():
            click.echo(f"{user}:")
            sync_table(reports)

    return Reply(payload, human, code)


async def _watch_team(team: TeamSync, minutes: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, team.stop, stop)

    def log_run(user: str, reports: dict[str, Any]) -> None:
        click.echo(f"{utc_now()} {user}:", err=True)
        _log_run(reports)

    try:
        await team.watch(minutes, stop, log_run)
    finally:
        await team.aclose()


def _watch_minutes(rt: Runtime, interval: float | None) -> float:
    minutes = interval or rt.settings.crm_sync_interval_minutes
    if not minutes:
        raise CliError(
            "--watch needs an interval",
            "use --interval or CRM_SYNC_INTERVAL_MINUTES",
            EXIT_USAGE,
        )
    return minutes


async def _sync_once(
    rt: Runtime, engine: Engine, names: list[str] | None, full: bool
) -> tuple[list[OutboxEntry], dict[str, Any], dict[str, Any]]:
    """The outbox of the sources sent first (so the sync reads their new values back),
    then the sync, then the artifacts of the streams it committed: what was sent, each
    source's report, and which streams' artifacts were made ready (in how long)."""
    async with engine as syncer:
        done = lambda: None  # noqa: E731
        if not rt.json:
            done = _progress_printer(syncer.store)
        try:
            sent = await send_outbox(syncer, names)
            reports = await syncer.sync_all(names, full=full)
        finally:
            done()
        return sent, reports, await _settled(rt, syncer.store, reports)


async def _settled(rt: Runtime, store: CacheStore, reports: dict[str, Any]) -> dict[str, Any]:
    """The artifacts of the streams the run committed (records, search segments, duplicate
    keys), ready for the next start, which then maps them in rather than building them."""
    from crm_tui.store.settling import settle_all

    started = time.perf_counter()
    settled = await settle_all(store, committed_streams(reports))
    await asyncio.to_thread(_ready_for_start, rt, store, settled)
    return {
        "settled": [f"{source} {kind}" for kind, source in settled],
        "seconds": round(time.perf_counter() - started, 3),
    }


def _ready_for_start(rt: Runtime, store: CacheStore, streams: list[tuple[RecordKind, str]]) -> None:
    """The search segments and duplicate keys of `streams`, saved for their rows now."""
    from crm_tui.dedup import DuplicateFinder
    from crm_tui.search.stored import save_segments

    save_segments(store, streams, declared_columns())
    contacts = [source for kind, source in streams if kind == "contacts"]
    DuplicateFinder(rt.settings.crm_phone_region, store.shelf).save_keys(store, contacts)


def committed_streams(reports: dict[str, Any]) -> list[tuple[RecordKind, str]]:
    """The streams whose rows a run's commit changed: read in full (the stream replaced),
    or with records written or removed."""
    return [
        (kind, name)
        for name, report in reports.items()
        for kind, stream in report.streams.items()
        if stream.success and (stream.mode == "full" or stream.written or stream.deleted)
    ]


def _log_run(reports: dict[str, Any]) -> None:
    for name, report in reports.items():
        click.echo(
            f"{utc_now()} {name}: {report.outcome} "
            + ", ".join(
                f"{k} {s.written} ({s.mode}, {s.deleted} deleted)"
                for k, s in report.streams.items()
            ),
            err=True,
        )


async def _watch(rt: Runtime, engine: Engine, names: list[str] | None, minutes: float) -> None:
    from crm_tui.sync.scheduler import Scheduler

    async with engine as syncer:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            for name in syncer.running():  # cancelled work keeps the previous data
                syncer.cancel(name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        async def send_first() -> None:
            summary = outbox_summary(await send_outbox(syncer, names))
            if summary:
                click.echo(f"{utc_now()} {single_line(summary)}", err=True)

        async def ready_for_start(reports: dict[str, Any]) -> None:
            await _settled(rt, syncer.store, reports)

        scheduler = Scheduler(
            syncer,
            minutes,
            on_run=_log_run,
            sources=names,
            before_run=send_first,
            after_run=ready_for_start,
        )
        try:
            await scheduler.run_forever(stop)
        except asyncio.CancelledError:
            if not stop.is_set():
                raise


COMMANDS: tuple[click.Command, ...] = (sync,)
