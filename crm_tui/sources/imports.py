"""File imports: which CSV exports a source takes, and the plan shown before applying one."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_tui.models import Record, RecordKind, utc_now
from crm_tui.sources import brivity, topproducer
from crm_tui.sources.csv_import import CsvSpec, read_csv
from crm_tui.sources.errors import ImportFileError, InvalidRecord
from crm_tui.sources.mapping import FieldMap, RecordBuilder


@dataclass(frozen=True, slots=True)
class Importer:
    source: str
    kind: RecordKind
    spec: CsvSpec
    field_map: FieldMap


IMPORTERS: dict[str, dict[RecordKind, Importer]] = {
    "topproducer": {
        "contacts": Importer(
            "topproducer", "contacts", topproducer.CONTACTS_EXPORT, topproducer.CSV_MAPS["contacts"]
        ),
        "deals": Importer(
            "topproducer", "deals", topproducer.CLOSINGS_EXPORT, topproducer.CSV_MAPS["deals"]
        ),
    },
    "brivity-transactions": {
        "deals": Importer(
            "brivity",
            "deals",
            brivity.TRANSACTION_REPORT,
            brivity.BrivitySource.field_maps["deals"],
        ),
    },
}


@dataclass(slots=True)
class FilePlan:
    path: Path
    importer: Importer
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> header in the file
    metadata_only: list[str] = field(default_factory=list)  # kept in metadata, not mapped
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    duplicates: int = 0
    ragged_lines: list[int] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    invalid_rows: list[tuple[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "source": self.importer.source,
            "type": self.importer.kind,
            "rows": self.rows,
            "valid": len(self.records),
            "columnsMapped": self.columns,
            "columnsKeptInMetadata": self.metadata_only,
            "invalid": [{"row": row, "reason": reason} for row, reason in self.invalid],
            "duplicates": self.duplicates,
            "raggedLines": self.ragged_lines,
        }


def choose_importer(name: str, path: Path) -> Importer:
    options = IMPORTERS.get(name)
    if options is None:
        raise ImportFileError(f"Unknown import {name!r}", f"choose one of {', '.join(IMPORTERS)}")
    if len(options) == 1:
        return next(iter(options.values()))
    return options[topproducer.classify_export(path)]


def plan_import(name: str, path: Path, user_id: str) -> FilePlan:
    """Parse and map a file without writing anything."""
    importer = choose_importer(name, path)
    table = read_csv(path, importer.spec)
    plan = FilePlan(
        path,
        importer,
        rows=len(table.rows),
        columns=table.columns,
        metadata_only=table.unmapped,
        ragged_lines=table.ragged,
    )
    synced_at = utc_now()
    seen: Counter[str] = Counter()
    kept: dict[str, Record] = {}
    build = RecordBuilder(importer.kind, importer.field_map)
    for number, row in enumerate(table.rows, start=1):
        try:
            record = build(importer.source, user_id, row, synced_at)
        except InvalidRecord as exc:
            plan.invalid.append((number, str(exc)))
            plan.invalid_rows.append((str(exc), row))
            continue
        seen[record.id] += 1
        kept[record.id] = record
    plan.duplicates = sum(n - 1 for n in seen.values())
    plan.records = list(kept.values())
    return plan
