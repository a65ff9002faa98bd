"""The search index: one segment per (kind, source), rebuilt when the store changes it.

A segment keeps each record's searchable text, folded, in one large string (one line per
record) so a term is found by `str.find` at C speed rather than by a Python loop over a
million strings. A segment is built completely and then swapped in with one assignment, so a
search sees the old segment or the new one, never a mix.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from crm_tui.custom_columns import Column
from crm_tui.heap import release_gradually
from crm_tui.models import KINDS, Contact, Deal, Record, RecordKind
from crm_tui.positions import IdPositions
from crm_tui.search.query import SHARED_FILTERS, Query, created_within, parse_query
from crm_tui.search.text import digits, fold, merge_spans, occurrences, spans
from crm_tui.text import single_line
from crm_tui.tuning import gc_paused
from crm_tui.vocabulary import (
    SHARED_STATUSES,
    field_order,
    filter_token,
    matches_shared,
    normalize_filter,
    shared_code,
    shared_value,
)

FIELD_SEP = "\x1f"  # never in data: control characters are stripped at ingest
CONTACT_FIELDS = ("name", "email", "phone", "company", "status", "stage", "tags", "city")
DEAL_FIELDS = ("name", "property_address", "stage", "status", "amount")
# Fields whose values repeat across records (a few statuses, a few hundred cities) are
# matched once per distinct value, not indexed per record: a quarter of the index's bytes,
# and a city with 137k records answers with one gather instead of 137k verified offsets.
VALUE_FIELDS = {"contacts": ("status", "stage", "tags", "city"), "deals": ("stage", "status")}
LINE_FIELDS = {
    "contacts": tuple(f for f in CONTACT_FIELDS if f not in VALUE_FIELDS["contacts"]),
    "deals": tuple(f for f in DEAL_FIELDS if f not in VALUE_FIELDS["deals"]),
}
_NO_MATCH = 4  # worse than any place a term can have
_FEW_VALUES = 6


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


def custom_words(values: Mapping[str, Any]) -> str:
    """A record's custom text and list values, one field of its line: free words find
    them. Numbers and dates are left to their filters (`price_range>500000`)."""
    if not values:
        return ""
    words = [
        value if isinstance(value, str) else " ".join(value)
        for value in values.values()
        if isinstance(value, str | tuple)
    ]
    return " ".join(words)


def haystack(record: Record) -> str:
    """A record's indexed text (LINE_FIELDS, then the phone's or amount's bare digits, then
    its custom text values), folded, fields apart. Folding is per character and the
    separator is a starter character, so folding the joined line equals joining the
    folds."""
    if isinstance(record, Contact):
        first, last = record.first_name, record.last_name  # record.name, without a generator
        parts = (
            f"{first} {last}" if first and last else first or last or "",
            record.email or "",
            record.phone or "",
            record.company or "",
            digits(record.phone),
            custom_words(record.custom),
        )
    else:
        amount = str(int(record.amount)) if record.amount is not None else ""
        parts = (
            *(field_text(record, n) for n in LINE_FIELDS["deals"]),
            amount,
            custom_words(record.custom),
        )
    return fold(FIELD_SEP.join(parts)).replace("\n", " ")


def _value_place(value: str, term: str) -> int:
    """A value field's place for a term: 2 at the start of a word, 3 inside one."""
    if value.startswith(term) or f" {term}" in value:
        return 2
    return 3 if term in value else _NO_MATCH


_SLICE = 4096
_BLOCK_BITS = 6  # shorter than almost every line, so a block starts at most a line or two
_SKIP_BYTES = (0x0A, 0x1F, 0x20)  # newline, field separator, space: never inside a term


