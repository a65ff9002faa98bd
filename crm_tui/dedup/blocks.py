"""Blocking over key codes with numpy: positions that share a key, found by sorting the codes
and cutting the sorted run where the code changes (numpy sorts without holding the
interpreter lock, where a dict of a million keys is built in long C loops that do)."""

from __future__ import annotations

import numpy as np


def _runs(positions: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`positions` ordered by `keys` (the first the most significant), then by position; and
    where each run of equal keys starts and ends in that order."""
    ordered = positions[np.lexsort((positions, *(k[positions] for k in reversed(keys))))]
    change = np.zeros(max(len(ordered) - 1, 0), dtype=bool)
    for k in keys:
        values = k[ordered]
        change |= values[1:] != values[:-1]
    cuts = np.flatnonzero(change) + 1
    if len(ordered) == 0:
        return ordered, cuts, cuts
    return ordered, np.concatenate(([0], cuts)), np.concatenate((cuts, [len(ordered)]))


def repeated(keys: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """The positions of each non-zero code held more than once, ascending, blocks in order
    of their first repeat (the second position); and all those positions, as one array."""
    ordered, starts, ends = _runs(np.flatnonzero(keys), keys)
    sizes = ends - starts
    members = ordered[np.repeat(sizes, sizes) >= 2]
    many = sizes >= 2
    starts, ends = starts[many], ends[many]
    order = np.argsort(ordered[starts + 1], kind="stable")
    positions = ordered.tolist()
    blocks = [
        positions[s:e] for s, e in zip(starts[order].tolist(), ends[order].tolist(), strict=True)
    ]
    return blocks, members


def sized_runs(
    where: np.ndarray, first: np.ndarray, second: np.ndarray, most: int
) -> list[tuple[int, list[int]]]:
    """(first position, positions) of every group of the `where` positions equal on both
    key arrays, holding 2 to `most` of them, positions ascending."""
    ordered, starts, ends = _runs(np.flatnonzero(where), first, second)
    sizes = ends - starts
    keep = (sizes >= 2) & (sizes <= most)
    positions = ordered.tolist()
    return [
        (positions[s], positions[s:e])
        for s, e in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True)
    ]
