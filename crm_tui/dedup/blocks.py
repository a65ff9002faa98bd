"""Blocking over key codes with numpy: positions that share a key, found by sorting the codes
and cutting the sorted run where the code changes (numpy sorts without holding the
interpreter lock, where a dict of a million keys is built in long C loops that do)."""

from __future__ import annotations

import numpy as np


def _runs(positions: np.ndarray, *keys: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """`positions` ordered by `keys` (the first the most significant), then by position; and
    where each run of equal keys starts and ends in that order."""
    order = np.lexsort((positions, *(k[positions] for k in reversed(keys))))
    ordered = positions[order]
    if len(ordered) == 0:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.zeros(len(ordered) - 1, dtype=bool)
    for k in keys:
        values = k[ordered]
        change |= values[1:] != values[:-1]
    cuts = np.flatnonzero(change) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(ordered)]))
    return ordered.tolist(), starts, ends


def repeated(keys: np.ndarray) -> list[tuple[int, list[int]]]:
    """(code, positions) for every non-zero code held more than once, positions ascending,
    blocks in order of their first repeat (the second position)."""
    ordered, starts, ends = _runs(np.flatnonzero(keys), keys)
    many = ends - starts >= 2
    starts, ends = starts[many], ends[many]
    seconds = np.fromiter((ordered[s + 1] for s in starts.tolist()), np.int64, len(starts))
    found = []
    for at in np.argsort(seconds, kind="stable").tolist():
        first, last = int(starts[at]), int(ends[at])
        found.append((int(keys[ordered[first]]), ordered[first:last]))
    return found


def sized_runs(
    where: np.ndarray, first: np.ndarray, second: np.ndarray, most: int
) -> list[tuple[int, list[int]]]:
    """(first position, positions) of every group of the `where` positions equal on both
    key arrays, holding 2 to `most` of them, positions ascending."""
    ordered, starts, ends = _runs(np.flatnonzero(where), first, second)
    sizes = ends - starts
    keep = (sizes >= 2) & (sizes <= most)
    return [
        (ordered[s], ordered[s:e])
        for s, e in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True)
    ]
