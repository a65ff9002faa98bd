"""Reading CRM CSV exports whose columns vary: aliases, encodings, separators, ragged rows.

Headers are matched case- and spacing-insensitively against an alias table; columns that
match nothing are kept (they stay in each row's payload). Bytes are decoded as UTF-8 (with or
without BOM), then Windows-1252, then Latin-1, which never fails.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.pagination import Page

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_DELIMITERS = (",", ";", "\t", "|")
_MAX_BYTES = 512 * 1024 * 1024
EXTRA_COLUMN = "_extra"


def normalise_header(name: str) -> str:
    return _NON_ALNUM.sub(" ", name.lower()).strip()


@dataclass(frozen=True, slots=True)
class CsvSpec:
    """One export's shape: canonical column -> aliases; required columns (any of a group)."""

    label: str
    aliases: Mapping[str, tuple[str, ...]]
    required: tuple[tuple[str, ...], ...] = ()
    identity: tuple[str, ...] = ()  # canonical columns hashed into an id when none is given


@dataclass(slots=True)
class CsvTable:
    path: Path
    headers: list[str]
    columns: dict[str, str]  # canonical -> header as written in the file
    unmapped: list[str]
    rows: list[dict[str, Any]]
    encoding: str
    delimiter: str
    ragged: list[int] = field(default_factory=list)  # line numbers of rows of the wrong width


def decode(data: bytes) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def match_columns(headers: Sequence[str], spec: CsvSpec) -> tuple[dict[str, str], list[str]]:
    lookup: dict[str, str] = {}
    for canonical, aliases in spec.aliases.items():
        for alias in (canonical, *aliases):
            lookup.setdefault(normalise_header(alias), canonical)
    columns: dict[str, str] = {}
    unmapped = []
    for header in headers:
        canonical = lookup.get(normalise_header(header))
        if canonical and canonical not in columns:
            columns[canonical] = header
        else:
            unmapped.append(header)
    return columns, unmapped


def read_csv(path: Path, spec: CsvSpec) -> CsvTable:
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise ImportFileError(f"Cannot import {path.name}", "file larger than 512 MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Cannot import {path.name}", exc.strerror or str(exc)) from None
    return parse_csv(data, spec, path)


def parse_csv(data: bytes, spec: CsvSpec, path: Path = Path("<data>")) -> CsvTable:
    text, encoding = decode(data)
    text = text.replace("\x00", "")
    if not text.strip():
        raise ImportFileError(f"Cannot import {path.name}", f"empty {spec.label} file")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = [h.strip() for h in next(reader)]
        # Blank or repeated headers would overwrite each other in the row dict.
        seen: dict[str, int] = {}
        for i, header in enumerate(headers):
            name = header or f"column {i + 1}"
            if name in seen:
                seen[name] += 1
                name = f"{name} ({seen[name]})"
            else:
                seen[name] = 1
            headers[i] = name
        columns, unmapped = match_columns(headers, spec)
        missing = [group for group in spec.required if not any(c in columns for c in group)]
        if missing:
            names = ", ".join(" or ".join(_label(c, spec) for c in group) for group in missing)
            raise ImportFileError(
                f"Cannot import {path.name}",
                f"not a {spec.label}: missing required column(s): {names}",
            )
        rows: list[dict[str, Any]] = []
        ragged: list[int] = []
        width = len(headers)
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if len(values) != width:
                ragged.append(line)
            row: dict[str, Any] = dict(zip(headers, values, strict=False))
            for header in headers[len(values) :]:
                row[header] = ""
            if len(values) > width:
                row[EXTRA_COLUMN] = values[width:]
            rows.append(row)
    except csv.Error as exc:
        raise ImportFileError(
            f"Cannot import {path.name}", f"line {reader.line_num}: {exc}"
        ) from None
    except StopIteration:
        raise ImportFileError(f"Cannot import {path.name}", f"empty {spec.label} file") from None
    return CsvTable(path, headers, columns, unmapped, rows, encoding, delimiter, ragged)


def _label(canonical: str, spec: CsvSpec) -> str:
    aliases = spec.aliases.get(canonical, ())
    return (aliases[0] if aliases else canonical).title()


_COLUMN_CACHE: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}


def columns_of(spec: CsvSpec, row: Mapping[str, Any]) -> dict[str, str]:
    """canonical -> header for a row's headers, cached: every row of a file shares them."""
    key = (spec.label, tuple(row))
    columns = _COLUMN_CACHE.get(key)
    if columns is None:
        columns = match_columns(key[1], spec)[0]
        if len(_COLUMN_CACHE) < 1024:
            _COLUMN_CACHE[key] = columns
    return columns


def column(spec: CsvSpec, canonical: str) -> Callable[[Mapping[str, Any]], Any]:
    """A field-map getter reading one canonical column, whatever the file calls it."""

    def get(row: Mapping[str, Any]) -> Any:
        header = columns_of(spec, row).get(canonical)
        return row.get(header) if header is not None else None

    return get


def identity(spec: CsvSpec) -> Callable[[Mapping[str, Any]], Any]:
    """The row's own id column, else a stable hash of its identity columns."""
    id_column = column(spec, "id")
    parts = [column(spec, c) for c in spec.identity]

    def get(row: Mapping[str, Any]) -> Any:
        given = id_column(row)
        if isinstance(given, str) and given.strip():
            return given.strip()
        values = [str(part(row) or "").strip().lower() for part in parts]
        if not any(values):
            return None
        digest = hashlib.sha1("\x1f".join(values).encode(), usedforsecurity=False).hexdigest()
        return f"csv-{digest[:16]}"

    return get


async def csv_pages(
    paths: Sequence[Path], spec: CsvSpec, page_size: int = 1000, probe: bool = False
) -> AsyncIterator[Page]:
    """Pages of rows from one or more exports, parsed off the event loop."""
    for path in paths:
        table = await asyncio.to_thread(read_csv, path, spec)
        rows = table.rows[:1] if probe else table.rows
        for start in range(0, max(len(rows), 1), page_size):
            yield Page(rows[start : start + page_size], total=len(table.rows))
        if probe:
            return
