"""Writing records to CSV, JSON, XLSX (typed cells) and vCard 4.0 files, owner-only (0600).

A file is written under a temporary name in its folder (0600) and renamed over PATH when
complete: it never writes through a symlink or a hard link onto another file, never changes
the mode of a file it did not create, and leaves nothing behind when it fails. A symlink, a
directory, a device, a FIFO or a socket at PATH is refused. `-` is standard output.

Spreadsheets run a cell that starts with `=`, `+`, `-`, `@`, tab or carriage return as a
formula (OWASP "CSV injection"). CSV cells holding such text get a leading `'`; XLSX cells
holding text are always string cells, never formulas. Numbers stay numbers.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from crm_tui.custom_columns import Column
from crm_tui.filekinds import kind_of
from crm_tui.models import CONTACT_FIELDS, CUSTOM_FIELD, DEAL_FIELDS, Contact, Record, RecordKind
from crm_tui.text import strip_controls

FORMATS = ("csv", "json", "xlsx", "vcf")
STDOUT = "-"
Progress = Callable[[int], None]

# OWASP's list, with the full-width forms some spreadsheet locales also accept.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_LEADING_SPACE = " \n"


class OutputPathError(ValueError):
    """PATH cannot be written safely: what it is, and why that is refused."""


def columns(kind: RecordKind) -> list[str]:
    # custom values are a dict per record: one cell per declared column (see headers)
    fields = CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS
    return [c for c in fields if c not in ("raw", CUSTOM_FIELD)]


def headers(kind: RecordKind, custom: Sequence[Column] = ()) -> list[str]:
    """The header row: the unified fields, then one per custom column, headed by its label
    (what people named it), or `custom.NAME` where the label would repeat a header."""
    out = columns(kind)
    taken = set(out)
    for column in custom:
        label = column.label if column.label not in taken else f"custom.{column.name}"
        taken.add(label)
        out.append(label)
    return out


def cell(record: Record, name: str) -> Any:
    value = getattr(record, name)
    if name == "tags":
        return "; ".join(value)
    return value


def custom_cell(record: Record, column: Column) -> Any:
    """A custom column's value in one cell: a list as `; `-joined text (as tags are)."""
    value = record.custom.get(column.name)
    if isinstance(value, tuple):
        return "; ".join(value)
    return value


def formula_like(value: str) -> bool:
    """Whether a spreadsheet could take this text for a formula (leading spaces ignored:
    some applications trim them)."""
    first = value[:1]
    if first in _LEADING_SPACE and first:
        first = value.lstrip(_LEADING_SPACE)[:1]
    return first in _FORMULA_START


def csv_cell(value: Any) -> Any:
    """A CSV cell: None empty, formula-like text behind a `'`, anything else as it is."""
    if value is None:
        return ""
    if type(value) is str and value and formula_like(value):
        return "'" + value
    return value


def write_csv(
    handle: TextIO,
    kind: RecordKind,
    records: Iterable[Record],
    progress: Progress | None = None,
    custom: Sequence[Column] = (),
) -> int:
    names = columns(kind)
    writer = csv.writer(handle)
    writer.writerow([csv_cell(h) for h in headers(kind, custom)])  # labels are typed text
    count = 0
    for record in records:
        row = [csv_cell(cell(record, n)) for n in names]
        if custom:
            row += [csv_cell(custom_cell(record, c)) for c in custom]
        writer.writerow(row)
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
    return count


def write_json(
    handle: TextIO, kind: RecordKind, records: Iterable[Record], progress: Progress | None = None
) -> int:
    items = [r.to_json() for r in records]
    json.dump(
        {"success": True, kind: items, "count": len(items)},
        handle,
        ensure_ascii=False,
        indent=1,
        default=str,
    )
    if progress:
        progress(len(items))
    return len(items)


