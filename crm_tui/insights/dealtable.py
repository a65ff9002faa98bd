"""Deals reduced to groups of equal (source, stage, status, close date).

200,000 deals hold a few thousand such groups: each figure is added up per group, not per
deal. A table is made from records (a C loop per field, a slice at a time, so a thread
doing it never holds the interpreter lock for long), or, in the app, from the search
index's segments, whose per-record codes and amounts are already numpy arrays: then no
Python runs per deal at all. Only GCI needs each deal's payload, and only for the deals a
window asks about; it is kept per group, so a table reused while its stream is unchanged
reads no payload twice.
"""

from __future__ import annotations

import functools
import math
import operator
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from crm_tui.formats import read_amount
from crm_tui.insights.groups import Joined, PerSegment, group_codes
from crm_tui.insights.periods import today_of
from crm_tui.lazyrows import read_slices
from crm_tui.models import Deal
from crm_tui.search.matched import MatchedRecords

if TYPE_CHECKING:
    from crm_tui.insights.report import DealFigures
    from crm_tui.search.index import Segment

GroupKey = tuple[str, str | None, str | None, str | None]  # source, stage, status, close date
Head = tuple[str, str | None, str | None]  # source, stage, status
Heads = tuple[list[Head], list[int], list[float]]  # each, its count and its volume


@dataclass(eq=False)
class DealTable:
    deals: Sequence[Deal]
    keys: list[GroupKey]
    codes: np.ndarray  # per deal, its group; -1 for one left out (a patch replaced it)
    counts: np.ndarray
    volumes: np.ndarray
    _gci: dict[int, float | None] = field(default_factory=dict)  # per group, once asked
    #: a merged table's parts, each with the number of its first group
    _parts: list[tuple[int, DealTable]] = field(default_factory=list)
    _heads: Heads | None = None

    @classmethod
    def of(cls, deals: Sequence[Deal]) -> DealTable:
        """From records (the CLI's cache): each read once, a slice at a time, as they may be
        decoded from disk as they are read. A filter's matches are counted per segment from
        its facets instead, reading a deal per group."""
        if isinstance(deals, MatchedRecords):  # a filter's: counted from the facets
            return cls.merge([cls.of_segment(seg, ~hit) for seg, hit in deals.by_segment()])
        heads: list[Head] = []
        closes: list[str | None] = []
        amounts = np.empty(len(deals), dtype=np.float64)
        at = 0
        for records in read_slices(deals):
            part = list(map(_deal_fields, records))
            heads += [fields[:3] for fields in part]
            closes += [fields[3] for fields in part]
            # float() of each Decimal, None as NaN
            amounts[at : at + len(part)] = np.array([f[4] for f in part], dtype=np.float64)
            at += len(part)
        _, head_codes = group_codes(heads)
        close_keys, close_codes = group_codes(closes)
        return cls.grouped(deals, head_codes * max(len(close_keys), 1) + close_codes, amounts)

    @classmethod
    def of_segment(cls, segment: Segment, dead: np.ndarray | None = None) -> DealTable:
        """From one search-index segment of deals (one source), leaving out `dead` records:
        its facets hold every record's stage, status and close date as codes."""
        facets = segment.facets()
        stage, status = facets.codes["stage"].astype(np.int64), facets.codes["status"]
        closes = facets.closing_codes.astype(np.int64)
        combined = (stage * len(facets.values["status"]) + status) * max(
            len(facets.closing_values), 1
        ) + closes
        return cls.grouped(segment.records, combined, facets.amounts, dead)  # type: ignore[arg-type]

    @classmethod
    def grouped(
        cls,
        deals: Sequence[Deal],
        combined: np.ndarray,
        amounts: np.ndarray,
        dead: np.ndarray | None = None,
    ) -> DealTable:
        """Deals with equal `combined` codes are one group; each group's key is read from
        its first deal (its values as the vendor spelt them)."""
        live = np.arange(len(deals)) if dead is None else np.flatnonzero(~dead)
        _, first, inverse = np.unique(combined[live], return_index=True, return_inverse=True)
        codes = np.full(len(deals), -1, dtype=np.int64)
        codes[live] = inverse
        keyed = attrgetter("source", "stage", "status", "close_date")
        keys = [keyed(deals[at]) for at in live[first].tolist()]
        counts = np.bincount(inverse, minlength=len(keys))
        weights = np.nan_to_num(amounts[live])
        return cls(deals, keys, codes, counts, np.bincount(inverse, weights, len(keys)))

    @classmethod
    def merge(cls, tables: Sequence[DealTable]) -> DealTable:
        """One table of several (one per source): each keeps the GCI it has read."""
        if len(tables) == 1:
            return tables[0]
        parts, at = [], 0
        for table in tables:
            parts.append((at, table))
            at += len(table.keys)
        return cls(
            Joined(table.deals for table in tables),
            list(chain.from_iterable(table.keys for table in tables)),
            np.concatenate([_shifted(t.codes, n) for n, t in parts] or [np.zeros(0, np.int64)]),
            np.concatenate([t.counts for t in tables] or [np.zeros(0, np.int64)]),
            np.concatenate([t.volumes for t in tables] or [np.zeros(0)]),
            _parts=parts,
        )

    def by_head(self) -> Heads:
        """Count and volume per (source, stage, status), close dates added together."""
        if self._heads is None:
            heads, at = group_codes([key[:3] for key in self.keys])
            counts = np.bincount(at, weights=self.counts, minlength=len(heads))
            volumes = np.bincount(at, weights=self.volumes, minlength=len(heads))
            self._heads = (heads, [int(c) for c in counts.tolist()], volumes.tolist())
        return self._heads

    def gci_of(self, groups: Iterable[int]) -> dict[int, float | None]:
        """GCI per group (None where the source carries no commission), from the payloads
        of those groups' deals only, each read once."""
        wanted = list(groups)
        if self._parts:
            return self._gci_of_parts(wanted)
        unread = [g for g in wanted if g not in self._gci]
        readable = [g for g in unread if commission_getter(self.keys[g][0]) is not None]
        self._gci.update(dict.fromkeys(unread))
        self._gci.update(dict.fromkeys(readable, 0.0))
        if readable:
            chosen = np.flatnonzero(np.isin(self.codes, np.array(readable, dtype=np.int64)))
            deals, gci = self.deals, self._gci
            for at, group in zip(chosen.tolist(), self.codes[chosen].tolist(), strict=True):
                gci[group] = (gci[group] or 0.0) + gci_of_deal(deals[at])
        return {g: self._gci[g] for g in wanted}

    def _gci_of_parts(self, groups: list[int]) -> dict[int, float | None]:
        found: dict[int, float | None] = {}
        for start, table in self._parts:
            mine = [g - start for g in groups if start <= g < start + len(table.keys)]
            found.update({g + start: v for g, v in table.gci_of(mine).items()})
        return found


