"""The search index: one segment per (kind, source), rebuilt when the store changes it.

A segment keeps each record's searchable text, folded, in one large string (one line per
record) so a term is found by `str.find` at C speed rather than by a Python loop over a
million strings. A segment is built completely and then swapped in with one assignment, so a
search sees the old segment or the new one, never a mix.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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
    names = CONTACT_FIELDS if isinstance(record, Contact) else DEAL_FIELDS
    parts = [fold(field_text(record, n).replace("\n", " ")) for n in names]
    if isinstance(record, Contact):
        parts.append(digits(record.phone))
    elif record.amount is not None:
        parts.append(str(int(record.amount)))
    return FIELD_SEP.join(parts)


@dataclass(slots=True)
class Segment:
    records: list[Record]
    blob: str
    starts: list[int]  # where each record's line begins in blob

    @classmethod
    def build(cls, records: Iterable[Record]) -> Segment:
        ordered = list(records)
        lines = [haystack(r) for r in ordered]
        starts = []
        position = 0
        for line in lines:
            starts.append(position)
            position += len(line) + 1
        return cls(ordered, "\n".join(lines) + "\n", starts)

    def line(self, index: int) -> str:
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.blob) - 1
        return self.blob[self.starts[index] : end]

    def matching(self, term: str) -> list[int]:
        """Indexes of records whose line contains `term`, in order."""
        found: list[int] = []
        blob, starts = self.blob, self.starts
        position = blob.find(term)
        while position >= 0:
            index = bisect_right(starts, position) - 1
            found.append(index)
            next_start = starts[index + 1] if index + 1 < len(starts) else len(blob)
            position = blob.find(term, next_start)
        return found


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


def _score(line: str, terms: Sequence[str]) -> int:
    """Lower is better: whole-word or prefix matches on names first, then other fields."""
    name = line.split(FIELD_SEP, 1)[0]
    score = 0
    for term in terms:
        if name.startswith(term) or f" {term}" in name:
            continue
        if term in name:
            score += 1
        elif f"{FIELD_SEP}{term}" in line or f" {term}" in line:
            score += 2
        else:
            score += 3
    return score


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


class SearchIndex:
    def __init__(self) -> None:
        self._segments: dict[tuple[RecordKind, str], Segment] = {}
        self._lock = threading.Lock()  # serialises builders; readers never wait

    def rebuild(self, kind: RecordKind, source: str, records: Iterable[Record]) -> None:
        segment = Segment.build(records)
        with self._lock:
            self._segments[(kind, source)] = segment

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
            if source is None:
                self.drop(kind)
            for name in names:
                self.rebuild(kind, name, store.stream(kind, name).values())

    def size(self, kind: RecordKind) -> int:
        return sum(len(s.records) for (k, _), s in list(self._segments.items()) if k == kind)

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
        terms = sorted(set(query.terms), key=len, reverse=True)
        for (segment_kind, source), segment in list(self._segments.items()):
            if segment_kind != kind or (wanted and source not in wanted):
                continue
            if terms:
                candidates = segment.matching(terms[0])
                rest = terms[1:]
                if rest:
                    candidates = [i for i in candidates if all(t in segment.line(i) for t in rest)]
            else:
                candidates = list(range(len(segment.records)))
            if query.filters.keys() - {"source"} or query.amounts or query.closing:
                candidates = [i for i in candidates if _passes_filters(segment.records[i], query)]
            if not candidates:
                continue
            counts[source] = len(candidates)
            best = heapq.nsmallest(
                limit, candidates, key=lambda i: (_score(segment.line(i), terms), i)
            )
            fields_ = CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS
            groups[source] = [
                Hit(
                    segment.records[i],
                    _score(segment.line(i), terms),
                    {f: spans(field_text(segment.records[i], f), terms) for f in fields_},
                )
                for i in best
            ]
        return SearchResult(query.text, kind, groups, counts)