def _typed(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "amount":
        return float(value)
    if name == "close_date":
        return date.fromisoformat(value)
    if name in ("remote_created", "remote_updated", "synced_at"):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return value


def _typed_custom(column: Column, value: Any) -> Any:
    """Numbers as numbers and dates as dates, so that a spreadsheet sorts and sums them."""
    if value is None:
        return None
    if column.type in ("number", "money") and isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if column.type == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _text_cell(sheet: Any, value: Any) -> Any:
    """openpyxl makes a formula of text starting with `=` (and an error cell of `#N/A`):
    such text goes in as a string cell, whatever it says."""
    if type(value) is not str or value[:1] not in ("=", "#"):
        return value
    from openpyxl.cell import WriteOnlyCell

    text = WriteOnlyCell(sheet, value=value)
    text.data_type = "s"
    return text


def write_xlsx(
    handle: BinaryIO,
    kind: RecordKind,
    records: Iterable[Record],
    progress: Progress | None = None,
    custom: Sequence[Column] = (),
) -> int:
    from openpyxl import Workbook  # imported here: only exports need it

    names = columns(kind)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(kind)
    sheet.append([_text_cell(sheet, h) for h in headers(kind, custom)])
    count = 0
    for record in records:
        row = [_text_cell(sheet, _typed(n, cell(record, n))) for n in names]
        for column in custom:
            value = _typed_custom(column, custom_cell(record, column))
            row.append(_text_cell(sheet, value))
        sheet.append(row)
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
    book.save(handle)
    return count


def _escape(value: str) -> str:
    """A vCard text value: control, bidi and zero-width characters gone (a card is read by
    other programs, which may honour them), then RFC 6350 escapes."""
    return (
        strip_controls(value)
        .replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """RFC 6350 line folding: at most 75 octets a line, continuation lines start with a space."""
    out: list[str] = []
    current = ""
    for char in line:
        if len((current + char).encode()) > 75:
            out.append(current)
            current = " " + char
        else:
            current += char
    out.append(current)
    return "\r\n".join(out)


def vcard_name(column: Column) -> str:
    """RFC 6350 x-name for a column: `X-CRM-` then letters, digits and `-` (a column name's
    `_` is not allowed there)."""
    return "X-CRM-" + column.name.upper().replace("_", "-")


def _vcard_value(value: Any) -> str:
    if isinstance(value, tuple):  # a list: comma-separated, each item escaped
        return ",".join(_escape(item) for item in value)
    return _escape(str(value))


def vcard(contact: Contact, custom: Sequence[Column] = ()) -> str:
    lines = ["BEGIN:VCARD", "VERSION:4.0"]
    name = contact.name or contact.email or contact.remote_id
    lines.append(f"FN:{_escape(name)}")
    lines.append(f"N:{_escape(contact.last_name or '')};{_escape(contact.first_name or '')};;;")
    if contact.email:
        lines.append(f"EMAIL:{_escape(contact.email)}")
    if contact.phone:
        lines.append(f"TEL;VALUE=text:{_escape(contact.phone)}")
    if contact.company:
        lines.append(f"ORG:{_escape(contact.company)}")
    if any((contact.street, contact.city, contact.state, contact.postal_code)):
        parts = (contact.street, contact.city, contact.state, contact.postal_code)
        street, city, state, code = (_escape(p or "") for p in parts)
        lines.append(f"ADR:;;{street};{city};{state};{code};")
    if contact.tags:
        lines.append("CATEGORIES:" + ",".join(_escape(t) for t in contact.tags))
    for column in custom:
        value = contact.custom.get(column.name)
        if value is not None and value != "" and value != ():
            lines.append(f"{vcard_name(column)}:{_vcard_value(value)}")
    lines.append(f"UID:urn:crm-tui:{_escape(contact.id)}")
    lines.append("END:VCARD")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def write_vcf(
    handle: TextIO,
    records: Iterable[Record],
    progress: Progress | None = None,
    custom: Sequence[Column] = (),
) -> int:
    count = 0
    for record in records:
        if isinstance(record, Contact):
            handle.write(vcard(record, custom))
            count += 1
            if progress and count % 1000 == 0:
                progress(1000)
    return count


def check_output_path(path: Path) -> None:
    """Refuse a PATH that is not a regular file or a new name; says what it is."""
    if not path.parent.is_dir():
        raise OutputPathError(f"{path.parent} is not a folder that exists; create it first")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    what = kind_of(mode)
    if stat.S_ISLNK(mode):
        what = "a symbolic link (crm-tui never writes through one)"
    if what is not None:
        raise OutputPathError(f"{path} is {what}; write the export to a regular file")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A new owner-only file beside `path` that becomes `path` once the block completes (a
    rename: the old file, if any, is replaced, not written into); removed if it fails."""
    check_output_path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk: say which file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _write_text(
    handle: IO[bytes],
    fmt: str,
    kind: RecordKind,
    records: Iterable[Record],
    progress: Progress | None,
    custom: Sequence[Column] = (),
) -> int:
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
    try:
        if fmt == "csv":
            return write_csv(text, kind, records, progress, custom)
        if fmt == "json":  # to_json carries `custom` whole
            return write_json(text, kind, records, progress)
        return write_vcf(text, records, progress, custom)
    finally:
        text.flush()
        text.detach()  # the caller owns the binary handle


def export(
    path: Path | None,
    fmt: str,
    kind: RecordKind,
    records: Sequence[Record],
    progress: Progress | None = None,
    stdout: TextIO | None = None,
    custom: Sequence[Column] = (),
) -> int:
    """Write `records` as `fmt` to `path` (0600, replaced whole) or, when `path` is None or
    `-`, to `stdout`. Returns how many were written. `custom`: the declared custom columns,
    a column each in CSV and XLSX, an X-CRM- property each in vCard."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "vcf" and kind != "contacts":
        raise ValueError("vCard export is for contacts only")
    if path is not None and str(path) != STDOUT:
        with replacing(path) as handle:
            if fmt == "xlsx":
                return write_xlsx(handle, kind, records, progress, custom)
            return _write_text(handle, fmt, kind, records, progress, custom)
    if fmt == "xlsx" and path is None:
        raise ValueError("xlsx needs an output file: -o FILE, or -o - for standard output")
    # Standard output gets the export whole or not at all: built first, then written.
    buffer = io.BytesIO()
    if fmt == "xlsx":
        count = write_xlsx(buffer, kind, records, progress, custom)
    else:
        count = _write_text(buffer, fmt, kind, records, progress, custom)
    out = stdout or io.StringIO()
    if fmt == "xlsx":
        binary = getattr(out, "buffer", None)
        if binary is None:
            raise ValueError("standard output takes no binary data here; use -o FILE")
        out.flush()
        binary.write(buffer.getvalue())
        binary.flush()
    else:
        out.write(buffer.getvalue().decode("utf-8"))
    return count
