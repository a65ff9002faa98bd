"""The search index: one segment per (kind, source), rebuilt when the store changes it.

A segment keeps each record's searchable text, folded, in one large string (one line per
record) so a term is found by `str.find` at C speed rather than by a Python loop over a
million strings. A segment is built completely and then swapped in with one assignment, so a
search sees the old segment or the new one, never a mix.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from crm_tui.heap import gc_paused, release_gradually
from crm_tui.models import KINDS, Contact, Deal, Record, RecordKind
from crm_tui.search.query import Query, parse_query
from crm_tui.search.text import digits, fold, spans

FIELD_SEP = "\x1f"  # never in data: control characters are stripped at ingest
CONTACT_FIELDS = ("name", "email", "phone", "company", "status", "stage", "tags", "city")
DEAL_FIELDS = ("name", "property_address", "stage", "status", "amount")


def field_text(record: Record, name: str) -> str:
    """A record's displayable value of a searchable field."""
    if name == "name":
        return record.name if isinstance(record, Contact) else (record.name or "")
    if name == "tags":
        return ", ".join(record.tags) if isinstance(record, Contact) else ""
    if name == "amount":
        amount = record.amount if isinstance(record, Deal) else None
        return f"{amount:,.0f}" if amount is not None else ""
    value = getattr(record, name, None)
    return value or ""


def haystack(record: Record) -> str:
    """A record's searchable text, folded, fields apart. Folding is per character and the
    separator is a starter character, so folding the joined line equals joining the folds."""
    if isinstance(record, Contact):
        parts = (
            record.name,
            record.email or "",
            record.phone or "",
            record.company or "",
            record.status or "",
            record.stage or "",
            ", ".join(record.tags),
            record.city or "",
            digits(record.phone),
        )
    else:
        amount = str(int(record.amount)) if record.amount is not None else ""
        parts = (*(field_text(record, n) for n in DEAL_FIELDS), amount)
    return fold(FIELD_SEP.join(parts)).replace("\n", " ")


_SKIP_BYTES = (0x0A, 0x1F, 0x20)  # newline, field separator, space: never inside a term


@dataclass(slots=True)
class Segment:
    """One source's searchable text: UTF-8 lines in one bytes object, plus a bigram index.

    `positions[offsets[c]:offsets[c + 1]]` lists, ascending, every byte offset where bigram
    `c` (two bytes) starts. A term is found by taking its rarest bigram's positions and
    checking the term's other bytes there, all in numpy: an exact substring match with no
    Python loop over records. Bigram codes fit in 16 bits, so numpy radix-sorts them.
    """

    records: list[Record]
    data: np.ndarray  # the lines' bytes, newline-terminated
    starts: np.ndarray  # byte offset of each record's line; one extra at the end
    positions: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, records: Iterable[Record]) -> Segment:
        ordered = list(records)
        text = ("\n".join(haystack(r) for r in ordered) + "\n").encode("utf-8")
        data = np.frombuffer(text, dtype=np.uint8)
        starts = np.zeros(len(ordered) + 1, dtype=np.int64)
        starts[1:] = np.flatnonzero(data == 0x0A) + 1
        first, second = data[:-1], data[1:]
        codes = (first.astype(np.uint16) << 8) | second
        for byte in _SKIP_BYTES:
            # Bigram 0 (two NULs) never occurs in text, so it collects what is not indexed.
            codes[(first == byte) | (second == byte)] = 0
        order = np.argsort(codes, kind="stable")  # a radix sort; positions stay ascending
        offsets = np.searchsorted(codes[order], np.arange(65537, dtype=np.uint32))
        skipped = int(offsets[1])
        positions = order[skipped:].astype(np.uint32)
        offsets = np.maximum(offsets - skipped, 0)
        return cls(ordered, data, starts, positions, offsets)

    def line(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.starts[index + 1] - 1].tobytes()

    def occurrences(self, term: bytes) -> np.ndarray:
        """Records whose line contains `term` (two bytes or more), ascending, once each."""
        pairs = [((term[i] << 8) | term[i + 1], i) for i in range(len(term) - 1)]
        code, shift = min(pairs, key=lambda p: self.offsets[p[0] + 1] - self.offsets[p[0]])
        begin = self.positions[self.offsets[code] : self.offsets[code + 1]].astype(np.int64)
        begin -= shift
        begin = begin[(begin >= 0) & (begin + len(term) <= len(self.data))]
        for j, byte in enumerate(term):
            if j in (shift, shift + 1) or not len(begin):
                continue
            begin = begin[self.data[begin + j] == byte]
        owners = np.searchsorted(self.starts, begin, side="right") - 1
        if len(owners) > 1:
            owners = owners[np.concatenate(([True], owners[1:] != owners[:-1]))]
        return owners

    def matching(self, terms: Sequence[bytes]) -> Sequence[int]:
        """Indexes of records whose line contains every term, ascending."""
        found: np.ndarray | None = None
        for term in terms:
            if len(term) < 2:
                continue
            current = self.occurrences(term)
            if found is None:
                found = current
            else:
                at = np.searchsorted(current, found)
                at[at == len(current)] = 0
                found = found[current[at] == found] if len(current) else current
        indexes: Sequence[int] = range(len(self.records)) if found is None else found
        short = [t for t in terms if len(t) < 2]  # a lone letter: checked on the line
        if not short:
            return indexes
        line = self.line
        return [i for i in _each(indexes) if all(t in line(i) for t in short)]


