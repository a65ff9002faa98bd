"""Parsing a search box query: free words plus `key:value` and `amount>N` filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from crm_tui.config import SOURCE_NAMES
from crm_tui.custom_columns import CUSTOM_PREFIX, Column
from crm_tui.formats import parse_amount
from crm_tui.text import fold, single_line

MIN_QUERY = 2
MAX_QUERY = 10_000
QUERY_TOO_SHORT = "Query must be at least 2 characters"
TEXT_FILTERS = ("source", "status", "stage", "city", "tag", "created")
DEAL_FILTERS = ("amount", "closing")
CONTACT_FILTERS = ("city", "tag")  # deals have neither
#: Filters that test the shared status vocabulary as well as the vendor's own field.
SHARED_FILTERS = ("status", "stage")
# A key is a built-in filter or a custom column's name (`lender:`, `custom.lender:`).
_FILTER = re.compile(r"^((?:custom\.)?[a-zA-Z_][a-zA-Z0-9_]*):(.+)$")
# A word, or a filter whose value is quoted (`status:"active client"`); an unclosed quote
# runs to the end, so the query matches while it is still being typed.
_WORD = re.compile(r'(?:custom\.)?[a-zA-Z_][a-zA-Z0-9_]*:"[^"]*"?|\S+')
# A custom column compared: `price_range>500000`, `custom.closing_date<=2026-12`.
_COMPARE = re.compile(r"^((?:custom\.)?[a-zA-Z_][a-zA-Z0-9_]*)(<=|>=|<|>|=)(.+)$")
#: Custom column types compared by order (`>`, `<`, ...) rather than by text.
ORDERED_TYPES = ("number", "money", "date")
_AMOUNT = re.compile(r"^amount(<=|>=|<|>|=)(.+)$", re.IGNORECASE)
_CLOSING = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
CLOSING_FORMATS = "YYYY, YYYY-MM or YYYY-MM-DD, e.g. closing:2026-12"
CREATED_FORMATS = (
    "a date (YYYY, YYYY-MM or YYYY-MM-DD) or a range of two, e.g. created:2026-06-01..2026-06-14"
)


class QueryError(ValueError):
    """A query that cannot run; the message is for the person who typed it."""


@dataclass(slots=True)
class Query:
    text: str
    terms: list[str] = field(default_factory=list)  # folded words, all must match
    filters: dict[str, list[str]] = field(default_factory=dict)  # folded values
    amounts: list[tuple[str, Decimal]] = field(default_factory=list)
    closing: str | None = None
    #: the vendor's creation day, from and to (inclusive; each a year, month or day)
    created: tuple[str, str] | None = None
    #: Custom column filters: (column, op, value). op ":" is a text match (folded value,
    #: contained; a date's prefix; a number's equality), else a comparison; the value is
    #: a Decimal for number/money columns, an ISO date prefix or folded text otherwise.
    custom: list[tuple[Column, str, Any]] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return self.filters.get("source", [])

    @property
    def filtered(self) -> bool:
        """Whether anything beyond free words and `source:` narrows the records."""
        narrowed = self.filters.keys() - {"source"}
        return bool(narrowed or self.amounts or self.closing or self.created or self.custom)


def valid_filters(kind: str) -> tuple[str, ...]:
    if kind == "deals":
        return tuple(f for f in TEXT_FILTERS if f not in CONTACT_FILTERS) + DEAL_FILTERS
    return TEXT_FILTERS


def parse_query(
    text: str, kind: str = "contacts", columns: Mapping[str, Column] | None = None
) -> Query:
    """`columns`: the declared custom columns (by name), each a filter key too; a built-in
    filter of the same name wins, and `custom.NAME` always means the column."""
    cleaned = single_line(text).strip()[:MAX_QUERY]
    if len(cleaned) < MIN_QUERY:
        raise QueryError(QUERY_TOO_SHORT)
    parser = _Parser(Query(cleaned), kind, valid_filters(kind), _columns_by_key(columns))
    for word in _WORD.findall(cleaned):
        parser.add(word)
    return parser.query


def _columns_by_key(columns: Mapping[str, Column] | None) -> dict[str, Column]:
    return {name.lower(): column for name, column in (columns or {}).items()}


@dataclass(slots=True)
class _Parser:
    """One query's words read into it, each a custom column compared, an amount, a filter
    or a free word (tried in that order)."""

    query: Query
    kind: str
    allowed: tuple[str, ...]
    by_key: dict[str, Column]

    def add(self, word: str) -> None:
        if self._comparison(word) or self._amount(word) or self._filter(word):
            return
        self.query.terms.append(fold(word))

    def _comparison(self, word: str) -> bool:
        """`price_range>500000`, `lender=quicken`: a custom column compared."""
        compared = _COMPARE.match(word)
        if not compared or _AMOUNT.match(word):
            return False
        column = _column(compared.group(1), self.by_key, self.allowed)
        if column is None:
            return False
        op, value = compared.group(2), _unquoted(compared.group(3))
        if value:
            parsed = _custom_value(column, op, value, word)
            if op == "=" and column.type not in ORDERED_TYPES:
                op = ":"  # `lender=quicken` reads as `lender:quicken`
            self.query.custom.append((column, op, parsed))
        return True

    def _amount(self, word: str) -> bool:
        amount = _AMOUNT.match(word)
        if not amount:
            return False
        if self.kind != "deals":
            raise QueryError(deals_only("amount"))
        try:
            value = parse_amount(amount.group(2))
        except ValueError as exc:
            raise QueryError(f"amount filter needs an amount: {word} ({exc})") from None
        self.query.amounts.append((amount.group(1), value))
        return True

    def _filter(self, word: str) -> bool:
        """`key:value`: a custom column holding the text, or a built-in filter."""
        match = _FILTER.match(word)
        if not match:
            return False
        key, value = match.group(1).lower(), _unquoted(match.group(2))
        if not value:
            return True  # `status:""` while typing: no filter yet
        column = _column(key, self.by_key, self.allowed)
        if column is not None:
            self.query.custom.append((column, ":", _custom_value(column, ":", value, word)))
        else:
            self._check_key(key)
            self._set_filter(key, value)
        return True

    def _check_key(self, key: str) -> None:
        """A built-in filter key this kind of record takes, or the error that says which do."""
        if key in DEAL_FILTERS and self.kind != "deals":
            raise QueryError(deals_only(key))
        if key in CONTACT_FILTERS and self.kind == "deals":
            raise QueryError(contacts_only(key))
        if key not in self.allowed:
            raise QueryError(
                f"unknown filter {key!r}; valid filters: "
                + ", ".join(f"{k}:" for k in self.allowed if k != "amount")
                + (", amount>N, amount<=N" if "amount" in self.allowed else "")
                + _columns_named(self.by_key)
            )

    def _set_filter(self, key: str, value: str) -> None:
        if key == "closing":
            self.query.closing = _closing(value)
        elif key == "created":
            self.query.created = _created(value)
        elif key == "source":
            self.query.filters.setdefault(key, []).append(_source(value))
        else:
            self.query.filters.setdefault(key, []).append(fold(value))


def words_for(text: str, kind: str) -> str:
    """The words of a query that apply to `kind`: the Pipeline filters its deal charts and
    its contact chart with one box, so `source:hubspot tag:buyer amount>1m` filters deals by
    source and amount, contacts by source and tag. Unknown filters stay (parsing names
    them); free words apply to both."""
    kept = []
    for word in _WORD.findall(single_line(text).strip()[:MAX_QUERY]):
        match = _FILTER.match(word)
        key = "amount" if _AMOUNT.match(word) else match.group(1).lower() if match else ""
        other = CONTACT_FILTERS if kind == "deals" else DEAL_FILTERS
        if key not in other:
            kept.append(word)
    return " ".join(kept)


def deals_only(key: str) -> str:
    """Said when a deals filter is typed on contacts: what it is for and where to go."""
    shown = "amount>N" if key == "amount" else f"{key}:"
    return f"{shown} applies to deals: press tab for Deals (--type deal on the command line)"


def contacts_only(key: str) -> str:
    where = "press tab for Contacts (--type contact on the command line)"
    return f"{key}: applies to contacts: {where}"


def _column(
    key: str,
    by_key: Mapping[str, Column],
    allowed: tuple[str, ...],
) -> Column | None:
    """The custom column a filter key names: `custom.NAME`, or NAME where no built-in
    filter has that name. An unknown `custom.NAME` is an error; None otherwise."""
    lowered = key.lower()
    if lowered.startswith(CUSTOM_PREFIX):
        name = lowered.removeprefix(CUSTOM_PREFIX)
        if name not in by_key:
            known = ", ".join(sorted(c.name for c in by_key.values())) or "none declared"
            raise QueryError(f"unknown custom column {name!r}; custom columns: {known}")
        return by_key[name]
    if lowered in allowed or lowered in DEAL_FILTERS or lowered in CONTACT_FILTERS:
        return None
    return by_key.get(lowered)


def _columns_named(by_key: Mapping[str, Column]) -> str:
    if not by_key:
        return ""
    return "; custom columns: " + ", ".join(f"{c.name}:" for c in by_key.values())


def _custom_value(column: Column, op: str, value: str, word: str) -> Any:
    """A custom filter's value, checked against the column's type."""
    if column.type in ("number", "money"):
        try:
            return parse_amount(value)
        except ValueError as exc:
            raise QueryError(f"{column.name} is a number: {word} ({exc})") from None
    if column.type == "date":
        try:
            return _closing(value)
        except QueryError:
            raise QueryError(
                f"{column.name} is a date: {word}; give {CLOSING_FORMATS.split(', e.g.')[0]}"
            ) from None
    if op not in (":", "="):
        raise QueryError(
            f"{column.name} is a {column.type} column: compare it with {column.name}:text"
        )
    return fold(value)


def _unquoted(value: str) -> str:
    return value[1:].removesuffix('"') if value.startswith('"') else value


def _closing(value: str) -> str:
    """A year, month or day that exists: closing:2026-13 or 2026-02-30 is a usage error."""
    match = _CLOSING.match(value)
    if match is not None:
        year, month, day = (int(part) if part else 1 for part in match.groups())
        try:
            date(year, month, day)
            return value
        except ValueError:
            pass
    raise QueryError(f"closing:{value} is not a date; the closing filter takes {CLOSING_FORMATS}")


def _created(value: str) -> tuple[str, str]:
    """`created:2026-06` or `created:2026-06-08..2026-06-14`: the first and last day, each as
    precise as typed (a record's day matches a bound on as many characters)."""
    first, dots, last = value.partition("..")
    bounds = (first, last if dots else first)
    for bound in bounds:
        match = _CLOSING.match(bound)
        try:
            if match is None:
                raise ValueError
            date(*(int(part) if part else 1 for part in match.groups()))
        except ValueError:
            raise QueryError(
                f"created:{value} is not a date; the created filter takes {CREATED_FORMATS}"
            ) from None
    if bounds[1] < bounds[0][: len(bounds[1])]:
        raise QueryError(f"created:{value} ends before it starts")
    return bounds


def created_within(day: str, bounds: tuple[str, str]) -> bool:
    """Whether a YYYY-MM-DD day lies within `created:` bounds (each a year, month or day)."""
    first, last = bounds
    return bool(day) and day[: len(first)] >= first and day[: len(last)] <= last


def _source(value: str) -> str:
    name = fold(value)
    if name not in SOURCE_NAMES:
        raise QueryError(f"unknown source {value!r}; valid sources: {', '.join(SOURCE_NAMES)}")
    return name


def query_help() -> list[tuple[str, str]]:
    """The query syntax, a row per form, for the `?` page."""
    return [
        ("ana lee", "every word must match: name, e-mail, phone, company, status, city or tag"),
        (f"source:{SOURCE_NAMES[0]}", "one source: " + ", ".join(SOURCE_NAMES)),
        ("status:lead", "the shared status (below), or the CRM's own status holding the text"),
        ("stage:closed", "the same, with the CRM's own stage"),
        ("status:active-client", "a value with spaces: join its words with -"),
        ('status:"active client"', "or quote it"),
        ("city:austin tag:buyer", "contacts only"),
        ("amount>500000", "deals only (tab switches): also <, <=, >=, ="),
        ("closing:2026-12", f"deals only: {CLOSING_FORMATS.split(', e.g.')[0]}"),
        ("created:2026-06-01..2026-06-14", "created in its CRM then: a day, month, year or range"),
        ("status:lead city:austin", "two filters: both must hold"),
        ("lender:quicken", "a custom column (mappings.toml) holding the text"),
        ("custom.price_range>500000", "a number, money or date column: also <, <=, >=, ="),
    ]
