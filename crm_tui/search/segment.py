"""A segment: one stream's searchable text and the bigram index that finds a term in it.

A segment keeps each record's searchable text, folded, in one large string (one line per
record) so a term is found at C speed rather than by a Python loop over a million strings.
A segment is built completely and then swapped in with one assignment, so a search sees the
old segment or the new one, never a mix.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from crm_tui.models import Contact, Record
from crm_tui.positions import Positions, record_positions
from crm_tui.search.facets import Facets
from crm_tui.search.fields import COMPANY, SEP, SEP_BYTE, haystack
from crm_tui.search.ranking import NO_MATCH, Matches, TermHits, firsts
from crm_tui.text import fold

_FEW_VALUES = 6
_SLICE = 4096
_BLOCK_BITS = 6  # shorter than almost every line, so a block starts at most a line or two
BLOCK_BYTES = 1 << _BLOCK_BITS  # per block of the text, the line_at table holds one entry
_MARKED_SPAN = 8  # blocks_of marks lines of up to this many blocks, one pass per block
#: Later terms look only in the blocks of the records left while those are under this
#: share of the segment: reading a small block table per offset is much cheaper than
#: checking the text there and finding its line (measured better than an eighth).
_NARROW_SHARE = 2
_SKIP_BYTES = (0x0A, 0x1F, 0x20)  # newline, field separator, space: never inside a term
_SHORT_TERM = 24  # bytes: up to this, a term's bigrams are looked up one at a time
_FEW_OCCURRENCES = 8  # per record, at most 1/this: a term's own best place is worked out
_LEAST_SLICE = 1 << 22  # offsets whose places are worked out at once at a build


class MappedText:
    """An opened segment's lines, mapped from disk: a slice is bytes, as it is of a built
    segment's `text`, and only the pages sliced are read."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, at: slice) -> bytes:
        return self.data[at].tobytes()


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
    Four bytes per offset would make most of the index.

    `records` may be any sequence (a list, or records decoded from disk on demand): the
    search reads only the records it shows. Every field but `records` and `text` is an
    array, saved and mapped back as it is (see search/persist.py and `array_fields`).
    """

    records: Sequence[Record]
    text: bytes | MappedText  # the lines, newline-terminated
    data: np.ndarray  # the same bytes, as an array (a view, not a copy)
    starts: np.ndarray  # byte offset of each record's line; one extra at the end
    lows: np.ndarray
    offsets: np.ndarray
    run_start: np.ndarray
    run_block: np.ndarray
    run_offsets: np.ndarray
    name_ends: np.ndarray  # byte offset where each line's first field (the name) ends
    line_at: np.ndarray  # per 64-byte block of data, the line its first byte is in
    least_place: np.ndarray  # per bigram, the best place any of its offsets has (places)
    _facets: Facets | None = None  # VALUE_FIELDS and the filters' fields, as codes
    _company_apart: bool = False  # the lines leave the company out: a facet matches it
    _positions: Positions | None = None  # where each record id sits (for patches)

    @classmethod
    def opened(
        cls, records: Sequence[Record], arrays: dict[str, np.ndarray], facets: Facets
    ) -> Segment:
        """A segment from its saved arrays (`array_fields`, checked by the caller)."""
        apart = COMPANY in facets.matched
        text = MappedText(arrays["data"])
        return cls(records=records, text=text, _facets=facets, _company_apart=apart, **arrays)

    @classmethod
    def build(cls, records: Iterable[Record]) -> Segment:
        # a list is copied (its owner may change it); a lazy sequence is kept, not copied
        lazy = isinstance(records, Sequence) and not isinstance(records, list)
        ordered: Sequence[Record] = records if lazy else list(records)  # type: ignore[assignment]
        apart = company_repeats(ordered)
        text = _lines(ordered, not apart)
        data = np.frombuffer(text, dtype=np.uint8)
        if len(data) >= 1 << 32:
            raise ValueError("a segment's text must stay under 4 GB")
        starts = _line_starts(data, len(ordered))
        name_ends = _name_ends(text, data, starts)
        codes = _bigram_codes(text, data)
        least = _least_places(codes, data, starts, name_ends)
        postings = _postings(codes)
        return cls(
            records=ordered,
            text=text,
            data=data,
            starts=starts,
            name_ends=name_ends,
            line_at=_line_at(starts, len(data)),
            least_place=least,
            _company_apart=apart,
            **postings._asdict(),
        )

    def reading(self, records: Sequence[Record]) -> Segment:
        """This segment, its records read from `records` from now on: the same records in
        the same order (decoded from disk on demand, say, in place of a list held)."""
        if len(records) != len(self.records):
            raise ValueError("other records than the segment's")
        self.records = records
        if self._facets is not None:
            self._facets.reading(records)
        self._positions = None
        return self

    def offsets_of(self, code: int) -> np.ndarray:
        """Every byte offset where bigram `code` starts, ascending."""
        start, end = int(self.offsets[code]), int(self.offsets[code + 1])
        first, last = int(self.run_offsets[code]), int(self.run_offsets[code + 1])
        lengths = np.diff(self.run_start[first:last].astype(np.int64), append=end)
        high = np.repeat(self.run_block[first:last].astype(np.int64) << 16, lengths)
        return high | self.lows[start:end]

    def line(self, index: int) -> bytes:
        return self.text[int(self.starts[index]) : int(self.starts[index + 1]) - 1]

    def value_matches(self, term: bytes) -> np.ndarray | None:
        """Per record, the best place of `term` in its VALUE_FIELDS (NO_MATCH where none
        holds it), or None when no record's do. The distinct values are tested together,
        the records by one gather per field."""
        values = self.facets()
        best: np.ndarray | None = None
        for name in values.matched:
            places = values.value_places(name, term)
            if places is None:
                continue
            held = np.flatnonzero(places < NO_MATCH)
            codes = values.codes[name]
            if len(held) > _FEW_VALUES:
                taken = np.take(places, codes)  # take: faster than [] here
                if best is None:
                    best = taken
                else:
                    np.minimum(best, taken, out=best)
                continue
            if best is None:
                best = np.full(len(codes), NO_MATCH, dtype=np.int8)
            for code in held.tolist():  # a compare and int8 arithmetic: faster still
                hit = (codes == code).view(np.int8)
                np.minimum(best, NO_MATCH - hit * (NO_MATCH - places[code]), out=best)
        return best

    def occurrences(
        self, term: bytes, blocks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where `term` (two bytes or more) occurs: byte offsets ascending, and the record
        each falls in (ascending too, repeated when a line holds the term twice). With
        `blocks` (see `blocks_of`), only offsets in the blocks it marks are looked at."""
        code, shift, _ = self.rarest(term)
        begin = self.offsets_of(code) - shift
        # ascending, so the offsets that would start before the text or run past its end
        # are at the two ends: cut by a binary search instead of a mask
        first = int(np.searchsorted(begin, 0))
        last = int(np.searchsorted(begin, len(self.data) - len(term), side="right"))
        begin = begin[first:last]
        if blocks is not None:
            begin = begin[blocks[begin >> _BLOCK_BITS]]
        if len(term) > 2:  # a byte beside the bigram first: one cheap pass rejects most
            beside = shift + 2 if shift + 2 < len(term) else shift - 1
            begin = begin[self.data[begin + beside] == term[beside]]
        if len(term) > 3:
            begin = _verified(self.data, begin, term)
        return begin, self.owners(begin)

    def rarest(self, term: bytes) -> tuple[int, int, int]:
        """A term's rarest bigram (the fewest offsets to check): its code, where in the
        term it starts, and how many offsets it has (a one-byte term: the text's size)."""
        if len(term) < 2:
            return 0, 0, len(self.data)
        if len(term) > _SHORT_TERM:
            pairs = _pair_codes(term)
            counts = self.offsets[pairs + 1].astype(np.int64) - self.offsets[pairs]
            shift = int(np.argmin(counts))
            return int(pairs[shift]), shift, int(counts[shift])
        # a typed word: a few scalar reads cost less than the numpy calls (each search
        # asks for every term of every segment, several times)
        offsets, best = self.offsets, (0, 0, -1)
        for shift in range(len(term) - 1):
            code = term[shift] << 8 | term[shift + 1]
            count = int(offsets[code + 1]) - int(offsets[code])
            if best[2] < 0 or count < best[2]:
                best = (code, shift, count)
        return best

    def owners(self, begin: np.ndarray) -> np.ndarray:
        """The line each byte offset (ascending) falls in. Rather than a binary search over
        every line start per offset, the block table gets within a line or two of the
        answer, and a few vectorised steps forward finish it: the first over every offset,
        the others only over those the step before moved."""
        owner = self.line_at[begin >> _BLOCK_BITS].astype(np.int64)
        ends = self.starts[1:]
        ahead = ends[owner] <= begin
        owner += ahead
        moved = np.flatnonzero(ahead)
        while len(moved):
            moved = moved[ends[owner[moved]] <= begin[moved]]
            owner[moved] += 1
        return owner

    def blocks_of(self, records: np.ndarray) -> np.ndarray | None:
        """Per 64-byte block of the text, whether it holds part of one of `records` (None
        when one of their lines is too long to mark cheaply): the later terms of a query
        look only at the offsets there, so a common second word costs what the records
        matching the first hold, not all its occurrences."""
        first = self.starts[records] >> _BLOCK_BITS
        last = (self.starts[records + 1] - 1) >> _BLOCK_BITS
        span = int((last - first).max()) if len(records) else 0
        if span > _MARKED_SPAN:
            return None
        marked = np.zeros(len(self.line_at), dtype=bool)
        marked[first] = True
        marked[last] = True
        longer = np.flatnonzero(last - first > 1)  # the few lines over three blocks
        first, last = first[longer], last[longer]
        for step in range(1, span):
            marked[np.minimum(first + step, last)] = True
        return marked

    def places(self, begin: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """Each occurrence's place (`owners` are their records): 0 at the start of a word
        of the name, 1 elsewhere in the name, 2 at the start of a word of another field, 3
        anywhere else. A line starts after a newline, so the byte before an occurrence
        says whether a word starts there (for offset 0, index -1 reads the text's last
        byte: a newline too)."""
        place = (begin >= self.name_ends[owners]).view(np.int8) * np.int8(2)
        place += _INSIDE_WORD[self.data[begin - 1]]
        return place

    def matching(self, terms: Sequence[bytes], within: np.ndarray | None = None) -> Matches:
        """Records whose line or value fields contain every term (and that `within` holds,
        if given), ascending. The rarest term goes first; once a term's offsets far
        outnumber the records still matching, it looks only in their blocks."""
        found = within
        blocks: np.ndarray | None = None
        hits = []
        if found is not None and not len(found):
            return Matches(self, found, [])
        for term in sorted(terms, key=lambda t: self.rarest(t)[2]):
            if blocks is None and found is not None and _narrows(self, term, found):
                blocks = self.blocks_of(found)
            if len(term) < 2:  # a lone letter: no bigram holds it, so its bytes are read
                begin, owners = self.byte_occurrences(term[0], blocks)
            else:
                begin, owners = self.occurrences(term, blocks)
            in_values = self.value_matches(term)
            least = self._least(term, begin, owners, in_values)
            hits.append(TermHits(begin, owners, in_values, least))
            found = _holding(found, owners, in_values, len(self.records))
            if not len(found):
                return Matches(self, found, [])  # the other terms cannot add any
        if found is None:
            found = np.arange(len(self.records))
        return Matches(self, found, hits)

    def _least(
        self, term: bytes, begin: np.ndarray, owners: np.ndarray, in_values: np.ndarray | None
    ) -> int:
        """The best place `term` can have in any record (a bound: ranking stops early once
        enough records have it). A longer term's occurrences' own places when they are
        few; else its first bigram's best, since an occurrence starts with it (a lone
        letter: 0, not known)."""
        line = NO_MATCH
        if len(begin) and len(term) < 2:
            line = 0
        elif len(begin) and len(term) > 2 and len(begin) * _FEW_OCCURRENCES <= len(self.records):
            line = int(self.places(begin, owners).min())
        elif len(begin):  # exact for two letters (the bigram is the term), else a bound
            line = int(self.least_place[term[0] << 8 | term[1]])
        return min(line, NO_MATCH if in_values is None else int(in_values.min()))

    def byte_occurrences(
        self, byte: int, blocks: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where a one-byte term occurs, as `occurrences` says it: the bigram index leaves
        out bigrams with a space, so the text itself is compared, in `blocks` only when
        given (a 64-byte row copied per block marked)."""
        if blocks is None:
            begin = np.flatnonzero(self.data == byte)
            return begin, self.owners(begin)
        whole = len(self.data) >> _BLOCK_BITS
        rows = np.flatnonzero(blocks[:whole])
        grid = self.data[: whole << _BLOCK_BITS].reshape(whole, 1 << _BLOCK_BITS)
        at = np.flatnonzero(grid[rows] == byte)
        begin = (rows[at >> _BLOCK_BITS] << _BLOCK_BITS) | (at & ((1 << _BLOCK_BITS) - 1))
        if len(blocks) > whole and blocks[whole]:  # the text's last, partial block
            tail = np.flatnonzero(self.data[whole << _BLOCK_BITS :] == byte)
            begin = np.concatenate((begin, tail + (whole << _BLOCK_BITS)))
        return begin, self.owners(begin)

    def facets(self) -> Facets:
        """Built on first use. SearchIndex builds them one segment after another, before
        the swap: pure Python, they gain nothing from the build threads and, run in
        several at once, kept the event loop waiting for the interpreter lock."""
        if self._facets is None:
            self._facets = Facets(self.records, company=self._company_apart)
        return self._facets

    def positions(self) -> Positions:
        """Built on first use; SearchIndex builds them beside a big segment (see _swap), so
        a patch's latency never pays for them."""
        if self._positions is None:
            self._positions = record_positions(self.records)
        return self._positions

    @property
    def nbytes(self) -> int:
        """What the segment holds beyond the records themselves: its arrays (the text
        once: `data` is a view of it), the records list and the facets. For an opened
        segment the arrays are mapped files: resident only where read."""
        own = sum(getattr(self, name).nbytes for name in array_fields())
        return own + sys.getsizeof(self.records) + self.facets().nbytes


#: Per byte, 1 where a term right after it is inside a word (not after a space, a field
#: separator or the newline that ends the line before).
_INSIDE_WORD = np.ones(256, dtype=np.int8)
_INSIDE_WORD[[0x20, SEP_BYTE, 0x0A]] = 0


def _pair_codes(term: bytes) -> np.ndarray:
    """Each bigram of a term as its code (two bytes, big-endian)."""
    raw = np.frombuffer(term, dtype=np.uint8).astype(np.int64)
    return (raw[:-1] << 8) | raw[1:]


def _verified(data: np.ndarray, begin: np.ndarray, term: bytes) -> np.ndarray:
    """The offsets of `begin` (ascending) where `term` is in `data`: compared eight bytes
    at a time, through a view reading a little-endian word at every byte offset."""
    size = len(data)
    words = np.ndarray((max(size - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
    for at in range(0, len(term), 8):
        chunk = term[at : at + 8]
        mask = np.uint64((1 << (8 * len(chunk))) - 1)
        safe = int(np.searchsorted(begin, size - 8 - at, side="right"))
        head, tail = begin[:safe], begin[safe:]
        head = head[(words[head + at] & mask) == np.uint64(int.from_bytes(chunk, "little"))]
        if len(tail):  # the last few bytes of the text, beyond a whole word
            ends = [bytes(data[b + at : b + at + len(chunk)]) == chunk for b in tail.tolist()]
            head = np.concatenate((head, tail[np.asarray(ends, dtype=bool)]))
        begin = head
    return begin


def _narrows(segment: Segment, term: bytes, found: np.ndarray) -> bool:
    """Whether looking for `term` only in the blocks of `found` saves work: few records
    left, and many more offsets of the term than records."""
    few = len(found) * _NARROW_SHARE < len(segment.records)
    return few and segment.rarest(term)[2] > 2 * len(found)


def _holding(
    found: np.ndarray | None, owners: np.ndarray, in_values: np.ndarray | None, size: int
) -> np.ndarray:
    """The records holding a term, ascending (of `found` only, when given): `owners` are
    its occurrences' records (ascending, repeated), `in_values` its place per record in the
    value fields. Masks scattered and gathered, linear where a binary search per record
    would cost a log factor in cache misses; a later term reads the mask only at `found`."""
    if found is None:
        if in_values is None:
            return owners[firsts(owners)]
        either = in_values < NO_MATCH
        either[owners] = True
        return np.flatnonzero(either)
    held = np.zeros(size, dtype=bool)
    held[owners] = True
    keep = held[found]
    if in_values is not None:
        keep |= in_values[found] < NO_MATCH
    return found[keep]


def array_fields() -> tuple[str, ...]:
    """Segment's array fields: all but the records, the text (`data` is its bytes) and the
    private ones made on first use. What a saved segment holds, whatever fields come."""
    skip = ("records", "text")
    return tuple(f.name for f in fields(Segment) if f.name not in skip and f.name[0] != "_")


def company_repeats(records: Sequence[Record]) -> bool:
    """Whether contacts' companies repeat enough to be matched as values (see
    fields.COMPANY): at most one distinct company per COMPANY_REPEATS records that have
    one, in a sample spread over them (a lazy sequence decodes only those). Records with
    none do not count: a few unique companies among them would be thousands of values."""
    if len(records) < COMPANY_REPEATS or not isinstance(records[0], Contact):
        return False
    taken = np.unique(np.linspace(0, len(records) - 1, _COMPANY_SAMPLE).astype(np.int64))
    companies = [fold(company) for at in taken if (company := records[int(at)].company)]
    held = len(companies)
    return held >= COMPANY_REPEATS and len(set(companies)) * COMPANY_REPEATS <= held


#: Records per distinct company (in a sample) from which a segment matches companies as
#: values: a value matched costs a gather over every record, about what verifying a
#: word's offsets costs once a few percent of the records hold it.
COMPANY_REPEATS = 8
_COMPANY_SAMPLE = 2048


def _lines(records: Sequence[Record], company: bool) -> bytes:
    """Every record's folded line, newline-terminated, as UTF-8 (`company`: whether it
    holds the company). Joined and encoded a slice at a time: one join and encode of a
    large segment is a single C call that would hold the interpreter lock for several
    frames."""
    line = haystack if company else functools.partial(haystack, company=False)
    return b"".join(
        ("\n".join(map(line, records[at : at + _SLICE])) + "\n").encode("utf-8")
        for at in range(0, len(records), _SLICE)
    )


def _line_starts(data: np.ndarray, count: int) -> np.ndarray:
    """The byte offset of each of `count` lines, and one past the last line's end."""
    starts = np.zeros(count + 1, dtype=np.uint32)
    starts[1:] = np.flatnonzero(data == 0x0A) + 1
    return starts


def _name_ends(text: bytes, data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Where each line's name ends: at the first separator after the line's start. Every
    line has as many separators as the first (ingest strips them from data), so no search
    is needed."""
    count = len(starts) - 1
    seps = np.flatnonzero(data == SEP_BYTE)
    per_line = text[: int(starts[1]) if count else 0].count(SEP)
    if per_line and len(seps) == per_line * count:
        return seps[::per_line].astype(np.uint32)
    if len(seps):  # a record built around the cleaning: search for it
        return seps[np.searchsorted(seps, starts[:-1])].astype(np.uint32)
    return (starts[1:] - 1).astype(np.uint32)


def _bigram_codes(text: bytes, data: np.ndarray) -> np.ndarray:
    """Each offset's two bytes as one big-endian number, or 0 where either is a byte no
    term holds (bigram 0, two NULs, never occurs in text, so it collects what is not
    indexed). The even offsets and the odd ones are two views of the text, so this is two
    copies instead of three passes."""
    first, second = data[:-1], data[1:]
    codes = np.zeros(max(len(data) - 1, 0), dtype=np.uint16)
    if len(data) >= 2:
        codes[0::2] = np.frombuffer(text, dtype=">u2", count=len(data) // 2)
        codes[1::2] = np.frombuffer(text, dtype=">u2", count=(len(data) - 1) // 2, offset=1)
    for byte in _SKIP_BYTES:
        codes[(first == byte) | (second == byte)] = 0
    return codes


def _least_places(
    codes: np.ndarray, data: np.ndarray, starts: np.ndarray, name_ends: np.ndarray
) -> np.ndarray:
    """Per bigram code, the best place (see `Segment.places`) any offset of it has, NO_MATCH
    for one that never occurs. Worked out a slice of the text at a time: whether an offset
    is in its line's name is a running sum of +1 at each line start and -1 at each name's
    end, carried from one slice to the next."""
    least = np.full(1 << 16, NO_MATCH, dtype=np.int8)
    line_starts = starts[:-1]
    in_name = 0
    for at in range(0, len(codes), _LEAST_SLICE):
        end = min(at + _LEAST_SLICE, len(codes))
        step = np.zeros(end - at, dtype=np.int8)
        for edges, change in ((line_starts, 1), (name_ends, -1)):
            held = edges[np.searchsorted(edges, at) : np.searchsorted(edges, end)]
            step[held.astype(np.int64) - at] += change
        inside_name = np.cumsum(step, dtype=np.int8)
        inside_name += in_name
        in_name = int(inside_name[-1])
        before = data[at - 1 : end - 1] if at else np.concatenate(([0x0A], data[: end - 1]))
        place = (1 - inside_name) * 2 + _INSIDE_WORD[before]
        here = codes[at:end]
        for rank in range(NO_MATCH):
            seen = np.bincount(here[place == rank], minlength=1 << 16) > 0
            least[seen & (least > rank)] = rank
    return least


class _Postings(NamedTuple):
    """Every bigram's offsets, in the form Segment keeps them (its fields of the same names)."""

    lows: np.ndarray
    offsets: np.ndarray
    run_start: np.ndarray
    run_block: np.ndarray
    run_offsets: np.ndarray


def _postings(codes: np.ndarray) -> _Postings:
    """Every bigram's offsets, ascending, from each offset's bigram code. The caller keeps
    no reference to `codes`, so it is freed before the offsets are copied out."""
    order = np.argsort(codes, kind="stable")  # a radix sort; positions stay ascending
    counts = _bincount(codes)
    del codes
    positions = order[int(counts[0]) :].astype(np.uint32)
    del order
    offsets = np.zeros(len(counts) + 1, dtype=np.uint32)
    np.cumsum(counts[1:], out=offsets[2:])
    return _runs(positions, offsets, counts)


def _runs(positions: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> _Postings:
    """The offsets split into their low halves and runs of a shared high half. A run
    starts where the high half changes and where a bigram's list starts."""
    high = (positions >> 16).astype(np.uint16)
    is_start = np.zeros(len(positions), dtype=bool)
    is_start[1:] = high[1:] != high[:-1]
    is_start[offsets[1:-1][counts[1:] > 0]] = True
    run_start = np.flatnonzero(is_start).astype(np.uint32)
    return _Postings(
        lows=(positions & 0xFFFF).astype(np.uint16),
        offsets=offsets,
        run_start=run_start,
        run_block=high[run_start],
        run_offsets=np.searchsorted(run_start, offsets).astype(np.uint32),
    )


def _line_at(starts: np.ndarray, size: int) -> np.ndarray:
    """Per 64-byte block of a text of `size` bytes, the line its first byte is in: a line
    starting at s is at or before block b's first byte when ceil(s / 64) <= b."""
    blocks = (size + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
    first_block = (starts[:-1].astype(np.int64) + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
    line_at = np.cumsum(np.bincount(first_block, minlength=blocks + 1)[:blocks]) - 1
    return line_at.astype(np.uint32)


def _bincount(codes: np.ndarray) -> np.ndarray:
    """How often each 16-bit code occurs, a million at a time: np.bincount keeps the
    interpreter lock for its whole run."""
    counts = np.zeros(1 << 16, dtype=np.int64)
    for at in range(0, len(codes), 1 << 20):
        counts += np.bincount(codes[at : at + (1 << 20)], minlength=1 << 16)
    return counts
