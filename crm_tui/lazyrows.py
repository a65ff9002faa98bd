"""What a list of records shows, as lazy sequences: a store's streams one after another, and
a sequence reordered by a column's values. A million rows hold arrays, not records; each
can tell where an id sits (`positions`) without reading every record.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, islice
from typing import Any, TypeVar, overload

import numpy as np

from crm_tui.models import Record
from crm_tui.sequences import OnDemand
from crm_tui.slices import SLICE
from crm_tui.store.stream_view import ChainedRecords, StreamView

T = TypeVar("T")


class Cancelled(Exception):
    """A sort given up: a newer one replaced it."""


def read_slices(records: Sequence[T], stop: threading.Event | None = None) -> Iterator[list[T]]:
    """`records` a slice at a time, read in order: records decoded from disk come faster by
    iteration than one position at a time, and a slice at a time lets the event loop's
    thread have the interpreter lock between slices. Raises Cancelled when `stop` is set
    before a slice is read."""
    read = iter(records)
    while not (stop is not None and stop.is_set()):
        part = list(islice(read, SLICE))
        if not part:
            return
        yield part
    raise Cancelled


def find_positions(records: Sequence[Record], ids: Iterable[str]) -> dict[str, int]:
    """Where each of `ids` sits in `records`: asked of the sequence when it can tell, else
    (a list: its records are already made) from each record's id."""
    wanted = set(ids)
    asked = getattr(records, "positions", None)
    if callable(asked):
        return dict(asked(wanted))
    found: dict[str, int] = {}
    for at, record in enumerate(records):
        if record.id in wanted and record.id not in found:
            found[record.id] = at
    return found


class StreamRows(Sequence[Record]):
    """One kind's streams one after another, as `CacheStore.records` gives them, that can
    tell where an id sits. `streams` is what it was made of: the same objects mean the
    same records (a stream is replaced whole, never changed in place)."""

    def __init__(self, streams: Iterable[Mapping[str, Record]]) -> None:
        self.streams = tuple(s for s in streams if s)
        self._records = ChainedRecords(self.streams)
        self._starts = [0, *accumulate(len(s) for s in self.streams)]

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, position: int) -> Record: ...

    @overload
    def __getitem__(self, position: slice) -> list[Record]: ...

    def __getitem__(self, position: int | slice) -> Record | list[Record]:
        return self._records[position]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)  # each stream read in order: no lookup per record

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        wanted = set(ids)
        for start, stream in zip(self._starts, self.streams, strict=False):
            mine = [i for i in wanted if i not in found and i in stream]
            for record_id, at in _stream_positions(stream, mine).items():
                found[record_id] = start + at
        return found


def _stream_positions(stream: Mapping[str, Record], ids: list[str]) -> dict[str, int]:
    """Where each of `ids` (all held by `stream`) sits in its records' order."""
    if not ids:
        return {}
    if not isinstance(stream, StreamView):  # a dict: its ids in order, no record read
        wanted = set(ids)
        return {i: at for at, i in enumerate(stream) if i in wanted}
    base = stream.base
    # the base positions of the records removed since the artifact (a few: `touched`)
    gone = sorted(
        at for i in stream.touched if i not in stream and (at := base.position(i)) is not None
    )
    found: dict[str, int] = {}
    added: list[str] = []
    for record_id in ids:
        at = base.position(record_id)
        if at is None:
            added.append(record_id)
        else:
            found[record_id] = at - bisect_left(gone, at)
    live = len(base) - len(gone)
    for at in range(live, len(stream)) if added else ():  # those added: after the base's
        record_id = stream.at(at).id
        if record_id in added:
            found[record_id] = at
    return found


class Reordered(OnDemand[Record]):
    """`base` in another order: its record `order[i]` at `i`."""

    def __init__(self, base: Sequence[Record], order: np.ndarray) -> None:
        if len(order) != len(base):
            raise ValueError("an order of another length than its records")
        self.base = base
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def _at(self, position: int) -> Record:
        return self.base[int(self.order[position])]

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for record_id, at in find_positions(self.base, ids).items():
            hit = np.flatnonzero(self.order == at)
            if len(hit):
                found[record_id] = int(hit[0])
        return found


def sort_ranks(
    records: Sequence[Record],
    key: Callable[[Record], Any],
    stop: threading.Event | None = None,
) -> np.ndarray:
    """Per record, the rank of its key among the distinct keys (equal keys, equal ranks):
    records are read a slice at a time and let go, keeping one code each and the distinct
    keys. Raises Cancelled when `stop` is set between slices."""
    seen: dict[Any, int] = {}
    codes = np.empty(len(records), dtype=np.int64)
    at = 0
    for part in read_slices(records, stop):
        found = (seen.setdefault(k, len(seen)) for k in map(key, part))
        codes[at : at + len(part)] = np.fromiter(found, np.int64, len(part))
        at += len(part)
    distinct = list(seen)
    del seen
    rank_of = np.empty(len(distinct), dtype=np.int64)
    rank_of[_sorted_indexes(distinct)] = np.arange(len(distinct))
    ranks = rank_of[codes]
    return ranks.astype(np.int32) if len(distinct) < 2**31 else ranks


def _sorted_indexes(values: list[Any]) -> list[int]:
    """The indexes of `values` in their sorted order: slices sorted, then merged. One
    sort of a million strings would hold the interpreter lock (the event loop) for a
    second; a merge's steps let it go."""
    get = values.__getitem__
    runs = [
        sorted(range(at, min(at + SLICE, len(values))), key=get)
        for at in range(0, len(values), SLICE)
    ]
    if len(runs) <= 1:
        return runs[0] if runs else []
    return list(heapq.merge(*runs, key=get))


def sorted_order(ranks: np.ndarray, reverse: bool = False) -> np.ndarray:
    """The order `sorted(records, key, reverse)` gives, from `sort_ranks`: stable, so equal
    keys keep their records' order either way, as Python's sort does."""
    order = np.argsort(-ranks if reverse else ranks, kind="stable")
    return order.astype(np.int32) if len(order) < 2**31 else order
