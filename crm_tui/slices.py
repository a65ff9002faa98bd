"""Loops in C (map, fromiter, chain) over many items, a slice at a time.

One C loop over a few hundred thousand items never lets another thread have the interpreter
lock: run in a worker beside the event loop, it holds the screen up for frames. Cut into
slices, the lock changes hands between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
SLICE = 8192


def slices(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for at in range(0, len(items), SLICE):
        yield items[at : at + SLICE]


def sliced_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`list(map(fn, items))`."""
    out: list[Any] = []
    for part in slices(items):
        out.extend(map(fn, part))
    return out


def sliced_flatten(lists: Sequence[Sequence[Any]]) -> list[Any]:
    """`list(chain.from_iterable(lists))`."""
    out: list[Any] = []
    for part in slices(lists):
        out.extend(chain.from_iterable(part))
    return out


def sliced_array(fn: Callable[[Any], Any], items: Sequence[Any], dtype: Any) -> np.ndarray:
    """`np.fromiter(map(fn, items), dtype)`."""
    out = np.empty(len(items), dtype=dtype)
    at = 0
    for part in slices(items):
        out[at : at + len(part)] = np.fromiter(map(fn, part), dtype=dtype, count=len(part))
        at += len(part)
    return out
