"""What waits in the outbox for each record, shown beside it in lists and search results."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_tui.store.outbox import OPEN_STATES, OutboxEntry

if TYPE_CHECKING:
    from crm_tui.store import CacheStore


@dataclass(frozen=True)
class Marks:
    """What waits in the outbox for each record, to show beside it in lists: the values an
    unsent edit gives it (`pending`) and its newest unfinished entry (`outbox`)."""

    pending: Callable[[str], dict[str, Any] | None]
    open: Mapping[str, OutboxEntry]

    def json(self, data: dict[str, Any]) -> dict[str, Any]:
        values = self.pending(data["id"])
        entry = self.open.get(data["id"])
        if values:
            data["pending"] = values
        if entry is not None:
            data["outbox"] = {"id": entry.id, "state": entry.state, "action": entry.action}
        return data

    def label(self, record_id: str) -> str:
        entry = self.open.get(record_id)
        if entry is None:
            return ""
        return entry.state if entry.action == "update" else f"{entry.action} {entry.state}"

    def column(
        self, ids: Sequence[str], rows: list[tuple[Any, ...]], headers: tuple[str, ...]
    ) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
        """The rows with an OUTBOX column, when one of them has something waiting."""
        labels = [self.label(i) for i in ids]
        if not any(labels):
            return rows, headers
        return [(*row, label) for row, label in zip(rows, labels, strict=True)], (
            *headers,
            "OUTBOX",
        )


def record_marks(store: CacheStore, pending: Mapping[str, dict[str, Any]] | None = None) -> Marks:
    """The marks of what waits; `pending`: the values unsent edits give each record, read
    by a caller that did not load the store (else the store's)."""
    db = store.db
    entries = db.outbox(store.user_id, OPEN_STATES, limit=1_000_000) if db is not None else []
    newest: dict[str, OutboxEntry] = {}
    for entry in entries:  # newest first: the first seen of a record is its newest
        if entry.record_id is not None:
            newest.setdefault(entry.record_id, entry)
    return Marks(store.pending if pending is None else pending.get, newest)
