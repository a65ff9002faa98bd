"""Where a few ids sit in a long list of them: the ids' hashes, sorted once (16 bytes an id
where a dict takes about a hundred), each hit checked against the list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np


class Positions(Protocol):
    def find(self, wanted: Iterable[str]) -> dict[str, int]:
        """The position of each wanted id the sequence holds."""
        ...


class IdPositions:
    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = ids
        hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        self._order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[self._order]

    def find(self, wanted: Iterable[str]) -> dict[str, int]:
        """The position of each wanted id the list holds."""
        found: dict[str, int] = {}
        for record_id in wanted:
            code = hash(record_id)
            at = int(np.searchsorted(self._hashes, code))
            while at < len(self._hashes) and self._hashes[at] == code:
                position = int(self._order[at])
                if self.ids[position] == record_id:
                    found[record_id] = position
                    break
                at += 1
        return found


class _Asked:
    """A sequence that finds its own ids (records decoded from disk keep an id index)."""

    def __init__(self, records: Any) -> None:
        self.records = records

    def find(self, wanted: Iterable[str]) -> dict[str, int]:
        return dict(self.records.positions(list(wanted)))


def record_positions(records: Sequence[Any]) -> Positions:
    """Where each record id sits in `records`: asked of the sequence when it can tell
    (no pass over it), else from every record's id."""
    if callable(getattr(records, "positions", None)):
        return _Asked(records)
    return IdPositions([r.id for r in records])
