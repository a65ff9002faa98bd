"""The Pipeline's test data: the demo's records (synced once per session from the demo
servers, so every connector's mapping made them) and sync runs with fixed durations, so
that every chart has shape and every picture is the same each run."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from crm_tui.demo.csvfiles import write_demo_csvs
from crm_tui.demo.servers import DemoServers, start_demo_servers
from crm_tui.models import (
    KINDS,
    Outcome,
    RateReading,
    Record,
    RecordKind,
    SourceStatus,
    StreamReport,
    SyncReport,
)
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from tests.helpers.env import DEMO_CONTACTS, make_settings

#: "Now" for the Pipeline's charts: the demo's contacts were created up to mid-2026 and its
#: deals close from 2024 to early 2027, so every chart has shape around this day.
NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)

DEMO_SEED = 11  # the demo servers' seed (tests/conftest.py)
_SYNCED: dict[tuple[str, RecordKind], list[Record]] = {}


async def demo_records() -> dict[tuple[str, RecordKind], list[Record]]:
    """Every demo source's contacts and deals, as a sync maps them (once per session), from
    servers of their own: other tests change the session's demo servers' records."""
    if not _SYNCED:
        servers = start_demo_servers(contacts=DEMO_CONTACTS, seed=DEMO_SEED, fub_rate_limit=10_000)
        try:
            await _sync_into_cache(servers)
        finally:
            servers.stop()
    return _SYNCED


async def _sync_into_cache(servers: DemoServers) -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = {k.lower(): v for k, v in servers.env().items()}
        # Brivity's deals come from its transaction report, with its GCI column
        files = write_demo_csvs(Path(folder) / "imports", DEMO_CONTACTS, DEMO_SEED)
        env["brivity_transactions_csv"] = files["brivity_transactions"]
        settings = make_settings(Path(folder), crm_user_id="snap", **env)
        db = Database(settings.database_path)
        store = CacheStore("snap", db)
        engine = SyncEngine(settings, store)
        try:
            await engine.sync_all()
        finally:
            await engine.aclose()
        for kind in KINDS:
            for source in store.sources():
                records = store.records(kind, source)
                if records:
                    _SYNCED[(source, kind)] = [_as_snap(r) for r in records]
        db.close()


def _as_snap(record: Record) -> Record:
    record.synced_at = "2026-06-17T09:00:00Z"  # the sync's own time would differ per run
    return record


def fixed_runs(db: Database, user: str, sources: list[str], runs: int = 30) -> None:
    """`runs` sync runs per source, an hour apart, with durations, counts and a few
    failures that follow a pattern (the sparklines' shape)."""
    for n, source in enumerate(sources):
        for k in range(runs):
            hour = datetime(2026, 6, 16, tzinfo=UTC).timestamp() + (k - runs) * 3600
            started = datetime.fromtimestamp(hour, UTC)
            seconds = 4 + (k * (n + 3)) % 9 + n
            failed = (k + n) % 11 == 0
            report = SyncReport(
                source,
                Outcome.PARTIAL if failed else Outcome.SUCCESS,
                started_at=f"{started:%Y-%m-%dT%H:%M:%SZ}",
                ended_at=f"{datetime.fromtimestamp(hour + seconds, UTC):%Y-%m-%dT%H:%M:%SZ}",
                error="deals: timeout" if failed else None,
            )
            written = 200 + (k * 37 + n * 11) % 90
            report.streams["contacts"] = StreamReport("contacts", read=written, written=written)
            run = db.start_run(user, source, report.started_at)
            if failed:
                stream = db.start_run(user, source, report.started_at, run, "deals")
                db.finish_run(stream, StreamReport("deals", Outcome.FAILED, error="timeout"))
            db.finish_run(run, report)
        db.save_status(user, SourceStatus(source, last_sync="2026-06-16T00:00:00Z"))
        reading = RateReading(250, 180 - 17 * n, 10.0, None, "2026-06-16T00:00:00Z")
        db.save_rate(user, source, reading)


async def seed_demo(store: CacheStore) -> None:
    """The demo's records into `store`, and 30 fixed runs per source into its database."""
    records = await demo_records()
    for (source, kind), rows in records.items():
        await store.replace_stream(source, kind, rows)
    if store.db is not None:
        fixed_runs(store.db, store.user_id, sorted({s for s, _ in records}))
