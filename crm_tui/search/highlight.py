"""Highlighting: where a search's terms occur in each field of a hit, as spans of the text
shown (not of the folded text the index matched, where folding may have moved them)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, AnyStr

import numpy as np

from crm_tui.models import Record, RecordKind
from crm_tui.search.fields import CONTACT_FIELDS, DEAL_FIELDS, LINE_FIELDS, SEP, field_text
from crm_tui.text import fold_with_positions

if TYPE_CHECKING:
    from crm_tui.search.segment import Segment


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
        self, segment: Segment, indexes: list[int], records: Sequence[Record]
    ) -> list[dict[str, list[tuple[int, int]]]]:
        """Spans for each of `indexes` (the segment's `records`, already read); their lines
        and value codes are read in one numpy gather each, not one scalar at a time, and a
        value's spans are found once."""
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
        text, empty = segment.text, self._empty
        out = []
        for n, record in enumerate(records):
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
            for name, part in zip(self.line_fields, line.split(SEP), strict=False):
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
        for name, part in zip(self.line_fields, line.split(SEP), strict=False):
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


def spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where any of the (folded) terms occur in `text`, as merged [start, end) in `text`."""
    if not text or not terms:
        return []
    folded, origin = fold_with_positions(text)
    found = [
        (origin[start], _past_marks(text, origin[end - 1] + 1))
        for start, end in occurrences(folded, terms)
    ]
    return merge_spans(found)


def _past_marks(text: str, end: int) -> int:
    """A span's end moved past the combining marks written after its last letter (`e` then
    U+0301): they fold to nothing, and a highlight stopping before them would split a letter."""
    while end < len(text) and unicodedata.combining(text[end]):
        end += 1
    return end


def occurrences(folded: AnyStr, terms: Sequence[AnyStr]) -> list[tuple[int, int]]:
    """Every [start, end) of every term in `folded` (a term may overlap another)."""
    found: list[tuple[int, int]] = []
    for term in terms:
        if not term:
            continue
        start = folded.find(term)
        while start >= 0:
            end = start + len(term)
            found.append((start, end))
            start = folded.find(term, end)
    return found


def merge_spans(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping and touching spans made one."""
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
