"""Reading CRM CSV exports whose columns vary: aliases, encodings, separators, ragged rows.

Headers are matched case- and spacing-insensitively against an alias table; columns that
match nothing are kept (they stay in each row's payload).

Files are read as a stream, one row at a time, never whole:
- only a regular file is read (a FIFO, a device such as /dev/zero, a directory or a socket
  is refused before reading), at most `MAX_FILE_BYTES` (512 MiB); a file that grows, shrinks
  or is replaced while it is read is refused;
- a UTF-32 or UTF-16 byte order mark decides the encoding (UTF-32's are checked first: FF FE
  00 00 starts with UTF-16's FF FE); undecodable sequences become U+FFFD and the lines are
  reported. Otherwise each line is decoded as UTF-8, else as Windows-1252 (cp1252), else as
  Latin-1, which never fails; the file's encoding is UTF-8 when any line needed it, and
  lines read another way in such a file are reported (`encoding_warnings`), so a mixed file
  never turns `José` into `JosÃ©` silently;
- a line longer than `MAX_RECORD_CHARS` (8 Mi characters), a row over several lines larger
  than that, or a field larger than `MAX_FIELD_CHARS` (1 Mi characters) is a broken row;
- a quoted field that runs to the end of the file, or that swallows lines that look like
  rows (as many delimiters as the header) and is closed by a quote in the middle of a
  field, is an unbalanced quote: its row is reported with its line and not imported, and
  the lines it swallowed are read again as rows.
Broken rows come out as `RejectedRow`s: mapping one raises InvalidRecord with its reason, so
a sync quarantines it and an import plan lists it as an error.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import hashlib
import os
import re
import stat
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_tui.filekinds import kind_of
from crm_tui.models import RecordKind
from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.mapping import RejectedRow
from crm_tui.sources.pagination import Page

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_DELIMITERS = (",", ";", "\t", "|")
EXTRA_COLUMN = "_extra"

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_RECORD_CHARS = 8 * 1024 * 1024
MAX_FIELD_CHARS = 1024 * 1024
MAX_LISTED = 1000  # line numbers kept per kind of problem; the counts go on
_CHUNK = 1024 * 1024
_PREVIEW_CHARS = 64 * 1024

# The csv module's limit is one per process; 128 KiB by default, below a long note.
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))

# UTF-32 first: its little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_FALLBACKS = ("cp1252", "latin-1")


def normalise_header(name: str) -> str:
    return _NON_ALNUM.sub(" ", name.lower()).strip()


_DEAL_FILE_WORDS = ("closing", "closed", "transaction", "sold", "deal")


def classify_export(path: Path) -> RecordKind:
    """contacts or deals, from the file name (CRMs name their exports plainly: a closings or
    transactions export says so)."""
    name = normalise_header(path.stem)
    return "deals" if any(word in name for word in _DEAL_FILE_WORDS) else "contacts"


@dataclass(frozen=True, slots=True)
class CsvSpec:
    """One export's shape: canonical column -> aliases; required columns (any of a group)."""

    label: str
    aliases: Mapping[str, tuple[str, ...]]
    required: tuple[tuple[str, ...], ...] = ()
    identity: tuple[str, ...] = ()  # canonical columns hashed into an id when none is given


@dataclass(slots=True)
class Capped:
    """The first `limit` items of a list that may grow without bound, and how many there were."""

    limit: int = MAX_LISTED
    items: list[Any] = field(default_factory=list)
    total: int = 0

    def add(self, item: Any) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            self.items.append(item)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What says a file is still the one that was planned."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(slots=True)
class CsvRow:
    number: int  # among the file's data rows, from 1
    line: int  # the file line it starts on (the header is line 1 when it comes first)
    values: dict[str, Any]  # header -> value; a RejectedRow when the row is broken


@dataclass(slots=True)
class CsvTable:
    """A whole (small) file in memory: for tests and callers that want every row at once."""

    path: Path
    headers: list[str]
    columns: dict[str, str]  # canonical -> header as written in the file
    unmapped: list[str]
    rows: list[dict[str, Any]]
    encoding: str
    delimiter: str
    ragged: list[int] = field(default_factory=list)  # line numbers of rows of the wrong width
    encoding_warnings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)


def sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIMITERS}
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


# -- bytes in ----------------------------------------------------------------------------


