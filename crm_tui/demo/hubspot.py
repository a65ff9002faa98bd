"""A simulator of HubSpot's CRM v3 object lists: contacts and deals, as HubSpot documents them.

Our connector is also checked against servers built by others from the same published
material, so this follows the documented contract and nothing more. Sources:

- HubSpot/HubSpot-public-api-spec-collection @9989379, `PublicApiSpecs/CRM/{Contacts,Deals}/
  Rollouts/424/v3/*.json` ("HS-spec"): the paths (`/crm/v3/objects/contacts`, and deals as
  `/crm/v3/objects/0-3`), the query parameters (`limit` default 10, `after`, `properties`,
  `associations`, `archived` default false and "return only results that have been
  archived"), unknown properties and association types ignored, the body
  `{results, paging?: {next: {after, link}}}`, records `{id, properties: {name: string},
  createdAt, updatedAt, archived, archivedAt?, associations?}`, `AssociatedId {id, type}`
  (type e.g. `deal_to_contact`), and the `Error` schema `{message, correlationId, category}`.
  The spec declares `properties` and `associations` as exploded arrays (repeated keys) while
  describing them as comma lists: both forms are read.
- HubSpot/hubspot-api-python `hubspot/utils/objects.py`: at most 100 records a page
  (`PAGE_MAX_SIZE`), and the last page is the one without `paging`.
- The deals guide: a requested property without a value comes back as null; `dealstage` and
  `pipeline` hold internal ids (`contractsent`, `default`); `amount` is a string like
  `"1500.00"`, `closedate` an ISO date-time.
- The API reference's contact example: the properties a list returns without `properties=`
  (firstname, lastname, email, createdate, lastmodifieddate, hs_object_id). For deals only
  third-party examples show the default (dealname, amount, dealstage, pipeline, closedate,
  createdate, hs_lastmodifieddate, hs_object_id); taken as given.
- The changelog "Improvements to authentication errors for v3 endpoints" and a live body in
  HubSpot/hubspot-api-nodejs#148: the 401 body; hubspot-api-ruby#181: its
  `x-hubspot-auth-failure` header.
- developers.hubspot.com usage guidelines: a 10-second window, the `X-HubSpot-RateLimit-*`
  headers, and the 429 body `{status, message, errorType: "RATE_LIMIT", correlationId,
  policyName, requestId}`. No `Retry-After` is documented, so none is sent.

Where the documents are silent, the plain reading:

- `limit` above 100 is cut to 100, below 1 raised to 1; a `limit` that is not an integer, an
  `archived` that is not true/false, or an `after` this server did not hand out (an empty
  one too) is a 400 with the `Error` shape, category `VALIDATION_ERROR`.
- `after` is opaque (HS-spec's example is base64); here it is the next position, encoded.
  `link` is the absolute URL of the next page: the request's own parameters, `after` last.
- `properties=` returns exactly the named properties that exist (null where a record has no
  value), in the order asked. Live responses have been seen to add createdate,
  lastmodifieddate and hs_object_id unasked; nothing documents that, so a connector must ask
  for what it needs. `properties=` naming nothing counts as not given.
- `associations` takes object type names or ids (`contacts`/`0-1`, `deals`/`0-3`); the key
  in the answer is the plural name. A record without associations of a type has no key
  for it; one association each here, so no association paging. Archived records are never
  another record's association.
- The rate-limit headers describe an app's budget, so an unauthenticated request (answered
  401) neither carries them nor spends any. A 429 spends no daily budget. The token is a
  private app's: it does not expire, so the `token_expiry_every` fault changes nothing
  here (as for Follow Up Boss's API key). `propertiesWithHistory` is not simulated: ignored.
- The shared faults keep their own shapes: the `burst_every` fault's 429s are plain text
  with `Retry-After`, the injector's, not HubSpot's.

Dataset conventions shared with the other simulators: contacts come from the shared
population (offset 0.15), the hostile names first, record `MISSING_ID_INDEX` without an id
(and without `hs_object_id`), `NO_EMAIL_INDEX` without an e-mail, and `LONG_NOTE_INDEX` with
a 10,000-character note in `message` (HubSpot's default "Message" contact property, multi-line
text; listed in HS-spec's `PreResolvedContact.contactPropertiesLeadingToMatch`). A few
archived contacts and deals exist besides, listed only with `archived=true`.
"""

from __future__ import annotations

