"""TopProducer: no public API. Its CSV exports (contacts; closings as deals) are imported
from TOPPRODUCER_IMPORT_DIR. Where TOPPRODUCER_API_BASE_URL is set, the integration guide's
HTTP contract is used instead: OAuth2 client credentials and `$top`/`$skip` pages of 100."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from crm_tui.models import CONTACT_EDITABLE, RecordKind
from crm_tui.sources.base import Capabilities, Source, SourceContext
from crm_tui.sources.csv_import import CsvSpec, column, csv_pages, identity, normalise_header
from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.http import HttpClient, OAuthClientCredentials
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import OffsetPaginator, Page

CONTACTS_EXPORT = CsvSpec(
    label="TopProducer contacts export",
    aliases={
        "id": ("contact id", "id", "record id"),
        "first_name": ("first name", "firstname", "first"),
        "last_name": ("last name", "lastname", "last", "surname"),
        "email": ("email", "e mail", "email address", "e mail address", "primary email", "email 1"),
        "phone": (
            "phone",
            "mobile phone",
            "cell phone",
            "cell",
            "mobile",
            "home phone",
            "primary phone",
            "phone 1",
            "work phone",
        ),
        "company": ("company", "company name", "organization"),
        "status": ("status", "contact status", "lead status"),
        "stage": ("stage", "lead stage"),
        "tags": ("category", "categories", "tags", "groups"),
        "street": ("address", "street", "street address", "address 1", "home address"),
        "city": ("city", "town"),
        "state": ("state", "province", "state province"),
        "postal_code": ("zip", "zip code", "postal code", "postcode"),
        "created": ("date created", "created", "created date"),
        "updated": ("last modified", "modified", "updated", "date modified"),
    },
    required=(("first_name", "last_name"),),
    identity=("email", "first_name", "last_name", "phone"),
)

CLOSINGS_EXPORT = CsvSpec(
    label="TopProducer closings export",
    aliases={
        "id": ("transaction id", "closing id", "id"),
        "address": ("property address", "address", "property"),
        "amount": (
            "sale price",
            "sales price",
            "sold price",
            "close price",
            "closing price",
            "price",
        ),
        "status": ("status", "closing status"),
        "close_date": ("close date", "closing date", "closed date", "sold date"),
        "client": ("client", "client name", "contact", "buyer", "seller"),
        "mls": ("mls #", "mls", "mls number"),
        "side": ("side", "type", "transaction type"),
    },
    required=(("address",),),
    identity=("mls", "address", "close_date", "client"),
)

API_MAPS: dict[RecordKind, FieldMap] = {
    "contacts": {
        "remote_id": "id",
        "first_name": ("firstName", "first_name"),
        "last_name": ("lastName", "last_name"),
        "email": "email",
        "phone": "phone",
        "company": "company",
        "status": "status",
        "street": ("address", "street"),
        "city": "city",
        "state": "state",
        "postal_code": ("zip", "postalCode"),
        "remote_created": ("createdAt", "created"),
        "remote_updated": ("updatedAt", "updated"),
    },
    "deals": {
        "remote_id": "id",
        "name": ("propertyAddress", "property_address"),
        "property_address": ("propertyAddress", "property_address"),
        "amount": ("salesPrice", "sales_price"),
        "status": "status",
        "stage": "status",
        "close_date": ("closeDate", "close_date"),
        "contact_remote_id": ("contactId", "contact_id"),
    },
}

CSV_MAPS: dict[RecordKind, FieldMap] = {
    "contacts": {
        "remote_id": identity(CONTACTS_EXPORT),
        **{
            name: column(CONTACTS_EXPORT, name)
            for name in CONTACT_EDITABLE
            if name in CONTACTS_EXPORT.aliases
        },
        "remote_created": column(CONTACTS_EXPORT, "created"),
        "remote_updated": column(CONTACTS_EXPORT, "updated"),
    },
    "deals": {
        "remote_id": identity(CLOSINGS_EXPORT),
        "name": column(CLOSINGS_EXPORT, "address"),
        "property_address": column(CLOSINGS_EXPORT, "address"),
        "amount": column(CLOSINGS_EXPORT, "amount"),
        "status": column(CLOSINGS_EXPORT, "status"),
        "stage": column(CLOSINGS_EXPORT, "status"),
        "close_date": column(CLOSINGS_EXPORT, "close_date"),
    },
}

_DEAL_FILE_WORDS = ("closing", "closed", "transaction", "sold", "deal")


def classify_export(path: Path) -> RecordKind:
    """contacts or deals, from the file name (TopProducer names its exports plainly)."""
    name = normalise_header(path.stem)
    return "deals" if any(word in name for word in _DEAL_FILE_WORDS) else "contacts"


class TopProducerSource(Source):
    name = "topproducer"
    display_name = "TopProducer"

    def __init__(self, ctx: SourceContext) -> None:
        settings = ctx.settings
        self.api_mode = bool(settings.topproducer_api_base_url)
        self.field_maps = API_MAPS if self.api_mode else CSV_MAPS
        super().__init__(ctx)
        self.client: HttpClient | None = None
        if self.api_mode:
            base = settings.topproducer_api_base_url or ""
            secret = settings.topproducer_client_secret
            key = settings.topproducer_api_key
            auth = OAuthClientCredentials(
                f"{base}/auth/oauth/token",
                settings.topproducer_client_id or "",
                secret.get_secret_value() if secret else "",
                display_name=self.display_name,
                extra_headers={"X-API-Key": key.get_secret_value()} if key else None,
                timeout=settings.crm_http_timeout_seconds,
            )
            self.client = HttpClient(
                self.display_name,
                base,
                auth,
                read_timeout=settings.crm_http_timeout_seconds,
                masker=ctx.masker,
                transport=ctx.transport,
            )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True, file_import=not self.api_mode)

    def export_files(self, stream: RecordKind) -> list[Path]:
        folder = self.ctx.settings.topproducer_import_dir
        if folder is None or not folder.is_dir():
            raise ImportFileError(
                "Cannot import TopProducer exports",
                f"TOPPRODUCER_IMPORT_DIR is not a folder: {folder}",
            )
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv")
        return [p for p in files if classify_export(p) == stream]

    def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        if self.client is None:
            spec = CONTACTS_EXPORT if stream == "contacts" else CLOSINGS_EXPORT
            return csv_pages(self.export_files(stream), spec, probe=probe)
        path = "contacts" if stream == "contacts" else "transactions"
        paginator = OffsetPaginator(("value", path, "data", "items"), page_size=1 if probe else 100)
        return paginator.pages(self.client, path, stream)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
