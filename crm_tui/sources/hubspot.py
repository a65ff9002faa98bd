"""HubSpot CRM v3: contacts and deals from `/crm/v3/objects/{contacts,deals}`, a private-app
token as a Bearer token, pages of 100 following the opaque `paging.next.after`.

Without `properties`, HubSpot returns only a handful of properties: every one the field maps
read is asked for. Deals carry their contact through `associations=contacts`. Archived
objects are not listed unless asked for, and are not records. Every property value is a
string (`"450000.00"`, ISO times). Rate limits come as `X-HubSpot-RateLimit-*`; a 429 may
carry no Retry-After (backoff then). Changes are read through the search endpoint on the
last-modified property, archived records listed with `archived=true` are deletions.
Sources: ../shared/docs/crm-apis.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from crm_tui.models import RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.errors import PaginationError
from crm_tui.sources.kit import (
    Bearer,
    Changes,
    Named,
    One,
    RateHeaders,
    Setting,
    Signed,
    VendorField,
    Webhooks,
)
from crm_tui.sources.mapping import FieldMap, get_path
from crm_tui.sources.pagination import (
    CursorInBody,
    Page,
    SinglePage,
    Stream,
    extract_records,
    read_pages,
    tail_cursor,
)
from crm_tui.sources.vendor_fields import FieldList, path_step, text
from crm_tui.sources.writes import At, Choices, CustomFields, Update, Writes
from crm_tui.vocabulary import ACTIVE, CLOSED, CONTRACT, LEAD, LOST, NURTURE, PAST, PROSPECT
from crm_tui.webhooks.events import CHANGED, DELETED, Action, remote_id
from crm_tui.webhooks.verify import BAD_SIGNATURE, UNSIGNED, freshness, hmac_base64, same

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


def _property_field(item: Mapping[str, Any]) -> VendorField | None:
    """A `Property` of `GET /crm/v3/properties/{objectType}` (`name, label, type,
    fieldType, hubspotDefined, archived, ...`): every value sits in a record's
    `properties.<name>` (when asked for by name)."""
    name = path_step(text(item, "name"))
    if name is None or item.get("archived") is True:
        return None
    return VendorField(
        _property(name), text(item, "label", required=False) or name, text(item, "type")
    )


def _property_list(kind: str) -> FieldList:
    """`{results: [Property]}`, one response (the endpoint does not page)."""
    return FieldList(
        Stream(f"crm/v3/properties/{kind}", SinglePage(), ("results",)), _property_field
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


def _write(name: str) -> At:
    """A property set by PATCH: every value a string, "" clears it."""
    return At(_property(name), cleared="")


def _options(kind: str, name: str) -> Choices:
    """An enumeration property's options (`GET /crm/v3/properties/{kind}/{name}`): a person
    may type the label; records hold, and PATCH takes, the internal value."""
    return Choices(f"crm/v3/properties/{kind}/{name}", ("options",), "label", "value", "value")


# PATCH of properties only; read-only or unknown properties are an error, so only the ones
# the field maps read are offered.
# A custom column read from a property is written to it: every value as text, "" clears
# (HubSpot refuses a read-only or unknown property, and the outbox says so).
_PROPERTIES = CustomFields(r"properties\.[A-Za-z0-9_]+", numbers="text", cleared="")
WRITES = Writes(
    update={
        "contacts": Update(
            "PATCH",
            "crm/v3/objects/contacts/{id}",
            {
                "first_name": _write("firstname"),
                "last_name": _write("lastname"),
                "email": _write("email"),
                "phone": _write("phone"),
                "company": _write("company"),
                "status": _write("hs_lead_status"),
                "stage": _write("lifecyclestage"),
                "street": _write("address"),
                "city": _write("city"),
                "state": _write("state"),
                "postal_code": _write("zip"),
            },
            choices={
                "stage": _options("contacts", "lifecyclestage"),
                "status": _options("contacts", "hs_lead_status"),
            },
            answers_whole=False,
            custom=_PROPERTIES,
        ),
        "deals": Update(
            "PATCH",
            "crm/v3/objects/deals/{id}",
            {
                "name": _write("dealname"),
                "amount": _write("amount"),
                "stage": _write("dealstage"),
                "close_date": _write("closedate"),
            },
            choices={"stage": _options("deals", "dealstage")},
            answers_whole=False,
            custom=_PROPERTIES,
        ),
    }
)

#: One search returns at most this many results in all, in pages of at most SEARCH_PAGE.
SEARCH_CAP = 10_000
SEARCH_PAGE = 200


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The body of a search for records modified at or after a moment, oldest first."""

    modified: str  # lastmodifieddate (contacts), hs_lastmodifieddate (deals)
    properties: list[str]

    def body(self, floor_ms: int, after: str | None) -> dict[str, Any]:
        condition = {"propertyName": self.modified, "operator": "GTE", "value": str(floor_ms)}
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [condition]}],
            "sorts": [{"propertyName": self.modified, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": SEARCH_PAGE,
        }
        if after is not None:
            body["after"] = after
        return body


def _epoch_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _modified_ms(raw: Any, name: str) -> int | None:
    """A search result's modification time in epoch ms (HubSpot sends an ISO time)."""
    value = get_path(raw, f"properties.{name}") if isinstance(raw, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return int(value) if value.isdigit() else _epoch_ms(value)
    except ValueError:
        return None


def _linked_contacts(body: Any) -> dict[str, list[str]]:
    """deal id -> its contacts' ids, from a v4 batch read (`toObjectId` is a number in older
    specs, a string in newer ones; ids without associations come back as errors)."""
    linked: dict[str, list[str]] = {}
    results = body.get("results") if isinstance(body, Mapping) else None
    for result in results if isinstance(results, list) else ():
        if not isinstance(result, Mapping):
            continue
        deal = get_path(result, "from.id")
        targets = result.get("to")
        if deal is None or not isinstance(targets, list):
            continue
        linked[str(deal)] = [
            str(t["toObjectId"]) for t in targets if isinstance(t, Mapping) and "toObjectId" in t
        ]
    return linked


def _archived_since(raw: Any, since: str) -> bool:
    """Archived at or after `since`, or at a time it does not say (then it counts)."""
    when = raw.get("archivedAt") if isinstance(raw, Mapping) else None
    if not isinstance(when, str):
        return True
    try:
        return _epoch_ms(when) >= _epoch_ms(since)
    except ValueError:
        return True


def _next_after(body: Any) -> str | None:
    after = get_path(body, "paging.next.after") if isinstance(body, Mapping) else None
    return str(after) if isinstance(after, str | int) and str(after) else None


def _total(body: Any) -> int | None:
    total = body.get("total") if isinstance(body, Mapping) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


# -- webhooks: a signed array of events, each naming one object ------------------------------

# HubSpot signs the URI with these escapes decoded (its validation guide's table); any
# other escape stays as it was sent.
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_OBJECTS: dict[str, RecordKind] = {"contact": "contacts", "deal": "deals"}
# The generic `object.*` subscriptions name the type by id: 0-1 contacts, 0-3 deals.
_TYPE_IDS: dict[str, RecordKind] = {"0-1": "contacts", "0-3": "deals"}
_ACTIONS: dict[str, Action] = {
    "creation": CHANGED,
    "propertyChange": CHANGED,
    "restore": CHANGED,
    "merge": CHANGED,
    "deletion": DELETED,
    "privacyDeletion": DELETED,
}


def signed_uri(uri: str) -> str:
    """`uri` as HubSpot signs it: the escapes of its table decoded, case-insensitively."""
    out = []
    i = 0
    while i < len(uri):
        chunk = uri[i : i + 3].upper()
        if uri[i] == "%" and chunk in _DECODED:
            out.append(_DECODED[chunk])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def signature(method: str, uri: str, body: bytes, timestamp: str, secret: str) -> str:
    """`X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    message = method.upper().encode() + signed_uri(uri).encode() + body + timestamp.encode()
    return hmac_base64(secret, message)


def check_signature(request: Signed, secret: str, now_ms: int | None = None) -> str | None:
    """Genuine and no more than 5 minutes from our clock. The signature is checked before
    the clock, so a forged request learns nothing about our time."""
    given = request.headers.get("x-hubspot-signature-v3")
    stamp = request.headers.get("x-hubspot-request-timestamp")
    if not given or not stamp:
        return UNSIGNED
    if not same(signature(request.method, request.uri, request.body, stamp, secret), given):
        return BAD_SIGNATURE
    return freshness(stamp, now_ms)


def _problem(payload: Any) -> str | None:
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        return "expected a JSON array of event objects"
    return None


def _event(payload: Any) -> str:
    """A batch's distinct subscription types."""
    kinds = (item.get("subscriptionType") for item in payload if isinstance(item, dict))
    return ",".join(dict.fromkeys(str(k) for k in kinds if k is not None))


def _named_by(item: dict[str, Any]) -> Iterator[Named]:
    kind, _, verb = str(item.get("subscriptionType", "")).partition(".")
    stream = (
        _TYPE_IDS.get(str(item.get("objectTypeId"))) if kind == "object" else _OBJECTS.get(kind)
    )
    action = _ACTIONS.get(verb)
    if stream is None or action is None:
        return
    kept: list[str] = []
    for key in ("objectId", "primaryObjectId", "newObjectId") if verb == "merge" else ("objectId",):
        rid = remote_id(item.get(key))
        if rid is not None and rid not in kept:
            kept.append(rid)
            yield stream, rid, action
    merged = item.get("mergedObjectIds") if verb == "merge" else None
    for value in merged if isinstance(merged, list) else ():
        rid = remote_id(value)
        if rid is not None and rid not in kept:  # the survivor is never deleted
            yield stream, rid, DELETED


def named_records(payload: Any) -> list[Named]:
    """An array of `{eventId, subscriptionType, objectId, occurredAt, ...}`: the records it
    names, in the order the events happened (HubSpot batches them in no promised order)."""
    if not isinstance(payload, list):
        return []
    items = [item for item in payload if isinstance(item, dict)]

    def when(item: dict[str, Any]) -> float:
        at = item.get("occurredAt")
        return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0

    return [named for item in sorted(items, key=when) for named in _named_by(item)]


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
        Setting(
            "HUBSPOT_CLIENT_SECRET",
            "The HubSpot app's client secret: verifies the signature of its webhooks.",
            secret=True,
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
    field_lists = {"contacts": _property_list("contacts"), "deals": _property_list("deals")}
    statuses = {
        "contacts": {
            # lifecyclestage
            "subscriber": LEAD,
            "lead": LEAD,
            "marketingqualifiedlead": LEAD,
            "salesqualifiedlead": PROSPECT,
            "opportunity": PROSPECT,
            "customer": PAST,
            "evangelist": PAST,
            # hs_lead_status
            "open": LEAD,
            "in_progress": PROSPECT,
            "open_deal": ACTIVE,
            "attempted_to_contact": LEAD,
            "connected": PROSPECT,
            "bad_timing": NURTURE,
        },
        "deals": {
            # the default pipeline's dealstage ids, then the status the connector derives
            "appointmentscheduled": ACTIVE,
            "qualifiedtobuy": ACTIVE,
            "presentationscheduled": ACTIVE,
            "decisionmakerboughtin": ACTIVE,
            "contractsent": CONTRACT,
            "closedwon": CLOSED,
            "closedlost": LOST,
            "open": ACTIVE,
        },
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

    changes = {
        "contacts": Changes("lastmodifieddate", deletes_by="archived=true and webhooks"),
        "deals": Changes("hs_lastmodifieddate", deletes_by="archived=true and webhooks"),
    }
    single = {kind: One(f"crm/v3/objects/{kind}/{{id}}") for kind in ("contacts", "deals")}
    webhooks = Webhooks("HUBSPOT_CLIENT_SECRET", check_signature, _problem, _event, named_records)
    writes = WRITES

    def read_changes(self, stream: RecordKind, since: str) -> AsyncIterator[Page]:
        endpoint, changes = self.endpoint(stream), self.changes.get(stream)
        if endpoint is None or changes is None:
            return super().read_changes(stream, since)
        return self._searched(endpoint, changes.since, stream, since)

    async def _searched(
        self, endpoint: Stream, modified: str, stream: RecordKind, since: str
    ) -> AsyncIterator[Page]:
        """The search endpoint, oldest change first, from `since` on; then the archived.

        Each page is a new query from the latest change the last one held, not the next
        offset of one query: a record changed meanwhile moves to the end of the order, and
        paging by offset would skip the record that slid into its place. (It also keeps
        clear of the 10,000 results one query may return.) The records at that very time
        come twice; the sync keeps the last. Only a page all of one moment pages on by
        offset within it."""
        path = f"crm/v3/objects/{stream}/search"
        floor, after = _epoch_ms(since), None
        query = SearchQuery(modified, properties_read(stream, self.maps[stream]))
        while True:
            body, _ = await self.client.send_json("POST", path, body=query.body(floor, after))
            records = extract_records(body, ("results",), stream)
            if stream == "deals":  # a search carries no associations: asked for apart
                await self._associate(records)
            kept = [r for r in records if not _archived(r)]
            yield Page(kept, _total(body), [r for r in records if _archived(r)])
            following = _next_after(body)
            if following is None:
                break
            latest = max((_modified_ms(r, modified) or 0 for r in records), default=0)
            if latest > floor:
                floor, after = latest, None
            elif following.isdigit() and int(following) + SEARCH_PAGE <= SEARCH_CAP:
                after = following  # a page all of one moment: on within it
            else:
                raise PaginationError(
                    f"Failed to fetch {stream}",
                    f"more than {SEARCH_CAP} changes at one moment; run a full sync",
                )
        # The archived listing has no time filter: only what was archived since counts
        # (the rest was removed by an earlier sync).
        archived = replace(endpoint, params={**endpoint.params, "archived": "true"})
        async for page in read_pages(self.client, archived, stream):
            recent = [r for r in page.gone + page.records if _archived_since(r, since)]
            yield Page([], page.total, recent)

    async def _associate(self, deals: list[Any]) -> None:
        """Each deal's contacts, from the v4 associations batch read, put where the listing
        puts them (`associations.contacts.results`), so a deal read from a search maps as
        one read from the listing does."""
        ids = [str(d["id"]) for d in deals if isinstance(d, dict) and "id" in d]
        if not ids:
            return
        body, _ = await self.client.send_json(
            "POST",
            "crm/v4/associations/deals/contacts/batch/read",
            body={"inputs": [{"id": i} for i in ids]},
            what="deals",
        )
        linked = _linked_contacts(body)
        for deal in deals:
            contacts = linked.get(str(deal.get("id"))) if isinstance(deal, dict) else None
            if contacts:
                results = [{"id": c, "type": "deal_to_contact"} for c in contacts]
                deal["associations"] = {"contacts": {"results": results}}

    def endpoint(self, stream: RecordKind) -> Stream | None:
        found = self.endpoints.get(stream)
        if found is None:
            return None
        properties = ",".join(properties_read(stream, self.maps[stream]))
        return replace(found, params={**found.params, "properties": properties})
