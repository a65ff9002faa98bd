"""The sync engine: runs sources, isolates streams, quarantines bad records, audits every run.

A stream's records are collected in memory and handed to the store only when the whole
stream arrived; the store commits them to SQLite and only then swaps its memory. A failed or
cancelled stream therefore leaves the previous good data exactly as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from crm_tui.config import ConfigError, Settings
from crm_tui.custom_columns import Column
from crm_tui.faults import fault_point
from crm_tui.logs import SecretMasker
from crm_tui.models import (
    Failure,
    Outcome,
    Progress,
    Record,
    RecordKind,
    StreamReport,
    SyncReport,
    SyncState,
    failure_of,
    record_id,
    utc_now,
)
from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.errors import AuthError, InvalidRecord, RateLimited, SourceError
from crm_tui.sources.http import StreamStats, current_stats
from crm_tui.sources.mapping import INVALID_SHARE, Mappings, mapping_gone_wrong
from crm_tui.sources.mapping_file import mappings_path, read_mappings
from crm_tui.sources.messages import problem_of
from crm_tui.sources.pagination import Page
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store.cache import CacheStore
from crm_tui.store.errors import StoreError, StreamBusy
from crm_tui.store.leases import Holder, Lease
from crm_tui.sync.delta import Delta, latest_change
from crm_tui.sync.shown import WORKER_SYNCS, worker_syncs
from crm_tui.timefmt import UTC_STAMP, parse_utc
from crm_tui.tuning import gc_paused

log = logging.getLogger(__name__)

# Longest stretch of mapping between two yields to the event loop. The server waits for our
# next request while the prefetching task waits for the loop, so this is latency added to
# every page: a fixed count of records between yields made syncs measurably slower
# (benchmarks/sync_bench.py).
_MAP_SLICE_SECONDS = 0.0001
# Rows written to the database per transaction while a refresh runs: each hand-over to the
# writer thread costs the event loop a switch of the interpreter lock.
_STAGE_BATCH = 1000


async def prefetch(pages: AsyncIterator[Page], depth: int = 2) -> AsyncIterator[Page]:
    """Fetch the next page while this one is mapped: the server works while we do."""
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=depth)

    async def pump() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, who raises it in its frame
            await queue.put(exc)
            return
        await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


class AlreadySyncing(Exception):
    def __init__(self, source: str) -> None:
        super().__init__(f"{source} is already syncing")
        self.source = source


@dataclass(frozen=True, slots=True)
class ConnectionResult:
    source: str
    ok: bool
    message: str
    checked_at: str
    #: Failed on its settings or credentials (fix the config), not on the network or server.
    config_error: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "message": self.message,
            "checkedAt": self.checked_at,
        }


def guide_sync_result(
    reports: Mapping[str, SyncReport], message: str = "Sync initiated for all enabled CRM sources"
) -> dict[str, Any]:
    """The integration guide's sync-all response."""
    return {
        "success": all(r.success for r in reports.values()),
        "message": message,
        "results": {name: report.to_guide() for name, report in reports.items()},
        "synced_at": utc_now(),
    }


