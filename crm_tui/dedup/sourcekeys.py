"""One source's contacts as match keys: key arrays by position over a sequence of records,
plus the few positions changed since those arrays were made.

The arrays are made once per set of records (or mapped from where they were saved); a
change to a few contacts patches those positions, a new contact takes the next position,
and a deleted one keeps its position with no keys (so no other position moves). Ids and
names are read from the records only for the positions a cluster needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast, runtime_checkable

import numpy as np

from crm_tui.dedup.keyarrays import COLUMNS, NO_KEYS, KeyArrays, Keyer, Merged, Row, merged_of
from crm_tui.dedup.texts import Texts
from crm_tui.models import Contact, Record, RecordKind
from crm_tui.positions import IdPositions
from crm_tui.store.stamps import StreamStamp

#: Re-keying a share of a source larger than this costs about what building it afresh does.
REKEY_SHARE = 0.05


class BaseRecords(Protocol):
    """A stream's records as its saved artifacts hold them, by position."""

    def __len__(self) -> int: ...

    def __getitem__(self, position: int) -> Record: ...

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        """The position of each of `ids` held here (the others are left out)."""
        ...


@runtime_checkable
class StreamBases(Protocol):
    """What a store offers beside `CachedRecords` when it keeps streams on disk: the rows a
    stream rests on (the stamp its artifacts are saved under, those records) and the ids
    changed over them since."""

    def base_of(
        self, kind: RecordKind, source: str
    ) -> tuple[StreamStamp, BaseRecords, Iterable[str]] | None: ...


class RecordList(list[Record]):
    """Records in a plain list, found by id through a hash table made on first need."""

    _found: IdPositions | None = None

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        if self._found is None:
            self._found = IdPositions(_Ids(self))
        return self._found.find(ids)


class _Ids(Sequence[str]):
    def __init__(self, records: Sequence[Record]) -> None:
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, at: int) -> str:  # type: ignore[override]
        return self._records[at].id


@dataclass(frozen=True, slots=True)
class SourceKeys:
    """Keys of one source's contacts. Position p is `records[p]` unless `patched` says
    otherwise (p past the records: a contact added since)."""

    source: str
    version: object  # the store's stream_version when these keys were made
    keys: KeyArrays
    records: BaseRecords
    merged: list[Merged]
    patched: dict[int, tuple[Contact | None, Row]] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)  # id -> position, past the records
    texts: dict[str, Texts] | None = None  # the records' texts, as saved with the keys

    @classmethod
    def build(cls, source: str, version: object, records: BaseRecords, keyer: Keyer) -> SourceKeys:
        """Keys of every contact in `records` (one source's)."""
        contacts = cast("Sequence[Contact]", records)
        # only the local CRM's contacts come from merges: another source's are not read twice
        merged = merged_of(contacts) if source == "local" else []
        return cls(source, version, keyer.arrays(contacts), records, merged)

    def __len__(self) -> int:
        return len(self.records) + len(self.added)

    def record(self, position: int) -> Contact | None:
        """The contact at `position` now; None when it was deleted."""
        if position in self.patched:
            return self.patched[position][0]
        return self.records[position]  # type: ignore[return-value]

    def records_at(self, positions: list[int]) -> list[Contact]:
        """The contacts at `positions` now (none of them deleted)."""
        records = cast("Sequence[Contact]", self.records)
        if not self.patched:
            return [records[i] for i in positions]
        return [cast("Contact", self.record(i)) for i in positions]

    def find(self, ids: Iterable[str]) -> dict[str, int]:
        """The position of each of `ids` that is still there."""
        wanted = list(ids)
        found = self.records.positions(wanted)
        found.update((i, self.added[i]) for i in wanted if i in self.added)
        return {i: at for i, at in found.items() if self.record(at) is not None}

    def column(self, name: str) -> np.ndarray:
        """One key's codes for every position, the patches laid over."""
        base = self.keys.column(name)
        if not self.patched:
            return base
        out = np.zeros(len(self), dtype=np.uint64)
        out[: len(base)] = base
        at = COLUMNS.index(name)
        positions = np.fromiter(self.patched, dtype=np.int64, count=len(self.patched))
        values = np.fromiter(
            (row[at] for _, row in self.patched.values()), np.uint64, len(self.patched)
        )
        out[positions] = values
        return out

    def rekeyed(
        self, version: object, current: dict[str, Contact | None], keyer: Keyer
    ) -> SourceKeys:
        """These keys with the contacts `current` names keyed again (None: deleted)."""
        at = self.find(current)
        patched = dict(self.patched)
        added = dict(self.added)
        for record_id, contact in current.items():
            position = at.get(record_id)
            if position is None and contact is not None:
                position = added[record_id] = len(self.records) + len(added)
            if position is not None:
                patched[position] = (contact, keyer.row(contact) if contact else NO_KEYS)
        merged = [m for m in self.merged if m[1] not in current]
        for record_id, contact in current.items():
            position = at.get(record_id, added.get(record_id))
            if contact is not None and position is not None:
                merged.extend(merged_of([contact], position))
        return replace(self, version=version, merged=merged, patched=patched, added=added)
