"""Running a query over one segment: the records that match it, and their order.

A score is the sum, over the query's terms, of the best place each term has in the record
(lower is better): 0 at the start of a word of the name, 1 elsewhere in the name, 2 at the
start of a word of another field, 3 anywhere else, NO_MATCH where it is not held.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from crm_tui.search.query import Query

if TYPE_CHECKING:
    from crm_tui.search.segment import Segment

NO_MATCH = 4  # worse than any place a term can have
#: A filter goes first when each term's rarest bigram has more offsets than the segment's
#: records over this: the filter's mask is then cheaper than the term's occurrences.
_FILTER_FIRST = 2


class TermHits(NamedTuple):
    """Where one term matched: offsets in the lines and their records (ascending, repeated
    per offset), and per record its best place in the value fields (see value_matches)."""

    begin: np.ndarray
    owners: np.ndarray
    in_values: np.ndarray | None
    least: int  # no record places the term better than this (0 when not known)


def firsts(owners: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in an ascending array."""
    if not len(owners):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], owners[1:] != owners[:-1])))


@dataclass(slots=True)
class Matches:
    """A segment's records matching a query, and what it takes to rank them."""

    segment: Segment
    found: np.ndarray
    hits: list[TermHits]

    def scores(self, candidates: np.ndarray, upto: int | None = None) -> np.ndarray:
        """Each candidate's score (lower is better). With `upto`, every candidate is at or
        before record `upto`, and only occurrences up to there are read, so a prefix of
        the candidates costs a prefix of the work."""
        size = len(self.segment.records) if upto is None else upto + 1
        total = np.zeros(len(candidates), dtype=np.int16)
        wanted: np.ndarray | None = None  # candidates as a mask, made when first needed
        for begin, owners, in_values, _ in self.hits:
            if upto is not None:
                cut = int(np.searchsorted(owners, upto, side="right"))
                begin, owners = begin[:cut], owners[:cut]
            if len(candidates) * 4 < len(owners):  # few candidates: only their occurrences
                if wanted is None:
                    wanted = np.zeros(size, dtype=bool)
                    wanted[candidates] = True
                mine = wanted[owners]
                begin, owners = begin[mine], owners[mine]
            # per record its best place (minimum.at: unbuffered, several times faster than
            # a reduceat over the runs of each record), then read at the candidates: a
            # scatter and a gather, where a search per candidate would cost a log factor
            if in_values is None:
                dense = np.full(size, NO_MATCH, dtype=np.int8)
            else:
                dense = in_values[:size].copy()
            np.minimum.at(dense, owners, self.segment.places(begin, owners))
            total += dense[candidates]
        return total

    def best(self, candidates: np.ndarray, limit: int) -> list[tuple[int, int]]:
        """The `limit` best (score, index) pairs, ties by position. No candidate scores
        better than the sum of its terms' best places; once a prefix of the candidates
        holds `limit` at that score, nothing later can displace them, and the rest are
        never scored (a common word's name matches; two letters found only inside words)."""
        if not len(candidates):
            return []
        least = sum(hit.least for hit in self.hits)
        size = 4 * limit
        while size * _PREFIX_SHARE < len(candidates):
            head = candidates[:size]
            found = head[self.scores(head, int(head[-1])) == least]
            if len(found) >= limit:
                return [(least, int(i)) for i in found[:limit]]
            # where `limit` such ones should be, at the rate this prefix holds them (at
            # most one, if none): past the share, scoring every candidate costs less
            size = int(1.5 * size * limit / max(len(found), 1))
        return _best(candidates, self.scores(candidates), limit)


#: Prefixes are scored while the next one would be under 1/_PREFIX_SHARE of the
#: candidates; a bigger one would cost about what scoring them all costs.
_PREFIX_SHARE = 2