def _refuse(path: Path, details: str) -> ImportFileError:
    return ImportFileError(f"Cannot import {path.name}", details)


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """An open descriptor on `path` and its status, refusing anything but a regular file no
    larger than MAX_FILE_BYTES. Looked at before opening (a FIFO or a socket is never
    opened), and again after: O_NONBLOCK means even a FIFO swapped in between cannot block."""
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise _refuse(path, f"{path} is {kind_of(before.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise _refuse(path, f"{exc.strerror or exc}: {path}") from None
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
        before.st_dev,
        before.st_ino,
    ):
        os.close(fd)
        raise _refuse(path, f"{path} was replaced while it was opened")
    if after.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise _refuse(path, f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
    return fd, after


def _file_chunks(fd: int, opened: os.stat_result, path: Path) -> Iterator[bytes]:
    """The file's bytes, up to the size it had when opened: a file still being written would
    otherwise be read half-way, or forever."""
    total = 0
    try:
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > opened.st_size:
                raise _refuse(
                    path,
                    f"the file grew while it was read ({opened.st_size:,} bytes when opened);"
                    " import it once it is complete",
                )
            yield chunk
        if total != opened.st_size:
            raise _refuse(path, "the file shrank while it was read; import it once it is complete")
    finally:
        os.close(fd)


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    """Lines with their endings (\\n, \\r\\n or \\r, as the csv module expects); None for a
    line longer than MAX_RECORD_CHARS bytes, which is skipped rather than held in memory."""
    buffer = bytearray()
    skipping = False
    for chunk in chunks:
        searched = max(len(buffer) - 1, 0)  # a \r at the very end may be half of \r\n
        buffer += chunk
        cut = max(buffer.rfind(b"\n", searched), buffer.rfind(b"\r", searched, len(buffer) - 1))
        if cut < 0:
            if len(buffer) > MAX_RECORD_CHARS:
                if not skipping:
                    yield None
                skipping = True
                buffer.clear()
            continue
        complete = bytes(buffer[: cut + 1])
        del buffer[: cut + 1]
        lines = complete.splitlines(keepends=True)
        if skipping:  # the rest of the over-long line
            lines = lines[1:]
            skipping = False
        yield from lines
    if buffer and not skipping:
        yield bytes(buffer)


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first `size` bytes (fewer at the end) and every chunk, those bytes included."""
    head = b""
    taken: list[bytes] = []
    while len(head) < size:
        chunk = next(chunks, None)
        if chunk is None:
            break
        taken.append(chunk)
        head += chunk
    return head[:size], _chain(taken, chunks)


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _transcode(chunks: Iterable[bytes], encoding: str, skip: int) -> Iterator[bytes]:
    """UTF-16 or UTF-32 as UTF-8, the byte order mark left out; undecodable sequences as
    U+FFFD (the lines holding one are reported)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for chunk in chunks:
        if skip:
            chunk, skip = chunk[skip:], max(skip - len(chunk), 0)
        yield decoder.decode(chunk).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


@dataclass(slots=True)
class Decoding:
    """How a file's lines were decoded, found out while they were read."""

    bom: str | None = None
    utf8_beyond_ascii: bool = False  # some line held non-ASCII text that was valid UTF-8
    fallback: dict[str, Capped] = field(default_factory=dict)  # encoding -> its lines
    replaced: Capped = field(default_factory=Capped)  # UTF-16/32 lines holding U+FFFD

    def line(self, raw: bytes, number: int) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            for encoding in _FALLBACKS:
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError:
                    continue
                self.fallback.setdefault(encoding, Capped()).add(number)
                return text
            raise AssertionError("latin-1 decodes every byte") from None  # pragma: no cover
        if self.bom is not None:
            if "\ufffd" in text and self.bom != "utf-8-sig":
                self.replaced.add(number)
        elif not self.utf8_beyond_ascii and not raw.isascii():
            self.utf8_beyond_ascii = True
        return text

    @property
    def encoding(self) -> str:
        if self.bom is not None:
            return self.bom
        if self.utf8_beyond_ascii or not self.fallback:
            return "utf-8"
        return next(e for e in _FALLBACKS if e in self.fallback)

    def warnings(self) -> list[dict[str, Any]]:
        """Lines read in another encoding than the file's, and lines with replaced bytes."""
        found = [
            {"lines": lines.items, "count": lines.total, "assumed": encoding}
            for encoding, lines in self.fallback.items()
            if encoding != self.encoding
        ]
        if self.replaced.total:
            found.append(
                {
                    "lines": self.replaced.items,
                    "count": self.replaced.total,
                    "assumed": f"{self.encoding}, undecodable bytes replaced by U+FFFD",
                }
            )
        return found


# -- rows out ----------------------------------------------------------------------------


class _TooLarge(Exception):
    """A line or a row over several lines beyond MAX_RECORD_CHARS."""


class _Lines:
    """The csv reader's input: decoded lines, remembering which ones the current row took,
    with room to put lines back (those an unbalanced quote swallowed)."""

    def __init__(self, lines: Iterator[tuple[int, str | None]]) -> None:
        self._lines = lines
        self._back: deque[tuple[int, str]] = deque()
        self._ahead: tuple[int, str | None] | None = next(lines, None)
        self.taken: list[tuple[int, str]] = []
        self._size = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        return self.take()[1]

    def take(self) -> tuple[int, str]:
        """The next line and its number; raises StopIteration at the end."""
        if self._back:
            number, text = self._back.popleft()
        else:
            if self._ahead is None:
                raise StopIteration
            number, maybe = self._ahead
            self._ahead = next(self._lines, None)
            if maybe is None:
                self.taken.append((number, ""))
                raise _TooLarge(
                    f"line {number}: longer than {MAX_RECORD_CHARS // 2**20} MiB; skipped"
                )
            text = maybe
        self.taken.append((number, text))
        self._size += len(text)
        if self._size > MAX_RECORD_CHARS:
            raise _TooLarge(
                f"line {self.taken[0][0]}: the row from line {self.taken[0][0]} to {number} is"
                f" larger than {MAX_RECORD_CHARS // 2**20} MiB"
            )
        return number, text

    def at_end(self) -> bool:
        return not self._back and self._ahead is None

    def row_lines(self) -> list[tuple[int, str]]:
        """The lines the row just read came from; the next row starts afresh."""
        taken, self.taken, self._size = self.taken, [], 0
        return taken

    def put_back(self, lines: list[tuple[int, str]]) -> None:
        self._back.extendleft(reversed(lines))


class CsvStream:
    """One pass over an export: the header first (on construction), then its rows as they
    are read. What is wrong with the file (ragged rows, broken rows, decoding) is counted as
    the rows go by; read it after the last row."""

    def __init__(self, source: Path | bytes, spec: CsvSpec, path: Path | None = None) -> None:
        self.spec = spec
        self.path = path or (source if isinstance(source, Path) else Path("<data>"))
        self.decoding = Decoding()
        self.ragged = Capped()
        self.errors = Capped()  # (line, what is wrong)
        self.rows_read = 0
        if isinstance(source, Path):
            fd, opened = open_regular(source)
            self.identity: FileIdentity | None = FileIdentity.of(opened)
            chunks: Iterator[bytes] = _file_chunks(fd, opened, source)
        else:
            self.identity = None
            chunks = iter((source,))
        self._chunks = chunks
        self._lines = _Lines(self._decoded(chunks))
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def _decoded(self, chunks: Iterator[bytes]) -> Iterator[tuple[int, str | None]]:
        head, chunks = _peek(chunks, 4)
        bom = next(((mark, name) for mark, name in _BOMS if head.startswith(mark)), None)
        if bom is not None:
            mark, self.decoding.bom = bom
            if self.decoding.bom == "utf-8-sig":
                chunks = _skip(chunks, len(mark))
            else:
                chunks = _transcode(chunks, self.decoding.bom, len(mark))
        for number, raw in enumerate(_split_lines(chunks), start=1):
            if raw is None:
                yield number, None
                continue
            text = self.decoding.line(raw, number)
            yield number, text.replace("\x00", "") if "\x00" in text else text

    def _refused(self, details: str) -> ImportFileError:
        return ImportFileError(f"Cannot import {self.path.name}", details)

    def _read_header(self) -> None:
        while True:
            try:
                number, text = self._lines.take()
            except StopIteration:
                raise self._refused(f"empty {self.spec.label} file") from None
            except _TooLarge as exc:
                raise self._refused(f"header: {exc}") from None
            if text.strip():
                break
        self.delimiter = sniff_delimiter(text)
        self._lines.row_lines()
        self._lines.put_back([(number, text)])
        self._reader = csv.reader(self._lines, delimiter=self.delimiter)
        try:
            cells = next(self._reader)
        except (csv.Error, _TooLarge) as exc:
            raise self._refused(f"header: {exc}") from None
        self._lines.row_lines()
        self.headers = _unique_headers(cells)
        self.columns, self.unmapped = match_columns(self.headers, self.spec)
        missing = [g for g in self.spec.required if not any(c in self.columns for c in g)]
        if missing:
            names = ", ".join(" or ".join(_label(c, self.spec) for c in g) for g in missing)
            raise self._refused(f"not a {self.spec.label}: missing required column(s): {names}")
        self._header_delimiters = len(self.headers) - 1

    def __iter__(self) -> Iterator[CsvRow]:
        try:
            yield from self._rows()
        finally:
            self.close()

    def _rows(self) -> Iterator[CsvRow]:
        lines, headers, width = self._lines, self.headers, len(self.headers)
        while True:
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except (csv.Error, _TooLarge) as exc:
                taken = lines.row_lines()
                reason = str(exc) if isinstance(exc, _TooLarge) else _csv_error(taken[0][0], exc)
                yield self._broken(taken, reason)
                if any(self._looks_like_row(text) for _, text in taken[1:]):
                    lines.put_back(taken[1:])
                continue
            taken = lines.row_lines()
            if not any(v.strip() for v in values):
                continue
            if len(taken) > 1 and (reason := self._unbalanced_quote(taken)):
                yield self._broken(taken, reason)
                lines.put_back(taken[1:])
                continue
            self.rows_read += 1
            if len(values) != width:
                self.ragged.add(taken[0][0])
            row: dict[str, Any] = dict(zip(headers, values, strict=False))
            for header in headers[len(values) :]:
                row[header] = ""
            if len(values) > width:
                row[EXTRA_COLUMN] = values[width:]
            yield CsvRow(self.rows_read, taken[0][0], row)

    def _looks_like_row(self, text: str) -> bool:
        return 0 < self._header_delimiters <= text.count(self.delimiter)

    def _unbalanced_quote(self, taken: list[tuple[int, str]]) -> str | None:
        """Why a row over several lines is really an unclosed quote and the rows after it,
        or None for a quoted note with line breaks. Checked only when it reaches the end of
        the file or holds a line shaped like a row, so notes cost nothing."""
        first, last = taken[0][0], taken[-1][0]
        row_like = any(self._looks_like_row(text) for _, text in taken[1:])
        if not row_like and not self._lines.at_end():
            return None
        strict = csv.reader((text for _, text in taken), delimiter=self.delimiter, strict=True)
        try:
            for _ in strict:
                pass
        except csv.Error as exc:
            if csv_error_is(exc, UNCLOSED_QUOTE):
                return (
                    f"line {first}: unbalanced quote: the quoted field opened on line {first}"
                    " runs to the end of the file; the lines after it were read as rows"
                )
            if row_like:
                return (
                    f"line {first}: unbalanced quote: a quoted field opened on line {first}"
                    f" swallows lines {first + 1}-{last}, which look like rows;"
                    " they were read as rows"
                )
        return None

    def _broken(self, taken: list[tuple[int, str]], reason: str) -> CsvRow:
        self.rows_read += 1
        line = taken[0][0] if taken else 0
        self.errors.add((line, reason))
        text = taken[0][1] if taken else ""
        return CsvRow(
            self.rows_read,
            line,
            RejectedRow(reason, {"line": line, "text": text[:_PREVIEW_CHARS]}),
        )

    def table(self) -> CsvTable:
        """Every row, read now; for small files."""
        rows = [row.values for row in self]
        return CsvTable(
            self.path,
            self.headers,
            self.columns,
            self.unmapped,
            rows,
            self.decoding.encoding,
            self.delimiter,
            self.ragged.items,
            self.decoding.warnings(),
            self.errors.items,
        )


#: The csv module's own words for the faults read differently (see csv_error_is).
UNCLOSED_QUOTE = "unexpected end of data"
FIELD_TOO_LARGE = "field larger than field limit"


def csv_error_is(exc: csv.Error, fault: str) -> bool:
    """The csv module raises one class, csv.Error, for every fault it finds, and tells them
    apart only in its message: this is the one place that reads it."""
    return fault in str(exc)


def _csv_error(line: int, exc: csv.Error) -> str:
    if csv_error_is(exc, FIELD_TOO_LARGE):
        return f"line {line}: a field larger than {MAX_FIELD_CHARS // 2**20} MiB"
    return f"line {line}: {exc}"


def _skip(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count:
            chunk, count = chunk[count:], max(count - len(chunk), 0)
        if chunk:
            yield chunk


def _unique_headers(cells: list[str]) -> list[str]:
    """Blank or repeated headers would overwrite each other in the row dict."""
    headers = [h.strip() for h in cells]
    seen: dict[str, int] = {}
    for i, header in enumerate(headers):
        name = header or f"column {i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        headers[i] = name
    return headers


def read_csv(path: Path, spec: CsvSpec) -> CsvTable:
    """A whole export in memory (tests, small files); imports and syncs stream it."""
    return CsvStream(path, spec).table()


def parse_csv(data: bytes, spec: CsvSpec, path: Path = Path("<data>")) -> CsvTable:
    return CsvStream(data, spec, path).table()


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


def _take(rows: Iterator[CsvRow], count: int) -> list[dict[str, Any]]:
    page = []
    for row in rows:
        page.append(row.values)
        if len(page) >= count:
            break
    return page


async def csv_pages(
    paths: Sequence[Path], spec: CsvSpec, page_size: int = 1000, probe: bool = False
) -> AsyncIterator[Page]:
    """Pages of rows from one or more exports, read and parsed off the event loop a page at
    a time: a sync never holds a file's rows all at once."""
    for path in paths:
        stream = await asyncio.to_thread(CsvStream, path, spec)
        rows = iter(stream)
        try:
            while page := await asyncio.to_thread(_take, rows, 1 if probe else page_size):
                yield Page(page)
                if probe:
                    return
        finally:
            rows.close()  # type: ignore[attr-defined]
            stream.close()
