"""Each filterable field's distinct values, and per record the code of its value.

A filter (`status:lead`, `city:austin`, `amount>500000`, a custom column) tests the few
distinct values in Python and the records in numpy. The value fields of the search (see
fields.VALUE_FIELDS) are matched the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any

import numpy as np

from crm_tui.custom_columns import Column
from crm_tui.models import Contact, Deal, Record
from crm_tui.search.fields import COMPANY, VALUE_FIELDS
from crm_tui.search.query import SHARED_FILTERS, Query, created_within
from crm_tui.slices import sliced_array, sliced_flatten, sliced_map, slices
from crm_tui.text import fold
from crm_tui.vocabulary import (
    SHARED_STATUSES,
    field_order,
    matches_shared,
    normalize_filter,
    shared_code,
    shared_value,
)


class Facets:
    """Each filterable field's distinct folded values, and per record the code of its value:
    a filter tests the few distinct values in Python and the records in numpy."""

    TEXT = ("status", "stage", "city")
    #: Arrays saved as they are (with `codes`, see `saved`).
    ARRAYS = ("tag_owner", "tag_codes", "closing_codes", "amounts")

    def __init__(self, records: Sequence[Record], company: bool = False) -> None:
        """`company`: a contacts segment whose line leaves the company out; it is coded
        and matched here, as a value field."""
        self._begin(records, bool(records) and isinstance(records[0], Deal), company)
        self.values: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        # map() and attrgetter keep these loops in C, well ahead of comprehensions
        for name in self.TEXT:
            held = bool(records) and hasattr(records[0], name)  # deals have no city
            raw = sliced_map(attrgetter(name), records) if held else [None] * len(records)
            self.values[name], self.codes[name] = _codes(raw)
        if company:  # as the line would hold it: a newline there reads as a space
            raw = sliced_map(_line_company, records)
            self.values[COMPANY], self.codes[COMPANY] = _codes(raw)
        tag_lists = [] if self.deals else sliced_map(attrgetter("tags"), records)
        if not self.deals:  # all of a contact's tags as one value, as they are shown
            joined = sliced_map(", ".join, tag_lists)
            self.values["tags"], self.codes["tags"] = _codes(joined)  # type: ignore[arg-type]
        counts = sliced_array(len, tag_lists, np.int64)
        self.tag_owner = np.repeat(np.arange(len(tag_lists), dtype=np.uint32), counts)
        self.tag_values, self.tag_codes = _codes(sliced_flatten(tag_lists))
        self.shared = self._shared_codes(records[0].source if records else None)
        deals = records if self.deals else []
        self.closing_values, self.closing_codes = _codes([r.close_date for r in deals])  # type: ignore[union-attr]
        self.amounts = np.array(
            [np.nan if r.amount is None else float(r.amount) for r in deals],  # type: ignore[union-attr]
            dtype=np.float64,
        )

    def reading(self, records: Sequence[Record]) -> None:
        """Read `records` (the same, in the same order) for `created:` and custom columns."""
        self._records = records

    def _begin(self, records: Sequence[Record], deals: bool, company: bool) -> None:
        self.size = len(records)
        self.deals = deals
        self.matched = VALUE_FIELDS["deals" if deals else "contacts"] + (
            (COMPANY,) if company else ()
        )
        self._records = records  # the segment's own: `created:` and custom columns read it
        self._created: tuple[list[str], np.ndarray] | None = None
        # Custom columns' values, built when a filter first names the column: most
        # columns are never filtered on, and building them all would slow every rebuild.
        self._custom: dict[tuple[str, bool], Any] = {}
        self._joined: dict[str, _Joined | None] = {}

    def value_places(self, name: str, term: bytes) -> np.ndarray | None:
        """Per distinct value of a VALUE_FIELDS field, the place of `term` in it: 2 at the
        start of a word, 3 inside one, NO_PLACE where it is not held; None when no value
        holds it. Many values (every mix of tags) are searched as one byte array, in a few
        numpy passes, not a Python call per value."""
        text = term.decode("utf-8")
        if name == "tags" and "," not in text and not any(text in t for t in self.tag_values):
            return None  # the mixes are tags joined by ", ": no tag, no mix holds it
        if name not in self._joined:
            self._joined[name] = _Joined.of(self.values[name])
        joined = self._joined[name]
        if joined is None:  # a few values, or one holding the separator: one at a time
            found = np.array([_value_place(v, text) for v in self.values[name]], np.int8)
        else:
            found = joined.places(term)
        return found if (found < NO_PLACE).any() else None

    def saved(self, columns: Iterable[Column] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What a saved segment keeps of its facets: the arrays, and the distinct values
        (JSON-ready). The creation days and the custom `columns` are made first, if no
        filter asked for them yet: a pass over the records each, paid at the save rather
        than at a filter after the next start, when records may be read from disk one at a
        time. The shared statuses are not kept: they are worked out again at open from the
        values, so a change to the vocabulary never meets a stale copy."""
        created, created_codes = self.created_days()
        for column in columns:
            self._column_values(column)
        arrays = {f"codes_{name}": codes for name, codes in self.codes.items()}
        arrays.update({name: getattr(self, name) for name in self.ARRAYS})
        arrays["created_codes"] = created_codes
        custom: list[list[Any]] = []
        # a copy: a search in another thread may add a column meanwhile
        for n, ((name, numeric), held) in enumerate(list(self._custom.items())):
            arrays[f"custom_{n}"] = held if numeric else held[1]
            custom.append([name, numeric, None if numeric else held[0]])
        values = {"values": self.values, "tag": self.tag_values, "closing": self.closing_values}
        return arrays, {**values, "created": created, "custom": custom}

    @classmethod
    def restored(
        cls,
        records: Sequence[Record],
        source: str,
        deals: bool,
        arrays: dict[str, np.ndarray],
        values: dict[str, Any],
    ) -> Facets:
        """Facets from what `saved` gave, over `records`; ValueError if they do not fit
        together (a code past its values, a length that is not the records')."""
        facets = cls.__new__(cls)
        company = f"codes_{COMPANY}" in arrays
        facets._begin(records, deals, company)
        facets.values = _string_lists(values["values"])
        facets.tag_values = _string_list(values["tag"])
        facets.closing_values = _string_list(values["closing"])
        names = {*cls.TEXT, *(() if deals else ("tags",)), *((COMPANY,) if company else ())}
        facets.codes = {name: arrays[f"codes_{name}"] for name in names}
        for name in cls.ARRAYS:
            setattr(facets, name, arrays[name])
        facets._created = (_string_list(values["created"]), arrays["created_codes"])
        for n, entry in enumerate(values["custom"]):
            name, numeric, held = entry
            array = arrays[f"custom_{n}"]
            key = (str(name), numeric is True)
            facets._custom[key] = array if key[1] else (_string_list(held), array)
        facets._check()
        facets.shared = facets._shared_codes(source if facets.size else None)
        return facets

    def _check(self) -> None:
        size, deals = self.size, self.size if self.deals else 0
        if self.values.keys() != self.codes.keys():
            raise ValueError("the fields' values are not those of their codes")
        for name, codes in self.codes.items():
            _fits(f"codes of {name}", codes, size, len(self.values[name]))
        _fits("tag codes", self.tag_codes, len(self.tag_owner), len(self.tag_values))
        _fits("tag owners", self.tag_owner, len(self.tag_codes), size)
        _fits("closing codes", self.closing_codes, deals, len(self.closing_values))
        _numbers("amounts", self.amounts, deals)
        for (name, numeric), held in self._custom.items():
            if numeric:
                _numbers(name, held, size)
            else:
                _fits(f"codes of {name}", held[1], size, len(held[0]))
        if self._created is not None:
            _fits("creation days", self._created[1], size, len(self._created[0]))

    def custom_numbers(self, name: str) -> np.ndarray:
        """Per record, a number or money column's value (NaN where none)."""
        key = (name, True)
        if key not in self._custom:
            held = sliced_map(lambda r: r.custom.get(name), self._records)
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
            held = sliced_map(lambda r: _as_text(r.custom.get(name)), self._records)
            self._custom[key] = _codes(held)
        return self._custom[key]  # type: ignore[no-any-return]

    def _column_values(self, column: Column) -> Any:
        if column.type in _NUMERIC:
            return self.custom_numbers(column.name)
        return self.custom_texts(column.name)

    def _custom_hit(self, column: Column, op: str, value: Any, rows: Rows) -> np.ndarray:
        if column.type in _NUMERIC:
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
        made on the first `created:` filter, not with the other facets (cutting every
        timestamp to its day would slow each rebuild for a filter seldom typed)."""
        if self._created is None:
            stamps = sliced_map(attrgetter("remote_created"), self._records)
            self._created = _codes(sliced_map(_day_of, stamps))
        return self._created

    def _shared_codes(self, source: str | None) -> np.ndarray:
        """Per record, its shared status (a SHARED_STATUSES index, -1 for none): worked out
        per distinct value of each field, then one gather per field (a segment is one
        source; None when it holds no records)."""
        shared = np.full(self.size, -1, dtype=np.int8)
        self.value_shared: dict[str, np.ndarray] = {}
        if source is None:
            return shared
        kind = "deals" if self.deals else "contacts"
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

    def _status_hit(self, key: str, value: str, rows: Rows) -> np.ndarray:
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
        found = held_by(hit, self.codes[key][rows])
        if named:  # a table per shared code (-1, none, reads as 255)
            table = np.zeros(256, dtype=bool)
            table[named] = True
            found |= held_by(table, self.shared[rows].view(np.uint8))
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

    def mask(self, query: Query, records: np.ndarray | None = None) -> np.ndarray:
        """Which of `records` (all of them if None) pass every filter of `query` except
        `source:`. All of them are read through a slice: views, where a gather would copy
        every array it reads."""
        rows: Rows = slice(None) if records is None else records
        count = self.size if records is None else len(records)
        keep = np.ones(count, dtype=bool)
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
                    keep &= held_by(np.asarray(hit, dtype=bool), self.codes[key][rows])
        if query.created:
            values, codes = self.created_days()
            hit = [created_within(day, query.created) for day in values]
            keep &= np.asarray(hit, dtype=bool)[codes[rows]]
        for column, op, value in query.custom:
            keep &= self._custom_hit(column, op, value, rows)
        if query.amounts or query.closing:
            if not self.deals:
                return np.zeros(count, dtype=bool)
            for op, bound in query.amounts:
                keep &= _COMPARE[op](self.amounts[rows], float(bound))  # NaN compares False
            if query.closing:
                hit = [v.startswith(query.closing) for v in self.closing_values]
                keep &= np.asarray(hit, dtype=bool)[self.closing_codes[rows]]
        return keep


def _line_company(record: Record) -> str | None:
    company = record.company if isinstance(record, Contact) else None
    return company.replace("\n", " ") if company else company


def held_by(hit: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """`hit[codes]`, per record whether its value's code is one `hit` marks. A few marked
    codes are compared one at a time: a compare of small codes costs a fraction of numpy's
    gather, which widens every code to an index first."""
    marked = np.flatnonzero(hit)
    if len(marked) > _FEW_COMPARED:
        return hit[codes]
    found = np.zeros(len(codes), dtype=bool)
    for code in marked.tolist():
        found |= codes == code
    return found


_FEW_COMPARED = 4


#: Which records a filter reads: an array of their indexes, or slice(None) for all of them.
Rows = np.ndarray | slice

#: A term's place in a value that does not hold it: worse than any place (ranking.NO_MATCH).
NO_PLACE = 4
_JOIN = 0x00  # the values' separator: control characters are stripped at ingest
_FEW_VALUES = 32  # up to this many, testing each value in Python is faster than numpy


def _value_place(value: str, term: str) -> int:
    """A value's place for a term: 2 at the start of a word, 3 inside one."""
    if value.startswith(term) or f" {term}" in value:
        return 2
    return 3 if term in value else NO_PLACE