def _best(candidates: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """The `limit` best (score, index) pairs: lowest score first, ties by position. Scores
    are a few small numbers, so this takes each score's first candidates, best score
    first, rather than sorting a key per candidate."""
    out: list[tuple[int, int]] = []
    for score in np.flatnonzero(np.bincount(scores)).tolist():
        need = limit - len(out)
        if need <= 0:
            break
        out += [(score, i) for i in candidates[_first_equal(scores, score, need)].tolist()]
    return out


def _first_equal(values: np.ndarray, wanted: int, count: int) -> np.ndarray:
    """The first `count` positions where `values` equals `wanted`, ascending: read in
    growing chunks, since a common score has enough in the first few hundred."""
    found: list[np.ndarray] = []
    held, at, chunk = 0, 0, 4 * count
    while held < count and at < len(values):
        part = np.flatnonzero(values[at : at + chunk] == wanted) + at
        found.append(part)
        held += len(part)
        at += chunk
        chunk *= 4
    return np.concatenate(found)[:count] if found else np.zeros(0, dtype=np.int64)


def every_match(
    segment: Segment, dead: np.ndarray | None, query: Query, terms: list[bytes], filtered: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every match of a segment as (scores, record indexes), best first, ties by position:
    numpy throughout, so a million matches cost no Python object each until listed."""
    none = (np.zeros(0, dtype=np.int16), np.zeros(0, dtype=np.int64))
    if not segment.records:
        return none
    matches, candidates = _candidates(segment, dead, query, terms, filtered)
    if not len(candidates):
        return none
    scores = matches.scores(candidates)
    order = np.argsort(scores, kind="stable")
    return scores[order], candidates[order]


def ranked(
    segment: Segment,
    dead: np.ndarray | None,
    query: Query,
    terms: list[bytes],
    filtered: bool,
    limit: int,
) -> tuple[int, list[tuple[int, int]]]:
    """How many of a segment's records match (leaving out `dead` ones), and the best."""
    if not segment.records:
        return 0, []
    matches, candidates = _candidates(segment, dead, query, terms, filtered)
    if not len(candidates):
        return 0, []
    return len(candidates), matches.best(candidates, limit)


def ranked_all(
    parts: Sequence[tuple[Segment, np.ndarray | None]],
    query: Query,
    terms: list[bytes],
    filtered: bool,
    limit: int,
) -> list[tuple[int, list[tuple[int, int]]]]:
    """`ranked` for each (segment, dead), in order. A broad query's parts are split in two
    halves of about equal work, one ranked on a helper thread: numpy lets go of the
    interpreter lock inside its passes, so on two idle cores that takes 0.5-0.8x the
    time (1M contacts over six sources). A narrow one stays on the calling thread, where
    the hop would cost more than it saves."""

    def rank(which: list[int]) -> dict[int, tuple[int, list[tuple[int, int]]]]:
        return {n: ranked(*parts[n], query, terms, filtered, limit) for n in which}

    work = [_work(segment, terms) for segment, _ in parts]
    if sum(work) < TWO_THREADS_WORK or len(parts) < 2:
        return list(rank(list(range(len(parts)))).values())
    mine, theirs = _halves(work)
    later = _helper().submit(rank, theirs)
    done = rank(mine)
    done.update(later.result())
    return [done[n] for n in range(len(parts))]


#: Offsets a query reads over all its parts (see `_work`) from which it is ranked on two
#: threads: below it, a query takes a few milliseconds, and the hop about a tenth of one.
TWO_THREADS_WORK = 100_000


def _work(segment: Segment, terms: list[bytes]) -> int:
    """About how much ranking a segment costs: the offsets its terms' rarest bigrams hold
    (every record's, for a filter alone)."""
    if not segment.records:
        return 0
    return sum(segment.rarest(t)[2] for t in terms) if terms else len(segment.records)


def _halves(work: list[int]) -> tuple[list[int], list[int]]:
    """Part numbers in two groups of about equal work, the heaviest placed first."""
    groups: tuple[list[int], list[int]] = ([], [])
    held = [0, 0]
    for n in sorted(range(len(work)), key=lambda n: -work[n]):
        lighter = 0 if held[0] <= held[1] else 1
        groups[lighter].append(n)
        held[lighter] += work[n]
    return groups


@functools.cache
def _helper() -> ThreadPoolExecutor:
    """The second ranking thread, made on first use and kept (not a background one: the
    person typing waits for it). Two first calls at once may each make one: harmless."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-rank")


# a forked child has none of the parent's threads: it makes its own helper
os.register_at_fork(after_in_child=_helper.cache_clear)


def _candidates(
    segment: Segment, dead: np.ndarray | None, query: Query, terms: list[bytes], filtered: bool
) -> tuple[Matches, np.ndarray]:
    """A segment's records holding every term, less the `dead` ones and those a filter
    leaves out; with the matches they came from (which score them). When every term is
    held by most records, the filter goes first and the terms are looked for only in the
    records it keeps."""
    size = len(segment.records)
    allowed: np.ndarray | None = None
    if filtered and all(segment.rarest(t)[2] * _FILTER_FIRST > size for t in terms):
        allowed = np.flatnonzero(segment.facets().mask(query))
    matches = segment.matching(terms, allowed)
    candidates = matches.found
    if dead is not None and len(candidates):
        candidates = candidates[~dead[candidates]]
    if filtered and allowed is None and len(candidates):
        candidates = candidates[segment.facets().mask(query, candidates)]
    return matches, candidates
