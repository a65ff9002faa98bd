"""Lofty (formerly Chime): leads from `/v1.0/leads` (`limit`/`offset`, at most 100 a page,
the total under the metadata block), and transactions, as deals, from `/v2.0/transactions`
(`pageNum` from 0, `pageSize` up to 100, `totalCount`). The API key goes in an
`Authorization: token KEY` header.

A lead's e-mails and phones are plain strings, its tags objects with a `tagName`;
transaction dates are milliseconds since 1970. Rate limits: a 60-second window
(`X-RateLimit-*`). Sources: ../shared/docs/crm-apis.md and developer.lofty.com.
"""

from __future__ import annotations

from crm_tui.sources.base import Source
from crm_tui.sources.kit import KeyHeader, One, RateHeaders, Setting
from crm_tui.sources.mapping import epoch_ms, names_of
from crm_tui.sources.pagination import OffsetLimit, PageNumber, Stream
from crm_tui.sources.writes import At, FirstString, Update, Writes

# The reference's example calls the block `get_metadata`; `_metadata` is read too, in case.
_TOTALS = ("get_metadata.total", "_metadata.total", "metadata.total")


# `PUT /v1.0/leads/{id}` with only the changed fields; e-mails and phones are lists of
# strings, the first one shown.
WRITES = Writes(
    update={
        "contacts": Update(
            "PUT",
            "v1.0/leads/{id}",
            {
                "first_name": At("firstName"),
                "last_name": At("lastName"),
                "email": FirstString("emails"),
                "phone": FirstString("phones"),
                "stage": At("stage"),
                "street": At("streetAddress"),
                "city": At("city"),
                "state": At("state"),
                "postal_code": At("zipCode"),
            },
        )
    }
)


class LoftySource(Source):
    name = "lofty"
    display_name = "Lofty"
    short_name = "LOF"
    settings = (
        Setting(
            "LOFTY_API_KEY",
            "Lofty API key (Settings, Integrations, API; sent as `Authorization: token KEY`);"
            " enables Lofty.",
            secret=True,
            required=True,
        ),
        Setting(
            "LOFTY_API_BASE_URL", "Lofty API base URL.", default="https://api.lofty.com", kind="url"
        ),
    )
    base_url_setting = "LOFTY_API_BASE_URL"
    auth = KeyHeader("LOFTY_API_KEY", template="token {key}")
    rate_headers = RateHeaders(
        window=None, window_seconds=60.0, reset="x-ratelimit-reset", reset_is_epoch=True
    )
    endpoints = {
        "contacts": Stream("v1.0/leads", OffsetLimit(total_at=_TOTALS), ("leads",)),
        "deals": Stream(
            "v2.0/transactions",
            PageNumber("pageNum", "pageSize", first_page=0, total_at=("totalCount",)),
            ("pageData",),
        ),
    }
    single = {"contacts": One("v1.0/leads/{id}")}
    writes = WRITES
    field_maps = {
        "contacts": {
            "remote_id": "leadId",
            "first_name": "firstName",
            "last_name": "lastName",
            "email": "emails[0]",
            "phone": "phones[0]",
            "stage": "stage",
            "tags": names_of("tags", "tagName"),
            "street": "streetAddress",
            "city": "city",
            "state": "state",
            "postal_code": "zipCode",
            # typed string, format unstated: ISO text or epoch milliseconds, as deals' are
            "remote_created": epoch_ms("createTime"),
            "remote_updated": (epoch_ms("updateTime"), epoch_ms("createTime")),
        },
        "deals": {
            "remote_id": "transactionId",
            "name": "transactionName",
            "amount": "homePrice",
            "status": "transactionStatus",
            "stage": "transactionStatus",
            "close_date": (
                epoch_ms("closeDate", date_only=True),
                epoch_ms("expectedCloseDate", date_only=True),
            ),
            "contact_remote_id": "leadId",
            "remote_created": epoch_ms("created"),
            "remote_updated": epoch_ms("updated"),
        },
    }
