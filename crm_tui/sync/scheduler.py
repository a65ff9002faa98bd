"""Scheduled syncs every CRM_SYNC_INTERVAL_MINUTES, skipping sources still running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from crm_tui.models import SyncReport
from crm_tui.store.cache import CacheStore
from crm_tui.sync.engine import SyncEngine
from crm_tui.timefmt import UTC_STAMP

log = logging.getLogger(__name__)


def announce_next_run(store: CacheStore, sources: Iterable[str], seconds: float) -> datetime:
    """Stamp each source's status with when the next scheduled run starts, `seconds` from
    now (the Status screen's "Next run"); returns that time."""
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    stamp = when.strftime(UTC_STAMP)
    for name in sources:
        store.update_status(name, next_run=stamp)
    return when


class Scheduler:
    def __init__(
        self,
        engine: SyncEngine,
        interval_minutes: float,
        on_run: Callable[[dict[str, SyncReport]], None] | None = None,
        sources: list[str] | None = None,
        before_run: Callable[[], Awaitable[None]] | None = None,
        after_run: Callable[[dict[str, SyncReport]], Awaitable[object]] | None = None,
    ) -> None:
        if interval_minutes <= 0:
            raise ValueError("interval must be positive")
        self.engine = engine
        self.sources = sources  # None: every enabled source
        self.before_run = before_run  # e.g. send the outbox, so the run reads the new values
        self.interval = interval_minutes * 60
        self.on_run = on_run
        self.after_run = after_run  # e.g. leave the next start its artifacts ready
        self.next_run: datetime | None = None
        self.runs = 0

    def _announce_next(self) -> None:
        names = self.sources or self.engine.enabled()
        self.next_run = announce_next_run(self.engine.store, names, self.interval)

    async def run_once(self) -> dict[str, SyncReport]:
        if self.before_run is not None:
            try:
                await self.before_run()
            except Exception:  # what comes before must never stop the sync itself
                log.exception("[scheduler] before the run")
        reports = await self.engine.sync_all(self.sources)  # running ones are skipped
        self.runs += 1
        for name, report in reports.items():
            log.info("[scheduler] %s: %s", name, report.outcome)
        if self.on_run is not None:
            self.on_run(reports)
        if self.after_run is not None:
            try:
                await self.after_run(reports)
            except Exception:  # what comes after must never stop the next run
                log.exception("[scheduler] after the run")
        return reports

    async def run_forever(self, stop: asyncio.Event, run_first: bool = True) -> None:
        """Run now (unless told otherwise), then every interval until `stop` is set."""
        if run_first and not stop.is_set():
            await self.run_once()
        while not stop.is_set():
            self._announce_next()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                await self.run_once()
