"""Writing records to CSV, JSON, XLSX (typed cells) and vCard 4.0 files, owner-only (0600)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS, Contact, Record, RecordKind
from crm_tui.text import strip_controls

FORMATS = ("csv", "json", "xlsx", "vcf")
Progress = Callable[[int], None]


def columns(kind: RecordKind) -> list[str]:
    return [c for c in (CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS) if c != "raw"]


def cell(record: Record, name: str) -> Any:
    value = getattr(record, name)
    if name == "tags":
        return "; ".join(value)
    return value


def open_private(path: Path, binary: bool = False) -> Any:
    """Open for writing with mode 0600 whatever the umask; truncates an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    if binary:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def write_csv(
    handle: TextIO, kind: RecordKind, records: Iterable[Record], progress: Progress | None = None
) -> int:
    names = columns(kind)
    writer = csv.writer(handle)
    writer.writerow(names)
    count = 0
    for record in records:
        writer.writerow(["" if (v := cell(record, n)) is None else v for n in names])
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


def write_xlsx(
    path: Path, kind: RecordKind, records: Iterable[Record], progress: Progress | None = None
) -> int:
    from openpyxl import Workbook  # imported here: only exports need it

    names = columns(kind)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(kind)
    sheet.append(names)
    count = 0
    for record in records:
        sheet.append([_typed(n, cell(record, n)) for n in names])
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
    with open_private(path, binary=True) as handle:
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


def vcard(contact: Contact) -> str:
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
    lines.append(f"UID:urn:crm-tui:{_escape(contact.id)}")
    lines.append("END:VCARD")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def write_vcf(handle: TextIO, records: Iterable[Record], progress: Progress | None = None) -> int:
    count = 0
    for record in records:
        if isinstance(record, Contact):
            handle.write(vcard(record))
            count += 1
            if progress and count % 1000 == 0:
                progress(1000)
    return count


def export(
    path: Path | None,
    fmt: str,
    kind: RecordKind,
    records: Sequence[Record],
    progress: Progress | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Write `records` as `fmt` to `path` (0600) or to `stdout`. Returns how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "vcf" and kind != "contacts":
        raise ValueError("vCard export is for contacts only")
    if fmt == "xlsx":
        if path is None:
            raise ValueError("xlsx needs an output file (-o FILE)")
        return write_xlsx(path, kind, records, progress)
    writers: dict[str, Callable[[TextIO], int]] = {
        "csv": lambda h: write_csv(h, kind, records, progress),
        "json": lambda h: write_json(h, kind, records, progress),
        "vcf": lambda h: write_vcf(h, records, progress),
    }
    if path is None:
        buffer = io.StringIO()
        count = writers[fmt](buffer)
        (stdout or io.StringIO()).write(buffer.getvalue())
        return count
    with open_private(path) as handle:
        return writers[fmt](handle)
