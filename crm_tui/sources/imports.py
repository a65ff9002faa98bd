"""File imports: which CSV exports a source takes, and the plan shown before applying one.

A plan reads its file once, as a stream: it keeps counts, the set of ids (to count
duplicates) and at most `MAX_LISTED` invalid rows and errors, never the rows or the records.
Applying it reads the file again (`FilePlan.batches`), with the same decoding and mapping,
and refuses a file that changed in between.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_tui import jsoncodec
from crm_tui.models import Record, RecordKind, utc_now
from crm_tui.sources.csv_import import (
    MAX_LISTED,
    Capped,
    CsvSpec,
    CsvStream,
    FileIdentity,
    classify_export,
)
from crm_tui.sources.errors import ImportFileError, InvalidRecord
from crm_tui.sources.mapping import (
    Columns,
    FieldMap,
    Overrides,
    RecordBuilder,
    RejectedRow,
    source_maps,
)

#: What an invalid row keeps of its payload for the quarantine while the plan is held.
QUARANTINE_PREVIEW_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Importer:
    source: str
    kind: RecordKind
    spec: CsvSpec
    field_map: FieldMap


def importers() -> dict[str, dict[RecordKind, Importer]]:
    """`crm-tui import <command>` -> the exports it reads, by stream: every source's
    declared CSV exports, from the registry."""
    from crm_tui.sources.registry import CONNECTORS

    found: dict[str, dict[RecordKind, Importer]] = {}
    for cls in CONNECTORS.values():
        for export in cls.exports:
            found.setdefault(export.command, {})[export.stream] = Importer(
                cls.name, export.stream, export.spec, export.field_map
            )
    return found


@dataclass(slots=True)
class FilePlan:
    path: Path
    importer: Importer
    builder: RecordBuilder
    user_id: str
    synced_at: str
    identity: FileIdentity | None = None
    rows: int = 0
    valid: int = 0  # distinct records (the last row of an id wins)
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> header in the file
    metadata_only: list[str] = field(default_factory=list)  # kept in metadata, not mapped
    invalid: Capped = field(default_factory=Capped)  # (row number, line, reason)
    duplicates: int = 0
    ragged: Capped = field(default_factory=Capped)  # line numbers
    errors: Capped = field(default_factory=Capped)  # (line, what is wrong with the file there)
    encoding: str = "utf-8"
    encoding_warnings: list[dict[str, Any]] = field(default_factory=list)
    invalid_rows: list[tuple[str, Any]] = field(default_factory=list)  # for the quarantine

    @property
    def ragged_lines(self) -> list[int]:
        return self.ragged.items

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "source": self.importer.source,
            "type": self.importer.kind,
            "rows": self.rows,
            "valid": self.valid,
            "encoding": self.encoding,
            "encodingWarnings": self.encoding_warnings,
            "columnsMapped": self.columns,
            "columnsKeptInMetadata": self.metadata_only,
            "invalid": [
                {"row": row, "line": line, "reason": reason}
                for row, line, reason in self.invalid.items
            ],
            "invalidCount": self.invalid.total,
            "errors": [{"line": line, "error": error} for line, error in self.errors.items],
            "errorCount": self.errors.total,
            "duplicates": self.duplicates,
            "raggedLines": self.ragged.items,
            "raggedCount": self.ragged.total,
        }

    def batches(self, size: int = 1000) -> Iterator[list[Record]]:
        """The valid records, read from the file again, in file order, `size` at a time.
        An id met twice comes twice: upserting in order leaves the later row, as planned."""
        stream = CsvStream(self.path, self.importer.spec)
        if stream.identity != self.identity:
            stream.close()
            raise ImportFileError(
                f"Cannot import {self.path.name}", "the file changed after it was planned"
            )
        batch: list[Record] = []
        build, source = self.builder, self.importer.source
        for row in stream:
            try:
                record = build(source, self.user_id, row.values, self.synced_at)
            except InvalidRecord:
                continue
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def choose_importer(name: str, path: Path) -> Importer:
    """The export a file is: the command's only one, or the one its file name says (a
    TopProducer closings export is named so)."""
    known = importers()
    options = known.get(name)
    if options is None:
        raise ImportFileError(f"Unknown import {name!r}", f"choose one of {', '.join(known)}")
    if len(options) == 1:
        return next(iter(options.values()))
    return options[classify_export(path)]


def _quarantine_payload(row: Mapping[str, Any]) -> Any:
    """An invalid row as the quarantine will keep it: whole when small, else the start of its
    JSON, so that a plan holding a thousand 10 MB rows stays small."""
    if sum(len(v) for v in row.values() if isinstance(v, str)) < QUARANTINE_PREVIEW_CHARS // 2:
        return dict(row)
    try:
        text = jsoncodec.dumps(dict(row))
    except ValueError:
        text = repr(dict(row))[:QUARANTINE_PREVIEW_CHARS]
    return {"truncated": True, "json": text[:QUARANTINE_PREVIEW_CHARS]}


def plan_import(
    name: str,
    path: Path,
    user_id: str,
    overrides: Overrides | None = None,
    columns: Columns | None = None,
) -> FilePlan:
    """Read and map a file without writing anything, with the user's `mappings.toml`
    entries applied as a sync of the same source applies them."""
    importer = choose_importer(name, path)
    field_map = source_maps(importer.source, {importer.kind: importer.field_map}, overrides or {})
    stream = CsvStream(path, importer.spec)
    plan = FilePlan(
        path,
        importer,
        RecordBuilder(importer.kind, field_map[importer.kind], columns),
        user_id,
        utc_now(),
        identity=stream.identity,
        columns=stream.columns,
        metadata_only=stream.unmapped,
    )
    seen: set[str] = set()
    for row in stream:
        plan.rows += 1
        try:
            record = plan.builder(importer.source, user_id, row.values, plan.synced_at)
        except InvalidRecord as exc:
            reason = str(exc)
            if not isinstance(row.values, RejectedRow):  # a broken row is an error, listed so
                plan.invalid.add((row.number, row.line, reason))
            if len(plan.invalid_rows) < MAX_LISTED:
                plan.invalid_rows.append((reason, _quarantine_payload(row.values)))
            continue
        if record.id in seen:
            plan.duplicates += 1
        else:
            seen.add(record.id)
    plan.valid = len(seen)
    plan.ragged, plan.errors = stream.ragged, stream.errors
    plan.encoding = stream.decoding.encoding
    plan.encoding_warnings = stream.decoding.warnings()
    return plan
