"""A stream's stored payloads: a sample of them (what the Mapping screen lists), and all of
them mapped again with the current field map, without asking the vendor.

A re-map is a writer like a sync: it takes the stream's lease (and refuses, StreamBusy,
while a sync, a webhook or an edit holds it), writes the new records as a new generation
and moves the stream's pointer in one commit, so a search in another process sees the old
records or the new, never a mix; the commit logs what differs, as a sync's does, so open
apps re-read just those. The bookmark stays: nothing new was read.

A payload the new map cannot make a record of (InvalidRecord) keeps its previous row, so
the previous good data survives; it is quarantined with its reason, as a sync quarantines.
When that is a mapping gone wrong rather than a few odd records (the sync's rule:
`mapping_gone_wrong`), nothing is committed: RemapFailed, and the stream stays as it was.
A stored payload that is not JSON (a damaged cell) is kept and quarantined the same way; it
says nothing about the map, so it does not count towards that rule.

The same when the new map gives two payloads one id: the stream would hold fewer records
than it read, and the payloads of those replaced would be gone with the old generation (no
request can bring them back). Nothing is committed: RemapFailed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_tui import jsoncodec
from crm_tui.models import (
    Outcome,
    Record,
    RecordKind,
    StreamReport,
    failure_of,
    utc_now,
)
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.mapping import INVALID_SHARE, mapping_gone_wrong
from crm_tui.store.errors import StoreError, StreamBusy
from crm_tui.store.leases import Holder, Lease, _table

#: Maps one stored payload, given the time it was synced; raises InvalidRecord.
Remapper = Callable[[Any, str], Record]
#: (records done, records in all), called from the re-map's thread after each batch.
RemapProgress = Callable[[int, int], None]
BATCH = 2_000
#: The purpose a re-map's lease shows to whoever waits for it.
PURPOSE = "re-map"


@dataclass(slots=True)
class Collected:
    """What a re-map wrote, for the caller that shows the stream: the new records, and how
    many rows were kept as they were (a payload the new map refused: the caller reads the
    stream back then, as those rows' ids are not known here)."""

    records: list[Record] = field(default_factory=list)
    kept: int = 0


class RemapFailed(StoreError):
    """The map refused by the re-map (too many stored payloads would not map, or ids that
    collide): nothing was committed. Exit 2, as a mapping refused before its save."""

    exit_code = 2


class RemapCancelled(StoreError):
    """Stopped by the caller: nothing was committed."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class RemapReport:
    source: str
    stream: RecordKind
    read: int  # stored payloads mapped again
    written: int  # rows the stream holds after the commit
    changed: int | None  # records whose row differs (None: too many to list, over 20,000)
    kept: int  # payloads the new map refused: their previous rows kept, and quarantined
    run_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "stream": self.stream,
            "read": self.read,
            "written": self.written,
            "changed": self.changed,
            "kept": self.kept,
            "runId": self.run_id,
        }


@dataclass(slots=True)
class _Job:
    """One re-map: the lease it holds, how it maps and reports, and what it refused so far
    (`bad`, quarantined at the end; `damaged`, those of them not JSON at all)."""

    lease: Lease
    report: StreamReport
    remap: Remapper
    progress: RemapProgress | None
    cancel: threading.Event | None
    collect: Collected | None
    bad: list[tuple[str, Any]] = field(default_factory=list)
    damaged: int = 0

    def map_rows(self, rows: list[tuple[int, str, str | None]]) -> tuple[list[Record], list[int]]:
        """A batch's records mapped again, and the rowids of the rows kept as they were."""
        records: list[Record] = []
        kept: list[int] = []
        for rowid, raw, synced_at in rows:
            try:
                payload = jsoncodec.loads(raw)
            except ValueError as exc:  # a damaged cell: not the map's doing
                self.bad.append((f"stored payload is not JSON: {exc}", raw))
                kept.append(rowid)
                self.damaged += 1
                continue
            try:
                records.append(self.remap(payload, synced_at or self.report.started_at))
            except InvalidRecord as exc:
                self.bad.append((str(exc), payload))
                kept.append(rowid)
        return records, kept


def _refuse_a_wrong_map(job: _Job, invalid_share: float) -> None:
    """RemapFailed when more payloads would not map than a few odd records explain (the
    sync's rule); damaged cells say nothing about the map and do not count."""
    refused, readable = len(job.bad) - job.damaged, job.report.read - job.damaged
    if mapping_gone_wrong(refused, readable, invalid_share):
        lease = job.lease
        raise RemapFailed(
            f"Re-map of {lease.source} {lease.stream} refused",
            f"{refused} of {readable} stored records would not map"
            f" (more than {invalid_share:.0%}); nothing changed",
        )


class RemapStore:
    """Mixed into `Database`, whose connection, lock, transactions, leases and generations
    it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    _replacing_sql: Callable[[RecordKind, str], str]

    def sample_payloads(
        self, user_id: str, source: str, kind: RecordKind, limit: int | None = None
    ) -> tuple[int, list[str]]:
        """(how many records the stream holds, the stored payloads of at most `limit` of
        them, evenly spread over the stream: all of them without a limit)."""
        with self._lock, self._reading():  # type: ignore[attr-defined]
            generation = self._generations(user_id, kind).get(source, 0)  # type: ignore[attr-defined]
            rowids = [
                r
                for (r,) in self._conn.execute(
                    f"SELECT rowid FROM {_table(kind)} WHERE user_id = ? AND source = ?"
                    " AND generation = ? ORDER BY rowid",
                    (user_id, source, generation),
                )
            ]
            step = max(1, -(-len(rowids) // limit)) if limit else 1
            chosen = rowids[::step]
            payloads: list[str] = []
            for at in range(0, len(chosen), 500):
                chunk = chosen[at : at + 500]
                marks = ", ".join("?" for _ in chunk)
                payloads += [
                    raw
                    for (raw,) in self._conn.execute(
                        f"SELECT raw FROM {_table(kind)} WHERE rowid IN ({marks}) ORDER BY rowid",
                        chunk,
                    )
                ]
        return len(rowids), payloads

    def remap_stream(
        self,
        user_id: str,
        source: str,
        kind: RecordKind,
        remap: Remapper,
        progress: RemapProgress | None = None,
        cancel: threading.Event | None = None,
        invalid_share: float = INVALID_SHARE,
        collect: Collected | None = None,
    ) -> RemapReport:
        """Every stored payload of the stream mapped again with `remap`, committed as the
        stream's new generation under its lease. Blocking and CPU-bound: call it from a
        worker thread, never an event loop. Raises StreamBusy (another writer holds the
        stream), RemapFailed, RemapCancelled, LeaseLost; the stream is as it was after any
        of them. `collect`: filled with the records written and the ids of the rows kept
        as they were, so a caller holding the stream in memory need not read it back."""
        db: Any = self
        lease = db.acquire_lease(user_id, source, kind, PURPOSE)
        if isinstance(lease, Holder):
            raise StreamBusy(f"{source} {kind} is busy", lease.describe(), db.path)
        report = StreamReport(kind, mode="remap")
        run_id = db.start_run(user_id, source, report.started_at, None, f"remap:{kind}")
        job = _Job(lease, report, remap, progress, cancel, collect)
        try:
            result = self._remap(db, job, run_id, invalid_share)
        except BaseException as exc:
            report.outcome = Outcome.FAILED
            report.error_class, report.failure = type(exc).__name__, failure_of(exc)
            report.error = getattr(exc, "details", "") or str(exc)
            raise
        finally:
            report.ended_at = utc_now()
            report.quarantined = len(job.bad)
            db.add_quarantine(user_id, run_id, source, kind, job.bad, report.ended_at)
            db.finish_run(run_id, report)
            db.release_lease(lease)
        return result

    def _remap(self, db: Any, job: _Job, run_id: int | None, invalid_share: float) -> RemapReport:
        """Map the stream into a new generation, check it, and swap it in; the new
        generation is dropped unless the swap committed."""
        user_id, source, kind = job.lease.user_id, job.lease.source, job.lease.stream
        generation = db.new_generation(user_id, source, kind)
        committed = False
        try:
            self._map_stream(db, job, generation)
            _refuse_a_wrong_map(job, invalid_share)
            self._refuse_shared_ids(db, job, generation)
            before = db.last_change()
            job.report.written = db.swap_generation(user_id, source, kind, generation, job.lease)
            committed = True
            changed = self._changed_since(before, user_id, kind, source)
        finally:
            if not committed:
                db.drop_staged(user_id, source, kind, generation)
        report = job.report
        return RemapReport(source, kind, report.read, report.written, changed, len(job.bad), run_id)

    def _map_stream(self, db: Any, job: _Job, generation: int) -> None:
        """Every row of the stream's current generation mapped again into `generation`, a
        batch at a time; a row the map refuses copied as it is."""
        user_id, source, kind = job.lease.user_id, job.lease.source, job.lease.stream
        with self._lock, self._reading():  # type: ignore[attr-defined]
            current = db._generations(user_id, kind).get(source, 0)
            total = db._count(self._conn, user_id, source, kind, current)
        last = 0
        while rows := self._batch(kind, user_id, source, current, last):
            if job.cancel is not None and job.cancel.is_set():
                raise RemapCancelled(f"Re-map of {source} {kind} stopped", "nothing changed")
            last = rows[-1][0]
            records, kept = job.map_rows(rows)
            db.stage(kind, generation, records)
            self._copy_rows(kind, generation, kept)
            if job.collect is not None:
                job.collect.records.extend(records)
                job.collect.kept += len(kept)
            job.report.read += len(rows)
            if job.progress is not None:
                job.progress(job.report.read, total)

    def _refuse_shared_ids(self, db: Any, job: _Job, generation: int) -> None:
        """RemapFailed when the new generation holds fewer rows than were read: ids that
        collide under the new map, each having replaced another's row."""
        lease, read = job.lease, job.report.read
        with self._lock, self._reading():  # type: ignore[attr-defined]
            staged = db._count(self._conn, lease.user_id, lease.source, lease.stream, generation)
        if staged < read:
            raise RemapFailed(
                f"Re-map of {lease.source} {lease.stream} refused",
                f"{read - staged} of {read} stored records would share an id"
                " with another under this map; nothing changed",
            )

    def _batch(
        self, kind: RecordKind, user_id: str, source: str, generation: int, after: int
    ) -> list[tuple[int, str, str | None]]:
        """The next rows of a generation by rowid: the lock is let go between batches, so
        other threads of this process read and write meanwhile."""
        with self._lock:
            return self._conn.execute(
                f"SELECT rowid, raw, synced_at FROM {_table(kind)} WHERE user_id = ?"
                " AND source = ? AND generation = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                (user_id, source, generation, after, BATCH),
            ).fetchall()

    def _copy_rows(self, kind: RecordKind, generation: int, rowids: list[int]) -> None:
        """Rows as they are into `generation` (a payload the new map refused)."""
        from crm_tui.store.db import _COLUMNS  # the module that mixes this class in

        if not rowids:
            return
        names = ", ".join(_COLUMNS[kind])
        marks = ", ".join("?" for _ in rowids)
        rows = f"SELECT {names}, ? FROM {_table(kind)} WHERE rowid IN ({marks})"
        with self.transaction() as conn:  # type: ignore[attr-defined]
            conn.execute(self._replacing_sql(kind, rows), (generation, *rowids))

    def _changed_since(self, seq: int, user_id: str, kind: RecordKind, source: str) -> int | None:
        """How many records the commit logged as changed (None: the whole stream)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT record_id FROM changes WHERE seq > ? AND user_id = ? AND kind = ?"
                " AND source = ?",
                (seq, user_id, kind, source),
            ).fetchall()
        return None if any(r is None for (r,) in rows) else len(rows)