def _each(indexes: Sequence[int]) -> Iterator[int]:
    """Python ints from a numpy array a chunk at a time: callers often stop early."""
    if not isinstance(indexes, np.ndarray):
        yield from indexes
        return
    for start in range(0, len(indexes), 1024):
        yield from indexes[start : start + 1024].tolist()


@dataclass(slots=True)
class Hit:
    record: Record
    score: int
    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = self.record.to_json()
        data["matches"] = {k: [list(s) for s in v] for k, v in self.spans.items() if v}
        return data


@dataclass(slots=True)
class SearchResult:
    query: str
    kind: RecordKind
    groups: dict[str, list[Hit]]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_guide(self) -> dict[str, Any]:
        return {
            "success": True,
            "query": self.query,
            "type": "contact" if self.kind == "contacts" else "deal",
            "results": {s: [h.to_json() for h in hits] for s, hits in self.groups.items()},
            "counts": self.counts,
            "total": self.total,
        }


_SEP = FIELD_SEP.encode()


def _score(line: bytes, terms: Sequence[bytes]) -> int:
    """Lower is better: whole-word or prefix matches on names first, then other fields."""
    name = line.split(_SEP, 1)[0]
    score = 0
    for term in terms:
        if name.startswith(term) or b" " + term in name:
            continue
        if term in name:
            score += 1
        elif _SEP + term in line or b" " + term in line:
            score += 2
        else:
            score += 3
    return score


def _best(
    segment: Segment, candidates: list[int], terms: Sequence[bytes], limit: int
) -> list[tuple[int, int]]:
    """The `limit` best (score, index) pairs. Stops early once `limit` perfect scores are
    found: ties go by position, so nothing later can displace them."""
    if not terms:
        return [(0, int(i)) for i in candidates[:limit]]
    best: list[tuple[int, int]] = []
    perfect = 0
    line = segment.line
    for i in _each(candidates):
        score = _score(line(i), terms)
        if score == 0:
            perfect += 1
        if len(best) < limit:
            heapq.heappush(best, (-score, -i))
        elif (-score, -i) > best[0]:
            heapq.heapreplace(best, (-score, -i))
        if perfect >= limit:
            break
    return sorted((-s, -i) for s, i in best)


