"""Custom columns as lists and the record detail show them: which columns a stream has,
a value as people read it, and how a column sorts. Plain Python: Browse and detail call it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crm_tui.custom_columns import CUSTOM_PREFIX, Column
from crm_tui.formats import format_amount, format_date
from crm_tui.models import RecordKind
from crm_tui.sources.mapping import Mappings


def stream_columns(mappings: Mappings, kind: RecordKind) -> list[Column]:
    """The custom columns some source maps for `kind`, in the file's order: a column only
    another stream maps would be an empty column here."""
    mapped = {
        target.removeprefix(CUSTOM_PREFIX)
        for streams in mappings.overrides.values()
        for target in streams.get(kind, {})
        if target.startswith(CUSTOM_PREFIX)
    }
    return [column for name, column in mappings.columns.items() if name in mapped]


def shown_value(value: Any, type_: str = "text") -> str:
    """A custom value for people: money with thousands (cents when there are some), dates
    spelled out, lists comma-joined. "" for no value (None: one that did not read as its
    type, which the detail says in words)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, Decimal):
        if type_ == "money":
            return format_amount(value, "")
        return format(value, "f") if value.is_finite() else ""
    if type_ == "date" and isinstance(value, str):
        return format_date(value)
    return str(value)


def sort_key(column: Column) -> Callable[[Any], Any]:
    """Rows by a custom column: empty ones last in ascending order, numbers as numbers."""
    name = column.name
    if column.type in ("number", "money"):

        def number(record: Any) -> tuple[int, Decimal]:
            value = record.custom.get(name)
            if isinstance(value, Decimal) and value.is_finite():
                return (0, value)
            return (1, Decimal(0))

        return number

    def text(record: Any) -> tuple[int, str]:
        value = record.custom.get(name)
        shown = ", ".join(value) if isinstance(value, tuple) else str(value or "")
        return (0 if shown else 1, shown.casefold())

    return text