@dataclass(slots=True)
class Segment:
    """One source's searchable text: UTF-8 lines in one bytes object, plus a bigram index.

    `offsets[c]:offsets[c + 1]` is the range of bigram `c` (two bytes): every byte offset
    where it starts, ascending. A term is found by taking its rarest bigram's offsets and
    checking the term's other bytes there, all in numpy: an exact substring match with no
    Python loop over records. Bigram codes fit in 16 bits, so numpy radix-sorts them.

    An offset is kept in two bytes, its low half (`lows`); the high half, the same for long
    runs of a bigram's ascending offsets, is kept once per run (`run_block`, with the run's
    first index in `run_start`; bigram c's runs are `run_offsets[c]:run_offsets[c + 1]`).
    Four bytes per offset were two thirds of the index.
    """

    records: list[Record]
    text: bytes  # the lines, newline-terminated
    data: np.ndarray  # the same bytes, as an array (a view, not a copy)
    starts: np.ndarray  # byte offset of each record's line; one extra at the end
    lows: np.ndarray
    offsets: np.ndarray
    run_start: np.ndarray
    run_block: np.ndarray
    run_offsets: np.ndarray
    name_ends: np.ndarray  # byte offset where each line's first field (the name) ends
    line_at: np.ndarray  # per 64-byte block of data, the line its first byte is in
    _facets: Facets | None = None  # VALUE_FIELDS and the filters' fields, as codes
    _positions: IdPositions | None = None  # where each record id sits (for patches)

    @classmethod
    def build(cls, records: Iterable[Record]) -> Segment:
        ordered = list(records)
        # Joined and encoded a slice at a time: one join and encode of a third of a million
        # lines is a single C call that holds the interpreter lock for 100 ms.
        text = b"".join(
            ("\n".join(map(haystack, ordered[at : at + _SLICE])) + "\n").encode("utf-8")
            for at in range(0, len(ordered), _SLICE)
        )
        data = np.frombuffer(text, dtype=np.uint8)
        if len(data) >= 1 << 32:
            raise ValueError("a segment's text must stay under 4 GB")
        starts = np.zeros(len(ordered) + 1, dtype=np.uint32)
        starts[1:] = np.flatnonzero(data == 0x0A) + 1
        # the first separator after a line's start ends its name; every line has as many
        # separators as the first (ingest strips them from data), so no search is needed
        seps = np.flatnonzero(data == _SEP_BYTE)
        per_line = text[: int(starts[1]) if len(ordered) else 0].count(_SEP)
        if per_line and len(seps) == per_line * len(ordered):
            name_ends = seps[::per_line].astype(np.uint32)
        elif len(seps):  # a record built around the cleaning: search for it
            name_ends = seps[np.searchsorted(seps, starts[:-1])].astype(np.uint32)
        else:
            name_ends = (starts[1:] - 1).astype(np.uint32)
        first, second = data[:-1], data[1:]
        # each offset's two bytes as one big-endian number: the even offsets and the odd
        # ones are two views of the text, so this is two copies instead of three passes
        codes = np.zeros(max(len(data) - 1, 0), dtype=np.uint16)
        if len(data) >= 2:
            codes[0::2] = np.frombuffer(text, dtype=">u2", count=len(data) // 2)
            codes[1::2] = np.frombuffer(text, dtype=">u2", count=(len(data) - 1) // 2, offset=1)
        for byte in _SKIP_BYTES:
            # Bigram 0 (two NULs) never occurs in text, so it collects what is not indexed.
            codes[(first == byte) | (second == byte)] = 0
        order = np.argsort(codes, kind="stable")  # a radix sort; positions stay ascending
        counts = _bincount(codes)
        del codes
        skipped = int(counts[0])
        positions = order[skipped:].astype(np.uint32)
        del order
        offsets = np.zeros(len(counts) + 1, dtype=np.uint32)
        np.cumsum(counts[1:], out=offsets[2:])
        # A run: one bigram's offsets that share their high half. Runs start where the
        # high half changes and where a bigram's list starts.
        high = (positions >> 16).astype(np.uint16)
        is_start = np.zeros(len(positions), dtype=bool)
        is_start[1:] = high[1:] != high[:-1]
        is_start[offsets[1:-1][counts[1:] > 0]] = True
        run_start = np.flatnonzero(is_start).astype(np.uint32)
        run_block = high[run_start]
        run_offsets = np.searchsorted(run_start, offsets).astype(np.uint32)
        lows = (positions & 0xFFFF).astype(np.uint16)
        del positions, high, is_start
        # a line starting at s is at or before block b's first byte when ceil(s / 64) <= b
        blocks = (len(data) + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
        first_block = (starts[:-1].astype(np.int64) + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
        line_at = np.cumsum(np.bincount(first_block, minlength=blocks + 1)[:blocks]) - 1
        line_at = line_at.astype(np.uint32)
        return cls(
            ordered,
            text,
            data,
            starts,
            lows,
            offsets,
            run_start,
            run_block,
            run_offsets,
            name_ends,
            line_at,
        )

    def offsets_of(self, code: int) -> np.ndarray:
        """Every byte offset where bigram `code` starts, ascending."""
        start, end = int(self.offsets[code]), int(self.offsets[code + 1])
        first, last = int(self.run_offsets[code]), int(self.run_offsets[code + 1])
        lengths = np.diff(self.run_start[first:last].astype(np.int64), append=end)
        high = np.repeat(self.run_block[first:last].astype(np.int64) << 16, lengths)
        return high | self.lows[start:end]

    def line(self, index: int) -> bytes:
        return self.text[int(self.starts[index]) : int(self.starts[index + 1]) - 1]

    def value_texts(self, index: int) -> list[tuple[str, str]]:
        """The record's VALUE_FIELDS as (name, folded value)."""
        values = self.facets()
        return [(f, values.values[f][values.codes[f][index]]) for f in values.matched]

    def searchable(self, index: int) -> bytes:
        """Every searchable field of a record, folded, fields apart (for one-letter terms)."""
        extra = [v.encode("utf-8") for _, v in self.value_texts(index)]
        return _SEP.join([self.line(index), *extra])

    def value_matches(self, term: str) -> np.ndarray | None:
        """Per record, the best place of `term` in its VALUE_FIELDS (_NO_MATCH where none
        holds it), or None when no record's do. The distinct values are tested in Python,
        the records by one gather per field."""
        values = self.facets()
        best: np.ndarray | None = None
        for name in values.matched:
            places = np.array([_value_place(v, term) for v in values.values[name]], np.int8)
            held = np.flatnonzero(places < _NO_MATCH)
            if not len(held):
                continue
            codes = values.codes[name]
            if best is None:
                best = np.full(len(codes), _NO_MATCH, dtype=np.int8)
            if len(held) > _FEW_VALUES:
                np.minimum(best, np.take(places, codes), out=best)  # take: 3x [] here
                continue
            for code in held.tolist():  # a compare and int8 arithmetic: 6x faster again
                hit = (codes == code).view(np.int8)
                np.minimum(best, _NO_MATCH - hit * (_NO_MATCH - places[code]), out=best)
        return best

    def occurrences(self, term: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Where `term` (two bytes or more) occurs: byte offsets ascending, and the record
        each falls in (ascending too, repeated when a line holds the term twice)."""
        pairs = [((term[i] << 8) | term[i + 1], i) for i in range(len(term) - 1)]
        code, shift = min(pairs, key=lambda p: self.offsets[p[0] + 1] - self.offsets[p[0]])
        begin = self.offsets_of(code) - shift
        begin = begin[(begin >= 0) & (begin + len(term) <= len(self.data))]
        for j, byte in enumerate(term):
            if j in (shift, shift + 1) or not len(begin):
                continue
            begin = begin[self.data[begin + j] == byte]
        return begin, self.owners(begin)

    def owners(self, begin: np.ndarray) -> np.ndarray:
        """The line each byte offset (ascending) falls in. A binary search over a million
        line starts costs 16 ns an offset; the block table gets within a line or two of
        the answer, and a few vectorised steps forward finish it (4 ms -> 1 ms for 250k)."""
        owner = self.line_at[begin >> _BLOCK_BITS].astype(np.int64)
        ends = self.starts[1:]
        while len(owner):
            ahead = ends[owner] <= begin
            if not ahead.any():
                break
            owner += ahead
        return owner

    def places(self, begin: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per record (once each), the best place among its occurrences: 0 at the start of
        a word of the name, 1 elsewhere in the name, 2 at the start of a word of another
        field, 3 anywhere else."""
        before = self.data[np.maximum(begin - 1, 0)]
        word = (begin == self.starts[owners]) | (before == 0x20) | (before == _SEP_BYTE)
        place = np.where(begin < self.name_ends[owners], 0, 2).astype(np.int16) + ~word
        first = _firsts(owners)
        return owners[first], np.minimum.reduceat(place, first) if len(first) else place

    def matching(self, terms: Sequence[bytes]) -> Matches:
        """Records whose line contains every term, ascending."""
        found: np.ndarray | None = None
        hits = []
        for term in terms:
            if len(term) < 2:
                continue
            begin, owners = self.occurrences(term)
            in_values = self.value_matches(term.decode("utf-8"))
            hits.append(TermHits(begin, owners, in_values))
            owners = owners[_firsts(owners)]
            if in_values is not None:  # a mask merges the two without a sort
                either = in_values < _NO_MATCH
                either[owners] = True
                owners = np.flatnonzero(either)
            if found is None:
                found = owners
                continue
            at = np.searchsorted(owners, found)
            at[at == len(owners)] = 0
            found = found[owners[at] == found] if len(owners) else owners
        if found is None:
            found = np.arange(len(self.records))
        short = [t for t in terms if len(t) < 2]  # a lone letter: checked record by record
        if short and len(found):
            keep = [all(t in self.searchable(i) for t in short) for i in found.tolist()]
            found = found[np.asarray(keep, dtype=bool)]
        return Matches(self, found, hits, short)

    def facets(self) -> Facets:
        """Built on first use. SearchIndex builds them one segment after another, before
        the swap: pure Python, they gain nothing from the build threads and, run in
        several at once, kept the event loop waiting for the interpreter lock."""
        if self._facets is None:
            self._facets = Facets(self.records)
        return self._facets

    def positions(self) -> IdPositions:
        """Built on first use; SearchIndex builds them beside a big segment (see _swap), so
        a patch's latency never pays for them."""
        if self._positions is None:
            self._positions = IdPositions([r.id for r in self.records])
        return self._positions

    @property
    def nbytes(self) -> int:
        """What the segment holds beyond the records themselves: its arrays (the text
        once: `data` is a view of it), the records list and the facets."""
        arrays = (self.starts, self.lows, self.offsets, self.run_start, self.run_block)
        arrays += (self.run_offsets, self.name_ends, self.line_at)
        own = sum(a.nbytes for a in arrays) + sys.getsizeof(self.text)
        return own + sys.getsizeof(self.records) + self.facets().nbytes


class TermHits(NamedTuple):
    """Where one term matched: offsets in the lines and their records (ascending, repeated
    per offset), and per record its best place in the value fields (see value_matches)."""

    begin: np.ndarray
    owners: np.ndarray
    in_values: np.ndarray | None


def _firsts(owners: np.ndarray) -> np.ndarray:
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
    short: list[bytes]

    def scores(self, candidates: np.ndarray, upto: int | None = None) -> np.ndarray:
        """Each candidate's score (lower is better), counting only occurrences in records
        up to `upto`, so a prefix of the candidates costs a prefix of the work."""
        total = np.zeros(len(candidates), dtype=np.int16)
        wanted: np.ndarray | None = None  # candidates as a mask, made when first needed
        for begin, owners, in_values in self.hits:
            if upto is not None:
                cut = int(np.searchsorted(owners, upto, side="right"))
                begin, owners = begin[:cut], owners[:cut]
            if len(candidates) * 4 < len(owners):  # few candidates: only their occurrences
                if wanted is None:
                    wanted = np.zeros(len(self.segment.records), dtype=bool)
                    wanted[candidates] = True
                mine = wanted[owners]
                begin, owners = begin[mine], owners[mine]
            # per record of the segment, then read at the candidates: a scatter and a
            # gather, where a search per candidate would cost a log factor
            records, places = self.segment.places(begin, owners)
            if in_values is None:
                dense = np.full(len(self.segment.records), _NO_MATCH, dtype=np.int8)
            else:
                dense = in_values.copy()
            dense[records] = np.minimum(dense[records], places)
            total += dense[candidates]
        if self.short:
            text = self.segment.searchable
            total += np.array(
                [_score(text(i), self.short) for i in candidates.tolist()], dtype=np.int16
            )
        return total

    def best(self, candidates: np.ndarray, limit: int) -> list[tuple[int, int]]:
        """The `limit` best (score, index) pairs, ties by position. When the first few
        candidates already hold `limit` perfect scores (common words), nothing later can
        displace them and the rest are never scored."""
        if not len(candidates):
            return []
        size = 4 * limit
        while size < len(candidates):
            head = candidates[:size]
            perfect = head[self.scores(head, int(head[-1])) == 0]
            if len(perfect) >= limit:
                return [(0, int(i)) for i in perfect[:limit]]
            if not len(perfect):
                break  # not a name word here: the whole scoring will be needed anyway
            # grow to where `limit` perfect ones should be, with a margin
            size = int(size * min(8.0, max(2.0, 1.5 * limit / len(perfect))))
        return _best(candidates, self.scores(candidates), limit)


class Facets:
    """Each filterable field's distinct folded values, and per record the code of its value:
    a filter tests the few distinct values in Python and the records in numpy."""

    TEXT = ("status", "stage", "city")

    def __init__(self, records: Sequence[Record]) -> None:
        self.size = len(records)
        self.deals = bool(records) and isinstance(records[0], Deal)
        self.matched = VALUE_FIELDS["deals" if self.deals else "contacts"]
        self.values: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        # map() and attrgetter keep these loops in C: a third of the time of comprehensions
        for name in self.TEXT:
            held = bool(records) and hasattr(records[0], name)  # deals have no city
            raw = _mapped(attrgetter(name), records) if held else [None] * len(records)
            self.values[name], self.codes[name] = _codes(raw)
        tag_lists = [] if self.deals else _mapped(attrgetter("tags"), records)
        if not self.deals:  # all of a contact's tags as one value, as they are shown
            joined = _mapped(", ".join, tag_lists)
            self.values["tags"], self.codes["tags"] = _codes(joined)  # type: ignore[arg-type]
        counts = _array(len, tag_lists, np.int64)
        self.tag_owner = np.repeat(np.arange(len(tag_lists), dtype=np.uint32), counts)
        self.tag_values, self.tag_codes = _codes(_flattened(tag_lists))
        self.shared = self._shared_codes(records)
        deals = records if self.deals else []
        self.closing_values, self.closing_codes = _codes([r.close_date for r in deals])  # type: ignore[union-attr]
        self._records = records  # the segment's own list: `created:` reads it when asked
        self._created: tuple[list[str], np.ndarray] | None = None
        self.amounts = np.array(
            [np.nan if r.amount is None else float(r.amount) for r in deals],  # type: ignore[union-attr]
            dtype=np.float64,
        )
        self._records = records
        # Custom columns' values, built when a filter first names the column: most
        # columns are never filtered on, and building them all would slow every rebuild.
        self._custom: dict[tuple[str, bool], Any] = {}

    def custom_numbers(self, name: str) -> np.ndarray:
        """Per record, a number or money column's value (NaN where none)."""
        key = (name, True)
        if key not in self._custom:
            held = _mapped(lambda r: r.custom.get(name), self._records)
            self._custom[key] = np.array(
                [float(v) if isinstance(v, Decimal) and v.is_finite() else np.nan for v in held],
                dtype=np.float64,
            )
        return self._custom[key]  # type: ignore[no-any-return]

    def custom_texts(self, name: str) -> tuple[list[str], np.ndarray]:
        """A text, list or date column's distinct folded values and per record its code
        (a list as its items joined, as it is shown)."""
        key = (name, False)
        if key not in self._custom:
            held = _mapped(lambda r: _as_text(r.custom.get(name)), self._records)
            self._custom[key] = _codes(held)
        return self._custom[key]  # type: ignore[no-any-return]

    def _custom_hit(self, column: Column, op: str, value: Any, rows: np.ndarray) -> np.ndarray:
        if column.type in ("number", "money"):
            return _COMPARE["=" if op == ":" else op](  # NaN compares False
                self.custom_numbers(column.name)[rows], float(value)
            )
        values, codes = self.custom_texts(column.name)
        if column.type == "date":
            # a date compares by its first len(value) characters: `>2026-12` is after
            # December, `:2026-12` in it
            size = len(value)
            hit = [bool(v) and _DATE_TEST[op](v[:size], value) for v in values]
        else:
            hit = [value in v for v in values]
        return np.asarray(hit, dtype=bool)[codes[rows]]

    def created_days(self) -> tuple[list[str], np.ndarray]:
        """The distinct creation days (YYYY-MM-DD, "" for none) and each record's code:
        made on the first `created:` filter, not with the other facets (a million
        timestamps cut to days cost a tenth of a second)."""
        if self._created is None:
            stamps = _mapped(attrgetter("remote_created"), self._records)
            self._created = _codes(_mapped(_day_of, stamps))
        return self._created

    def _shared_codes(self, records: Sequence[Record]) -> np.ndarray:
        """Per record, its shared status (a SHARED_STATUSES index, -1 for none): worked out
        per distinct value of each field, then one gather per field (a segment is one
        source, so the first record names it)."""
        shared = np.full(self.size, -1, dtype=np.int8)
        self.value_shared: dict[str, np.ndarray] = {}
        if not records:
            return shared
        source, kind = records[0].source, "deals" if self.deals else "contacts"
        for name in field_order(source, kind):
            if name not in self.codes:
                continue
            per_value = np.array(
                [shared_code(shared_value(source, kind, v)) for v in self.values[name]], np.int8
            )
            self.value_shared[name] = per_value
            unset = shared < 0
            shared[unset] = per_value[self.codes[name][unset]]
        return shared

    def _status_hit(self, key: str, value: str, rows: np.ndarray) -> np.ndarray:
        """`status:`/`stage:` rows: the shared status named, or the vendor's own value
        holding the text (`past-client` also finds "past client"). A value that names a
        shared status finds vendor values by their text only where they map to nothing:
        `stage:closed` is not HubSpot's "closedlost", which is lost."""
        loose = normalize_filter(value)
        hit = np.array(
            [value in v or loose in normalize_filter(v) for v in self.values[key]], dtype=bool
        )
        named = [n for n, shared in enumerate(SHARED_STATUSES) if matches_shared(value, shared)]
        if named and key in self.value_shared:
            hit &= self.value_shared[key] < 0
        found = hit[self.codes[key][rows]]
        if named:
            found |= np.isin(self.shared[rows], np.array(named, dtype=np.int8))
        return found

    def counts(self, name: str, dead: np.ndarray | None = None) -> dict[str, int]:
        """How many live records hold each value of a field ("shared": the shared status)."""
        if name == "shared":
            codes, values = self.shared.astype(np.int64) + 1, ["", *SHARED_STATUSES]
        elif name == "tag":
            live = None if dead is None else ~dead[self.tag_owner]
            codes, values = self.tag_codes, self.tag_values
            found = np.bincount(codes if live is None else codes[live], minlength=len(values))
            return {v: int(n) for v, n in zip(values, found.tolist(), strict=True) if v and n}
        else:
            codes, values = self.codes[name], self.values[name]
        if dead is not None:
            codes = codes[~dead]
        found = np.bincount(codes, minlength=len(values))
        return {v: int(n) for v, n in zip(values, found.tolist(), strict=True) if v and n}

    @property
    def nbytes(self) -> int:
        arrays = [
            *self.codes.values(),
            self.tag_owner,
            self.tag_codes,
            self.closing_codes,
            self.shared,
        ]
        distinct = [*self.values.values(), self.tag_values, self.closing_values]
        strings = sum(sys.getsizeof(v) for values in distinct for v in values)
        lists = sum(sys.getsizeof(values) for values in distinct)
        return sum(a.nbytes for a in arrays) + self.amounts.nbytes + strings + lists

    def mask(self, query: Query, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` pass every filter of `query` except `source:`."""
        keep = np.ones(len(rows), dtype=bool)
        for key, wanted in query.filters.items():
            if key == "source":
                continue
            for value in wanted:
                if key == "tag":
                    hit = [t == value or t.startswith(value) for t in self.tag_values]
                    has = np.zeros(self.size, dtype=bool)
                    has[self.tag_owner[np.asarray(hit, dtype=bool)[self.tag_codes]]] = True
                    keep &= has[rows]
                elif key in SHARED_FILTERS:
                    keep &= self._status_hit(key, value, rows)
                else:
                    hit = [value in v for v in self.values[key]]
                    keep &= np.asarray(hit, dtype=bool)[self.codes[key][rows]]
        if query.created:
            values, codes = self.created_days()
            hit = [created_within(day, query.created) for day in values]
            keep &= np.asarray(hit, dtype=bool)[codes[rows]]
        for column, op, value in query.custom:
            keep &= self._custom_hit(column, op, value, rows)
        if query.amounts or query.closing:
            if not self.deals:
                return np.zeros(len(rows), dtype=bool)
            for op, bound in query.amounts:
                keep &= _COMPARE[op](self.amounts[rows], float(bound))  # NaN compares False
            if query.closing:
                hit = [v.startswith(query.closing) for v in self.closing_values]
                keep &= np.asarray(hit, dtype=bool)[self.closing_codes[rows]]
        return keep


def _day_of(stamp: str | None) -> str:
    return stamp[:10] if stamp else ""


_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "=": np.equal,
}
_DATE_TEST: dict[str, Callable[[str, str], bool]] = {
    ":": str.__eq__,
    "=": str.__eq__,
    "<": str.__lt__,
    "<=": str.__le__,
    ">": str.__gt__,
    ">=": str.__ge__,
}


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


# Items per loop that runs in C (map, set, fromiter): such a loop never lets another thread
# have the interpreter lock, and over a third of a million records it held the event loop
# up for 100 ms.
_C_SLICE = 8192


def _bincount(codes: np.ndarray) -> np.ndarray:
    """How often each 16-bit code occurs, a million at a time: np.bincount keeps the
    interpreter lock (20 ms per 28 million here; 80 ms on a busy machine)."""
    counts = np.zeros(1 << 16, dtype=np.int64)
    for at in range(0, len(codes), 1 << 20):
        counts += np.bincount(codes[at : at + (1 << 20)], minlength=1 << 16)
    return counts


def _mapped(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`list(map(fn, items))` a slice at a time."""
    out: list[Any] = []
    for at in range(0, len(items), _C_SLICE):
        out.extend(map(fn, items[at : at + _C_SLICE]))
    return out


def _flattened(lists: Sequence[Sequence[Any]]) -> list[Any]:
    """`list(chain.from_iterable(lists))` a slice at a time."""
    out: list[Any] = []
    for at in range(0, len(lists), _C_SLICE):
        out.extend(chain.from_iterable(lists[at : at + _C_SLICE]))
    return out


def _array(fn: Callable[[Any], Any], items: Sequence[Any], dtype: Any) -> np.ndarray:
    """`np.fromiter(map(fn, items))` a slice at a time."""
    out = np.empty(len(items), dtype=dtype)
    for at in range(0, len(items), _C_SLICE):
        part = items[at : at + _C_SLICE]
        out[at : at + len(part)] = np.fromiter(map(fn, part), dtype=dtype, count=len(part))
    return out


def _codes(values: list[str | None]) -> tuple[list[str], np.ndarray]:
    """Distinct folded values and, per item, the index of its value. Raw values repeat
    (a few statuses over a million records), so each is folded once."""
    distinct: set[str | None] = set()
    for at in range(0, len(values), _C_SLICE):
        distinct.update(values[at : at + _C_SLICE])
    folded: dict[str, int] = {}
    seen: dict[str | None, int] = {}
    for raw in distinct:
        seen[raw] = folded.setdefault(fold(raw or ""), len(folded))
    dtype = np.uint8 if len(folded) <= 256 else np.uint16 if len(folded) <= 65536 else np.int32
    return list(folded), _array(seen.__getitem__, values, dtype)


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
_SEP_BYTE = _SEP[0]


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


class Highlighter:
    """Matched spans per field for one search's hits. The folded line says which line
    fields hold a term; a value field's spans are worked out once per distinct value."""

    def __init__(self, kind: RecordKind, terms: list[bytes]) -> None:
        self.fields = CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS
        self.line_fields = LINE_FIELDS[kind]
        self.terms = terms
        self.text_terms = [t.decode("utf-8") for t in terms]
        self.finder = re.compile(b"|".join(map(re.escape, terms))) if terms else None
        # every field, in display order; the empty lists are shared, never appended to
        self._empty: dict[str, list[tuple[int, int]]] = {name: [] for name in self.fields}

    def __call__(
        self, segment: Segment, indexes: list[int]
    ) -> list[dict[str, list[tuple[int, int]]]]:
        """Spans for each of `indexes`; their lines and value codes are read in one numpy
        gather each, not one scalar at a time, and a value's spans are found once."""
        at = np.asarray(indexes, dtype=np.int64)
        begins = segment.starts[at].tolist()
        ends = (segment.starts[at + 1] - 1).tolist()
        facets = segment.facets()
        columns = []
        for name in facets.matched:
            codes = facets.codes[name][at].tolist()
            values = facets.values[name]
            known = {code: self._value_spans(values[code]) for code in set(codes)}
            columns.append((name, [known[code] for code in codes]))
        records, text, empty = segment.records, segment.text, self._empty
        out = []
        for n, index in enumerate(indexes):
            record = records[index]
            found = self._line_spans(record, text[begins[n] : ends[n]])
            for name, marks in columns:
                mark = marks[n]
                found[name] = (
                    mark if mark is not None else spans(field_text(record, name), self.text_terms)
                )
            out.append({**empty, **{k: self._in_field(record, k, v) for k, v in found.items()}})
        return out

    def _in_field(
        self, record: Record, name: str, found: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Spans found on folded text point into the field itself only when the field is
        ASCII: transliteration (`Æ` -> `ae`, `ß` -> `ss`, ligatures) changes lengths."""
        if not found:
            return found
        text = field_text(record, name)
        return found if text.isascii() else spans(text, self.text_terms)

    def _line_spans(self, record: Record, line: bytes) -> dict[str, list[tuple[int, int]]]:
        found: dict[str, list[tuple[int, int]]] = {}
        if self.finder is None:
            return found
        if line.isascii():  # one pass over the whole line; no term spans a separator
            where = occurrences(line, self.terms)
            if not where:
                return found
            if len(self.terms) > 1:
                where.sort()
            begin = at = 0
            for name, part in zip(self.line_fields, line.split(_SEP), strict=False):
                end = begin + len(part)
                mine = []
                while at < len(where) and where[at][0] < end:
                    a, b = where[at]
                    mine.append((a - begin, b - begin))
                    at += 1
                if mine:
                    found[name] = merge_spans(mine)
                begin = end + 1
            return found
        for name, part in zip(self.line_fields, line.split(_SEP), strict=False):
            if self.finder.search(part) is None:
                continue
            if part.isascii():  # folding was lowercasing: the line's offsets are the field's
                found[name] = merge_spans(occurrences(part, self.terms))
            else:
                found[name] = spans(field_text(record, name), self.text_terms)
        return found

    def _value_spans(self, value: str) -> list[tuple[int, int]] | None:
        """A folded value's spans, the same for every record holding it; None when not
        ASCII (folding may have moved offsets, so each record's own text is needed)."""
        if not any(t in value for t in self.text_terms):
            return []
        return merge_spans(occurrences(value, self.text_terms)) if value.isascii() else None


def _best(candidates: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """The `limit` best (score, index) pairs: lowest score first, ties by position."""
    key = scores.astype(np.int64) * (int(candidates.max()) + 1) + candidates
    if len(key) > limit:
        key = key[np.argpartition(key, limit)[:limit]]
    order = np.sort(key)
    span = int(candidates.max()) + 1
    return [(int(k // span), int(k % span)) for k in order]


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

    def rebuild_from(
        self, store: Any, source: str | None = None, kinds: Iterable[RecordKind] = KINDS
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
        self.rebuild(kind, source, list(stream.values()))

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
                segment.facets()
                if len(segment.records) > PATCH_MIN:  # a stream a patch may come to
                    segment.positions()
        with self._lock:
            stale = [
                key for key in self._segments if key in built or (replace_all and key[0] == kind)
            ]
            old = [self._segments.pop(key) for key in stale]
            self._segments.update(built)
            for key in stale:
                self._patches.pop(key, None)
        for segment in old:
            # A search that began before the swap may still be reading it: free it later.
            release_gradually(segment.records, after=RELEASE_GRACE_SECONDS)

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
        found: list[tuple[str, Segment, np.ndarray | None]] = []
        for (held, source), segment in list(self._segments.items()):
            if held != kind:
                continue
            patch = self._patches.get((held, source))
            if patch is not None and patch.base is segment:
                found += [(source, segment, patch.dead), (source, patch.segment, None)]
            else:
                found.append((source, segment, None))
        return found

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
        wanted = set(sources or ()) | set(query.sources)
        groups: dict[str, list[Hit]] = {}
        counts: dict[str, int] = {}
        terms = sorted({t.encode("utf-8") for t in query.terms}, key=len, reverse=True)
        highlights = Highlighter(kind, terms)
        filtered = query.filtered
        for key, segment in list(self._segments.items()):
            source = key[1]
            if key[0] != kind or (wanted and source not in wanted):
                continue
            patch = self._patches.get(key)
            parts = [(segment, None if patch is None or patch.base is not segment else patch.dead)]
            if parts[0][1] is not None and patch is not None:
                parts.append((patch.segment, None))
            found = [_ranked(seg, dead, query, terms, filtered, limit) for seg, dead in parts]
            total = sum(count for count, _ in found)
            if not total:
                continue
            counts[source] = total
            best = sorted(
                ((score, n, i) for n, (_, hits) in enumerate(found) for score, i in hits)
            )[:limit]
            hits: list[Hit] = []
            for n, (seg, _) in enumerate(parts):
                mine = [(score, i) for score, m, i in best if m == n]
                marks = highlights(seg, [i for _, i in mine])
                hits += [
                    Hit(seg.records[i], score, spans_)
                    for (score, i), spans_ in zip(mine, marks, strict=True)
                ]
            hits.sort(key=lambda hit: hit.score)  # stable: a patch's ties after the base's
            groups[source] = hits
        return SearchResult(query.text, kind, groups, counts)

    def matching(
        self, text: str, kind: RecordKind = "contacts", sources: Sequence[str] | None = None
    ) -> list[Record]:
        """Every record matching a query, each source's best first, without highlights:
        what a list shows for a filter (a million matches take numpy sorts, not a Hit and
        its spans each)."""
        query = parse_query(text, kind, self.columns)
        wanted = set(sources or ()) | set(query.sources)
        terms = sorted({t.encode("utf-8") for t in query.terms}, key=len, reverse=True)
        filtered = query.filtered
        out: list[Record] = []
        for key, segment in list(self._segments.items()):
            if key[0] != kind or (wanted and key[1] not in wanted):
                continue
            patch = self._patches.get(key)
            parts = [(segment, None if patch is None or patch.base is not segment else patch.dead)]
            if parts[0][1] is not None and patch is not None:
                parts.append((patch.segment, None))
            found = [_every_match(seg, dead, query, terms, filtered) for seg, dead in parts]
            scores = np.concatenate([f[0] for f in found])
            part = np.concatenate([np.full(len(f[1]), n) for n, f in enumerate(found)])
            at = np.concatenate([f[1] for f in found])
            order = np.argsort(scores, kind="stable")  # ties: the base's before a patch's
            segments = [seg.records for seg, _ in parts]
            out += [
                segments[n][i]
                for n, i in zip(part[order].tolist(), at[order].tolist(), strict=True)
            ]
        return out


def _every_match(
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


def _ranked(
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


def _candidates(
    segment: Segment, dead: np.ndarray | None, query: Query, terms: list[bytes], filtered: bool
) -> tuple[Matches, np.ndarray]:
    """A segment's records holding every term, less the `dead` ones and those a filter
    leaves out; with the matches they came from (which score them)."""
    matches = segment.matching(terms)
    candidates = matches.found
    if dead is not None and len(candidates):
        candidates = candidates[~dead[candidates]]
    if filtered and len(candidates):
        candidates = candidates[segment.facets().mask(query, candidates)]
    return matches, candidates


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