def _passes_filters(record: Record, query: Query) -> bool:
    for key, values in query.filters.items():
        if key == "source":
            continue  # applied per segment
        if key == "tag":
            tags = [fold(t) for t in record.tags] if isinstance(record, Contact) else []
            if not all(any(v == t or t.startswith(v) for t in tags) for v in values):
                return False
            continue
        actual = fold(getattr(record, key, None) or "")
        if not all(v in actual for v in values):
            return False
    if query.amounts or query.closing:
        if not isinstance(record, Deal):
            return False
        for op, bound in query.amounts:
            if record.amount is None or not _compare(record.amount, op, bound):
                return False
        if query.closing and not (record.close_date or "").startswith(query.closing):
            return False
    return True


def _compare(value: Decimal, op: str, bound: Decimal) -> bool:
    return {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "=": value == bound,
    }[op]


#: Longer than any search takes, even on a loaded machine.
RELEASE_GRACE_SECONDS = 2.0


class SearchIndex:
    def __init__(self) -> None:
        self._segments: dict[tuple[RecordKind, str], Segment] = {}
        self._lock = threading.Lock()  # serialises builders; readers never wait

    def rebuild(self, kind: RecordKind, source: str, records: Iterable[Record]) -> None:
        self._swap(kind, {source: records}, replace_all=False)

    def drop(self, kind: RecordKind, source: str | None = None) -> None:
        with self._lock:
            for key in list(self._segments):
                if key[0] == kind and (source is None or key[1] == source):
                    del self._segments[key]

    def rebuild_from(
        self, store: Any, source: str | None = None, kinds: Iterable[RecordKind] = KINDS
    ) -> None:
        """Re-index the parts of a CacheStore that changed (a source, or everything)."""
        for kind in kinds:
            names = [source] if source is not None else store.sources()
            parts = {name: store.stream(kind, name).values() for name in names}
            self._swap(kind, parts, replace_all=source is None)

    def _swap(
        self, kind: RecordKind, parts: dict[str, Iterable[Record]], replace_all: bool
    ) -> None:
        """Build every new segment first, then put them in place in one step: a search
        running meanwhile sees the old segments or the new ones, never a gap."""
        with gc_paused():
            built = {(kind, name): Segment.build(records) for name, records in parts.items()}
        with self._lock:
            stale = [
                key for key in self._segments if key in built or (replace_all and key[0] == kind)
            ]
            old = [self._segments.pop(key) for key in stale]
            self._segments.update(built)
        for segment in old:
            # A search that began before the swap may still be reading it: free it later.
            release_gradually(segment.records, after=RELEASE_GRACE_SECONDS)

    def search(
        self,
        text: str,
        kind: RecordKind = "contacts",
        sources: Sequence[str] | None = None,
        limit: int = 50,
    ) -> SearchResult:
        """Results grouped by source, best first, each group at most `limit` long."""
        query = parse_query(text, kind)
        wanted = set(sources or ()) | set(query.sources)
        groups: dict[str, list[Hit]] = {}
        counts: dict[str, int] = {}
        terms = sorted({t.encode("utf-8") for t in query.terms}, key=len, reverse=True)
        text_terms = [t.decode("utf-8") for t in terms]
        fields_ = CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS
        filtered = bool(query.filters.keys() - {"source"} or query.amounts or query.closing)
        # A text filter's value is somewhere in the record's line too: let the index narrow
        # the candidates before the exact per-field check.
        narrowing = terms + [
            v.encode("utf-8")
            for k, values in query.filters.items()
            if k != "source"
            for v in values
        ]
        for (segment_kind, source), segment in list(self._segments.items()):
            if segment_kind != kind or (wanted and source not in wanted):
                continue
            candidates = segment.matching(narrowing)
            if filtered:
                records = segment.records
                candidates = [i for i in _each(candidates) if _passes_filters(records[i], query)]
            if not len(candidates):
                continue
            counts[source] = len(candidates)
            groups[source] = [
                Hit(
                    segment.records[i],
                    score,
                    {f: spans(field_text(segment.records[i], f), text_terms) for f in fields_},
                )
                for score, i in _best(segment, candidates, terms, limit)
            ]
        return SearchResult(query.text, kind, groups, counts)
