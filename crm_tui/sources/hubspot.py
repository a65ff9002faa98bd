"""HubSpot CRM v3: contacts and deals from `/crm/v3/objects/{contacts,deals}`, a private-app
token as a Bearer token, pages of 100 following the opaque `paging.next.after`.

Without `properties`, HubSpot returns only a handful of properties: every one the field maps
read is asked for. Deals carry their contact through `associations=contacts`. Archived
objects are not listed unless asked for, and are not records. Every property value is a
string (`"450000.00"`, ISO times). Rate limits come as `X-HubSpot-RateLimit-*`; a 429 may
carry no Retry-After (backoff then). Sources: ../shared/docs/crm-apis.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from crm_tui.models import RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.kit import Bearer, RateHeaders, Setting
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import CursorInBody, Stream, tail_cursor

#: Properties the field maps' functions read, which no path names, and a few kept for the
#: record's payload (owner, country).
ALSO_READ: dict[str, tuple[str, ...]] = {
    "contacts": ("country", "hs_object_id", "hubspot_owner_id"),
    "deals": (
        "dealstage",
        "hubspot_owner_id",
        "hs_deal_stage_probability",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_object_id",
        "pipeline",
    ),
}
_OUTCOMES = {"closedwon": "won", "closedlost": "lost"}  # the default pipeline's stage ids


def _archived(raw: Any) -> bool:
    return isinstance(raw, Mapping) and raw.get("archived") is True


def _objects(kind: str, **params: str) -> Stream:
    return Stream(
        f"crm/v3/objects/{kind}",
        CursorInBody("paging.next.after", "after", peek=tail_cursor("paging", "after")),
        ("results",),
        params=params,
        skip=_archived,
    )


def properties_read(kind: str, field_map: FieldMap) -> list[str]:
    """Every property a field map reads (`properties.x`, alone or among fallbacks), and
    those its functions read: HubSpot sends only the properties asked for."""
    names = set(ALSO_READ.get(kind, ()))
    for spec in field_map.values():
        for path in spec if isinstance(spec, tuple) else (spec,):
            if isinstance(path, str) and path.startswith("properties."):
                names.add(path.split(".")[1].split("[")[0])
    return sorted(names)


def _deal_status(raw: Mapping[str, Any]) -> str | None:
    """won, lost or open: from HubSpot's calculated `hs_is_closed_won` / `hs_is_closed`,
    which hold in every pipeline (a custom pipeline's stage ids are numbers), else from the
    default pipeline's stage ids."""
    properties = raw.get("properties") or {}
    won, closed = properties.get("hs_is_closed_won"), properties.get("hs_is_closed")
    if won == "true":
        return "won"
    if closed in ("true", "false"):
        return "lost" if closed == "true" else "open"
    stage = properties.get("dealstage")
    return _OUTCOMES.get(stage, "open") if isinstance(stage, str) else None


def _probability(raw: Mapping[str, Any]) -> Any:
    """HubSpot's stage probability is a fraction ("0.2"); crm-tui's is a percentage."""
    value = (raw.get("properties") or {}).get("hs_deal_stage_probability")
    try:
        return round(float(value) * 100) if value not in (None, "") else None
    except (TypeError, ValueError):
        return value  # not a number: the usual coercion says why


def _property(name: str) -> str:
    return f"properties.{name}"


class HubSpotSource(Source):
    name = "hubspot"
    display_name = "HubSpot"
    short_name = "HS"
    settings = (
        Setting(
            "HUBSPOT_ACCESS_TOKEN",
            "HubSpot private-app access token (sent as a Bearer token); enables HubSpot.",
            secret=True,
            required=True,
        ),
        Setting(
            "HUBSPOT_API_BASE_URL",
            "HubSpot API base URL.",
            default="https://api.hubapi.com",
            kind="url",
        ),
    )
    base_url_setting = "HUBSPOT_API_BASE_URL"
    auth = Bearer("HUBSPOT_ACCESS_TOKEN")
    rate_headers = RateHeaders(
        limit="x-hubspot-ratelimit-max",
        remaining="x-hubspot-ratelimit-remaining",
        window="x-hubspot-ratelimit-interval-milliseconds",
        window_unit=0.001,
        daily_remaining="x-hubspot-ratelimit-daily-remaining",
    )
    endpoints = {
        "contacts": _objects("contacts"),
        "deals": _objects("deals", associations="contacts"),
    }
    field_maps = {
        "contacts": {
            "remote_id": "id",
            "first_name": _property("firstname"),
            "last_name": _property("lastname"),
            "email": _property("email"),
            "phone": (_property("phone"), _property("mobilephone")),
            "company": _property("company"),
            "status": _property("hs_lead_status"),
            "stage": _property("lifecyclestage"),
            "street": _property("address"),
            "city": _property("city"),
            "state": _property("state"),
            "postal_code": _property("zip"),
            "remote_created": ("createdAt", _property("createdate")),
            "remote_updated": ("updatedAt", _property("lastmodifieddate")),
        },
        "deals": {
            "remote_id": "id",
            "name": _property("dealname"),
            "amount": _property("amount"),
            "currency": _property("deal_currency_code"),
            "stage": _property("dealstage"),
            "status": _deal_status,
            "probability": _probability,
            "close_date": _property("closedate"),
            "contact_remote_id": "associations.contacts.results[0].id",
            "remote_created": ("createdAt", _property("createdate")),
            "remote_updated": ("updatedAt", _property("hs_lastmodifieddate")),
        },
    }

    def endpoint(self, stream: RecordKind) -> Stream | None:
        found = self.endpoints.get(stream)
        if found is None:
            return None
        properties = ",".join(properties_read(stream, self.maps[stream]))
        return replace(found, params={**found.params, "properties": properties})
