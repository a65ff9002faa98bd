"""What a source is: capabilities, streams, paged reading of raw records, and mapping."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from crm_tui.config import Settings
from crm_tui.logs import SecretMasker
from crm_tui.models import Record, RecordKind
from crm_tui.sources.mapping import FieldMap, RecordBuilder, source_maps
from crm_tui.sources.pagination import Page
from crm_tui.store.db import Database


@dataclass(frozen=True, slots=True)
class Capabilities:
    contacts: bool = True
    deals: bool = False
    incremental: bool = False
    write_back: bool = False
    file_import: bool = False

    def flags(self) -> dict[str, bool]:
        return {
            "contacts": self.contacts,
            "deals": self.deals,
            "incremental": self.incremental,
            "write-back": self.write_back,
            "file import": self.file_import,
        }


@dataclass(slots=True)
class SourceContext:
    """What every connector is built from; tests inject a transport here."""

    settings: Settings
    user_id: str
    masker: SecretMasker = field(default_factory=SecretMasker)
    db: Database | None = None
    transport: httpx.AsyncBaseTransport | None = None
    overrides: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


class Source(ABC):
    name: ClassVar[str]
    display_name: ClassVar[str]
    field_maps: ClassVar[dict[RecordKind, FieldMap]] = {}

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.maps = source_maps(self.name, self.field_maps, ctx.overrides)
        self._builders = {kind: RecordBuilder(kind, m) for kind, m in self.maps.items()}

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this source offers as configured now."""

    def streams(self) -> tuple[RecordKind, ...]:
        caps = self.capabilities
        return tuple(
            kind for kind, on in (("contacts", caps.contacts), ("deals", caps.deals)) if on
        )

    @abstractmethod
    def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        """Pages of raw records. `probe` asks for the smallest page that proves access."""

    def map_record(self, stream: RecordKind, raw: Any, synced_at: str) -> Record:
        return self._builders[stream](self.name, self.ctx.user_id, raw, synced_at)

    async def check(self) -> str:
        """Authenticate and read one small page; the message says what was seen."""
        stream = self.streams()[0]
        pages = self.read(stream, probe=True)
        try:
            async for page in pages:
                total = f" of {page.total}" if page.total is not None else ""
                return f"connected: read {len(page.records)}{total} {stream}"
        finally:
            await pages.aclose()  # type: ignore[attr-defined]
        return f"connected: no {stream}"

    async def aclose(self) -> None:  # noqa: B027  (only HTTP sources hold connections)
        """Release connections."""
