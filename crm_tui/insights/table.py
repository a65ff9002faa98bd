"""The numbers behind a chart as one table: the same rows on screen (`t`), in a CSV (the
clipboard, `ctrl+s`, `report pipeline --csv`) and in the report's human output."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from crm_tui.export import csv_cell


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    #: Per row, the Browse filter that opens its records ("" where none does).
    filters: tuple[str, ...] = ()

    def to_csv(self) -> str:
        """RFC 4180 text; vendor text that a spreadsheet would run as a formula is quoted
        behind a `'`, as every other export of crm-tui does."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.headers)
        writer.writerows([csv_cell(value) for value in row] for row in self.rows)
        return out.getvalue()

    def filter_at(self, row: int) -> str:
        return self.filters[row] if 0 <= row < len(self.filters) else ""


def cents(value: float) -> float:
    """A sum of amounts as money: float sums drift by fractions of a cent."""
    return float(round(value, 2))


def money(value: float | None) -> str:
    """Short money for labels and captions: $980, $45.5k, $1.2M, $3.4B."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            shown = f"{value / size:.1f}".removesuffix(".0")
            return f"{sign}${shown}{unit}"
    return f"{sign}${value:,.0f}"


def joined_filter(*parts: str) -> str:
    """Filter words joined, the empty ones left out."""
    return " ".join(part for part in parts if part)


def quoted(value: str) -> str:
    """A vendor value as one filter word: quoted when it holds a space; a quote inside it
    cannot be typed in the query language, so it is dropped (the rest still matches)."""
    value = " ".join(value.replace('"', " ").split())
    return f'"{value}"' if " " in value else value
