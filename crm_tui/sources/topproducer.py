"""TopProducer: no public API. Its CSV exports (contacts; closings as deals) are imported
from TOPPRODUCER_IMPORT_DIR. Where TOPPRODUCER_API_BASE_URL is set, the integration guide's
HTTP contract is used instead: OAuth2 client credentials and `$top`/`$skip` pages of 100."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from crm_tui.models import CONTACT_EDITABLE, RecordKind
from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.csv_import import CsvSpec, classify_export, column, csv_pages, identity
from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.kit import Capabilities, ClientCredentials, CsvExport, Setting, is_set
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import OffsetLimit, Page, Stream

if TYPE_CHECKING:
    from crm_tui.config import Settings

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

_API_RECORDS = ("value", "contacts", "data", "items")
_API_PAGES = OffsetLimit("$skip", "$top", total_at=("@odata.count", "total", "count"))


class TopProducerSource(Source):
    """Two separate ways in: the exports in a folder (`read_exports`), or the guide's HTTP
    contract (`read`, the declared endpoints) where TOPPRODUCER_API_BASE_URL is set."""

    name = "topproducer"
    display_name = "TopProducer"
    short_name = "TP"
    status_fields = {"contacts": ("status", "stage")}  # its status holds the pipeline
    settings = (
        Setting(
            "TOPPRODUCER_API_BASE_URL",
            "TopProducer publishes no API. Set this only for the integration guide's OAuth"
            " contract.",
            kind="url",
        ),
        Setting(
            "TOPPRODUCER_API_KEY",
            "API key sent as X-API-Key with every request in API mode.",
            secret=True,
        ),
        Setting("TOPPRODUCER_CLIENT_ID", "OAuth2 client id (API mode).", credential=True),
        Setting("TOPPRODUCER_CLIENT_SECRET", "OAuth2 client secret (API mode).", secret=True),
        Setting(
            "TOPPRODUCER_IMPORT_DIR",
            "Folder holding TopProducer CSV exports (contacts*.csv, closings*.csv); enables"
            " CSV mode.",
            kind="folder",
        ),
    )
    base_url_setting = "TOPPRODUCER_API_BASE_URL"
    auth = ClientCredentials(
        "auth/oauth/token", "TOPPRODUCER_CLIENT_ID", "TOPPRODUCER_CLIENT_SECRET"
    )
    extra_headers = {"X-API-Key": "TOPPRODUCER_API_KEY"}
    endpoints = {
        "contacts": Stream("contacts", _API_PAGES, _API_RECORDS),
        "deals": Stream("transactions", _API_PAGES, _API_RECORDS),
    }
    exports = (
        CsvExport(
            "topproducer",
            "contacts",
            CONTACTS_EXPORT,
            CSV_MAPS["contacts"],
            help="TopProducer contacts and closings exports (closings: the file name says so).",
        ),
        CsvExport("topproducer", "deals", CLOSINGS_EXPORT, CSV_MAPS["deals"]),
    )

    @classmethod
    def missing(cls, settings: Settings) -> tuple[str, ...]:
        if settings.topproducer_api_base_url:
            return super().missing(settings) + tuple(
                env
                for env in ("TOPPRODUCER_CLIENT_ID", "TOPPRODUCER_CLIENT_SECRET")
                if not is_set(getattr(settings, env.lower()))
            )
        if settings.topproducer_import_dir is not None:
            return ()
        return ("TOPPRODUCER_IMPORT_DIR or TOPPRODUCER_API_BASE_URL",)

    @classmethod
    def mode(cls, settings: Settings) -> str:
        return "api" if settings.topproducer_api_base_url else "csv"

    def __init__(self, ctx: SourceContext) -> None:
        self.api_mode = self.mode(ctx.settings) == "api"
        self.field_maps = API_MAPS if self.api_mode else CSV_MAPS
        super().__init__(ctx)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True, file_import=not self.api_mode)

    def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        if self.api_mode:
            return super().read(stream, probe=probe)
        return self.read_exports(stream, probe=probe)

    def read_exports(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        spec = CONTACTS_EXPORT if stream == "contacts" else CLOSINGS_EXPORT
        return csv_pages(self.export_files(stream), spec, probe=probe)

    def export_files(self, stream: RecordKind) -> list[Path]:
        folder = self.ctx.settings.topproducer_import_dir
        if folder is None or not folder.is_dir():
            raise ImportFileError(
                "Cannot import TopProducer exports",
                f"TOPPRODUCER_IMPORT_DIR is not a folder: {folder}",
            )
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv")
        return [p for p in files if classify_export(p) == stream]
