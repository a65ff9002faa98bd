"""What a source is: a declaration (names, settings, capabilities, auth, endpoints, field
maps) and the little code a declaration cannot say.

A REST source is mostly declaration: its `endpoints` (path, where the records are, which
paginator) are read by one driver (`pagination.read_pages`) through one HTTP client per
source, built from `base_url_setting`, `auth` and `extra_headers` on first use and closed
here. Class attributes only are read by the settings model, the Connections screen and the
CLI, so they are plain data; nothing HTTP is imported until a source reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote

from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.models import Contact, Record, RecordKind
from crm_tui.sources.errors import NotFound, RateLimited, RemoteError, SourceError
from crm_tui.sources.kit import (
    Auth,
    Capabilities,
    Changes,
    CsvExport,
    KeyHeader,
    One,
    RateHeaders,
    RetryPolicy,
    Setting,
    VendorField,
    Webhooks,
    is_set,
)
from crm_tui.sources.mapping import (
    Columns,
    FieldMap,
    FieldSpec,
    Overrides,
    RecordBuilder,
    get_path,
    source_maps,
)
from crm_tui.sources.pagination import Page, Stream, first_at, read_pages
from crm_tui.sources.vendor_fields import FieldList, read_fields
from crm_tui.sources.writes import Draft, Option, Update, Writer, Writes

if TYPE_CHECKING:
    import httpx

    from crm_tui.config import Settings
    from crm_tui.logs import SecretMasker
    from crm_tui.sources.http import HttpClient

__all__ = ["Capabilities", "Source", "SourceContext"]

log = logging.getLogger(__name__)

#: How long a vendor's list of values (stages) is trusted before it is read again.
CHOICES_SECONDS = 600.0
#: What a vendor's record id looks like; anything else named in a webhook is not fetched (it
#: would be put in a URL path).
_REMOTE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LocalRows(Protocol):
    """What a source reads of the database: the local CRM's rows (the store's `Database`
    serves them; a source never reaches further into the store)."""

    def local_records(self, user_id: str, kind: RecordKind) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class SourceContext:
    """What every connector is built from; tests inject a transport here."""

    settings: Settings
    user_id: str
    masker: SecretMasker | None = None
    db: LocalRows | None = None
    transport: httpx.AsyncBaseTransport | None = None
    overrides: Overrides = field(default_factory=dict)
    columns: Columns = field(default_factory=dict)  # the custom columns' declarations


# A payload's link: https, then printable ASCII only (no space, no control character that
# would reach the terminal in a notice, no quote that would end it in a document).
_WEB_URL = re.compile(r"https://[!#-&(-~]+")


class Source(ABC):
    # -- what it is ---------------------------------------------------------------------------
    name: ClassVar[str]
    display_name: ClassVar[str]
    short_name: ClassVar[str]  # a badge of a few letters (People, Search)
    settings: ClassVar[tuple[Setting, ...]] = ()
    exports: ClassVar[tuple[CsvExport, ...]] = ()  # CSV exports `crm-tui import` reads
    #: A contact's page in the vendor's web app: a format string taking `remote_id`, or
    #: where the payload holds the link; None if unknown (then `o` is not offered).
    record_url: ClassVar[str | None] = None
    deal_url: ClassVar[str | None] = None  # the same, for a deal
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
    #: The streams the vendor lets us read from a moment on (see `read_changes`); the others
    #: are read in full every time.
    changes: ClassVar[Mapping[RecordKind, Changes]] = {}
    #: Where one record is read by id, per stream (for webhooks, which name ids only).
    single: ClassVar[Mapping[RecordKind, One]] = {}
    #: Where the vendor lists each stream's fields, custom ones included (`vendor_fields`).
    field_lists: ClassVar[Mapping[RecordKind, FieldList]] = {}
    #: Its own statuses and stages, folded, that mean one of the shared statuses
    #: (crm_tui/vocabulary.py) where their words do not say so, per stream.
    statuses: ClassVar[Mapping[RecordKind, Mapping[str, str]]] = {}
    #: The fields saying where a record stands, best first, where not stage then status.
    status_fields: ClassVar[Mapping[RecordKind, tuple[str, ...]]] = {}
    #: Where a deal's payload holds its commission (GCI), for the Pipeline's closings;
    #: read from the kept payload when a chart asks, never stored as a field.
    commission: ClassVar[FieldSpec | None] = None
    #: How its webhooks are verified and read; None when it sends none we take.
    webhooks: ClassVar[Webhooks | None] = None
    #: How many records a webhook's fetch asks for at once.
    fetch_concurrency: ClassVar[int] = 4
    #: What crm-tui may change at the vendor (crm_tui/sources/writes.py): nothing by default.
    writes: ClassVar[Writes] = Writes()

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.use_mappings(ctx.overrides, ctx.columns)
        self._client: HttpClient | None = None
        self._choices: dict[tuple[RecordKind, str], tuple[float, list[Option]]] = {}

    def use_mappings(self, overrides: Overrides, columns: Columns) -> None:
        """Map with the user's mappings.toml as now read, from the next record on (the
        maps and builders are swapped whole, so a record is mapped by one or the other)."""
        self.ctx = replace(self.ctx, overrides=overrides, columns=columns)
        maps = source_maps(self.name, self.field_maps, overrides)
        self._builders = {kind: RecordBuilder(kind, m, columns) for kind, m in maps.items()}
        self.maps = maps

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
            if isinstance(value, str) and _WEB_URL.fullmatch(value):
                return value
        template = cls.record_url if isinstance(record, Contact) else cls.deal_url
        if template is not None and record.remote_id:
            # quoted whole: an id is the vendor's text, and must not add a path or a query
            return template.format(remote_id=quote(record.remote_id, safe=""))
        return None

    @property
    def capabilities(self) -> Capabilities:
        """What this source offers as configured now."""
        return Capabilities(
            contacts="contacts" in self.endpoints,
            deals="deals" in self.endpoints,
            incremental=any(self.incremental(kind) for kind in self.changes),
            write_back=self.writes.any,
        )

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

    def incremental(self, stream: RecordKind) -> bool:
        """Whether `stream` can be read from a moment on, as this source is configured."""
        return stream in self.changes and self.endpoint(stream) is not None

    def read_changes(self, stream: RecordKind, since: str) -> AsyncIterator[Page]:
        """Pages of the records changed since `since` (a UTC ISO time), in the vendor's
        order; the ones it names deleted (trashed, archived) in each page's `gone`. Then the
        stream's listings of deletions, every record of them in `gone`."""
        endpoint = self.endpoint(stream)
        changes = self.changes.get(stream)
        if endpoint is None or changes is None:
            raise SourceError(f"{self.display_name} cannot read {stream} incrementally")
        return self._changed_pages(endpoint, changes, stream, since)

    async def _changed_pages(
        self, endpoint: Stream, changes: Changes, stream: RecordKind, since: str
    ) -> AsyncIterator[Page]:
        base = {**endpoint.params, **changes.params, changes.since: since}
        async for page in read_pages(self.client, replace(endpoint, params=base), stream):
            yield page
        for extra in changes.deletions:
            listing = replace(endpoint, params={**base, **extra})
            async for page in read_pages(self.client, listing, stream):
                yield Page([], page.total, page.gone + page.records)

    async def fetch_records(
        self, stream: RecordKind, remote_ids: Iterable[str]
    ) -> tuple[list[Any], list[str]]:
        """The current payloads of the records named by vendor id (a webhook names ids), and
        the ids the vendor no longer has (404, or archived / trashed). Ids that could not be
        a vendor's are left out."""
        one, endpoint = self.single.get(stream), self.endpoint(stream)
        if one is None or endpoint is None:
            raise SourceError(f"{self.display_name} cannot read one {stream} record")
        params = {k: v for k, v in endpoint.params.items() if k != "limit"}
        found: list[Any] = []
        gone: list[str] = []
        gate = asyncio.Semaphore(self.fetch_concurrency)

        async def fetch(remote_id: str) -> None:
            async with gate:
                try:
                    body = await self.client.get_json(
                        one.path.format(id=remote_id), params, what=stream
                    )
                except NotFound:
                    gone.append(remote_id)
                    return
                except RateLimited:
                    raise  # the whole batch waits and is tried again
                except RemoteError as exc:
                    # one record this key may not read (a 403) spoils none of the others
                    log.warning(
                        "[%s] %s %s not read: %s", self.display_name, stream, remote_id, exc
                    )
                    return
            raw = first_at(body, one.at) if one.at else body
            if raw is None or (endpoint.skip is not None and endpoint.skip(raw)):
                gone.append(remote_id)
            else:
                found.append(raw)

        wanted = [i for i in dict.fromkeys(remote_ids) if _REMOTE_ID.fullmatch(i)]
        await asyncio.gather(*(fetch(i) for i in wanted))
        return found, gone

    # -- writing ------------------------------------------------------------------------------

    async def read_one(self, stream: RecordKind, remote_id: str) -> Any | None:
        """The record as the vendor has it now (None: it has none, or it is trashed).
        Raises SourceError when the vendor cannot be asked."""
        one, endpoint = self.single.get(stream), self.endpoint(stream)
        if one is None or endpoint is None or not _REMOTE_ID.fullmatch(remote_id):
            raise SourceError(f"{self.display_name} cannot read one {stream} record")
        params = {k: v for k, v in endpoint.params.items() if k != "limit"}
        try:
            body = await self.client.get_json(one.path.format(id=remote_id), params, what=stream)
        except NotFound:
            return None
        raw = first_at(body, one.at) if one.at else body
        if raw is None or (endpoint.skip is not None and endpoint.skip(raw)):
            return None
        return raw

    def custom_writers(self, stream: RecordKind) -> dict[str, Writer]:
        """The custom columns (`custom.NAME`) this source writes for `stream`, with their
        writers: each mapped (built-in map or mappings.toml) from a plain path where the
        vendor takes writes of its custom fields (`Update.custom`)."""
        spec = self.writes.update.get(stream)
        if spec is None or spec.custom is None:
            return {}
        found: dict[str, Writer] = {}
        for target, path in self.maps[stream].items():
            if not target.startswith(CUSTOM_PREFIX) or not isinstance(path, str):
                continue
            column = self.ctx.columns.get(target.removeprefix(CUSTOM_PREFIX))
            writer = spec.custom.writer(path, column.type if column else "text")
            if writer is not None:
                found[target] = writer
        return found

    def update_spec(self, stream: RecordKind) -> Update | None:
        """How `stream`'s records are changed, its writable custom columns included."""
        spec = self.writes.update.get(stream)
        extra = self.custom_writers(stream) if spec is not None else {}
        return replace(spec, fields={**spec.fields, **extra}) if spec and extra else spec

    async def choices(
        self, stream: RecordKind, name: str, record: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The values a writable field may take as the vendor lists them (label -> what is
        sent), for `record` (its vendor payload) where they depend on it; {} when the
        vendor lists none. Read again after CHOICES_SECONDS (an account gains stages)."""
        spec = self.writes.update.get(stream)
        listed = spec.choices.get(name) if spec else None
        if listed is None:
            return {}
        key = (stream, name)
        read_at, options = self._choices.get(key, (0.0, []))
        if not options or time.monotonic() - read_at > CHOICES_SECONDS:
            body = await self.client.get_json(listed.path, dict(listed.params), what=name)
            options = listed.read(body)
            self._choices[key] = (time.monotonic(), options)
        return listed.options(options, record)

    async def listed(
        self, stream: RecordKind, name: str, value: Any, record: Mapping[str, Any] | None = None
    ) -> tuple[bool, Any]:
        """Whether the vendor lists `value` among a field's values (for `record`, its
        vendor payload), and the value as a mapped record holds it (a label typed for a
        HubSpot stage becomes its internal name); (True, value) for a field whose values
        are not listed."""
        spec = self.writes.update.get(stream)
        listed = spec.choices.get(name) if spec else None
        if listed is None or not isinstance(value, str) or not value:
            return True, value
        stored = listed.stored_form(await self.choices(stream, name, record), value)
        return stored is not None, stored if stored is not None else value

    def header_names(self) -> tuple[str, ...]:
        """The headers a request carries besides its content type (their values are
        credentials: a dry run shows the names only)."""
        key = self.auth.header if isinstance(self.auth, KeyHeader) else "Authorization"
        settings = self.ctx.settings
        extra = (
            h for h, env in self.extra_headers.items() if is_set(getattr(settings, env.lower()))
        )
        return (key, *extra) if self.auth is not None else tuple(extra)

    async def send(self, draft: Draft, *, repeatable: bool = True) -> Any:
        """Send a write; the vendor's decoded answer. Raises Rejected (the vendor refused
        it as it stands), AnswerLost (no answer to a request that must not be repeated)
        and the usual SourceErrors."""
        body, _ = await self.client.send_json(
            draft.method,
            draft.path,
            params=draft.params or None,
            body=draft.body,
            what="edit",
            repeatable=repeatable,
        )
        return body

    async def vendor_fields(self, stream: RecordKind) -> list[VendorField]:
        """The fields the vendor's metadata lists for `stream`, custom ones included (the
        Mapping screen shows them beside what the cached payloads hold); [] when the vendor
        has no such list (`field_lists`). Network; raises SourceError."""
        listing = self.field_lists.get(stream)
        if listing is None:
            return []
        return await read_fields(self.client, listing, self.display_name, stream)

    def read_other(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        """A stream that is not a REST endpoint (a CSV report, the local database)."""
        raise NotImplementedError(f"{self.display_name} has no {stream}")

    def map_record(self, stream: RecordKind, raw: Any, synced_at: str) -> Record:
        return self._builders[stream](self.name, self.ctx.user_id, raw, synced_at)

    def record_id(self, stream: RecordKind, raw: Any) -> str | None:
        """The cache id a payload maps to, or None (for deletions: nothing else is needed)."""
        return self._builders[stream].record_id(self.name, raw)

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
