"""What an incremental read or a webhook found, as one change to a stream's rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crm_tui.models import Record


@dataclass(slots=True)
class Delta:
    """Records to write and ids to remove, in the order they were read: a record read
    twice keeps its last version; a deletion read after a record removes it, a record read
    after its deletion brings it back (restored at the vendor)."""

    upserts: dict[str, Record] = field(default_factory=dict)
    deletes: dict[str, None] = field(default_factory=dict)
    duplicates: int = 0
    latest: str | None = None  # the latest vendor update time read (UTC ISO)

    def upsert(self, record: Record) -> None:
        self.deletes.pop(record.id, None)
        if record.id in self.upserts:
            self.duplicates += 1
        self.upserts[record.id] = record
        updated = record.remote_updated
        if updated is not None and (self.latest is None or updated > self.latest):
            self.latest = updated

    def delete(self, record_id: str | None) -> None:
        if record_id is not None:
            self.upserts.pop(record_id, None)
            self.deletes[record_id] = None


def latest_change(records: Iterable[Record]) -> str | None:
    """The latest vendor update time among `records` (canonical UTC ISO strings sort as
    times do)."""
    return max((r.remote_updated for r in records if r.remote_updated), default=None)
