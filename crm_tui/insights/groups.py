"""Records reduced to groups of equal values, in C loops a slice at a time: 200,000 deals
hold a few thousand distinct (source, stage, status, date) values, so every figure is added
up per group. A slice at a time, because one C loop over 200,000 items never lets the event
loop's thread have the interpreter lock while a worker thread runs it."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import accumulate
from typing import Any, Generic, TypeVar

import numpy as np

from crm_tui.sequences import OnDemand
from crm_tui.slices import sliced_map, slices

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def group_codes(keys: Sequence[K]) -> tuple[list[K], np.ndarray]:
    """The distinct keys, in the order first met, and per item the index of its key."""
    index: dict[K, int] = {}
    for part in slices(keys):
        index.update(dict.fromkeys(part, 0))
    for n, key in enumerate(index):
        index[key] = n
    codes = np.fromiter(sliced_map(index.__getitem__, keys), np.int64, len(keys))
    return list(index), codes


def source_order(found: Iterable[str]) -> tuple[str, ...]:
    """Sources in the app's fixed order (the registry's), any other after them."""
    from crm_tui.config import SOURCE_NAMES

    seen = set(found)
    known = tuple(s for s in SOURCE_NAMES if s in seen)
    return known + tuple(sorted(s for s in seen if s not in SOURCE_NAMES))


class PerSegment(Generic[V]):
    """A value per search-index segment (with the records a patch left out of it), kept
    while that segment is the index's: a change to one source redoes its part only."""

    def __init__(self, make: Callable[[Any, Any], V]) -> None:
        self._make = make  # (segment, dead) -> the value
        self._kept: dict[tuple[int, int], tuple[object, V]] = {}

    def values(self, parts: Sequence[tuple[str, Any, Any]]) -> list[V]:
        """One value per part, made for the parts not seen last time; not thread-safe."""
        kept: dict[tuple[int, int], tuple[object, V]] = {}
        for _, segment, dead in parts:
            key = (id(segment), id(dead))  # unique: the entry holds both alive
            kept[key] = self._kept.get(key) or ((segment, dead), self._make(segment, dead))
        self._kept = kept
        return [value for _, value in kept.values()]


class Joined(OnDemand[V]):
    """Sequences one after another, none of their items read until asked for: a merged
    table's deals are each source's lazy records, not a list of them all."""

    def __init__(self, parts: Iterable[Sequence[V]]) -> None:
        self._parts = [part for part in parts if len(part)]
        self._starts = [0, *accumulate(len(part) for part in self._parts)]

    def __len__(self) -> int:
        return self._starts[-1]

    def _at(self, position: int) -> V:
        part = bisect_right(self._starts, position) - 1
        return self._parts[part][position - self._starts[part]]
