"""The search index: one segment per (kind, source), rebuilt when the store changes it.

What the app, the CLI and the screens use of the search package is here: SearchIndex,
its results (SearchResult, Hit), filter_hint, and field_text / CONTACT_FIELDS for showing
a hit's fields. How it works is in the modules beside it: fields (what is indexed of a
record), segment (one stream's text and bigram index), ranking (matching and scoring a
segment's records), facets (filters and value fields), highlight (a hit's spans), query
(the query language) and persist (a segment saved beside the database, opened at start and
put in place with SearchIndex.install).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crm_tui.custom_columns import Column
from crm_tui.heap import release_gradually
from crm_tui.lazyrows import StreamRows
from crm_tui.models import KINDS, Record, RecordKind
from crm_tui.search.fields import CONTACT_FIELDS, DEAL_FIELDS, field_text
from crm_tui.search.highlight import Highlighter
from crm_tui.search.matched import MatchedRecords
from crm_tui.search.query import Query, parse_query
from crm_tui.search.ranking import every_match, ranked_all
from crm_tui.search.segment import Segment
from crm_tui.store.reading import CachedRecords
from crm_tui.text import single_line
from crm_tui.tuning import gc_paused
from crm_tui.vocabulary import field_order, filter_token, shared_value

__all__ = [
    "CONTACT_FIELDS",
    "DEAL_FIELDS",
    "PATCH_MIN",
    "Hit",
    "SearchIndex",
    "SearchResult",
    "Segment",
    "field_text",
    "filter_hint",
]

BUILD_THREADS = min(4, os.cpu_count() or 1)
#: Longer than any search takes, even on a loaded machine.
RELEASE_GRACE_SECONDS = 2.0


#: A patch grows until it holds this many records, or a fiftieth of its base: then the
#: stream's segment is built afresh (each patch rebuilds the patch segment whole).
PATCH_MIN = 5_000


@dataclass(frozen=True, slots=True)
class Patch:
    """Records of one stream changed since its segment was built: their new versions in a
    small segment of their own, and which of the big segment's records they replace or
    removed. A search reads both; the big one is never rebuilt for a few records."""

    base: Segment
    segment: Segment
    dead: np.ndarray  # per record of `base`
    ids: frozenset[str]


class SearchIndex:
    def __init__(self) -> None:
        self._segments: dict[tuple[RecordKind, str], Segment] = {}
        self._patches: dict[tuple[RecordKind, str], Patch] = {}
        self._lock = threading.Lock()  # serialises builders; readers never wait
        self._counts: dict[tuple[RecordKind, str], tuple[tuple[Any, ...], Any]] = {}
        #: The declared custom columns by name: filter keys of the query language. The
        #: app sets them from mappings.toml (and again after the Mapping screen saves).
        self.columns: dict[str, Column] = {}

    @property
    def nbytes(self) -> int:
        """Memory the index holds beyond the records it points at."""
        return sum(segment.nbytes for segment in list(self._segments.values()))

    def rebuild(self, kind: RecordKind, source: str, records: Iterable[Record]) -> None:
        self._swap(kind, {source: records}, replace_all=False)

    def install(self, kind: RecordKind, source: str, segment: Segment) -> None:
        """Put a segment made elsewhere (opened from disk: see search/persist.py) in place
        of the stream's, as a rebuild would: a search sees the old one or this one, and a
        patch made over the old one is dropped. Searchable before its ids' positions are
        made (over a list of records; a patch meanwhile makes them itself)."""
        segment.facets()
        self._put(kind, {(kind, source): segment}, replace_all=False)
        _ready(segment)

    def segment_of(self, kind: RecordKind, source: str) -> Segment | None:
        """The stream's segment now (to save it after a build), without any patch."""
        return self._segments.get((kind, source))

    def rebuild_many(self, kind: RecordKind, parts: dict[str, Iterable[Record]]) -> None:
        """Build several sources' segments of `kind` together and put them in place."""
        self._swap(kind, parts, replace_all=False)

    def keep_only(self, kind: RecordKind, sources: set[str]) -> None:
        """Drop the segments of `kind` of every source not in `sources` (gone from the store)."""
        with self._lock:
            gone = [key for key in self._segments if key[0] == kind and key[1] not in sources]
            old = [self._segments.pop(key) for key in gone]
            for key in gone:
                self._patches.pop(key, None)
        _release(old)

    def rebuild_from(
        self, store: CachedRecords, source: str | None = None, kinds: Iterable[RecordKind] = KINDS
    ) -> None:
        """Re-index the parts of a CacheStore that changed (a source, or everything)."""
        for kind in kinds:
            names = [source] if source is not None else store.sources()
            parts = {name: store.stream(kind, name).values() for name in names}
            self._swap(kind, parts, replace_all=source is None)

    def patch(
        self,
        kind: RecordKind,
        source: str,
        current: Callable[[], Mapping[str, Record]],
        ids: Iterable[str],
    ) -> None:
        """Records `ids` of one stream changed (`current()` gives the stream as it is now;
        an id missing there was deleted): searched from now on without rebuilding the
        stream's segment, until the changes pile up. The stream is read under the build
        lock, so patches made one after another never put an older version back."""
        key = (kind, source)
        with self._lock:
            stream = current()
            base = self._segments.get(key)
            old = self._patches.get(key)
            if old is not None and old.base is not base:
                old = None
            changed = frozenset(ids) | (old.ids if old is not None else frozenset())
            small = base is not None and len(changed) <= max(PATCH_MIN, len(base.records) // 50)
            if base is not None and small:
                live = [stream[i] for i in sorted(changed) if i in stream]
                segment = Segment.build(live)
                segment.facets()
                dead = np.zeros(len(base.records), dtype=bool)
                dead[list(base.positions().find(changed).values())] = True
                self._patches[key] = Patch(base, segment, dead, changed)
                return
        # over the stream as it is, read record by record: no list of a million records
        self.rebuild(kind, source, StreamRows([stream]))

    def _swap(
        self, kind: RecordKind, parts: dict[str, Iterable[Record]], replace_all: bool
    ) -> None:
        """Build every new segment first, then put them in place in one step: a search
        running meanwhile sees the old segments or the new ones, never a gap."""
        with gc_paused(), ThreadPoolExecutor(max_workers=BUILD_THREADS) as pool:
            # numpy's sorting releases the interpreter lock: one source's sort runs while
            # the next source's text is being built
            futures = {(kind, name): pool.submit(Segment.build, r) for name, r in parts.items()}
            built = {key: future.result() for key, future in futures.items()}
            for segment in built.values():
                _ready(segment)
        self._put(kind, built, replace_all)

    def _put(
        self,
        kind: RecordKind,
        built: dict[tuple[RecordKind, str], Segment],
        replace_all: bool,
    ) -> None:
        """Put segments in place in one step (see _swap), dropping their old ones' patches."""
        with self._lock:
            stale = [
                key for key in self._segments if key in built or (replace_all and key[0] == kind)
            ]
            old = [self._segments[key] for key in stale]
            self._segments.update(built)  # in place: no moment without the stream's segment
            for key in stale:
                if key not in built:
                    del self._segments[key]
                self._patches.pop(key, None)
        _release(old)

    def value_counts(self, kind: RecordKind, name: str) -> list[tuple[str, int]]:
        """The values of a filterable field ("status", "stage", "city", "tag", or "shared"
        for the shared status) across every source's cached records, most held first. Kept
        until the index changes: the filter hints ask on every screen refresh."""
        stamp = tuple(
            (id(segment), id(self._patches.get(key)))
            for key, segment in list(self._segments.items())
            if key[0] == kind
        )
        cached = self._counts.get((kind, name))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        total: dict[str, int] = {}
        for _, part, dead in self.parts(kind):
            for value, count in part.facets().counts(name, dead).items():
                total[value] = total.get(value, 0) + count
        found = sorted(total.items(), key=lambda item: (-item[1], item[0]))
        self._counts[(kind, name)] = (stamp, found)
        return found

    def parts(self, kind: RecordKind) -> list[tuple[str, Segment, np.ndarray | None]]:
        """What is indexed of one kind now: per source its segment, with the records a
        patch replaced or removed (`dead`, or None), then the patch's own segment."""
        return [
            (source, segment, dead)
            for source, parts in self._streams(kind, set())
            for segment, dead in parts
        ]

    def vendor_values_by_shared(self) -> dict[str, set[str]]:
        """Per shared status, the vendors' values (folded) in the cache that mean it."""
        found: dict[str, set[str]] = {}
        for (kind, source), segment in list(self._segments.items()):
            values = segment.facets().values
            for name in field_order(source, kind):
                for value in values.get(name, ()):
                    shared = shared_value(source, kind, value)
                    if shared is not None and value != shared:
                        found.setdefault(shared, set()).add(value)
        return found

    def search(
        self,
        text: str,
        kind: RecordKind = "contacts",
        sources: Sequence[str] | None = None,
        limit: int = 50,
    ) -> SearchResult:
        """Results grouped by source, best first, each group at most `limit` long."""
        query = parse_query(text, kind, self.columns)
        terms, filtered = _encoded(query), query.filtered
        highlights = Highlighter(kind, terms)
        groups: dict[str, list[Hit]] = {}
        counts: dict[str, int] = {}
        streams = list(self._streams(kind, _wanted(query, sources)))
        ranks = iter(
            ranked_all([p for _, parts in streams for p in parts], query, terms, filtered, limit)
        )
        for source, parts in streams:
            found = [next(ranks) for _ in parts]
            total = sum(count for count, _ in found)
            if total:
                counts[source] = total
                groups[source] = _hits(parts, found, highlights, limit)
        return SearchResult(query.text, kind, groups, counts)

    def matching(
        self, text: str, kind: RecordKind = "contacts", sources: Sequence[str] | None = None
    ) -> MatchedRecords:
        """Every record matching a query, each source's best first, without highlights:
        what a list shows for a filter. A lazy sequence of (segment, position): a million
        matches take numpy sorts and two arrays, no record made until one is read."""
        query = parse_query(text, kind, self.columns)
        terms, filtered = _encoded(query), query.filtered
        segments: list[Segment] = []
        parts: list[np.ndarray] = []
        ats: list[np.ndarray] = []
        for _, held in self._streams(kind, _wanted(query, sources)):
            found = [every_match(seg, dead, query, terms, filtered) for seg, dead in held]
            scores = np.concatenate([f[0] for f in found])
            part = np.concatenate(
                [np.full(len(f[1]), len(segments) + n, np.uint16) for n, f in enumerate(found)]
            )
            order = np.argsort(scores, kind="stable")  # ties: the base's before a patch's
            parts.append(part[order])
            ats.append(np.concatenate([f[1] for f in found])[order])
            segments += [seg for seg, _ in held]
        return MatchedRecords(
            segments,
            np.concatenate(parts) if parts else np.zeros(0, np.uint16),
            np.concatenate(ats).astype(np.int32) if ats else np.zeros(0, np.int32),
        )

    def _streams(self, kind: RecordKind, wanted: set[str]) -> Iterator[tuple[str, list[Part]]]:
        """Per source of `kind` (of `wanted`, unless empty), what is indexed of it now: its
        segment with the records a patch replaced or removed (`dead`, or None), then the
        patch's own segment."""
        for (held, source), segment in list(self._segments.items()):
            if held != kind or (wanted and source not in wanted):
                continue
            patch = self._patches.get((held, source))
            if patch is not None and patch.base is segment:
                yield source, [(segment, patch.dead), (patch.segment, None)]
            else:
                yield source, [(segment, None)]


#: A segment and, per record, whether a patch replaced or removed it (None: none did).
Part = tuple[Segment, np.ndarray | None]


def _release(old: list[Segment]) -> None:
    for segment in old:
        # A search that began before the swap may still be reading it: free it later.
        # (Records read from disk on demand hold no objects to free.)
        if isinstance(segment.records, list):
            release_gradually(segment.records, after=RELEASE_GRACE_SECONDS)


def _ready(segment: Segment) -> None:
    """What a search and a patch need, made before the segment is put in place: the
    facets, and for a stream a patch may come to, where its ids sit (a patch's latency
    never pays for them; a sequence of records read from disk finds its own ids)."""
    segment.facets()
    if len(segment.records) > PATCH_MIN:
        segment.positions()


def _wanted(query: Query, sources: Sequence[str] | None) -> set[str]:
    """The sources a search reads: those asked for and those `source:` names (all if none)."""
    return set(sources or ()) | set(query.sources)


def _encoded(query: Query) -> list[bytes]:
    """The query's free words as the index holds them, longest first."""
    return sorted({t.encode("utf-8") for t in query.terms}, key=len, reverse=True)


def _hits(
    parts: list[Part],
    found: list[tuple[int, list[tuple[int, int]]]],
    highlights: Highlighter,
    limit: int,
) -> list[Hit]:
    """One source's `limit` best hits, highlighted, from each part's best (score, index)."""
    best = sorted(((score, n, i) for n, (_, ranked) in enumerate(found) for score, i in ranked))
    best = best[:limit]
    hits: list[Hit] = []
    for n, (seg, _) in enumerate(parts):
        mine = [(score, i) for score, m, i in best if m == n]
        shown = [seg.records[i] for _, i in mine]  # each read once: it may be decoded
        marks = highlights(seg, [i for _, i in mine], shown)
        hits += [
            Hit(record, score, spans_)
            for (score, _), record, spans_ in zip(mine, shown, marks, strict=True)
        ]
    hits.sort(key=lambda hit: hit.score)  # stable: a patch's ties after the base's
    return hits


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


#: What a filter hint lists per field, at most: the line must stay short at 80 columns.
HINT_VALUES = {"shared": 4, "city": 2, "tag": 2}
_HINT_CHARS = 24


def filter_hint(index: SearchIndex) -> str:
    """The Search screen's filter line, with values taken from the cache (the shared
    statuses held most, the commonest cities and tags); examples where it is empty."""

    def top(kind: RecordKind, name: str, fallback: str) -> str:
        found = [value for value, _ in index.value_counts(kind, name)[: HINT_VALUES[name]]]
        if name == "shared":
            found = [filter_token(value) for value in found]
        else:  # a CRM's text: one short line, and quoted when a space would split it
            found = [single_line(value)[:_HINT_CHARS] for value in found]
            found = [f'"{value}"' if " " in value else value for value in found]
        return ", ".join(found) or fallback

    held = list(dict.fromkeys(source for _, source in list(index._segments)))
    sources = ", ".join(held[:3]) + (", …" if len(held) > 3 else "") if held else "brivity"
    deal_stages = top("deals", "shared", "under-contract, closed")
    return (
        f"Filters: status: {top('contacts', 'shared', 'lead, active-client')}"
        f" · city: {top('contacts', 'city', 'austin')} · tag: {top('contacts', 'tag', 'buyer')}"
        f" · source: {sources} · deals (tab): stage: {deal_stages}, amount>500000,"
        " closing:2026-12"
    )
