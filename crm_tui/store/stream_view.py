"""One stream as the cache shows it, over records kept in an artifact: the artifact's
records (`StoredRecords`), a small overlay of records changed or added since, and the ids
removed since. A change makes a new view that copies the overlay, never the base, so a
reader holding the old view keeps a consistent one (copy-on-write, as with a dict).

The values of edits still on their way to a vendor (the outbox's) are laid over a base
record when it is read, from the map the view was made with; a record whose values changed
since comes in the overlay, read again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any

import numpy as np

from crm_tui.models import Record
from crm_tui.sequences import OnDemand
from crm_tui.store.stored_records import StoredRecords
from crm_tui.tuning import gc_paused
from crm_tui.writeback.values import with_values

#: One stream: a dict (as a sync or a store with no database made it) or a view over its
#: records artifact (as loaded). Either is replaced whole, never changed in place.
Stream = Mapping[str, Record]
Pending = Mapping[str, dict[str, Any]]
_NO_PENDING: Pending = {}


class StreamView(Mapping[str, Record]):
    """id -> record of one stream: `base` with `overlay` laid over it, less `removed`."""

    __slots__ = ("_added", "_gone", "_overlay", "_pending", "_removed", "_skips", "base")

    def __init__(
        self,
        base: StoredRecords,
        pending: Mapping[str, dict[str, Any]] | None = None,
        overlay: dict[str, Record] | None = None,
        removed: dict[str, int] | None = None,
        added: tuple[str, ...] = (),
    ) -> None:
        self.base = base
        self._pending = _NO_PENDING if pending is None else pending
        self._overlay = overlay or {}
        self._removed = removed or {}  # id -> base position of each base record gone
        self._added = added  # ids in the overlay that the base does not hold, in order
        # base positions of the removed records, sorted; and how many precede each, less it:
        # the i-th live base record is at i + (how many of `_skips` are <= i)
        self._gone = np.array(sorted(self._removed.values()), dtype=np.int64)
        self._skips = self._gone - np.arange(len(self._gone), dtype=np.int64)

    @property
    def touched(self) -> frozenset[str]:
        """The ids whose records differ from the base's (changed, added or removed)."""
        return frozenset(self._overlay).union(self._removed)

    @property
    def spread(self) -> int:
        """How many records the view lays over its base (what copying it costs)."""
        return len(self._overlay) + len(self._removed)

    def patched(self, upserts: Mapping[str, Record], deletes: Iterable[str]) -> StreamView:
        """A new view with `upserts` laid over this one, then `deletes` gone."""
        overlay = dict(self._overlay)
        removed = dict(self._removed)
        added = dict.fromkeys(self._added)
        for record_id, record in upserts.items():
            new = record_id not in overlay and record_id not in removed
            if new and self.base.position(record_id) is None:
                added[record_id] = None
            removed.pop(record_id, None)
            overlay[record_id] = record
        for record_id in deletes:
            overlay.pop(record_id, None)
            if record_id in added:
                del added[record_id]
            elif record_id not in removed:
                at = self.base.position(record_id)
                if at is not None:
                    removed[record_id] = at
        return StreamView(self.base, self._pending, overlay, removed, tuple(added))

    def __getitem__(self, record_id: str) -> Record:
        record = self._overlay.get(record_id)
        if record is not None:
            return record
        if record_id not in self._removed:
            record = self.base.get(record_id)
            if record is not None:
                return laid(record, self._pending)
        raise KeyError(record_id)

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str):
            return False
        if record_id in self._overlay:
            return True
        return record_id not in self._removed and self.base.position(record_id) is not None

    def __len__(self) -> int:
        return len(self.base) - len(self._gone) + len(self._added)

    def __iter__(self) -> Iterator[str]:
        for record in self.values():
            yield record.id

    def values(self) -> ValuesView[Record]:
        return _Values(self)

    def items(self) -> ItemsView[str, Record]:
        return _Items(self)

    def records(self) -> Iterator[Record]:
        """The records in order: the base's (each replaced by its overlay record, if any),
        then those added."""
        overlay, removed = self._overlay, self._removed
        for record in self.base:
            record_id = record.id
            if record_id in removed:
                continue
            changed = overlay.get(record_id)
            yield changed if changed is not None else laid(record, self._pending)
        for record_id in self._added:
            yield overlay[record_id]

    def at(self, position: int) -> Record:
        """The record at `position` in `records()` order."""
        live = len(self.base) - len(self._gone)
        if position >= live:
            return self._overlay[self._added[position - live]]
        at = position + int(np.searchsorted(self._skips, position, side="right"))
        record = self.base[at]
        changed = self._overlay.get(record.id)
        return changed if changed is not None else laid(record, self._pending)


class _Values(ValuesView[Record]):
    """A view's records, made once each as they are iterated (not looked up by id)."""

    _mapping: StreamView

    def __iter__(self) -> Iterator[Record]:
        return self._mapping.records()


class _Items(ItemsView[str, Record]):
    _mapping: StreamView

    def __iter__(self) -> Iterator[tuple[str, Record]]:
        for record in self._mapping.records():
            yield record.id, record


class ChainedRecords(OnDemand[Record]):
    """Streams one after another as one sequence, with none of their records made until
    read: `records()` of a store that holds a million."""

    def __init__(self, streams: Iterable[Mapping[str, Record]]) -> None:
        self._streams = [s for s in streams if s]
        self._starts = [0]
        for stream in self._streams:
            self._starts.append(self._starts[-1] + len(stream))
        self._lists: dict[int, list[Record]] = {}  # a dict stream's values, listed once

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[Record]:
        for stream in self._streams:
            yield from stream.values()

    def _at(self, position: int) -> Record:
        part = bisect_right(self._starts, position) - 1
        stream, offset = self._streams[part], position - self._starts[part]
        if isinstance(stream, StreamView):
            return stream.at(offset)
        listed = self._lists.get(part)
        if listed is None:
            listed = self._lists[part] = list(stream.values())
        return listed[offset]


def with_changes(stream: Stream, upserts: Mapping[str, Record], deletes: Iterable[str]) -> Stream:
    """A new mapping: `stream` with `upserts` in it, then `deletes` out (copy-on-write)."""
    if isinstance(stream, StreamView):
        return stream.patched(upserts, deletes)
    with gc_paused():  # a young dict of a million: no collection walks it, it is frozen
        updated = dict(stream)
    updated.update(upserts)
    for record_id in deletes:
        updated.pop(record_id, None)
    return updated


def patch_stream(
    base: Stream,
    upserts: list[Record],
    deletes: Iterable[str],
    imported: Mapping[str, Record],
    pending: Pending,
) -> tuple[Stream, frozenset[str], int]:
    """A copy of `base` with a few records changed (an imported record still winning over
    its synced version, pending values laid over), the ids that changed, and how many
    went."""
    changes: dict[str, Record] = {}
    for record in upserts:
        if record.id not in imported:
            changes[record.id] = laid(record, pending)
    gone = [
        record_id
        for record_id in dict.fromkeys(deletes)
        if record_id not in imported and (record_id in changes or record_id in base)
    ]
    return with_changes(base, changes, gone), frozenset(changes).union(gone), len(gone)


def laid(record: Record, pending: Pending) -> Record:
    """`record` as shown: with the values of its edits still on their way to a vendor."""
    values = pending.get(record.id)
    return record if values is None else with_values(record, values)


def lay_pending(records: dict[str, Record], pending: Pending) -> None:
    """`laid` over every record of `records` that has an edit waiting, in place."""
    for record_id in pending.keys() & records.keys():
        records[record_id] = laid(records[record_id], pending)