import base64
import binascii
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_tui.demo import data
from crm_tui.demo.servers import (
    Collection,
    DemoCredentials,
    FaultInjector,
    Faults,
    Simulator,
    SimulatorContext,
    SlidingWindow,
    json_response,
)

hubspot_id = data.hubspot_id  # the contact id; ground truth lives beside the other sources'

CONTACT_PROPERTIES = (
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "company",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "lifecyclestage",
    "hs_lead_status",
    "hubspot_owner_id",
    "message",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
)
DEFAULT_CONTACT_PROPERTIES = (
    "firstname",
    "lastname",
    "email",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
)
DEFAULT_DEAL_PROPERTIES = (
    "dealname",
    "amount",
    "dealstage",
    "pipeline",
    "closedate",
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
)
#: Every deal property served: the defaults, then those asked for by name.
DEAL_PROPERTIES = (
    *DEFAULT_DEAL_PROPERTIES,
    "hubspot_owner_id",
    "deal_currency_code",
    "hs_is_closed",
    "hs_is_closed_won",
)
NOTE_PROPERTY = "message"
# The default sales pipeline's internal stage ids.
DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
LEAD_STATUSES = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
OWNER_IDS = ("61420187", "61420233", "61420310")
ARCHIVED_CONTACTS = 3
ARCHIVED_DEALS = 2
PAGE_MAX = 100
DAILY_LIMIT = 500_000
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def hubspot_deal_id(j: int) -> str:
    # Deals have an id space of their own in HubSpot; a different range keeps a mix-up visible.
    return str(40_000_000_007 + 50 * j)


def _stamp(moment: datetime) -> str:
    """HubSpot's form: UTC, milliseconds, `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _instant(r: random.Random, start: datetime, days: int) -> datetime:
    return start + timedelta(seconds=r.randint(0, days * 86_400), milliseconds=r.randint(0, 999))


def hubspot_contact(seed: int, i: int, count: int) -> dict[str, Any]:
    """Contact `i` as HubSpot holds it, every property present (null where it has no value)."""
    p = data.person(seed, data.population_index("hubspot", i, count))
    s = data.spelled(seed, "hubspot", i, p, count)
    r = data.rng(seed, "hubspot", "contact", i)
    created = _instant(r, _EPOCH, 900)
    updated = _instant(r, created, 60)
    digits = p.phone_digits
    record_id = hubspot_id(i)
    values: dict[str, str | None] = {
        "firstname": s.first,
        "lastname": s.last,
        "email": s.email,
        "phone": s.phone,
        # as typed into a form: the same line, another spelling
        "mobilephone": f"+1{digits}" if r.random() < 0.25 else None,
        "company": p.company,
        "address": p.street,
        "city": p.city,
        "state": p.state,
        "zip": p.zip,
        "country": "United States",
        "lifecyclestage": r.choice(LIFECYCLE_STAGES),
        "hs_lead_status": r.choice((*LEAD_STATUSES, None)),
        "hubspot_owner_id": r.choice(OWNER_IDS),
        NOTE_PROPERTY: s.note,
        "createdate": _stamp(created),
        "lastmodifieddate": _stamp(updated),
        "hs_object_id": record_id,
    }
    record: dict[str, Any] = {
        "id": record_id,
        "properties": values,
        "createdAt": _stamp(created),
        "updatedAt": _stamp(updated),
        "archived": False,
    }
    if i == data.MISSING_ID_INDEX:
        del record["id"]
        values["hs_object_id"] = None
    return record


def _deal_contact(seed: int, j: int, contacts: int) -> int:
    k = data.rng(seed, "hubspot", "deal-contact", j).randrange(max(contacts, 1))
    # never the contact without an id: an association names an id
    return k - 1 if k == data.MISSING_ID_INDEX else k


def hubspot_deal(seed: int, j: int, contacts: int) -> dict[str, Any]:
    """Deal `j`, every property present, with its one contact under `associations`."""
    r = data.rng(seed, "hubspot", "deal", j)
    city, state, zip3 = r.choice(data.CITIES)
    street = f"{r.randint(100, 9999)} {r.choice(data.STREETS)} {r.choice(data.SUFFIXES)}"
    price = r.randrange(180_000, 2_400_000, 500)
    created = _instant(r, _EPOCH, 900)
    updated = _instant(r, created, 90)
    closing = _instant(r, created, 200)
    record_id = hubspot_deal_id(j)
    values: dict[str, str | None] = {
        "dealname": f"{street}, {city}, {state} {zip3}{r.randint(0, 99):02d}",
        # some deals never got an amount: a requested property without a value is null
        "amount": f"{price:.2f}" if r.random() < 0.92 else None,
        "dealstage": (stage := r.choice(DEAL_STAGES)),
        # HubSpot's calculated properties, "true"/"false" like every value
        "hs_is_closed": str(stage in ("closedwon", "closedlost")).lower(),
        "hs_is_closed_won": str(stage == "closedwon").lower(),
        "pipeline": "default",
        "closedate": _stamp(closing),
        "createdate": _stamp(created),
        "hs_lastmodifieddate": _stamp(updated),
        "hs_object_id": record_id,
        "hubspot_owner_id": r.choice(OWNER_IDS),
        "deal_currency_code": "USD",
    }
    contact = hubspot_id(_deal_contact(seed, j, contacts))
    return {
        "id": record_id,
        "properties": values,
        "createdAt": _stamp(created),
        "updatedAt": _stamp(updated),
        "archived": False,
        "associations": {"contacts": {"results": [{"id": contact, "type": "deal_to_contact"}]}},
    }


def _archive(record: dict[str, Any], modified: str, seed: int, key: object) -> dict[str, Any]:
    r = data.rng(seed, "hubspot", "archived", key)
    updated = datetime.fromisoformat(record["updatedAt"].replace("Z", "+00:00"))
    when = _stamp(_instant(r, updated, 30))
    record["properties"][modified] = when
    record["updatedAt"] = when
    record["archived"] = True
    record["archivedAt"] = when
    return record


def hubspot_archived_contact(seed: int, k: int, count: int) -> dict[str, Any]:
    """The k-th archived contact: past the listed ones and the special indices, so its id is
    no listed contact's and it has one."""
    i = max(count, data.LONG_NOTE_INDEX + 1) + k
    return _archive(hubspot_contact(seed, i, count), "lastmodifieddate", seed, f"c{k}")