@dataclass(frozen=True, slots=True)
class _Joined:
    """A field's distinct values as one UTF-8 byte array, each preceded by a NUL: a term's
    occurrences in all of them are found by comparing bytes, in numpy."""

    text: bytes
    data: np.ndarray  # the same bytes, as an array
    starts: np.ndarray  # where each value's NUL is, ascending

    @classmethod
    def of(cls, values: list[str]) -> _Joined | None:
        encoded = [v.encode("utf-8") for v in values]
        if len(values) <= _FEW_VALUES or any(_JOIN in v for v in encoded):
            return None
        text = b"".join(b"\x00" + v for v in encoded) + b"\x00"
        lengths = np.fromiter((len(v) + 1 for v in encoded), np.int64, len(encoded))
        starts = np.zeros(len(encoded), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(text, np.frombuffer(text, np.uint8), starts)

    def places(self, term: bytes) -> np.ndarray:
        found = np.full(len(self.starts), NO_PLACE, dtype=np.int8)
        size = len(self.data) - len(term)
        if size <= 0 or not term or term not in self.text:  # most terms: one C search
            return found
        begin = np.flatnonzero(self.data[1:size] == term[0]) + 1
        for j in range(1, len(term)):
            begin = begin[self.data[begin + j] == term[j]]
        if not len(begin):
            return found
        owner = np.searchsorted(self.starts, begin, side="right") - 1
        before = self.data[begin - 1]
        place = np.where((before == _JOIN) | (before == 0x20), 2, 3).astype(np.int8)
        first = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
        found[owner[first]] = np.minimum.reduceat(place, first)
        return found


def _day_of(stamp: str | None) -> str:
    return stamp[:10] if stamp else ""


_NUMERIC = ("number", "money")
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


def _fits(what: str, codes: np.ndarray, size: int, bound: int) -> None:
    """`codes` are `size` integers, each under `bound` (a max is one pass, in C)."""
    if codes.dtype.kind not in "ui" or len(codes) != size or codes.ndim != 1:
        raise ValueError(f"{what}: {codes.dtype}{codes.shape}, not {size} integers")
    if size and (int(codes.min()) < 0 or int(codes.max()) >= bound):
        raise ValueError(f"{what}: a code out of range")


def _numbers(what: str, numbers: np.ndarray, size: int) -> None:
    if numbers.dtype != np.float64 or numbers.shape != (size,):
        raise ValueError(f"{what}: {numbers.dtype}{numbers.shape}, not {size} numbers")


def _string_list(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("saved values are not a list of strings")
    return values


def _string_lists(values: Any) -> dict[str, list[str]]:
    if not isinstance(values, dict):
        raise ValueError("saved values are not a mapping")
    return {str(name): _string_list(items) for name, items in values.items()}


def _codes(values: list[str | None]) -> tuple[list[str], np.ndarray]:
    """Distinct folded values and, per item, the index of its value. Raw values repeat
    (a few statuses over a million records), so each is folded once."""
    distinct: set[str | None] = set()
    for part in slices(values):
        distinct.update(part)
    folded: dict[str, int] = {}
    seen: dict[str | None, int] = {}
    for raw in distinct:
        seen[raw] = folded.setdefault(fold(raw or ""), len(folded))
    dtype = np.uint8 if len(folded) <= 256 else np.uint16 if len(folded) <= 65536 else np.int32
    return list(folded), sliced_array(seen.__getitem__, values, dtype)
