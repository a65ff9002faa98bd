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
from crm_tui.text import fold

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
        # a text's spans, for texts not ASCII: names and companies repeat across hits
        self._texts: dict[str, list[tuple[int, int]]] = {}

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
            if any(spans != [] for spans in known.values()):  # else no hit holds a term there
                columns.append((name, [known[code] for code in codes]))
        text, empty = segment.text, self._empty
        out = []
        for n, record in enumerate(records):
            found = empty.copy()  # fields holding no term keep the shared empty list
            for name, mark in self._line_spans(record, text[begins[n] : ends[n]]).items():
                found[name] = self._in_field(record, name, mark)
            for name, marks in columns:
                mark = marks[n]
                if mark is None:
                    found[name] = self._spans(field_text(record, name))
                elif mark:
                    found[name] = self._in_field(record, name, mark)
            out.append(found)
        return out

    def _in_field(
        self, record: Record, name: str, found: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Spans found on folded text point into the field itself only when the field is
        ASCII: transliteration (`Æ` -> `ae`, `ß` -> `ss`, ligatures) changes lengths."""
        if not found:
            return found
        text = field_text(record, name)
        return found if text.isascii() else self._spans(text)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """`spans` of a text not ASCII, worked out once per search. A copy: the caller may
        be handed the same list for several hits, and must not share one it could change."""
        known = self._texts.get(text)
        if known is None:
            known = self._texts[text] = spans(text, self.text_terms)
        return list(known)

    def _line_spans(self, record: Record, line: bytes) -> dict[str, list[tuple[int, int]]]:
        found: dict[str, list[tuple[int, int]]] = {}
        if self.finder is None:
            return found
        if line.isascii():  # one pass over the whole line; no term spans a separator
            fields = self.line_fields
            for start, end in occurrences(line, self.terms):
                at = line.count(SEP, 0, start)  # which field: the separators before it
                if at < len(fields):  # not the bare digits or custom words after them
                    base = line.rfind(SEP, 0, start) + 1
                    found.setdefault(fields[at], []).append((start - base, end - base))
            return {name: merge_spans(spans) for name, spans in found.items()}
        for name, part in zip(self.line_fields, line.split(SEP), strict=False):
            if self.finder.search(part) is None:
                continue
            if part.isascii():  # folding was lowercasing: the line's offsets are the field's
                found[name] = merge_spans(occurrences(part, self.terms))
            else:
                found[name] = self._spans(field_text(record, name))
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
    folded, origin = folded_positions(text)
    found = [
        (origin[start], _past_marks(text, origin[end - 1] + 1))
        for start, end in occurrences(folded, terms)
    ]
    return merge_spans(found)


class _CharFolds(dict[str, str]):
    """Each character's fold, worked out on first sight: names repeat their letters. Kept
    for the first few thousand characters seen (hostile text cannot grow it further)."""

    def __missing__(self, char: str) -> str:
        folded = fold(char)
        if len(self) < _CHARS_KEPT:
            self[char] = folded
        return folded


_CHARS_KEPT = 8192


_CHAR_FOLDS = _CharFolds()


def folded_positions(text: str) -> tuple[str, Sequence[int]]:
    """The text folded a character at a time and, for each character of the result, the
    index it came from in `text` (as text.fold_with_positions, faster). Most accented
    names fold one letter to one letter: then the index is the position itself."""
    if text.isascii():
        return text.lower(), range(len(text))
    parts = list(map(_CHAR_FOLDS.__getitem__, text))
    folded = "".join(parts)
    if len(folded) == len(text) and "" not in parts:  # each character to one character
        return folded, range(len(text))
    return folded, [index for index, part in enumerate(parts) for _ in part]


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
