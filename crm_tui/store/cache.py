"""CacheStore: the single owner of cached records and sync status, per user and source.

Reads come from memory and never touch the database. Writes persist first (in a worker
thread, so an event loop never waits on disk), then swap the in-memory data on the caller's
thread and notify subscribers once per batch. A reader holding a reference to a source's
dict keeps seeing the old set; the next read sees the new one: never a mix.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

from crm_tui.config import SOURCE_NAMES
from crm_tui.heap import release_gradually
from crm_tui.models import KINDS, Contact, Deal, Record, RecordKind, SourceStatus, SyncState
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.changes import Changes
from crm_tui.store.db import Database
from crm_tui.store.errors import StreamBusy
from crm_tui.store.leases import Holder, Lease
from crm_tui.store.remap import Collected, Remapper, RemapProgress, RemapReport
from crm_tui.store.stamps import StreamStamp
from crm_tui.store.stored_records import StoredRecords
from crm_tui.store.stream_loading import StreamLoader, rebuild_after
from crm_tui.store.stream_view import (
    ChainedRecords,
    Pending,
    Stream,
    StreamView,
    lay_pending,
    patch_stream,
    with_changes,
)
from crm_tui.tuning import gc_paused

#: How many of a stream's recent versions remember the ids they changed.
_REMEMBERED_VERSIONS = 256
#: How often a writer waiting for a stream's lease asks again.
LEASE_POLL_SECONDS = 0.25

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreChange:
    """What changed. `ids` is None when a whole stream (or source) was replaced or cleared."""

    source: str | None
    kinds: tuple[RecordKind, ...]
    ids: frozenset[str] | None = None
    status_only: bool = False


@dataclass(frozen=True, slots=True)
class Committed:
    """A stream's rows at `stamp` (a refresh's commit), and the stream the commit left in
    memory: while that is still the stream, `settle` builds its artifact from `rows`."""

    stamp: StreamStamp
    rows: list[Record]
    stream: Stream


Subscriber = Callable[[StoreChange], None]
#: kind -> source -> id -> record
Layers = dict[RecordKind, dict[str, dict[str, Record]]]
Streams = dict[RecordKind, dict[str, Stream]]


class CacheStore:
    def __init__(self, user_id: str, db: Database | None = None) -> None:
        self.user_id = user_id
        self.db = db
        self.version = 0
        self._epoch = 0  # moves when every stream may have changed (a load, clearing all)
        self._stream_versions: dict[tuple[RecordKind, str], int] = {}
        # per stream, the ids each recent version changed (for those that changed records,
        # not the whole stream): so the duplicate finder re-keys just those
        self._changed_ids: dict[tuple[RecordKind, str], list[tuple[int, frozenset[str]]]] = {}
        self._records: Streams = {k: {} for k in KINDS}
        # Rows of imported files, a layer over each stream's synced rows: a sync's swap
        # lays them over its fresh records again (an imported id wins).
        self._imported: dict[RecordKind, dict[str, dict[str, Record]]] = {k: {} for k in KINDS}
        self._status: dict[str, SourceStatus] = {}
        self._subscribers: list[Subscriber] = []
        # record id -> the values of its edits still on their way to the vendor (the outbox):
        # laid over the record as it is cached, whoever wrote that
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_stamp = -1  # the change log's position when it was read
        # records artifacts beside the database (streams loaded are views over them)
        self._loader = StreamLoader(db, user_id) if db is not None else None
        # per stream a refresh of this process committed: its rows at the commit's stamp
        self._committed: dict[tuple[RecordKind, str], Committed] = {}

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, change: StoreChange) -> None:
        self.version += 1
        if not change.status_only:
            if change.source is None:
                self._epoch += 1
            else:
                for kind in change.kinds:
                    key = (kind, change.source)
                    version = self._stream_versions[key] = self._stream_versions.get(key, 0) + 1
                    self._remember(key, version, change.ids)
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:
                log.exception("store subscriber failed")

    def _remember(
        self, key: tuple[RecordKind, str], version: int, ids: frozenset[str] | None
    ) -> None:
        if ids is None:
            self._changed_ids.pop(key, None)
            return
        recent = self._changed_ids.setdefault(key, [])
        recent.append((version, ids))
        del recent[:-_REMEMBERED_VERSIONS]

    def changed_since(
        self, kind: RecordKind, source: str, version: tuple[int, int]
    ) -> set[str] | None:
        """The ids of `source`'s records changed since its `stream_version` was `version`;
        None when that is not known (the stream was replaced, or it was too long ago)."""
        epoch, then = version
        if epoch != self._epoch:
            return None
        now = self._stream_versions.get((kind, source), 0)
        recent = [entry for entry in self._changed_ids.get((kind, source), []) if entry[0] > then]
        if [v for v, _ in recent] != list(range(then + 1, now + 1)):
            return None
        return set().union(*(ids for _, ids in recent))

    # -- reads ---------------------------------------------------------------------------

    def sources(self) -> list[str]:
        seen = dict.fromkeys(SOURCE_NAMES)
        for kind in KINDS:
            seen.update(dict.fromkeys(self._records[kind]))
        seen.update(dict.fromkeys(self._status))
        return list(seen)

    def records(self, kind: RecordKind, source: str | None = None) -> Sequence[Record]:
        """A stream's records (or every source's, in the sources' fixed order, not whichever
        sync happened to finish first), made as they are read: a million are not listed."""
        by_source = self._records[kind]
        if source is not None:
            return ChainedRecords([by_source.get(source, {})])
        return ChainedRecords(by_source.get(name, {}) for name in self.sources())

    def stream_version(self, kind: RecordKind, source: str) -> tuple[int, int]:
        """Changes whenever the stream's records may have: a cheap "is my copy stale?"
        that does not keep the old records alive the way holding the old dict would."""
        return self._epoch, self._stream_versions.get((kind, source), 0)

    def stream(self, kind: RecordKind, source: str) -> Stream:
        """The live mapping of one stream; replaced wholesale, never mutated in place."""
        return self._records[kind].get(source, {})

    @property
    def shelf(self) -> ArtifactShelf | None:
        """Where what is computed from this user's streams is saved (None: no database)."""
        return self._loader.shelf if self._loader is not None else None

    def base_of(
        self, kind: RecordKind, source: str
    ) -> tuple[StreamStamp, StoredRecords, frozenset[str]] | None:
        """The records artifact a stream's view rests on: its stamp, its records, and the
        ids whose records the view changed, added or removed over it. None for a stream
        held as a dict (no artifact yet: see `settle`)."""
        stream = self._records[kind].get(source)
        if not isinstance(stream, StreamView):
            return None
        return stream.base.stamp, stream.base, stream.touched

    def contacts(self, source: str | None = None) -> Sequence[Contact]:
        return self.records("contacts", source)  # type: ignore[return-value]

    def deals(self, source: str | None = None) -> Sequence[Deal]:
        return self.records("deals", source)  # type: ignore[return-value]

    def get(self, kind: RecordKind, record_id: str) -> Record | None:
        source = record_id.split(":", 1)[0]
        return self._records[kind].get(source, {}).get(record_id)

    def pending(self, record_id: str) -> dict[str, Any] | None:
        """The values an unsent edit gives the record (None: nothing waits)."""
        return self._pending.get(record_id)

    def count(self, kind: RecordKind, source: str | None = None) -> int:
        by_source = self._records[kind]
        if source is not None:
            return len(by_source.get(source, ()))
        return sum(len(v) for v in list(by_source.values()))

    def imported_count(self, source: str | None = None) -> int:
        """Rows that came from imported files (clearing the cache drops them too)."""
        return sum(
            len(part)
            for kind in KINDS
            for name, part in self._imported[kind].items()
            if source is None or name == source
        )

    def status(self, source: str) -> SourceStatus:
        base = self._status.get(source) or SourceStatus(source=source)
        return replace(
            base,
            contact_count=self.count("contacts", source),
            deal_count=self.count("deals", source),
        )

    def statuses(self) -> dict[str, SourceStatus]:
        return {source: self.status(source) for source in self.sources()}

    def get_cached_data(self, source: str | None = None) -> dict[str, Any]:
        """The integration guide's cached-data shape."""
        names = [source] if source else self.sources()
        data = {}
        for name in names:
            status = self.status(name)
            data[name] = {
                "contacts": [r.to_json() for r in self.records("contacts", name)],
                "deals": [r.to_json() for r in self.records("deals", name)],
                "lastSync": status.last_sync,
                "syncStatus": str(status.state),
            }
        return data

    # -- writes --------------------------------------------------------------------------

    async def in_writer(self, fn: Callable[..., Any] | None, *args: Any) -> Any:
        """`fn(*args)` on the database's writer thread; nothing (None) with no database."""
        if self.db is None or fn is None:
            return None
        return await self.db.in_writer(fn, *args)

    @asynccontextmanager
    async def lease(
        self,
        source: str,
        stream: str,
        purpose: str,
        *,
        wait: bool = True,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> AsyncIterator[Lease | None]:
        """Hold a stream's lease across processes (None with no database). While another
        live process holds it: wait, telling `on_wait` who it is, or raise StreamBusy."""
        if self.db is None:
            yield None
            return
        db = self.db
        while True:
            got = await self.in_writer(db.acquire_lease, self.user_id, source, stream, purpose)
            if isinstance(got, Lease):
                break
            if not wait:
                raise StreamBusy(f"{source} {stream} is busy", got.describe(), db.path)
            if on_wait is not None:
                on_wait(got)
            await asyncio.sleep(LEASE_POLL_SECONDS)
        try:
            yield got
        finally:
            await asyncio.shield(self.in_writer(db.release_lease, got))

    async def replace_stream(
        self, source: str, kind: RecordKind, records: Iterable[Record]
    ) -> None:
        """Replace one source's whole stream: database first, memory only after the commit."""
        fresh = {r.id: r for r in records}
        if self.db is not None:
            await self.in_writer(
                self.db.replace_stream, self.user_id, source, kind, list(fresh.values())
            )
        self._swap(kind, source, fresh)

    async def draw_generation(self, source: str, stream: RecordKind) -> int | None:
        """A new pending generation for a stream (None with no database). The draw runs on
        the writer thread, which a cancel cannot stop: a caller cancelled meanwhile never
        hears the number, so it is dropped here once drawn (else it would stay pending, with
        this process's owner row, until the process is judged dead)."""
        if self.db is None:
            return None
        draw = asyncio.ensure_future(
            self.db.in_writer(self.db.new_generation, self.user_id, source, stream)
        )
        try:
            return await asyncio.shield(draw)
        except asyncio.CancelledError:
            dropping = asyncio.ensure_future(self._drop_when_drawn(draw, source, stream))
            while not dropping.done():  # cancelled again (a timeout, then the exit): the
                with suppress(asyncio.CancelledError):  # drop still goes on
                    await asyncio.wait({dropping})
            if not dropping.cancelled():
                dropping.exception()  # seen: a drop that failed is the close's to release
            raise

    async def _drop_when_drawn(
        self, draw: asyncio.Future[int], source: str, stream: RecordKind
    ) -> None:
        assert self.db is not None
        generation = await draw
        await self.db.in_writer(self.db.drop_staged, self.user_id, source, stream, generation)

    async def commit_staged(
        self,
        source: str,
        kind: RecordKind,
        generation: int | None,
        records: dict[str, Record],
        lease: Lease | None,
        watermark: str | None = None,
    ) -> int:
        """Like replace_stream, for a refresh whose rows were staged page by page as
        `generation` (None with no database), read up to `watermark`. Returns how many rows
        the commit wrote."""
        written, stamp = len(records), None
        if self.db is not None:
            assert generation is not None and lease is not None
            written, stamp = await self.in_writer(
                self.db.commit_staged_stamped,
                self.user_id,
                source,
                kind,
                generation,
                lease,
                watermark,
            )
        # the rows at the commit's stamp, if they are exactly these (taken before the swap
        # lays imported and pending values over them): `settle` builds from them
        rows = None
        if stamp is not None and stamp.generation == generation and not stamp.imports:
            rows = list(records.values()) if written == len(records) else None
        self._swap(kind, source, records)
        if rows is not None:
            self._committed[(kind, source)] = Committed(stamp, rows, self.stream(kind, source))
        return written

    async def commit_changes(
        self,
        source: str,
        kind: RecordKind,
        upserts: list[Record],
        deletes: list[str],
        lease: Lease | None,
        watermark: str | None,
    ) -> int:
        """What changed in one stream (an incremental read, a webhook): database first, with
        the stream's watermark, then memory. Returns how many records it removed."""
        if self.db is None:
            return await self._apply_off_loop(kind, source, upserts, deletes)
        deleted: int = await self.in_writer(
            self.db.commit_changes, self.user_id, source, kind, upserts, deletes, lease, watermark
        )
        await self._apply_off_loop(kind, source, upserts, deletes)
        return deleted

    async def remap(
        self,
        source: str,
        kind: RecordKind,
        remap: Remapper,
        progress: RemapProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> RemapReport:
        """Map a stream's stored payloads again (`Database.remap_stream`) on the database's
        writer thread, as every write of this store runs, then show the committed stream:
        the event loop only swaps it in. `progress` is called from that thread.

        The records the re-map wrote are the stream (read back only where it kept rows
        as they were). Between its commit, which lets the lease go, and the swap, a writer
        of this process (a webhook) may commit and apply its change to memory: those
        records are read again after the swap, so the swap never undoes them; a stream
        replaced meanwhile is read whole (as `follow` does)."""
        if self.db is None:
            raise RuntimeError("re-mapping needs the database")
        before = self.stream_version(kind, source)
        collected = Collected()
        work = functools.partial(
            self.db.remap_stream,
            self.user_id,
            source,
            kind,
            remap,
            progress,
            cancel,
            collect=collected,
        )
        report: RemapReport = await self.in_writer(work)
        if collected.kept:  # rows kept as they were: their ids are the database's to say
            synced, imported = await asyncio.to_thread(self._read_stream, kind, source)
            self._imported[kind][source] = imported
        else:  # the records just written are the stream: no second read of 100k rows
            synced = await asyncio.to_thread(_by_id, collected.records)
        moved = self.changed_since(kind, source, before)
        for _ in range(3):
            if moved is not None:
                break
            # replaced meanwhile, not patched: read it whole (as `follow` does)
            before = self.stream_version(kind, source)
            synced, imported = await asyncio.to_thread(self._read_stream, kind, source)
            self._imported[kind][source] = imported
            moved = self.changed_since(kind, source, before)
        moved = moved or set()
        self._swap(kind, source, synced)
        if moved:
            found = await asyncio.to_thread(self._read_ids, kind, source, sorted(moved))
            await self._apply_off_loop(kind, source, found, sorted(moved - {r.id for r in found}))
        return report

    def _patched(
        self,
        kind: RecordKind,
        source: str,
        base: Stream,
        upserts: list[Record],
        deletes: Iterable[str],
    ) -> tuple[Stream, frozenset[str], int]:
        """`_patch` with this store's imported records and pending values."""
        imported = self._imported[kind].get(source, {})
        return patch_stream(base, upserts, deletes, imported, self._pending)

    def _install(
        self, kind: RecordKind, source: str, updated: Stream, changed: frozenset[str]
    ) -> None:
        """Copy-on-write: a reader holding the old mapping keeps a consistent one."""
        if changed:
            self._committed.pop((kind, source), None)  # the rows a commit left: changed
            self._records[kind][source] = updated
            self._notify(StoreChange(source, (kind,), changed))

    def _apply(
        self, kind: RecordKind, source: str, upserts: list[Record], deletes: Iterable[str]
    ) -> int:
        """A few records of one stream changed, in memory; returns how many went."""
        base = self.stream(kind, source)
        updated, changed, removed = self._patched(kind, source, base, upserts, deletes)
        self._install(kind, source, updated, changed)
        return removed

    async def _apply_off_loop(
        self, kind: RecordKind, source: str, upserts: list[Record], deletes: list[str]
    ) -> int:
        """`_apply`, with the copy of the stream (a million entries: too long for the loop)
        made in a thread; if the stream was replaced meanwhile, made again."""
        for _ in range(3):
            base = self.stream(kind, source)
            updated, changed, removed = await asyncio.to_thread(
                self._patched, kind, source, base, upserts, deletes
            )
            if self.stream(kind, source) is base:
                self._install(kind, source, updated, changed)
                return removed
        return self._apply(kind, source, upserts, deletes)

    def _swap(self, kind: RecordKind, source: str, fresh: dict[str, Record]) -> None:
        overlay = self._imported[kind].get(source)
        if overlay:
            fresh.update(overlay)
        lay_pending(fresh, self._pending)
        self._put(kind, source, fresh)

    def _put(self, kind: RecordKind, source: str, fresh: Stream) -> None:
        """A whole stream in place of the one before, which a reader may still hold."""
        self._committed.pop((kind, source), None)
        old = self._records[kind].get(source)
        self._records[kind][source] = fresh
        if isinstance(old, dict) and old:  # a view's records are in its artifact, not here
            release_gradually(list(old.values()))
        self._notify(StoreChange(source, (kind,)))

    async def upsert(self, kind: RecordKind, records: Iterable[Record]) -> None:
        batch = list(records)
        if not batch:
            return
        if self.db is not None:
            await self.in_writer(self.db.upsert_records, kind, batch)
        by_source = self._records[kind]
        sources = {record.source for record in batch}
        for source in sources:
            # copy-on-write keeps a reader's reference to the old mapping consistent
            upserts = {r.id: r for r in batch if r.source == source}
            by_source[source] = with_changes(by_source.get(source, {}), upserts, ())
        for source in sources:
            ids = frozenset(r.id for r in batch if r.source == source)
            self._notify(StoreChange(source, (kind,), ids))

    async def delete(self, kind: RecordKind, ids: Iterable[str]) -> list[Record]:
        wanted = set(ids)
        removed: list[Record] = []
        if self.db is not None:
            await self.in_writer(self.db.delete_records, self.user_id, kind, list(wanted))
        by_source = self._records[kind]
        touched: dict[str, set[str]] = {}
        for record_id in wanted:
            source = record_id.split(":", 1)[0]
            if record_id in by_source.get(source, {}):
                touched.setdefault(source, set()).add(record_id)
        for source, gone in touched.items():
            stream = by_source[source]
            removed.extend(stream[record_id] for record_id in gone)
            by_source[source] = with_changes(stream, {}, gone)
            self._notify(StoreChange(source, (kind,), frozenset(gone)))
        return removed

    async def clear(self, source: str | None = None) -> int:
        """Drop cached rows (imported ones too); returns how many imported rows went."""
        imported = 0
        if self.db is not None:
            imported = await self.in_writer(self.db.clear, self.user_id, source)
        for kind in KINDS:
            if source is None:
                self._records[kind] = {}
                self._imported[kind] = {}
            else:
                self._records[kind].pop(source, None)
                self._imported[kind].pop(source, None)
        if source is None and self._loader is not None:  # artifacts of rows that are gone
            await asyncio.to_thread(self._loader.shelf.clear)
        if source is None:
            self._status = {
                name: SourceStatus(name, state=s.state) for name, s in self._status.items()
            }
        elif source in self._status:
            self._status[source] = SourceStatus(source, state=self._status[source].state)
        self._notify(StoreChange(source, KINDS))
        return imported

    def update_status(self, source: str, **changes: Any) -> SourceStatus:
        """Change a source's status in memory and notify. Call `save_status` to persist."""
        current = self._status.get(source) or SourceStatus(source=source)
        self._status[source] = replace(current, **changes)
        self._notify(StoreChange(source, (), status_only=True))
        return self._status[source]

    async def save_status(self, source: str) -> None:
        """Persist a source's status, then take back what the database holds: another
        process may have synced it later than this one."""
        if self.db is not None and source in self._status:
            await self.in_writer(self.db.save_status, self.user_id, self._status[source])
            saved = await self.in_writer(self.db.load_statuses, self.user_id)
            if source in saved:
                self._status[source] = replace(
                    self._status[source], last_sync=saved[source].last_sync
                )

    # -- edits on their way to a vendor ----------------------------------------------------

    def _take_pending(self, stamp: int, values: dict[str, dict[str, Any]]) -> None:
        """A reading of what waits, unless a newer one is already here (readings made in
        threads may land out of order)."""
        if stamp >= self._pending_stamp:
            self._pending_stamp, self._pending = stamp, values

    async def _read_pending(self) -> None:
        assert self.db is not None
        self._take_pending(*await asyncio.to_thread(self.db.pending_values, self.user_id))

    async def outbox_changed(self, kind: RecordKind, source: str, ids: Iterable[str]) -> None:
        """This process changed the outbox for these records: their pending values are read
        again and the records shown with them (or, once sent or dropped, as cached)."""
        await self.load_ids(kind, source, ids)

    async def load_ids(self, kind: RecordKind, source: str, ids: Iterable[str]) -> None:
        """These records read again from the database, shown with what waits in the outbox
        for them: for a command that works on a few records, without loading the cache."""
        if self.db is None:
            return
        await self._read_pending()
        wanted = sorted(set(ids))
        found = await asyncio.to_thread(self._read_ids, kind, source, wanted)
        await self._apply_off_loop(kind, source, found, [])

    # -- another process's commits -------------------------------------------------------

    async def follow(self, changes: Changes) -> None:
        """Apply what another process committed (see `Database.changes_since`): a stream it
        replaced is read again, records it changed are read by id; everything else stays."""
        if self.db is None or changes.empty:
            return
        # an outbox change is logged as its record's: read what waits before the records
        await self._read_pending()
        if changes.everything:
            await self.load()
            return
        for kind, source in sorted(changes.streams):
            for _ in range(3):  # this process replaced the stream meanwhile: read again
                before = self.stream_version(kind, source)
                fresh, imported = await asyncio.to_thread(
                    self._fresh_stream, kind, source, self._pending
                )
                if await self._put_read(kind, source, before, fresh, imported):
                    break
        for (kind, source), ids in sorted(changes.ids.items()):
            for _ in range(3):  # this process changed the stream meanwhile: read again
                before = self.stream_version(kind, source)
                found = await asyncio.to_thread(self._read_ids, kind, source, sorted(ids))
                if self.stream_version(kind, source) == before:
                    break
            gone = list(ids - {r.id for r in found})
            await self._apply_off_loop(kind, source, found, gone)
        await self.refresh_statuses()

    def load_statuses_sync(self) -> None:
        """Only the sources' statuses from the database (a command that writes records
        without showing them)."""
        if self.db is not None:
            self._merge_statuses(self.db.load_statuses(self.user_id))

    async def refresh_statuses(self) -> None:
        """Sources' statuses as the database holds them (another process's run)."""
        if self.db is not None:
            self._merge_statuses(await asyncio.to_thread(self.db.load_statuses, self.user_id))
            self._notify(StoreChange(None, (), status_only=True))

    def _read_stream(
        self, kind: RecordKind, source: str
    ) -> tuple[dict[str, Record], dict[str, Record]]:
        assert self._loader is not None
        return self._loader.read_dicts(kind, source)

    def _read_ids(self, kind: RecordKind, source: str, ids: list[str]) -> list[Record]:
        assert self.db is not None
        return list(self.db.load_records(self.user_id, kind, False, source, ids))

    # -- snapshot ------------------------------------------------------------------------

    async def load(self) -> None:
        """Fill memory from the snapshot; the heavy part runs in a worker thread."""
        if self.db is None:
            return
        loaded = await asyncio.to_thread(self._read_snapshot)
        self._apply_snapshot(*loaded)

    def load_sync(self) -> None:
        if self.db is not None:
            self._apply_snapshot(*self._read_snapshot())

    def _read_snapshot(
        self,
    ) -> tuple[Streams, Layers, dict[str, SourceStatus], tuple[int, dict[str, dict[str, Any]]]]:
        """Every stream with rows, each a view over its records artifact."""
        assert self.db is not None
        stamp, pending = self.db.pending_values(self.user_id)
        streams: Streams = {k: {} for k in KINDS}
        imported: Layers = {k: {} for k in KINDS}
        assert self._loader is not None
        for kind in KINDS:
            sources = self.db.stream_sources(self.user_id, kind)
            built = self._loader.prepare(kind, sources)  # one pass for those with none
            for source in sources:
                stream, overlay = self._loader.fresh(kind, source, pending, built.pop(source, None))
                if stream:
                    streams[kind][source] = stream
                if overlay:
                    imported[kind][source] = overlay
        return streams, imported, self.db.load_statuses(self.user_id), (stamp, pending)

    def _fresh_stream(
        self, kind: RecordKind, source: str, pending: Pending, rows: Committed | None = None
    ) -> tuple[Stream, dict[str, Record]]:
        """The stream as the database holds it now; over an artifact built from `rows`
        when given (the changes after their stamp laid over it), else opened or read."""
        assert self._loader is not None
        built = None
        if rows is not None:
            built = self._loader.committed(kind, source, rows.stamp, rows.rows)
        return self._loader.fresh(kind, source, pending, built)

    async def settle(self, kind: RecordKind, source: str) -> bool:
        """Put a stream held as a dict (a sync replaced it in this process) on its records
        artifact: built or opened for its stamp in a thread, with what changed since read
        from the database. A change this process made meanwhile is read again after, never
        undone; a stream replaced meanwhile stays as it is (settle it again). A view that
        lays many changes over its artifact is put on a new one. Returns whether the stream
        is now a view."""
        stream = self._records[kind].get(source)
        if self.db is None or stream is None:
            return False
        if isinstance(stream, StreamView) and stream.spread <= rebuild_after(stream.base):
            return True
        before = self.stream_version(kind, source)
        committed = self._committed.pop((kind, source), None)
        rows = committed if committed is not None and committed.stream is stream else None
        fresh, imported = await asyncio.to_thread(
            self._fresh_stream, kind, source, self._pending, rows
        )
        if not isinstance(fresh, StreamView):
            return False
        return await self._put_read(kind, source, before, fresh, imported)

    async def _put_read(
        self,
        kind: RecordKind,
        source: str,
        before: tuple[int, int],
        fresh: Stream,
        imported: dict[str, Record],
    ) -> bool:
        """Put a stream read from the database in place, unless this process replaced it
        since its `stream_version` was `before` (False). Records this process changed
        meanwhile are read again after: its own writes are never undone (the change log it
        follows leaves them out)."""
        moved = self.changed_since(kind, source, before)
        if moved is None:
            return False
        self._imported[kind][source] = imported
        self._put(kind, source, fresh)
        if moved:
            found = await asyncio.to_thread(self._read_ids, kind, source, sorted(moved))
            await self._apply_off_loop(kind, source, found, sorted(moved - {r.id for r in found}))
        return True

    def holds(self, kind: RecordKind, source: str) -> bool:
        """Whether the stream is in memory (a store loaded, or a sync's swap)."""
        return source in self._records[kind]

    def settles_from_memory(self, kind: RecordKind, source: str) -> bool:
        """Whether `settle` would build the stream's artifact from the records a refresh of
        this process committed (the stream is still what that commit left)."""
        committed = self._committed.get((kind, source))
        return committed is not None and committed.stream is self.stream(kind, source)

    def prepare_artifacts(self, streams: Iterable[tuple[RecordKind, str]]) -> None:
        """The records artifacts of `streams` that have none usable, built and saved (one
        pass over a kind's table for several). Blocking: call it in a thread."""
        assert self._loader is not None
        by_kind: dict[RecordKind, list[str]] = {}
        for kind, source in streams:
            by_kind.setdefault(kind, []).append(source)
        for kind, sources in by_kind.items():
            self._loader.prepare(kind, sources)

    def _apply_snapshot(
        self,
        records: Streams,
        imported: Layers,
        statuses: dict[str, SourceStatus],
        pending: tuple[int, dict[str, dict[str, Any]]],
    ) -> None:
        self._take_pending(*pending)
        self._records = records
        self._imported = imported
        self._merge_statuses(statuses)
        self._notify(StoreChange(None, KINDS))

    def _merge_statuses(self, statuses: dict[str, SourceStatus]) -> None:
        for source, saved in statuses.items():
            current = self._status.get(source)
            if current is None:
                self._status[source] = saved
            elif current.state not in (SyncState.SYNCING, SyncState.WAITING):
                # what another process's run left, unless this one is running it now
                self._status[source] = replace(
                    current,
                    state=saved.state,
                    last_sync=saved.last_sync,
                    last_error=saved.last_error,
                    retry_at=saved.retry_at,
                    rate=saved.rate or current.rate,
                )


def _by_id(records: list[Record]) -> dict[str, Record]:
    with gc_paused():  # a stream's worth of new records: frozen, never walked
        return {r.id: r for r in records}