def hubspot_archived_deal(seed: int, k: int, contacts: int) -> dict[str, Any]:
    j = data.deal_count(contacts) + k
    return _archive(hubspot_deal(seed, j, contacts), "hs_lastmodifieddate", seed, f"d{k}")


# -- the server ----------------------------------------------------------------------------


class _ObjectType:
    """One object type as the list endpoint serves it."""

    def __init__(
        self,
        name: str,
        listed: Collection,
        archived: Collection,
        properties: Sequence[str],
        defaults: Sequence[str],
    ) -> None:
        self.name = name
        self.listed = listed
        self.archived = archived
        self.properties = frozenset(properties)
        self.defaults = tuple(defaults)


def _names(values: list[str]) -> list[str]:
    """`a,b` and `a&b` alike, first occurrence kept."""
    seen: dict[str, None] = {}
    for value in values:
        for name in value.split(","):
            if name.strip():
                seen.setdefault(name.strip(), None)
    return list(seen)


def _encode_after(offset: int) -> str:
    return base64.urlsafe_b64encode(f"hs:{offset}".encode()).decode().rstrip("=")


def _decode_after(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    number = text.removeprefix("hs:")
    return int(number) if text.startswith("hs:") and number.isdigit() else None


def _validation_error(message: str, headers: dict[str, str]) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": "VALIDATION_ERROR",
    }
    return json_response(body, 400, headers)


