"""Reading one stream as the database holds it now, for the store: a view over the
stream's records artifact (opened from the shelf, or built from SQLite and saved) with what
changed since the artifact's stamp laid over it. Runs in a worker thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from crm_tui.models import Record, RecordKind
from crm_tui.store.artifacts import ArtifactShelf, root_beside
from crm_tui.store.db import Database, record_line
from crm_tui.store.stamps import StreamStamp
from crm_tui.store.stored_records import (
    FORMAT,
    WHAT,
    DamagedArtifact,
    RecordsBuilder,
    StoredRecords,
    build_arrays,
)
from crm_tui.store.stream_view import Pending, Stream, StreamView, lay_pending, patch_stream
from crm_tui.tuning import gc_paused

#: Changes since a stream's records artifact beyond which loading builds a new one (or a
#: tenth of the stream, if more) rather than laying them over it.
REBUILD_AFTER = 20_000

log = logging.getLogger(__name__)


class StreamLoader:
    """One user's streams read from `db`, with their records artifacts beside it."""

    def __init__(self, db: Database, user_id: str) -> None:
        self.db = db
        self.user_id = user_id
        self.shelf = ArtifactShelf(root_beside(db.path), user_id)

    def fresh(
        self,
        kind: RecordKind,
        source: str,
        pending: Pending,
        built: StoredRecords | None = None,
    ) -> tuple[Stream, dict[str, Record]]:
        """One stream as the database holds it now, and its imported records: a view over
        its records artifact (`built` by `prepare`, or opened, or built and saved when there
        is none, or when much changed since) with the records changed since laid over it."""
        build = False
        for _ in range(3):
            stored = built or self._stored(kind, source, build)
            built = None
            with self.db.consistent_reads():  # imports, changes and their rows: one commit
                imported = {r.id: r for r in self.db.load_records(self.user_id, kind, True, source)}
                delta = self.db.stream_delta(self.user_id, kind, stored.stamp, source)
                build = delta.whole or len(delta.ids) > rebuild_after(stored)
                found = [] if build else self._read_ids(kind, source, sorted(delta.ids))
            if not build:
                gone = delta.ids - {r.id for r in found}
                stream, _, _ = patch_stream(
                    StreamView(stored, pending), found, gone, imported, pending
                )
                return stream, imported
        # replaced again and again while being read: as a dict this time
        synced, imported = self.read_dicts(kind, source)
        synced.update(imported)
        lay_pending(synced, pending)
        return synced, imported

    def prepare(self, kind: RecordKind, sources: Iterable[str]) -> dict[str, StoredRecords]:
        """The records artifacts of those of `sources` that have none usable (none for
        their rows, or one that many changes passed), built and saved: in one pass over the
        table when they are several. What was built, by source."""
        wanted = [source for source in sources if self._wants_build(kind, source)]
        if len(wanted) < 2:
            return {source: self._stored(kind, source, True) for source in wanted}
        builders: dict[str, tuple[StreamStamp, RecordsBuilder]] = {}

        def sink(source: str, stamp: StreamStamp) -> Callable[[bytes], None]:
            builder = builders[source] = (stamp, RecordsBuilder())
            return builder[1].add

        with gc_paused():  # only bytes and ints are made: nothing for the collector
            self.db.read_streams_lines(self.user_id, kind, wanted, sink)
        built = {}
        while builders:  # each one's buffer let go once saved, before the next is finished
            source = next(iter(builders))
            stamp, builder = builders.pop(source)
            built[source] = self._saved(kind, source, stamp, *builder.finish())
            del builder
        return built

    def committed(
        self, kind: RecordKind, source: str, stamp: StreamStamp, records: Iterable[Record]
    ) -> StoredRecords:
        """The records artifact of a stream whose rows at `stamp` are `records`, in the
        order they were written (a refresh this process just committed: no imports), built
        from them rather than read back from the database, and saved."""
        builder = RecordsBuilder()
        with gc_paused():
            for record in records:
                builder.add(record_line(record))
        return self._saved(kind, source, stamp, *builder.finish())

    def _wants_build(self, kind: RecordKind, source: str) -> bool:
        """No records artifact for the stream's rows now, or one too far behind to lay the
        changes since over it (one that turns out damaged is rebuilt when opened)."""
        stamp = self.db.stream_stamp(self.user_id, kind, source)
        artifact = self.shelf.open(WHAT, kind, source, stamp, FORMAT)
        if artifact is None:
            return True
        delta = self.db.stream_delta(self.user_id, kind, artifact.stamp, source)
        rows = artifact.meta.get("rows")
        return delta.whole or len(delta.ids) > _rebuild_after(rows if isinstance(rows, int) else 0)

    def _stored(self, kind: RecordKind, source: str, build: bool) -> StoredRecords:
        """The stream's records artifact for its stamp now (built unless `build` is False
        and one is saved)."""
        if not build:
            stamp = self.db.stream_stamp(self.user_id, kind, source)
            found = self._open_stored(kind, source, stamp)
            if found is not None:
                return found
        stamp, arrays, meta = self.db.read_stream_lines(self.user_id, kind, source, _built)
        return self._saved(kind, source, stamp, arrays, meta)

    def _open_stored(
        self, kind: RecordKind, source: str, stamp: StreamStamp
    ) -> StoredRecords | None:
        artifact = self.shelf.open(WHAT, kind, source, stamp, FORMAT)
        if artifact is None:
            return None
        try:
            return StoredRecords.opened(kind, artifact)
        except DamagedArtifact as exc:
            log.warning("rebuilding the records artifact of %s %s: %s", source, kind, exc)
            self.shelf.discard(WHAT, kind, source, artifact.stamp)
            return None

    def _saved(
        self,
        kind: RecordKind,
        source: str,
        stamp: StreamStamp,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
    ) -> StoredRecords:
        """Records just built, saved and mapped back from the file; kept in memory when
        they cannot be saved (a read-only data dir)."""
        for replace in (False, True):  # once more in place of a damaged folder at the stamp
            if self.shelf.save(WHAT, kind, source, stamp, FORMAT, arrays, meta, replace=replace):
                found = self._open_stored(kind, source, stamp)
                if found is not None and found.stamp == stamp:
                    return found
                continue
            break  # it cannot be saved (a read-only data dir): held in memory
        return StoredRecords(kind, stamp, arrays)

    def read_dicts(
        self, kind: RecordKind, source: str
    ) -> tuple[dict[str, Record], dict[str, Record]]:
        """The stream's synced and imported records, each by id (no artifact)."""
        load = self.db.load_records
        # both read from one commit; a stream's worth of new records: frozen, never walked
        with self.db.consistent_reads(), gc_paused():
            imported = {r.id: r for r in load(self.user_id, kind, True, source)}
            synced = {r.id: r for r in load(self.user_id, kind, False, source)}
        return synced, imported

    def _read_ids(self, kind: RecordKind, source: str, ids: list[str]) -> list[Record]:
        return list(self.db.load_records(self.user_id, kind, False, source, ids))


def rebuild_after(stored: StoredRecords) -> int:
    return _rebuild_after(len(stored))


def _rebuild_after(rows: int) -> int:
    return max(REBUILD_AFTER, rows // 10)


def _built(
    stamp: StreamStamp, lines: Iterable[bytes]
) -> tuple[StreamStamp, dict[str, np.ndarray], dict[str, Any]]:
    arrays, meta = build_arrays(lines)
    return stamp, arrays, meta
