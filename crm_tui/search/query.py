"""Parsing a search box query: free words plus `key:value` and `amount>N` filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from crm_tui.config import SOURCE_NAMES
from crm_tui.formats import parse_amount
from crm_tui.search.text import fold
from crm_tui.text import single_line

MIN_QUERY = 2
MAX_QUERY = 10_000
QUERY_TOO_SHORT = "Query must be at least 2 characters"
TEXT_FILTERS = ("source", "status", "stage", "city", "tag")
DEAL_FILTERS = ("amount", "closing")
_FILTER = re.compile(r"^([a-zA-Z]+):(.+)$")
_AMOUNT = re.compile(r"^amount(<=|>=|<|>|=)(.+)$", re.IGNORECASE)
_CLOSING = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
CLOSING_FORMATS = "YYYY, YYYY-MM or YYYY-MM-DD, e.g. closing:2026-12"


class QueryError(ValueError):
    """A query that cannot run; the message is for the person who typed it."""


@dataclass(slots=True)
class Query:
    text: str
    terms: list[str] = field(default_factory=list)  # folded words, all must match
    filters: dict[str, list[str]] = field(default_factory=dict)  # folded values
    amounts: list[tuple[str, Decimal]] = field(default_factory=list)
    closing: str | None = None

    @property
    def sources(self) -> list[str]:
        return self.filters.get("source", [])


def valid_filters(kind: str) -> tuple[str, ...]:
    return TEXT_FILTERS + (DEAL_FILTERS if kind == "deals" else ())


def parse_query(text: str, kind: str = "contacts") -> Query:
    cleaned = single_line(text).strip()[:MAX_QUERY]
    if len(cleaned) < MIN_QUERY:
        raise QueryError(QUERY_TOO_SHORT)
    query = Query(cleaned)
    allowed = valid_filters(kind)
    for word in cleaned.split():
        amount = _AMOUNT.match(word)
        if amount:
            if kind != "deals":
                raise QueryError("amount filters apply to deals only")
            try:
                value = parse_amount(amount.group(2))
            except ValueError as exc:
                raise QueryError(f"amount filter needs an amount: {word} ({exc})") from None
            query.amounts.append((amount.group(1), value))
            continue
        match = _FILTER.match(word)
        if match:
            key, value = match.group(1).lower(), match.group(2)
            if key not in allowed:
                raise QueryError(
                    f"unknown filter {key!r}; valid filters: "
                    + ", ".join(f"{k}:" for k in allowed if k != "amount")
                    + (", amount>N, amount<=N" if "amount" in allowed else "")
                )
            if key == "closing":
                query.closing = _closing(value)
            elif key == "source":
                query.filters.setdefault(key, []).append(_source(value))
            else:
                query.filters.setdefault(key, []).append(fold(value))
            continue
        query.terms.append(fold(word))
    return query


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


def _source(value: str) -> str:
    name = fold(value)
    if name not in SOURCE_NAMES:
        raise QueryError(f"unknown source {value!r}; valid sources: {', '.join(SOURCE_NAMES)}")
    return name
