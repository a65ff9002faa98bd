"""The worker: drains the inbox in order and applies what the webhooks announced.

A burst of webhooks becomes one `apply_remote_changes` call per source and stream: the ids
of every claimed event are merged, the last event about an id deciding whether it is
re-fetched or deleted. A row is done when every call it fed succeeded; otherwise it fails,
is retried after a growing delay, and is given up (`dead`) after `max_attempts` failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crm_tui.logs import SecretMasker
from crm_tui.models import Outcome, RecordKind, StreamReport
from crm_tui.store.owners import HEARTBEAT_SECONDS
from crm_tui.text import single_line
from crm_tui.webhooks.events import CHANGED, Action, changes
from crm_tui.webhooks.inbox import _ACTIVE_WORKERS, Claim, InboxRow, WebhookInbox

log = logging.getLogger(__name__)

_ERROR_CHARS = 500


class RemoteApplier(Protocol):
    """What the worker needs of the sync engine."""

    async def apply_remote_changes(
        self,
        source: str,
        stream: RecordKind,
        changed: Sequence[str],
        deleted: Sequence[str],
    ) -> StreamReport: ...


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_rows: int = 200  # inbox rows claimed (and merged into one round) at a time
    poll_seconds: float = 2.0  # for rows another process's receiver stored
    max_attempts: int = 5
    retry_base_seconds: float = 30.0  # then x4 each failure: 30 s, 2 min, 8 min, 32 min
    keep_done_days: float = 7.0
    stop_grace_seconds: float = 10.0  # a round still applying when asked to stop

    def retry_after(self, attempts: int) -> float:
        return 0.0 if attempts <= 0 else self.retry_base_seconds * 4 ** (attempts - 1)


@dataclass(slots=True)
class Batch:
    """One apply call: a source's stream, its ids (last action wins) and the rows behind it."""

    source: str
    stream: RecordKind
    ids: dict[str, Action] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)

    def split(self) -> tuple[list[str], list[str]]:
        changed = [i for i, action in self.ids.items() if action == CHANGED]
        return changed, [i for i, action in self.ids.items() if action != CHANGED]


def plan(rows: Sequence[InboxRow]) -> tuple[list[Batch], list[int]]:
    """The apply calls for `rows`, in the order their first event arrived, and the rows whose
    payload cannot be read at all (they can never succeed)."""
    batches: dict[tuple[str, str], Batch] = {}
    unreadable = []
    for row in rows:
        try:
            found = changes(row.source, json.loads(row.payload))
        except ValueError:
            unreadable.append(row.id)
            continue
        for change in found:
            batch = batches.setdefault(
                (change.source, change.stream), Batch(change.source, change.stream)
            )
            batch.ids.pop(change.remote_id, None)  # re-inserted last: the latest event's place
            batch.ids[change.remote_id] = change.action
            if not batch.rows or batch.rows[-1] != row.id:
                batch.rows.append(row.id)
    return list(batches.values()), unreadable


class InboxWorker:
    """Drains one user's inbox; `run()` until `stop()`, or `drain()` once."""

    def __init__(
        self,
        inbox: WebhookInbox,
        engine: RemoteApplier,
        *,
        masker: SecretMasker | None = None,
        options: WorkerOptions | None = None,
    ) -> None:
        self.inbox = inbox
        self.engine = engine
        self.masker = masker or SecretMasker()
        self.options = options or WorkerOptions()
        self.claim = Claim()
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()  # one round at a time: the claim token is per worker
        self._stopping = False
        self._pruned_at = 0.0

    def wake(self) -> None:
        """Something new is in the inbox: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before looking: a wake while we look is not lost
            try:
                handled = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database, not an event: the rows wait for us
                log.error("webhook worker: %s", self._text(f"{type(exc).__name__}: {exc}"))
                handled = 0
            if handled:
                continue
            await self._prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_seconds)

    async def drain(self) -> int:
        """Apply everything claimable now; how many rows were handled."""
        total = 0
        while handled := await self.drain_once():
            total += handled
        return total

    async def drain_once(self) -> int:
        """Claim one batch of rows, apply it, record the outcome; how many rows."""
        async with self._round:
            return await self._round_trip()

    async def _round_trip(self) -> int:
        _ACTIVE_WORKERS.add(self.claim.worker)
        try:
            rows = await asyncio.to_thread(
                self.inbox.claim, self.claim, self.options.batch_rows, self.options.retry_after
            )
            if not rows:
                return 0
            ids = [row.id for row in rows]
            beat = asyncio.create_task(self._heartbeat(ids))
            try:
                errors, unreadable = await self._apply(rows)
            except BaseException:
                # Stopped mid-round: give the rows back for the next worker, at once.
                self.inbox.release(self.claim, ids)
                raise
            finally:
                beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await asyncio.to_thread(self._record, ids, errors, unreadable)
            return len(rows)
        finally:
            _ACTIVE_WORKERS.discard(self.claim.worker)

    def _record(self, ids: list[int], errors: dict[int, str], unreadable: list[int]) -> None:
        self.inbox.finish(self.claim, [i for i in ids if i not in errors])
        retried = {i: e for i, e in errors.items() if i not in unreadable}
        if retried:
            self.inbox.fail(self.claim, retried, self.options.max_attempts)
        if unreadable:
            self.inbox.fail(self.claim, {i: errors[i] for i in unreadable}, 1)

    async def _apply(self, rows: Sequence[InboxRow]) -> tuple[dict[int, str], list[int]]:
        batches, unreadable = plan(rows)
        errors = dict.fromkeys(unreadable, "the stored payload is not JSON")
        for batch in batches:
            error = await self._apply_batch(batch)
            if error is not None:
                for row in batch.rows:
                    errors.setdefault(row, error)
        return errors, unreadable

    async def _apply_batch(self, batch: Batch) -> str | None:
        """One apply call; None when it succeeded, else why not (masked, one line)."""
        changed, deleted = batch.split()
        try:
            report = await self.engine.apply_remote_changes(
                batch.source, batch.stream, changed, deleted
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the engine promises not to raise; a bug must not loop
            return self._text(f"{type(exc).__name__}: {exc}")
        if report.outcome is Outcome.SUCCESS:
            log.info(
                "webhooks applied: %s %s, %d changed, %d deleted (%d events)",
                batch.source,
                batch.stream,
                len(changed),
                len(deleted),
                len(batch.rows),
            )
            return None
        error = self._text(report.error or f"the {batch.stream} update ended {report.outcome}")
        log.warning("webhooks not applied: %s %s: %s", batch.source, batch.stream, error)
        return error

    async def _heartbeat(self, ids: list[int]) -> None:
        """Keep the claim fresh while a round runs (it may wait for a stream's lease)."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await asyncio.to_thread(self.inbox.heartbeat, self.claim, ids)

    async def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        before = now - self.options.keep_done_days * 86400
        await asyncio.to_thread(self.inbox.prune, before)

    def _text(self, text: str) -> str:
        """An error for the inbox and the log: one line, secrets masked, cut short."""
        return self.masker(single_line(self.masker(text)))[:_ERROR_CHARS]
