"""Brivity: the Core API's people (one array, no paging, no timestamps) and the transaction
report CSV as deals (the API exposes no transactions)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from crm_tui.models import RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.csv_import import CsvSpec, column, csv_pages, identity
from crm_tui.sources.kit import Capabilities, CsvExport, KeyHeader, RetryPolicy, Setting
from crm_tui.sources.mapping import to_tags
from crm_tui.sources.pagination import Page, SinglePage, Stream
from crm_tui.sources.writes import At, Create, Writes
from crm_tui.vocabulary import PAST

# A full pull of ~2,800 people takes about 30 s: the read timeout must be generous.
BRIVITY_READ_TIMEOUT = 90.0

TRANSACTION_REPORT = CsvSpec(
    label="Brivity transaction report",
    aliases={
        "id": ("transaction id", "id"),
        "address": ("address", "property address", "street address", "property"),
        "status": ("status", "transaction status"),
        "side": ("type", "side", "transaction type", "type side"),
        "mls": ("mls #", "mls", "mls number", "mls id"),
        "agent": ("agent", "agent name", "listing agent"),
        "list_price": ("list price", "listing price"),
        "sale_price": (
            "sale price",
            "close price",
            "sold price",
            "closing price",
            "sale close price",
        ),
        "gci": ("gci", "gross commission income"),
        "list_date": ("list date", "listing date"),
        "contract_date": ("contract date", "under contract date"),
        "close_date": ("close date", "closing date", "closed date"),
        "lead_source": ("source", "lead source"),
        "client": ("client", "client name", "clients"),
    },
    required=(("address",),),
    identity=("mls", "address", "side", "client", "close_date"),
)


def _tags_and_lead_type(raw: Mapping[str, Any]) -> tuple[str, ...]:
    tags = to_tags(raw.get("tags"))
    lead_type = to_tags([raw.get("lead_type")])
    return tags + tuple(t for t in lead_type if t not in tags)


# New leads only (no update endpoint is known): `POST /api/v2/leads`. Brivity merges no
# repeats, so a lead whose answer was lost is looked for before it is sent again.
WRITES = Writes(
    create=Create(
        "api/v2/leads",
        {
            "first_name": At("first_name"),
            "last_name": At("last_name"),
            "email": At("email"),
            "phone": At("phone"),
            "lead_source": At("source"),
            "message": At("description"),
        },
        fixed={"lead_type": "Buyer", "status": "New", "source": "crm-tui"},
    )
)


class BrivitySource(Source):
    name = "brivity"
    display_name = "Brivity"
    short_name = "BRV"
    settings = (
        Setting(
            "BRIVITY_API_BASE_URL",
            "Brivity Core API base URL (the API key goes in an Authorization: Token header).",
            default="https://api.brivity.com",
            kind="url",
        ),
        Setting(
            "BRIVITY_API_KEY",
            "Brivity account API key; enables the Brivity source.",
            secret=True,
            required=True,
        ),
        Setting(
            "BRIVITY_CLIENT_ID",
            "The integration guide's OAuth client id for Brivity (Brivity's real API uses"
            " only the key).",
            credential=True,
        ),
        Setting(
            "BRIVITY_CLIENT_SECRET",
            "The integration guide's OAuth client secret for Brivity (unused by the real"
            " Core API).",
            secret=True,
        ),
        Setting(
            "BRIVITY_TRANSACTIONS_CSV",
            "Path to Brivity's transaction report CSV, imported as deals on every sync.",
            kind="file",
        ),
    )
    record_url_at = ("brivity_contact_detail_url",)
    base_url_setting = "BRIVITY_API_BASE_URL"
    auth = KeyHeader("BRIVITY_API_KEY", template="Token token={key}")
    # A full pull of ~2,800 people takes about 30 s: a generous read timeout, one retry.
    min_read_timeout = BRIVITY_READ_TIMEOUT
    retry = RetryPolicy(attempts=2, total_seconds=240.0)
    writes = WRITES
    endpoints = {
        "contacts": Stream("api/people", SinglePage(probe_param="limit", stream=True), ("people",))
    }
    statuses = {"contacts": {"closed": PAST}}
    commission = column(TRANSACTION_REPORT, "gci")  # the transaction report's GCI column
    field_maps = {
        "contacts": {
            "remote_id": "id",
            "first_name": "first_name",
            "last_name": "last_name",
            "email": "email_address",
            "phone": "phone_number",
            "company": "company",
            "status": "status",
            "stage": "stage",
            "tags": _tags_and_lead_type,
            "street": "street_address",
            "city": "city",
            "state": "locality",
            "postal_code": "postal_code",
        },
        "deals": {
            "remote_id": identity(TRANSACTION_REPORT),
            "name": column(TRANSACTION_REPORT, "address"),
            "property_address": column(TRANSACTION_REPORT, "address"),
            "status": column(TRANSACTION_REPORT, "status"),
            "stage": column(TRANSACTION_REPORT, "status"),
            "amount": (
                column(TRANSACTION_REPORT, "sale_price"),
                column(TRANSACTION_REPORT, "list_price"),
            ),
            "close_date": column(TRANSACTION_REPORT, "close_date"),
        },
    }

    exports = (
        CsvExport(
            "brivity-transactions",
            "deals",
            TRANSACTION_REPORT,
            field_maps["deals"],
            help="Brivity's transaction report, as deals.",
        ),
    )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            contacts=True,
            deals=self.ctx.settings.brivity_transactions_csv is not None,
            file_import=True,
            write_back=True,
            notes=("deals come from the transaction report CSV: Brivity's API has none",),
        )

    def read_other(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        path = self.ctx.settings.brivity_transactions_csv
        assert stream == "deals" and path is not None
        return csv_pages([path], TRANSACTION_REPORT, probe=probe)