def hubspot_app(
    token: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 200,
    window: float = 10.0,
) -> FaultInjector:
    deals = data.deal_count(contacts)
    budget = SlidingWindow(rate_limit, window)
    daily_used = 0
    contact_type = _ObjectType(
        "contacts",
        (contacts, lambda i: hubspot_contact(seed, i, contacts)),
        (ARCHIVED_CONTACTS, lambda k: hubspot_archived_contact(seed, k, contacts)),
        CONTACT_PROPERTIES,
        DEFAULT_CONTACT_PROPERTIES,
    )
    deal_type = _ObjectType(
        "deals",
        (deals, lambda j: hubspot_deal(seed, j, contacts)),
        (ARCHIVED_DEALS, lambda k: hubspot_archived_deal(seed, k, contacts)),
        DEAL_PROPERTIES,
        DEFAULT_DEAL_PROPERTIES,
    )
    types = {"contacts": contact_type, "0-1": contact_type, "deals": deal_type, "0-3": deal_type}
    deals_of_contact: dict[str, list[str]] | None = None

    def contact_deals(contact_id: str) -> list[str]:
        # Built on the first ask only: a sync that never asks contacts for their deals never
        # pays for walking every deal.
        nonlocal deals_of_contact
        if deals_of_contact is None:
            deals_of_contact = {}
            for j in range(deals):
                owner = hubspot_id(_deal_contact(seed, j, contacts))
                deals_of_contact.setdefault(owner, []).append(hubspot_deal_id(j))
        return deals_of_contact.get(contact_id, [])

    def shaped(
        record: dict[str, Any], kind: _ObjectType, names: Sequence[str], linked: Sequence[str]
    ) -> dict[str, Any]:
        values = record["properties"]
        out: dict[str, Any] = {}
        if "id" in record:
            out["id"] = record["id"]
        out["properties"] = {name: values.get(name) for name in names}
        for key in ("createdAt", "updatedAt", "archived", "archivedAt"):
            if key in record:
                out[key] = record[key]
        associations: dict[str, Any] = {}
        for other in linked:
            if kind is deal_type and other == "contacts" and "associations" in record:
                associations["contacts"] = record["associations"]["contacts"]
            elif kind is contact_type and other == "deals" and "id" in record:
                ids = contact_deals(record["id"]) if not record["archived"] else []
                if ids:
                    results = [{"id": d, "type": "contact_to_deal"} for d in ids]
                    associations["deals"] = {"results": results}
        if associations:
            out["associations"] = associations
        return out

    def authorized(header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and value == token

    async def listing(request: Request) -> Response:
        nonlocal daily_used
        if not authorized(request.headers.get("authorization")):
            body = {
                "status": "error",
                "message": AUTH_MESSAGE,
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            }
            return json_response(body, 401, {"x-hubspot-auth-failure": "401 Unauthorized"})
        allowed, remaining, _ = budget.take()
        if allowed:
            daily_used += 1
        headers = {
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(DAILY_LIMIT - daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
            "X-HubSpot-RateLimit-Max": str(rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }
        if not allowed:
            body = {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
                "requestId": str(uuid.uuid4()),
            }
            return json_response(body, 429, headers)
        kind = types[request.url.path.rsplit("/", 1)[-1]]
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", "10")), 1), PAGE_MAX)
        except ValueError:
            return _validation_error(f"limit is not an integer: {params['limit']!r}", headers)
        archived = params.get("archived", "false").lower()
        if archived not in ("true", "false"):
            return _validation_error(f"archived is not a boolean: {archived!r}", headers)
        total, make = kind.archived if archived == "true" else kind.listed
        offset = 0
        if "after" in params:
            decoded = _decode_after(params["after"])
            if decoded is None or decoded > total:
                return _validation_error(f"Invalid paging cursor: {params['after']!r}", headers)
            offset = decoded
        asked = _names(params.getlist("properties"))
        names = [n for n in asked if n in kind.properties] if asked else kind.defaults
        linked = [types[t].name for t in _names(params.getlist("associations")) if t in types]
        end = min(offset + limit, total)
        positions = list(range(offset, end))
        if faults.overlap_pages and 0 < offset < total:
            positions.insert(0, offset - 1)
        body: dict[str, Any] = {
            "results": [shaped(make(k), kind, names, linked) for k in positions]
        }
        if end < total:
            after = _encode_after(end)
            query = [(k, v) for k, v in params.multi_items() if k != "after"]
            link = f"{str(request.url).split('?', 1)[0]}?{urlencode([*query, ('after', after)])}"
            body["paging"] = {"next": {"after": after, "link": link}}
        return json_response(body, 200, headers)

    app = Starlette(routes=[Route(f"/crm/v3/objects/{name}", listing) for name in types])
    return FaultInjector(app, faults, lambda path: path.startswith("/crm/"))


# -- the registry entry --------------------------------------------------------------------


def _build(ctx: SimulatorContext) -> FaultInjector:
    return hubspot_app(
        ctx.credentials.hubspot_token, ctx.contacts, ctx.seed, ctx.faults, ctx.rate_limit
    )


def _env(url: str, credentials: DemoCredentials) -> dict[str, str]:
    return {"HUBSPOT_API_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": credentials.hubspot_token}


def _collections(contacts: int, seed: int) -> dict[str, Collection]:
    """What a non-archived listing serves, in order: every property (as a listing naming
    them all in `properties=` returns it) and, for deals, the `associations=contacts` part."""
    return {
        "contacts": (contacts, lambda i: hubspot_contact(seed, i, contacts)),
        "deals": (data.deal_count(contacts), lambda j: hubspot_deal(seed, j, contacts)),
    }


HUBSPOT = Simulator("hubspot", _build, _env, _collections)
