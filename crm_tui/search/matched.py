"""Every record a filter matches, as (segment, position) pairs resolved when read: a filter
matching a million records holds two small arrays, not a million records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from crm_tui.models import Record
from crm_tui.sequences import OnDemand

if TYPE_CHECKING:
    from crm_tui.search.segment import Segment


class MatchedRecords(OnDemand[Record]):
    """Records `segments[part[i]].records[at[i]]` in order. The segments are held, so the
    matches stay the generation they were found in whatever the index swaps in since."""

    def __init__(self, segments: Sequence[Segment], part: np.ndarray, at: np.ndarray):
        if len(part) != len(at):
            raise ValueError("a part and a position per match")
        self._segments = list(segments)
        self._parts = [segment.records for segment in self._segments]
        self._part = part
        self._where = at

    def __len__(self) -> int:
        return len(self._where)

    def __repr__(self) -> str:
        return f"<{len(self)} matches>"

    def _at(self, position: int) -> Record:
        return self._parts[int(self._part[position])][int(self._where[position])]

    def __iter__(self) -> Iterator[Record]:
        for start in range(0, len(self), 4096):  # a slice's positions as ints at a time
            parts = self._part[start : start + 4096].tolist()
            ats = self._where[start : start + 4096].tolist()
            yield from (self._parts[n][i] for n, i in zip(parts, ats, strict=True))

    def by_segment(self) -> list[tuple[Segment, np.ndarray]]:
        """Per segment, which of its records matched (a mask): what a figure counted per
        segment from its facets needs, with no record read."""
        found = []
        for n, segment in enumerate(self._segments):
            mask = np.zeros(len(segment.records), dtype=bool)
            mask[self._where[self._part == n]] = True
            found.append((segment, mask))
        return found

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        """Where each of `ids` is among the matches (ids not matched are left out): each
        part finds its ids, then one numpy pass per id found."""
        wanted = list(ids)
        found: dict[str, int] = {}
        for n, segment in enumerate(self._segments):
            # a segment's positions: asked of its records, or kept once made from its ids
            for record_id, at in segment.positions().find(wanted).items():
                hit = np.flatnonzero((self._where == at) & (self._part == n))
                if len(hit) and record_id not in found:
                    found[record_id] = int(hit[0])
        return found
