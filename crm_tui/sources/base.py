"""What a source is: a declaration (names, settings, capabilities, auth, endpoints, field
maps) and the little code a declaration cannot say.

A REST source is mostly declaration: its `endpoints` (path, where the records are, which
paginator) are read by one driver (`pagination.read_pages`) through one HTTP client per
source, built from `base_url_setting`, `auth` and `extra_headers` on first use and closed
here. Class attributes only are read by the settings model, the Connections screen and the
CLI, so they are plain data; nothing HTTP is imported until a source reads.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from crm_tui.models import Contact, Record, RecordKind
from crm_tui.sources.kit import (
    Auth,
    Capabilities,
    CsvExport,
    RateHeaders,
    RetryPolicy,
    Setting,
    is_set,
)
from crm_tui.sources.mapping import FieldMap, Overrides, RecordBuilder, get_path, source_maps
from crm_tui.sources.pagination import Page, Stream, read_pages

if TYPE_CHECKING:
    import httpx

    from crm_tui.config import Settings
    from crm_tui.logs import SecretMasker
    from crm_tui.sources.http import HttpClient
    from crm_tui.store.db import Database

__all__ = ["Capabilities", "Source", "SourceContext"]


@dataclass(slots=True)
class SourceContext:
    """What every connector is built from; tests inject a transport here."""

    settings: Settings
    user_id: str
    masker: SecretMasker | None = None
    db: Database | None = None
    transport: httpx.AsyncBaseTransport | None = None
    overrides: Overrides = field(default_factory=dict)


class Source(ABC):
    # -- what it is ---------------------------------------------------------------------------
    name: ClassVar[str]
    display_name: ClassVar[str]
    short_name: ClassVar[str]  # a badge of a few letters (People, Search)
    settings: ClassVar[tuple[Setting, ...]] = ()
    exports: ClassVar[tuple[CsvExport, ...]] = ()  # CSV exports `crm-tui import` reads
    #: A record's page in the vendor's web app: a format string taking `remote_id`, or
    #: where the payload holds the link; None if unknown.
    record_url: ClassVar[str | None] = None
    record_url_at: ClassVar[tuple[str, ...]] = ()
    field_maps: ClassVar[Mapping[RecordKind, FieldMap]] = {}

    # -- how it is reached (REST sources) -----------------------------------------------------
    base_url_setting: ClassVar[str | None] = None  # the variable holding the base URL
    #: The documented path every endpoint sits under ("api/v2"), added to a configured base
    #: URL that lacks it, so both `https://COMPANY.example.com` and `.../api/v2` work.
    base_path: ClassVar[str] = ""
    auth: ClassVar[Auth | None] = None
    extra_headers: ClassVar[Mapping[str, str]] = {}  # header -> variable, sent when set
    rate_headers: ClassVar[RateHeaders] = RateHeaders()
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    min_read_timeout: ClassVar[float] = 0.0  # for APIs slower than CRM_HTTP_TIMEOUT_SECONDS
    endpoints: ClassVar[Mapping[RecordKind, Stream]] = {}

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.maps = source_maps(self.name, self.field_maps, ctx.overrides)
        self._builders = {kind: RecordBuilder(kind, m) for kind, m in self.maps.items()}
        self._client: HttpClient | None = None

    # -- configuration ------------------------------------------------------------------------

    @classmethod
    def missing(cls, settings: Settings) -> tuple[str, ...]:
        """The variables still to set before this source can be used."""
        return tuple(
            s.env for s in cls.settings if s.required and not is_set(getattr(settings, s.field))
        )

    @classmethod
    def mode(cls, settings: Settings) -> str:
        """How it is reached as configured: "api", "csv", "database"."""
        return "api"

    @classmethod
    def is_configured(cls, settings: Settings) -> bool:
        return not cls.missing(settings)

    @classmethod
    def web_url(cls, record: Record) -> str | None:
        """A record's page in the vendor's web app, if the source knows it."""
        metadata = record.metadata if cls.record_url_at else {}
        for path in cls.record_url_at:
            value = get_path(metadata, path)
            if isinstance(value, str) and value.startswith("https://"):
                return value
        if cls.record_url is not None and isinstance(record, Contact):
            return cls.record_url.format(remote_id=record.remote_id)
        return None

    @property
    def capabilities(self) -> Capabilities:
        """What this source offers as configured now."""
        return Capabilities(contacts="contacts" in self.endpoints, deals="deals" in self.endpoints)

    def streams(self) -> tuple[RecordKind, ...]:
        caps = self.capabilities
        return tuple(
            kind for kind, on in (("contacts", caps.contacts), ("deals", caps.deals)) if on
        )

    # -- reading ------------------------------------------------------------------------------

    @property
    def client(self) -> HttpClient:
        """The source's one HTTP client, built on first use (closed by `aclose`)."""
        if self._client is None:
            from crm_tui.sources.http import client_for

            self._client = client_for(self)
        return self._client

    def endpoint(self, stream: RecordKind) -> Stream | None:
        """Where `stream` is read from, as this source is configured (its field maps with
        the user's `mappings.toml` on top may ask for more)."""
        return self.endpoints.get(stream)

    @property
    def client_in_use(self) -> HttpClient | None:
        """The HTTP client if one was built; a source read from files never builds one."""
        return self._client

    def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        """Pages of raw records. `probe` asks for the smallest page that proves access."""
        endpoint = self.endpoint(stream)
        if endpoint is None:
            return self.read_other(stream, probe=probe)
        return read_pages(self.client, endpoint, stream, probe=probe)

    def read_other(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        """A stream that is not a REST endpoint (a CSV report, the local database)."""
        raise NotImplementedError(f"{self.display_name} has no {stream}")

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

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
