"""What a reader of the cache needs of it: the store as a Protocol, so the duplicate finder
(and whatever else reads records) takes any object that serves them, not an `Any`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from crm_tui.models import Record, RecordKind
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.stamps import StreamStamp


class CachedRecords(Protocol):
    """The read side of `CacheStore`: its streams, by kind and source, with their versions."""

    def sources(self) -> list[str]: ...

    def stream(self, kind: RecordKind, source: str) -> Mapping[str, Record]: ...

    def stream_version(self, kind: RecordKind, source: str) -> tuple[int, int]: ...

    def changed_since(
        self, kind: RecordKind, source: str, version: tuple[int, int]
    ) -> set[str] | None: ...

    def get(self, kind: RecordKind, record_id: str) -> Record | None: ...


class StreamRecords(Protocol):
    """A stream's records by position and by id (a `StoredRecords`, or any sequence that
    can say where an id is)."""

    def __len__(self) -> int: ...

    def __getitem__(self, position: int) -> Record: ...

    def __iter__(self) -> Iterator[Record]: ...

    def positions(self, ids: Iterable[str]) -> dict[str, int]: ...


#: The records artifact a stream rests on: its stamp, its records, and the ids the stream
#: changed, added or removed over it.
Base = tuple[StreamStamp, StreamRecords, frozenset[str]]


class StoredStreams(CachedRecords, Protocol):
    """A store whose streams may rest on records artifacts (`CacheStore`)."""

    @property
    def shelf(self) -> ArtifactShelf | None: ...

    def base_of(self, kind: RecordKind, source: str) -> Base | None: ...
