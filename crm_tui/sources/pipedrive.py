"""Pipedrive API v2: persons and deals from `/api/v2/{persons,deals}`, the API token in the
`x-api-token` header, pages of up to 500 following `additional_data.next_cursor` (null on
the last page). The v1 endpoints are out of support and not used.

v2 items carry related objects as ids only: a deal's stage is `stage_id`, a person's
organisation `org_id`. Deleted records are not records. Burst limits are counted per
2-second window (`x-ratelimit-*`). Both streams are read incrementally with `updated_since`;
deleted deals are listed with `status=deleted` (for 30 days), deleted persons are learnt at
the next full reconcile. Sources: ../shared/docs/crm-apis.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crm_tui.sources.base import Source
from crm_tui.sources.kit import Changes, KeyHeader, One, RateHeaders, Setting, VendorField
from crm_tui.sources.mapping import primary
from crm_tui.sources.pagination import CursorInBody, Stream, tail_cursor
from crm_tui.sources.vendor_fields import FieldList, path_step, text
from crm_tui.sources.writes import At, CustomFields, NamePart, PrimaryItem, Update, Writes
from crm_tui.vocabulary import ACTIVE, CLOSED, LOST

#: v2 lists by update time, oldest first, when asked (`updated_since` alone keeps id order).
_BY_UPDATE = {"sort_by": "update_time", "sort_direction": "asc"}


def _deleted(raw: Any) -> bool:
    return isinstance(raw, Mapping) and (
        raw.get("is_deleted") is True or raw.get("status") == "deleted"
    )


def _items(path: str) -> Stream:
    cursor = CursorInBody(
        "additional_data.next_cursor",
        "cursor",
        page_size=500,
        peek=tail_cursor("additional_data", "next_cursor"),
    )
    return Stream(path, cursor, ("data",), skip=_deleted)


# -- field metadata: personFields, dealFields ----------------------------------------------------

_HASH = re.compile(r"[0-9a-f]{40}")


def _custom_field(item: Mapping[str, Any]) -> VendorField | None:
    """A custom field of the Fields API: v2 `{field_code, field_name, field_type,
    is_custom_field}`, v1 `{key, name, field_type, edit_flag}`. v2 records hold custom
    values under `custom_fields.<hash>`; standard fields show in the payloads already (and
    v1's keys are not v2's), so only custom ones are listed."""
    code = text(item, "field_code", "key")
    custom = item.get("is_custom_field")
    if custom is False or (custom is None and not _HASH.fullmatch(code)) or not path_step(code):
        return None
    label = text(item, "field_name", "name", required=False) or code
    return VendorField(f"custom_fields.{code}", label, text(item, "field_type"))


def _fields(name: str) -> FieldList:
    """v2 `GET /api/v2/{name}` (cursor pages), else v1 `GET /api/v1/{name}` (`start` pages;
    still served for field metadata) where the v2 one answers 404."""
    v2 = CursorInBody("additional_data.next_cursor", "cursor", page_size=500)
    v1 = CursorInBody("additional_data.pagination.next_start", "start", page_size=500)
    return FieldList(
        Stream(name, v2, ("data",)),
        _custom_field,
        fallback=FieldList(Stream(f"../v1/{name}", v1, ("data",)), _custom_field),
    )


def _street(raw: Mapping[str, Any]) -> str | None:
    address = raw.get("postal_address")
    if not isinstance(address, Mapping):
        return None
    parts = (address.get("street_number"), address.get("route"))
    street = " ".join(str(p) for p in parts if p)
    return street or None


# PATCH of persons and deals (the official SDK's UpdatePersonRequest, UpdateDealRequest): a
# person's name is one field, e-mails and phones lists of `{value, primary, label}` sent whole.
# v2 takes custom values in a `custom_fields` object keyed by the field's hash (a number
# as a JSON number: v2 no longer reads numbers from text); a monetary field's object is not.
_CUSTOM_FIELDS = CustomFields(r"custom_fields\.[0-9a-f]{40}")
WRITES = Writes(
    update={
        "contacts": Update(
            "PATCH",
            "persons/{id}",
            {
                "first_name": NamePart("first"),
                "last_name": NamePart("last"),
                "email": PrimaryItem("emails", "primary", True),
                "phone": PrimaryItem("phones", "primary", True),
            },
            at=("data",),
            custom=_CUSTOM_FIELDS,
        ),
        "deals": Update(
            "PATCH",
            "deals/{id}",
            {
                "name": At("title"),
                "amount": At("value", "number"),
                "currency": At("currency"),
                "stage": At("stage_id", "integer"),
                "status": At("status"),
                "probability": At("probability", "integer"),
                "close_date": At("expected_close_date"),
            },
            at=("data",),
            custom=_CUSTOM_FIELDS,
        ),
    }
)


class PipedriveSource(Source):
    name = "pipedrive"
    display_name = "Pipedrive"
    short_name = "PD"
    settings = (
        Setting(
            "PIPEDRIVE_API_TOKEN",
            "Pipedrive API token (sent as x-api-token); enables Pipedrive.",
            secret=True,
            required=True,
        ),
        Setting(
            "PIPEDRIVE_API_BASE_URL",
            "Pipedrive API base URL, or your company domain (https://COMPANY.pipedrive.com);"
            " /api/v2 is added when missing.",
            default="https://api.pipedrive.com/api/v2",
            kind="url",
        ),
    )
    record_url = "https://app.pipedrive.com/person/{remote_id}"
    deal_url = "https://app.pipedrive.com/deal/{remote_id}"
    base_url_setting = "PIPEDRIVE_API_BASE_URL"
    base_path = "api/v2"
    auth = KeyHeader("PIPEDRIVE_API_TOKEN", header="x-api-token")
    rate_headers = RateHeaders(window=None, window_seconds=2.0, reset="x-ratelimit-reset")
    endpoints = {"contacts": _items("persons"), "deals": _items("deals")}
    changes = {
        "contacts": Changes("updated_since", _BY_UPDATE),
        "deals": Changes(
            "updated_since",
            _BY_UPDATE,
            deletions=({"status": "deleted"},),
            deletes_by="status=deleted (30 days)",
        ),
    }
    single = {"contacts": One("persons/{id}", ("data",)), "deals": One("deals/{id}", ("data",))}
    field_lists = {"contacts": _fields("personFields"), "deals": _fields("dealFields")}
    writes = WRITES
    statuses = {"deals": {"open": ACTIVE, "won": CLOSED, "lost": LOST}}
    field_maps = {
        "contacts": {
            "remote_id": "id",
            "first_name": "first_name",
            "last_name": ("last_name", "name"),
            "email": primary("emails", "primary"),
            "phone": primary("phones", "primary"),
            "street": _street,
            "city": "postal_address.locality",
            "state": "postal_address.admin_area_level_1",
            "postal_code": "postal_address.postal_code",
            "remote_created": "add_time",
            "remote_updated": "update_time",
        },
        "deals": {
            "remote_id": "id",
            "name": "title",
            "amount": "value",
            "currency": "currency",
            "status": "status",
            "stage": "stage_id",
            "probability": "probability",
            "close_date": "expected_close_date",
            "contact_remote_id": "person_id",
            "remote_created": "add_time",
            "remote_updated": "update_time",
        },
    }