class SyncEngine:
    def __init__(
        self,
        settings: Settings,
        store: CacheStore,
        *,
        masker: SecretMasker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connectors: Mapping[str, type[Source]] | None = None,
        invalid_share: float = INVALID_SHARE,
        wait: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.masker = masker or SecretMasker(settings.secret_values())
        self.connectors = dict(connectors or CONNECTORS)
        self.invalid_share = invalid_share
        self.wait = wait  # for a stream another process is writing; else it fails as busy
        self._mappings_seen = _file_stamp(mappings_path())
        mappings = _mappings()
        self._ctx = SourceContext(
            settings,
            settings.user_id,
            self.masker,
            store.db,
            transport,
            mappings.overrides,
            mappings.columns,
        )
        self._sources: dict[str, Source] = {}
        self._running: dict[str, asyncio.Task[Any]] = {}
        self.last_tests: dict[str, ConnectionResult] = {}

    # -- sources -------------------------------------------------------------------------

    @property
    def mappings(self) -> Mappings:
        """mappings.toml as last read: what Browse's custom columns come from."""
        return Mappings(self._ctx.overrides, self._ctx.columns)

    @property
    def columns(self) -> dict[str, Column]:
        """The custom columns of mappings.toml as last read (by name, in file order)."""
        return dict(self._ctx.columns)

    async def reload_mappings(self) -> None:
        """Read mappings.toml again now (the Mapping screen saved it). Raises ConfigError,
        the maps in use unchanged, when the file has a problem."""
        self._read_mappings(strict=True)

    def follow_mappings(self) -> None:
        """Read mappings.toml again when it changed since it was read: another process
        (`crm-tui map`, another app's Mapping screen) saved it, and a sync, webhook or edit
        mapping with the old rules would write the old mapping back over its re-map. A
        file with a problem is logged once and the last good maps stay in use."""
        if _file_stamp(mappings_path()) != self._mappings_seen:
            self._read_mappings(strict=False)

    def _read_mappings(self, *, strict: bool) -> None:
        seen = _file_stamp(mappings_path())
        try:
            mappings = _mappings()
        except ConfigError as exc:
            if strict:
                raise
            self._mappings_seen = seen
            log.warning("%s; the maps read before stay in use", self.masker(str(exc)))
            return
        self._mappings_seen = seen
        self._ctx = replace(self._ctx, overrides=mappings.overrides, columns=mappings.columns)
        for source in self._sources.values():  # in place: a send or a fetch may be using it
            source.use_mappings(mappings.overrides, mappings.columns)

    def enabled(self) -> list[str]:
        return [n for n in self.settings.enabled_sources() if n in self.connectors]

    def source(self, name: str) -> Source:
        if name not in self.connectors:
            raise ConfigError(f"unknown source {name!r}; known: {', '.join(self.connectors)}")
        config = self.settings.source_config(name)
        if not config.enabled:
            raise ConfigError(
                f"{config.display_name} is not configured: missing " + ", ".join(config.missing)
            )
        self.follow_mappings()
        if name not in self._sources:
            self._sources[name] = self.connectors[name](self._ctx)
        return self._sources[name]

    def is_running(self, name: str) -> bool:
        return name in self._running

    def running(self) -> list[str]:
        return list(self._running)

    def cancel(self, name: str) -> bool:
        task = self._running.get(name)
        if task is None:
            return False
        task.cancel()
        return True

    def stale_sources(self, now: datetime | None = None) -> list[str]:
        """Enabled sources never synced, or last synced longer ago than the cache TTL."""
        ttl = timedelta(minutes=self.settings.crm_cache_ttl_minutes)
        now = now or datetime.now(UTC)
        stale = []
        for name in self.enabled():
            last = self.store.status(name).last_sync
            if last is None or datetime.fromisoformat(last.replace("Z", "+00:00")) + ttl < now:
                stale.append(name)
        return stale

    async def aclose(self) -> None:
        """Running syncs cancelled, once (a second cancel would cut short the cleanup that
        ends their runs and releases their rows), and waited for."""
        here = asyncio.current_task()
        tasks = [t for t in self._running.values() if t is not here]
        for task in tasks:
            if not task.cancelling():
                task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        for source in self._sources.values():
            await source.aclose()
        self._sources.clear()

    # -- runs ----------------------------------------------------------------------------

    async def sync_all(
        self, names: Iterable[str] | None = None, *, full: bool = False
    ) -> dict[str, SyncReport]:
        """Every enabled source (or `names`) concurrently; one already running is skipped.
        `full` reads every stream in full (a reconcile), even those due an incremental."""
        wanted = list(names) if names is not None else self.enabled()
        for name in wanted:
            self._syncable(name)  # unknown or disabled: fail before anything starts
        todo = [n for n in wanted if not self.is_running(n)]
        results = await asyncio.gather(*(self.sync_source(n, full=full) for n in todo))
        return dict(zip(todo, results, strict=True))

    def _syncable(self, name: str) -> Source:
        """The source to sync; in a team database without its keys here, the error says
        the worker syncs it (its edits, though, need the keys: `source` says so)."""
        if name in self.connectors and worker_syncs(self.settings, name):
            display = self.settings.source_config(name).display_name
            raise ConfigError(f"{display}: {WORKER_SYNCS} (crm-tui sync --team, on its host)")
        return self.source(name)

    async def sync_source(self, name: str, *, full: bool = False) -> SyncReport:
        source = self._syncable(name)
        if name in self._running:
            raise AlreadySyncing(name)
        task = asyncio.current_task()
        assert task is not None
        self._running[name] = task
        try:
            return await self._run(source, full)
        finally:
            self._running.pop(name, None)

    async def _run(self, source: Source, full: bool = False) -> SyncReport:
        name, display = source.name, source.display_name
        report = SyncReport(source=name)
        db = self.store.db
        report.run_id = await self.store.in_writer(
            db and db.start_run, self.store.user_id, name, report.started_at
        )
        self.store.update_status(
            name, state=SyncState.SYNCING, progress=Progress(), last_error=None, retry_at=None
        )
        log.info("[%s] Starting %s sync...", display, display)
        try:
            for stream in source.streams():
                report.streams[stream] = await self._run_stream(source, stream, report.run_id, full)
        except asyncio.CancelledError:
            report.outcome = Outcome.CANCELLED
            report.error = "Sync cancelled; previous data kept"
            await self._finish(source, report)
            raise
        outcomes = {s.outcome for s in report.streams.values()}
        if outcomes <= {Outcome.SUCCESS}:
            report.outcome = Outcome.SUCCESS
        elif outcomes == {Outcome.SKIPPED}:
            report.outcome = Outcome.SKIPPED
        elif Outcome.SUCCESS in outcomes:
            report.outcome = Outcome.PARTIAL
        else:
            report.outcome = Outcome.FAILED
        # one problem said once: streams refused for the same key do not repeat it
        failed = any(s.error for s in report.streams.values())
        report.error = problem_of(report) if failed else None
        await self._finish(source, report)
        return report

    def _waiting(self, source: Source, holder: Holder) -> None:
        """Another process holds a stream of this source: say who, once per holder."""
        who = holder.describe()
        if self.store.status(source.name).waiting_for != who:
            log.info("[%s] waiting for %s", source.display_name, who)
            self.store.update_status(source.name, state=SyncState.WAITING, waiting_for=who)

    async def _finish(self, source: Source, report: SyncReport) -> None:
        report.ended_at = utc_now()
        changes: dict[str, Any] = {"progress": None, "last_error": report.error}
        changes["waiting_for"] = None
        skipped = report.outcome is Outcome.SKIPPED
        if skipped:  # another process is syncing it: its status is the one to keep
            changes.update(state=SyncState.IDLE, last_error=None)
        elif report.outcome is Outcome.CANCELLED:  # a person's choice, not an error
            changes.update(state=SyncState.IDLE)
            del changes["last_error"]
        elif report.outcome is Outcome.SUCCESS:
            changes.update(state=SyncState.IDLE, last_sync=report.ended_at)
        else:
            limited = [s for s in report.streams.values() if s.failure is Failure.RATE_LIMITED]
            changes["state"] = SyncState.RATE_LIMITED if limited else SyncState.ERROR
            if report.outcome is Outcome.PARTIAL:
                changes["last_sync"] = report.ended_at
            client = source.client_in_use  # never build one here (a CSV folder has none)
            if limited and client is not None:
                changes["retry_at"] = client.rate_limited_until
        self.store.update_status(source.name, **changes)
        await self._save_rate(source)
        if not skipped:
            await self.store.save_status(source.name)
        if report.run_id is not None and self.store.db is not None:
            await self.store.in_writer(self.store.db.finish_run, report.run_id, report)

    def _progress(
        self, source: Source, stream: RecordKind, report: StreamReport, total: int | None
    ) -> None:
        """After each page: how far the stream is, and the rate budget as the vendor's
        last answer put it (so Status shows it while a long sync spends it)."""
        client = source.client_in_use
        changes: dict[str, Any] = {"progress": Progress(stream, report.read, report.pages, total)}
        reading = client.budget.reading() if client is not None else None
        if reading is not None:
            changes["rate"] = reading
        self.store.update_status(source.name, **changes)

    async def _save_rate(self, source: Source) -> None:
        """The rate budget the vendor reported last: on Status here, and in the database
        for the other processes' Status."""
        client = source.client_in_use
        reading = client.budget.reading() if client is not None else None
        if reading is None:
            return
        self.store.update_status(source.name, rate=reading)
        db = self.store.db
        if db is not None and not db.read_only:
            await self.store.in_writer(db.save_rate, self.store.user_id, source.name, reading)

    def _too_many_invalid(self, invalid: int, read: int) -> bool:
        return mapping_gone_wrong(invalid, read, self.invalid_share)

    async def _run_stream(
        self, source: Source, stream: RecordKind, run_id: int | None, full: bool = False
    ) -> StreamReport:
        """One stream under its lease, read in full or from its watermark on; audited, and
        whatever goes wrong leaves the stream's committed rows as they were."""
        name, display = source.name, source.display_name
        report = StreamReport(stream)
        db = self.store.db
        stream_run = await self.store.in_writer(
            db and db.start_run, self.store.user_id, name, report.started_at, run_id, stream
        )
        bad: list[tuple[str, Any]] = []
        async with self._audited(source, report, stream_run, bad):
            fault_point(f"lease:{name}:{stream}")
            async with self.store.lease(
                name, stream, "sync", wait=self.wait, on_wait=partial(self._waiting, source)
            ) as lease:
                self.follow_mappings()  # a re-map committed before the lease: its maps
                if self.store.status(name).waiting_for is not None:
                    self.store.update_status(name, state=SyncState.SYNCING, waiting_for=None)
                since = None if full else await self._since(source, stream)
                if since is None:
                    await self._refresh(source, stream, lease, report, bad)
                else:
                    await self._catch_up(source, stream, since, lease, report, bad)
            log.info(
                "[%s] Successfully synced %d %s (%s)", display, report.written, stream, report.mode
            )
        return report

    @asynccontextmanager
    async def _audited(
        self,
        source: Source,
        report: StreamReport,
        run_id: int | None,
        bad: list[tuple[str, Any]],
    ) -> AsyncIterator[None]:
        """A stream's run, whatever happens in it: a failure goes into its report
        (cancellation goes on), then its counters, its quarantine and its audit row."""
        stats = StreamStats()
        token = current_stats.set(stats)
        try:
            yield
        except BaseException as exc:
            self._failed(source, report, exc)
        finally:
            current_stats.reset(token)
            report.retries, report.requests = stats.retries, stats.requests
            report.quarantined = len(bad)
            report.ended_at = utc_now()
            await self._audit(source, run_id, report, bad)

    def _failed(self, source: Source, report: StreamReport, exc: BaseException) -> None:
        """A stream's failure into its report; cancellation and interpreter exits go on."""
        display, stream = source.display_name, report.stream
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            report.outcome = Outcome.CANCELLED
            report.error = "cancelled"
            raise exc
        report.error_class, report.failure = type(exc).__name__, failure_of(exc)
        if isinstance(exc, StreamBusy):
            report.outcome = Outcome.SKIPPED
            report.error = f"busy: {exc.details}"
            log.info("[%s] %s skipped: %s", display, stream, exc.details)
            return
        report.outcome = Outcome.FAILED
        if isinstance(exc, SourceError | StoreError):
            report.error = self.masker(str(exc))
            details = self.masker(exc.details or exc.error)
            log.warning("[%s] Failed to fetch %s: %s", display, stream, details)
            return
        # a connector bug must not take down the other streams
        report.error = self.masker(f"Failed to fetch {stream}: {type(exc).__name__}: {exc}")
        log.error("[%s] Failed to fetch %s", display, stream, exc_info=exc)

    async def _audit(
        self,
        source: Source,
        stream_run: int | None,
        report: StreamReport,
        bad: list[tuple[str, Any]],
    ) -> None:
        db = self.store.db
        if db is None:
            return
        masked = [(self.masker(reason), raw) for reason, raw in bad]
        user, name, stream = self.store.user_id, source.name, report.stream
        await self.store.in_writer(
            db.add_quarantine, user, stream_run, name, stream, masked, report.ended_at
        )
        await self.store.in_writer(db.finish_run, stream_run, report)

    async def _since(self, source: Source, stream: RecordKind) -> str | None:
        """Where an incremental read of `stream` starts (its watermark less the overlap), or
        None when the stream is to be read in full: the vendor cannot say what changed, it
        was never read in full, or its last full read is older than CRM_FULL_SYNC_HOURS."""
        db = self.store.db
        if db is None or not source.incremental(stream):
            return None
        mark = await self.store.in_writer(db.bookmark, self.store.user_id, source.name, stream)
        if not mark.watermark or not mark.full_at:
            return None
        every = timedelta(hours=self.settings.crm_full_sync_hours)
        if parse_utc(mark.full_at) + every <= datetime.now(UTC):  # type: ignore[operator]
            return None
        overlap = timedelta(seconds=self.settings.crm_sync_overlap_seconds)
        start = parse_utc(mark.watermark)
        return (start - overlap).strftime(UTC_STAMP) if start else None

    def _too_many(self, stream: RecordKind, invalid: int, read: int) -> None:
        if self._too_many_invalid(invalid, read):
            raise SourceError(
                f"Failed to fetch {stream}",
                f"{invalid} of {read} records invalid"
                f" (more than {self.invalid_share:.0%}); previous data kept",
            )

    async def _refresh(
        self,
        source: Source,
        stream: RecordKind,
        lease: Lease | None,
        report: StreamReport,
        bad: list[tuple[str, Any]],
    ) -> None:
        """A full read, staged as a new generation and swapped in at its end; the
        stream's watermark becomes the latest change it saw."""
        db, user, name = self.store.db, self.store.user_id, source.name
        generation = await self.store.draw_generation(name, stream)
        collected: dict[str, Record] = {}
        committed = False
        try:
            await self._read_pages(source, stream, generation, report, collected, bad)
            self._too_many(stream, len(bad), report.read)
            if source.incremental(stream):
                latest = await asyncio.to_thread(latest_change, collected.values())
                report.watermark = _no_later(latest, report.started_at)
            # The report says what the commit wrote, as the database counted it.
            report.written = await self.store.commit_staged(
                name, stream, generation, collected, lease, report.watermark
            )
            committed = True
        finally:
            if not committed and db is not None and generation is not None:
                await asyncio.shield(
                    self.store.in_writer(db.drop_staged, user, name, stream, generation)
                )

    async def _catch_up(
        self,
        source: Source,
        stream: RecordKind,
        since: str,
        lease: Lease | None,
        report: StreamReport,
        bad: list[tuple[str, Any]],
    ) -> None:
        """What changed since `since`, applied to the stream's rows with its watermark in
        one commit. A record read twice (the overlap, a change during the read) counts once:
        the last version read wins, a deletion read after it removes it."""
        report.mode = "incremental"
        delta = Delta()
        synced_at = utc_now()
        async for page in prefetch(source.read_changes(stream, since)):
            report.pages += 1
            for raw in page.records:
                report.read += 1
                try:
                    delta.upsert(source.map_record(stream, raw, synced_at))
                except InvalidRecord as exc:
                    bad.append((str(exc), raw))
            for raw in page.gone:
                delta.delete(source.record_id(stream, raw))
            self._progress(source, stream, report, page.total)
            fault_point(f"page:{source.name}:{stream}")
            await asyncio.sleep(0)
        self._too_many(stream, len(bad), report.read)
        report.duplicates = delta.duplicates
        upserts = list(delta.upserts.values())
        report.watermark = _no_later(delta.latest, report.started_at)
        report.deleted = await self.store.commit_changes(
            source.name, stream, upserts, list(delta.deletes), lease, report.watermark
        )
        report.written = len(upserts)

    # -- webhooks ------------------------------------------------------------------------

    async def apply_remote_changes(
        self,
        name: str,
        stream: RecordKind,
        changed: Sequence[str],
        deleted: Sequence[str],
    ) -> StreamReport:
        """What a webhook named: the `changed` records read again from the vendor (those it
        no longer has are deleted) and the `deleted` ones removed, committed under the
        stream's lease in one transaction, audited as a "webhook" run. Vendor and store
        failures are in the report, never raised; cancellation is."""
        source = self.source(name)
        report = StreamReport(stream, mode="webhook")
        db = self.store.db
        run = await self.store.in_writer(
            db and db.start_run,
            self.store.user_id,
            name,
            report.started_at,
            None,
            f"webhook:{stream}",
        )
        bad: list[tuple[str, Any]] = []
        try:
            async with (
                self._audited(source, report, run, bad),
                self.store.lease(name, stream, "webhook") as lease,
            ):
                self.follow_mappings()
                await self._fetch_named(source, stream, changed, deleted, lease, report, bad)
        finally:
            await self._save_rate(source)
        return report

    async def _fetch_named(
        self,
        source: Source,
        stream: RecordKind,
        changed: Sequence[str],
        deleted: Sequence[str],
        lease: Lease | None,
        report: StreamReport,
        bad: list[tuple[str, Any]],
    ) -> None:
        found, gone = await source.fetch_records(stream, changed)
        delta = Delta()
        synced_at = utc_now()
        for raw in found:
            report.read += 1
            try:
                delta.upsert(source.map_record(stream, raw, synced_at))
            except InvalidRecord as exc:
                bad.append((str(exc), raw))
        for remote_id in [*gone, *deleted]:
            delta.delete(record_id(source.name, remote_id))
        upserts = list(delta.upserts.values())
        report.deleted = await self.store.commit_changes(
            source.name, stream, upserts, list(delta.deletes), lease, None
        )
        report.written = len(upserts)

    async def _read_pages(
        self,
        source: Source,
        stream: RecordKind,
        generation: int | None,
        report: StreamReport,
        collected: dict[str, Record],
        bad: list[tuple[str, Any]],
    ) -> None:
        """Every page of a stream, mapped into `collected` (invalid records into `bad`) and
        staged as `generation` in the background while the next pages are fetched; one
        batch at a time, so rows land in arrival order (the last duplicate wins)."""
        name, db, synced_at = source.name, self.store.db, utc_now()
        staging: asyncio.Future[Any] | None = None
        unstaged: list[Record] = []
        map_record, clock = source.map_record, time.perf_counter
        try:
            # A refresh builds a stream's worth of records; the collector would walk them
            # again and again as they pile up.
            with gc_paused():
                async for page in prefetch(source.read(stream)):
                    report.pages += 1
                    yielded = clock()
                    for raw in page.records:
                        if clock() - yielded > _MAP_SLICE_SECONDS:
                            await asyncio.sleep(0)
                            yielded = clock()
                        report.read += 1
                        try:
                            record = map_record(stream, raw, synced_at)
                        except InvalidRecord as exc:
                            bad.append((str(exc), raw))
                            continue
                        if record.id in collected:
                            report.duplicates += 1
                            # to the end, as staging's INSERT OR REPLACE moves its row: the
                            # records stay in the order of the rows (`CacheStore.settle`)
                            del collected[record.id]
                        collected[record.id] = record
                        unstaged.append(record)
                    if len(unstaged) >= _STAGE_BATCH:
                        if staging is not None:
                            await staging
                        staging = asyncio.ensure_future(
                            self.store.in_writer(db and db.stage, stream, generation, unstaged)
                        )
                        unstaged = []
                    self._progress(source, stream, report, page.total)
                    fault_point(f"page:{name}:{stream}")
            if staging is not None:
                await staging
                staging = None
            await self.store.in_writer(db and db.stage, stream, generation, unstaged)
        finally:
            if staging is not None:  # a batch still being staged: let it land (it is dropped)
                await asyncio.shield(asyncio.gather(staging, return_exceptions=True))
            report.quarantined = len(bad)

    # -- file imports --------------------------------------------------------------------

    async def import_records(
        self,
        source: str,
        stream: RecordKind,
        file: str,
        batches: Iterable[list[Record]],
        invalid: list[tuple[str, Any]],
        read: int,
        duplicates: int,
    ) -> StreamReport:
        """An imported file's records, staged batch by batch as a generation of their own
        and made visible in one commit: all of the file or none of it. A sync never
        replaces them (see `Database.commit_import`). Audited like a sync. The store's
        memory is left as it was: a process that shows the cache reloads it."""
        db = self.store.db
        if db is None:
            raise ConfigError("importing needs the database")
        user = self.store.user_id
        report = StreamReport(stream, read=read, duplicates=duplicates, quarantined=len(invalid))
        run_id = await self.store.in_writer(
            db.start_run, user, source, report.started_at, None, f"import:{stream}"
        )
        generation = await self.store.draw_generation(source, stream)
        assert generation is not None  # a database is there (above)
        committed = False
        pending = iter(batches)
        try:
            # Parsing the file is CPU work: off the event loop, one batch at a time.
            while batch := await asyncio.to_thread(next, pending, None):
                await self.store.in_writer(db.stage, stream, generation, batch)
            report.written = await self.store.in_writer(
                db.commit_import, user, source, stream, generation, file
            )
            committed = True
        except Exception as exc:
            report.outcome = Outcome.FAILED
            report.error_class, report.failure = type(exc).__name__, failure_of(exc)
            report.error = self.masker(str(exc))
            raise
        finally:
            if not committed:
                await asyncio.shield(
                    self.store.in_writer(db.drop_staged, user, source, stream, generation)
                )
            report.ended_at = utc_now()
            await self.store.in_writer(
                db.add_quarantine, user, run_id, source, stream, invalid, report.ended_at
            )
            await self.store.in_writer(db.finish_run, run_id, report)
        return report

    # -- connection test -----------------------------------------------------------------

    async def test_connection(self, name: str) -> ConnectionResult:
        config_error = False
        try:
            source = self.source(name)
            message = await source.check()
            ok = True
        except ConfigError as exc:
            ok, message, config_error = False, str(exc), True
        except SourceError as exc:
            ok, message = False, self.masker(str(exc))
            config_error = isinstance(exc, AuthError)
        result = ConnectionResult(name, ok, message, utc_now(), config_error)
        self.last_tests[name] = result
        if name in self._sources:
            await self._save_rate(self._sources[name])
        return result


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a saved file from the one read before (a save replaces it by rename)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def _mappings() -> Mappings:
    return read_mappings()


def _no_later(latest: str | None, start: str) -> str | None:
    """A watermark never ahead of this run's start: a vendor clock running fast must not
    make the next run skip what changes meanwhile."""
    return min(latest, start) if latest is not None else None


def failed_report(name: str, error: str) -> SyncReport:
    """A run that could not start (already syncing, not configured), in the report's shape."""
    report = SyncReport(source=name, outcome=Outcome.FAILED, error=error)
    report.ended_at = report.started_at
    return report


__all__ = [
    "AlreadySyncing",
    "ConnectionResult",
    "RateLimited",
    "SyncEngine",
    "failed_report",
    "guide_sync_result",
]
