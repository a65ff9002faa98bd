"""One change of a stream's mapping as the Mapping screen makes it: map a target (a unified
field or `custom.NAME`) to a payload path, or unmap it; its live preview on a few cached
records; and saving it (undone, the file put back, when the re-map after it cannot run).
Plain Python: the screen calls these from its workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crm_tui.config import Settings
from crm_tui.custom_columns import CUSTOM_PREFIX, Column
from crm_tui.fields.service import connector, remove, save
from crm_tui.fields.shown import shown_value
from crm_tui.models import Record, RecordKind
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.mapping import Mappings
from crm_tui.sources.mapping_file import Saved
from crm_tui.store.db import Database
from crm_tui.text import single_line

#: Records the preview maps: cheap enough to do on the event loop as a key is pressed.
PREVIEW_RECORDS = 10


@dataclass(frozen=True, slots=True)
class Edit:
    source: str
    stream: RecordKind
    target: str  # `company`, `custom.lender`
    spec: str | None  # the payload path; None unmaps the target
    column: Column | None = None  # a custom column declared (or re-declared) with it

    def describe(self) -> str:
        if self.spec is None:
            return f"{self.target} unmapped"
        return f"{self.target} ← {self.spec}"


@dataclass(frozen=True, slots=True)
class PreviewRow:
    record: str  # the record's name (CRM text: shown with markup off)
    before: str
    after: str


def edited(mappings: Mappings, edit: Edit) -> Mappings:
    """`mappings` as they would be with `edit` saved (nothing written)."""
    by_source = mappings.overrides.get(edit.source, {})
    mine = dict(by_source.get(edit.stream, {}))
    if edit.spec is None:
        mine.pop(edit.target, None)
    else:
        mine[edit.target] = edit.spec
    overrides = {**mappings.overrides, edit.source: {**by_source, edit.stream: mine}}
    columns = dict(mappings.columns)
    if edit.column is not None:
        columns[edit.column.name] = edit.column
    return Mappings(overrides, columns)


def target_value(record: Record, target: str, columns: dict[str, Column]) -> str:
    """A record's value of a target, as people read it."""
    if target.startswith(CUSTOM_PREFIX):
        name = target.removeprefix(CUSTOM_PREFIX)
        column = columns.get(name) or Column.implied(name)
        if name in record.custom and record.custom[name] is None:
            return f"(not read as {column.type})"
        return shown_value(record.custom.get(name), column.type)
    value = getattr(record, target, None)
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return "" if value is None else single_line(str(value))


def preview(
    settings: Settings, records: Sequence[Record], mappings: Mappings, edit: Edit
) -> list[PreviewRow]:
    """Each record's value of the edited target now, and as the edited map reads its
    payload (a payload the new map refuses says why)."""
    after_maps = edited(mappings, edit)
    built = connector(settings, edit.source, after_maps)
    rows = []
    for record in records[:PREVIEW_RECORDS]:
        before = target_value(record, edit.target, mappings.columns)
        try:
            mapped = built.map_record(edit.stream, record.metadata, record.synced_at)
            after = target_value(mapped, edit.target, after_maps.columns)
        except InvalidRecord as exc:
            after = f"(refused: {single_line(str(exc))})"
        rows.append(PreviewRow(single_line(record.name or record.id), before, after))
    return rows


def apply(db: Database, settings: Settings, edit: Edit, path: Path | None = None) -> Saved | None:
    """Save the edit to mappings.toml, after the service's checks. Blocking: a thread.
    Raises MappingRefused with the one-line reason; the file is then untouched. Returns
    the save, whose `undo()` puts the file back as it was (None: nothing was written)."""
    saved: list[Saved] = []
    if edit.spec is None:
        remove(db, settings, edit.source, edit.stream, edit.target, path=path, saved=saved)
    else:
        save(
            db,
            settings,
            edit.source,
            edit.stream,
            edit.target,
            edit.spec,
            edit.column,
            path=path,
            saved=saved,
        )
    return saved[0] if saved else None