_deal_fields = attrgetter("source", "stage", "status", "close_date", "amount")


def _shifted(codes: np.ndarray, by: int) -> np.ndarray:
    return np.where(codes >= 0, codes + by, -1)


@functools.lru_cache(maxsize=64)
def commission_getter(source: str) -> Callable[[Any], Any] | None:
    """Where a source's deal payload holds its commission, as its connector declares it."""
    from crm_tui.sources.mapping import compile_spec
    from crm_tui.sources.registry import CONNECTORS

    connector = CONNECTORS.get(source)
    spec = connector.commission if connector is not None else None
    return compile_spec(spec) if spec is not None else None


def gci_of_deal(deal: Deal) -> float:
    """A deal's commission from its payload ($0 where it has none or it is not a number)."""
    getter = commission_getter(deal.source)
    if getter is None:
        return 0.0
    try:
        payload = orjson.loads(deal.raw)
    except orjson.JSONDecodeError:
        return 0.0
    return money_value(getter(payload)) if type(payload) is dict else 0.0


def money_value(value: Any) -> float:
    """A commission as a number: 12000, 12000.5, "12,000.50", "$12,000"; anything else (a
    word, NaN, infinity, a bool) counts as 0. The common forms skip Decimal: 40,000 deals
    in a window are read per chart."""
    if type(value) is int or type(value) is float:
        number = float(value)
    elif type(value) is str:
        try:
            number = float(value.replace(",", "").replace("$", "").strip() or 0)
        except ValueError:
            return _slow_money(value)
    else:
        return 0.0
    return number if math.isfinite(number) and abs(number) < 1e15 else 0.0


def _slow_money(value: str) -> float:
    """What the sync's own amount parser makes of the rarer spellings (`USD 12,000`)."""
    try:
        amount = read_amount(value)
    except ValueError:
        return 0.0
    return float(amount) if amount is not None else 0.0


class SegmentTables:
    """The app's deal tables, one per search-index segment of deals, kept while that
    segment is the index's: a deal synced redoes its source's small patch table only, and
    no commission is read twice. `warm()` runs after the index changes (in a thread), so
    the Pipeline opens on figures that are only added up, never counted from scratch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one user of the tables at a time (GCI is cached)
        self._tables = PerSegment(DealTable.of_segment)
        self._figures: tuple[date, list[object], DealFigures] | None = None

    def table(self, parts: Sequence[tuple[str, Segment, np.ndarray | None]]) -> DealTable:
        """All deals indexed now, as one table; call with `lock` held."""
        return DealTable.merge(self._tables.values(parts))

    def figures(
        self, parts: Sequence[tuple[str, Segment, np.ndarray | None]], now: date | datetime
    ) -> DealFigures:
        """The deal charts of all deals indexed now, computed once per index and day; call
        with `lock` held."""
        from crm_tui.insights.report import deal_figures

        held = [item for _, segment, dead in parts for item in (segment, dead)]
        day = today_of(now)
        if self._figures is not None:
            kept_day, kept_held, figures = self._figures
            same = len(kept_held) == len(held) and all(map(operator.is_, kept_held, held))
            if kept_day == day and same:
                return figures
        figures = deal_figures(self.table(parts), now)
        self._figures = (day, held, figures)  # holding the parts: identity stays meaningful
        return figures

    def warm(self, parts: Sequence[tuple[str, Segment, np.ndarray | None]], now: Any) -> None:
        """Tables of new segments and their figures, commissions read."""
        with self.lock:
            self.figures(parts, now)
