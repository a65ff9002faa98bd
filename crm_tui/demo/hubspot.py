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

Live changes (`demo/changes.py`) and the endpoints that read them:

- A changed record's `updatedAt` and its `lastmodifieddate` (deals: `hs_lastmodifieddate`)
  are both the change's moment, in milliseconds. An archived (deleted) one is listed only
  with `archived=true`, after the generated archived ones, in the order archived, with
  `archived: true` and `archivedAt`; `GET /crm/v3/objects/{type}/{id}` answers 404 for it.
- `POST /crm/v3/objects/{type}/search` filters on the modified-date property only (GTE, GT,
  LTE, LT, EQ; epoch ms or ISO values; up to 5 filterGroups, OR'ed) and sorts by it only
  (ascending by default, ties by id); anything else is a 400 VALIDATION_ERROR: a connector
  asking for more than the simulator knows hears so. `limit` 1-200 (more is a 400, as
  HubSpot documents 200 as the maximum); `after` is the numeric offset HubSpot uses, and
  `after` >= 10,000 is a 400 (one query returns at most 10,000 results in all); `total`
  counts every match. Search shares the ten-second budget; HubSpot's separate ~4/s search
  limit is not enforced (a slow connector is not the simulator's to find out).
- A live listing's `after` names the next record (not an offset), so pages hold their place
  while records are created or archived between them.

Writes. Documented (HS-spec `patch-/crm/v3/objects/contacts/{contactId}_update`; the
Properties spec `PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json`), and
followed: `PATCH /crm/v3/objects/{contacts|deals|0-1|0-3}/{id}` takes `SimplePublicObjectInput
{properties: {name: string}}`; "Read-only and non-existent properties will result in an
error. Properties values can be cleared by passing an empty string."; the answer is a
`SimplePublicObject`. `GET /crm/v3/properties/{objectType}/{propertyName}` answers a
`Property` (`name, label, type, fieldType, description, groupName, options[{label, value,
displayOrder, hidden}]`, `modificationMetadata{archivable, readOnlyDefinition,
readOnlyValue}`, ...). Errors use the spec's `Error` (`errors[]` of `ErrorDetail {message,
code, context}`). Live bodies seen in public code (and followed): an invalid write is 400
`{status: "error", message: "Property values were not valid: [<json list of {isValid,
message, error, name, localizedErrorMessage}>]", correlationId, category:
"VALIDATION_ERROR", errors: [{message, code, context: {propertyName: [name]}}]}` with codes
`PROPERTY_DOESNT_EXIST` ('Property "x" does not exist') and `INVALID_OPTION` ('<value> was
not one of the allowed options: [a, b]'); an empty `properties` is 400 "No properties found
to update, please provide at least one." (hubspot-api-php#242).

Where the documents are silent, the plain reading (writes):
- Every property at fault is listed at once, nothing is written. A read-only property
  (createdate, lastmodifieddate, hs_object_id, hs_lastmodifieddate and the calculated
  hs_is_closed / hs_is_closed_won) is `READ_ONLY_VALUE`, message 'Property "x" is a read
  only property; its value cannot be set' (the wording is ours). An enumeration
  (lifecyclestage, hs_lead_status, dealstage, pipeline, hubspot_owner_id,
  deal_currency_code) takes only its options' values. A date-time (closedate) takes epoch
  ms, an ISO date (midnight UTC) or an ISO date-time and is stored as HubSpot returns it
  ("2025-03-01T00:00:00.000Z"); anything else is `INVALID_DATE` (our code). Other values are
  not checked.
- "" or null clears a property: it reads back null, as a property without a value does.
  JSON numbers and booleans are taken as their text; an object or list is a plain
  VALIDATION_ERROR (the input JSON does not fit the schema). A body without a `properties`
  object likewise.
- A written `dealstage` moves hs_is_closed / hs_is_closed_won with it. The write is one
  change at its moment: `updatedAt` and the modified-date property move, search and
  webhooks see it. The answer is the object as a GET without `properties=` returns it,
  plus the properties written, in that order.
- Unknown or archived ids are 404 `OBJECT_NOT_FOUND`; `idProperty` is not simulated (400).
  A property name the object type lacks is 404 `OBJECT_NOT_FOUND` on the properties
  endpoint. Writes pass the same token check and budgets as reads.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from crm_tui.demo import data
from crm_tui.demo.changes import (
    Entry,
    IdKeys,
    Kind,
    Overlay,
    SortIndex,
    Target,
    count,
    index_of,
    pack,
    walk,
)
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.servers import (
    Collection,
    DemoCredentials,
    FaultInjector,
    Faults,
    Simulator,
    SimulatorContext,
    SlidingWindow,
    WriteError,
    json_object,
    json_response,
    update,
)

hubspot_id = data.hubspot_id  # the contact id; ground truth lives beside the other sources'

#: The demo portal's custom contact properties (the team made them; HubSpot did not).
CUSTOM_CONTACT_PROPERTIES = ("lender", "price_range", "closing_date")
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
    *CUSTOM_CONTACT_PROPERTIES,
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


def _contact_times(
    seed: int, i: int, clock: DemoClock = FIXED
) -> tuple[random.Random, datetime, datetime]:
    """Contact i's generator after its first draws, its creation and its last change: the
    search index sorts by the change without building the record."""
    r = data.rng(seed, "hubspot", "contact", i)
    created = _instant(r, _EPOCH, 900)
    return r, clock.moment(created), clock.past(_instant(r, created, 60))


def hubspot_contact(seed: int, i: int, count: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    """Contact `i` as HubSpot holds it, every property present (null where it has no value)."""
    p = data.person(seed, data.population_index("hubspot", i, count))
    s = data.spelled(seed, "hubspot", i, p, count)
    r, created, updated = _contact_times(seed, i, clock)
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
    # the portal's custom properties (hubspotDefined false): strings as HubSpot sends every
    # value, a number's digits, a date as YYYY-MM-DD; served only when named in properties=
    custom = data.custom_values(seed, "hubspot", i, clock)
    values["lender"] = custom.lender
    values["price_range"] = None if custom.price_range is None else str(custom.price_range)
    values["closing_date"] = custom.closing_date
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


def hubspot_deal(seed: int, j: int, contacts: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    """Deal `j`, every property present, with its one contact under `associations`."""
    r = data.rng(seed, "hubspot", "deal", j)
    city, state, zip3 = r.choice(data.CITIES)
    street = f"{r.randint(100, 9999)} {r.choice(data.STREETS)} {r.choice(data.SUFFIXES)}"
    price = r.randrange(180_000, 2_400_000, 500)
    created = _instant(r, _EPOCH, 900)
    updated = clock.past(_instant(r, created, 90))
    closing = _instant(r, created, 200)  # an open deal's may be ahead, a closed one's not
    created = clock.moment(created)
    record_id = hubspot_deal_id(j)
    values: dict[str, str | None] = {
        "dealname": f"{street}, {city}, {state} {zip3}{r.randint(0, 99):02d}",
        # some deals never got an amount: a requested property without a value is null
        "amount": f"{price:.2f}" if r.random() < 0.92 else None,
        "dealstage": (stage := r.choice(DEAL_STAGES)),
        **closed_flags(stage),
        "pipeline": "default",
        "closedate": _stamp(
            clock.past(closing) if stage in CLOSED_STAGES else clock.moment(closing)
        ),
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


def _archive(
    record: dict[str, Any], modified: str, seed: int, key: object, clock: DemoClock
) -> dict[str, Any]:
    r = data.rng(seed, "hubspot", "archived", key)
    updated = datetime.fromisoformat(record["updatedAt"].replace("Z", "+00:00"))
    when = _stamp(max(updated, clock.settled(_instant(r, updated, 30))))
    record["properties"][modified] = when
    record["updatedAt"] = when
    record["archived"] = True
    record["archivedAt"] = when
    return record


def hubspot_archived_contact(
    seed: int, k: int, count: int, clock: DemoClock = FIXED
) -> dict[str, Any]:
    """The k-th archived contact: past the listed ones and the special indices, so its id is
    no listed contact's and it has one."""
    i = max(count, data.LONG_NOTE_INDEX + 1) + k
    contact = hubspot_contact(seed, i, count, clock)
    return _archive(contact, "lastmodifieddate", seed, f"c{k}", clock)


def hubspot_archived_deal(
    seed: int, k: int, contacts: int, clock: DemoClock = FIXED
) -> dict[str, Any]:
    j = data.deal_count(contacts) + k
    deal = hubspot_deal(seed, j, contacts, clock)
    return _archive(deal, "hs_lastmodifieddate", seed, f"d{k}", clock)


# -- live changes --------------------------------------------------------------------------

CONTACTS = "hubspot:contacts"
DEALS = "hubspot:deals"
SEARCH_CAP = 10_000  # one search query returns at most this many results in all
SEARCH_PAGE_MAX = 200
_EPOCH_MS = int(_EPOCH.timestamp() * 1000)  # sort keys count ms from here: they fit int64
_SEARCH_OPERATORS = frozenset({"GTE", "GT", "LTE", "LT", "EQ"})


def stamp_epoch(moment: float) -> str:
    return _stamp(datetime.fromtimestamp(moment, UTC))


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def mutate_contact(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    field = r.choice(("lifecyclestage", "phone", "lastname"))
    if field == "lifecyclestage":
        return {"lifecyclestage": r.choice(LIFECYCLE_STAGES)}
    if field == "lastname":
        return {"lastname": r.choice(data.LAST)}
    return {"phone": f"+1 {r.randint(201, 989)}-{r.randint(200, 999)}-{r.randint(0, 9999):04d}"}


def mutate_deal(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    if r.random() < 0.5:
        return {"dealstage": (stage := r.choice(DEAL_STAGES)), **closed_flags(stage)}
    return {"amount": f"{r.randrange(180_000, 2_400_000, 500):.2f}"}


CLOSED_STAGES = ("closedwon", "closedlost")


def closed_flags(stage: str | None) -> dict[str, str]:
    """HubSpot's calculated properties that follow a deal's stage, "true"/"false" like every
    value."""
    return {
        "hs_is_closed": str(stage in CLOSED_STAGES).lower(),
        "hs_is_closed_won": str(stage == "closedwon").lower(),
    }


def live(record: dict[str, Any], entry: Entry | None, modified: str) -> dict[str, Any]:
    """A generated record with its changes: the properties changed, `updatedAt` and the
    modified-date property both the change's moment (HubSpot keeps them equal)."""
    if entry is None:
        return record
    values = record["properties"]
    values.update(entry.patch)
    when = stamp_epoch(entry.updated_at)
    if entry.created_at is not None:
        record["createdAt"] = values["createdate"] = stamp_epoch(entry.created_at)
    record["updatedAt"] = values[modified] = when
    if entry.deleted:
        record["archived"] = True
        record["archivedAt"] = when
    return record


# -- the server ----------------------------------------------------------------------------


@dataclass
class _ObjectType:
    """One object type as the server serves it: generated records `0..size-1`, created ones
    from `first_new` on (past the archived ones the generator also makes)."""

    name: str
    collection: str  # the overlay's name
    size: int
    first_new: int
    make: Callable[[int], dict[str, Any]]  # the generated record i
    ident: Callable[[int], str]
    archived: Collection  # the generated archived records
    properties: frozenset[str]
    defaults: tuple[str, ...]
    modified: str  # lastmodifieddate / hs_lastmodifieddate
    overlay: Overlay
    seed: int
    clock: DemoClock = FIXED
    by_modified: SortIndex = field(init=False)

    def __post_init__(self) -> None:
        self.by_modified = SortIndex(self.size, self._modified_key)
        self.overlay.register(
            Target(
                self.collection,
                self.size,
                self.first_new,
                mutate_contact if self.name == "contacts" else mutate_deal,
                lambda i: self.name != "contacts" or i != data.MISSING_ID_INDEX,
            )
        )

    def _modified_key(self, i: int) -> int:
        if self.name == "contacts":
            updated = _contact_times(self.seed, i, self.clock)[2]
            return pack(int(updated.timestamp() * 1000) - _EPOCH_MS, i)
        return pack(_epoch_ms(self.make(i)["updatedAt"]) - _EPOCH_MS, i)

    def key(self, i: int, entry: Entry | None) -> int:
        if entry is None:
            return self.by_modified.key(i)
        return pack(int(entry.updated_at * 1000) - _EPOCH_MS, i)

    def record(self, i: int, entry: Entry | None) -> dict[str, Any]:
        return live(self.make(i), entry, self.modified)

    def index(self, ident: str) -> int | None:
        """The index of a record id, if it names a live (not archived) record."""
        base = int(self.ident(0))
        if not ident.isdigit() or (int(ident) - base) % 50:
            return None
        i = (int(ident) - base) // 50
        entry = self.overlay.get(self.collection, i)
        if not self.overlay.exists(self.collection, i) or (entry and entry.deleted):
            return None
        return None if self.name == "contacts" and i == data.MISSING_ID_INDEX else i


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


def _not_found(headers: dict[str, str]) -> Response:
    body = {
        "status": "error",
        "message": "resource not found",
        "correlationId": str(uuid.uuid4()),
        "category": "OBJECT_NOT_FOUND",
    }
    return json_response(body, 404, headers)


class _Invalid(Exception):
    pass


def _live_page(
    kind: _ObjectType, start: int, limit: int, overlap: bool
) -> tuple[list[tuple[int, Entry | None]], int | None]:
    """Unarchived records in index (id) order from index `start`: the page and the index
    the next one starts at. Pages hold their place while records are archived or created."""
    entries = kind.overlay.entries(kind.collection)
    changed = sorted(pack(i, i) for i, e in entries.items() if not e.deleted)
    base = IdKeys(kind.size, lambda i: i)
    keys = walk(base, changed, entries, pack(start, start))
    found = [index_of(k) for _, k in zip(range(limit + 1), keys, strict=False)]
    following = found[limit] if len(found) > limit else None
    found = found[:limit]
    if overlap and start > 0:
        before = next(walk(base, changed, entries, pack(start - 1, start - 1), True), None)
        if before is not None:
            found.insert(0, index_of(before))
    return [(i, entries.get(i)) for i in found], following


def _archived_page(kind: _ObjectType, offset: int, limit: int) -> tuple[list[Any], int]:
    """The generated archived records, then those archived while running, in the order
    they were archived (so offsets hold while more are archived)."""
    static, make = kind.archived
    entries = kind.overlay.entries(kind.collection)
    gone = sorted((e for e in entries.values() if e.deleted), key=lambda e: (e.deleted_at, e.index))
    total = static + len(gone)
    records = [
        make(k) if k < static else kind.record(gone[k - static].index, gone[k - static])
        for k in range(offset, min(offset + limit, total))
    ]
    return records, total


# -- search --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Search:
    ranges: tuple[tuple[int, int], ...]  # disjoint [low, high) in ms from _EPOCH_MS, sorted
    descending: bool
    names: tuple[str, ...]
    limit: int
    after: int


def _ms_value(value: object) -> int:
    text = str(value)
    try:
        moment = int(text) if text.lstrip("-").isdigit() else _epoch_ms(text)
    except ValueError:
        raise _Invalid(f"{value!r} is not a date-time or epoch milliseconds") from None
    return moment - _EPOCH_MS


def _group_range(filters: object, modified: str) -> tuple[int, int]:
    low, high = 0, 1 << 38
    for item in filters if isinstance(filters, list) else []:
        name, operator = item.get("propertyName"), item.get("operator")
        if name != modified:
            raise _Invalid(f"the simulator filters on {modified} only, not {name!r}")
        if operator not in _SEARCH_OPERATORS:
            raise _Invalid(f"operator {operator!r} is not supported here")
        v = _ms_value(item.get("value"))
        bounds = {"GTE": (v, None), "GT": (v + 1, None), "LT": (None, v), "LTE": (None, v + 1)}
        lower, upper = bounds.get(operator, (v, v + 1))
        low = low if lower is None else max(low, lower)
        high = high if upper is None else min(high, upper)
    return low, high


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for low, high in sorted(r for r in ranges if r[0] < r[1]):
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return tuple(out)


def _parse_search(body: object, kind: _ObjectType) -> _Search:
    if not isinstance(body, dict):
        raise _Invalid("the body must be a JSON object")
    groups = body.get("filterGroups") or [{"filters": []}]
    if not isinstance(groups, list) or len(groups) > 5:
        raise _Invalid("at most 5 filterGroups")
    ranges = _merged([_group_range(g.get("filters"), kind.modified) for g in groups])
    sorts = body.get("sorts") or [{"propertyName": kind.modified, "direction": "ASCENDING"}]
    first = sorts[0] if isinstance(sorts, list) and sorts else {}
    if not isinstance(first, dict) or first.get("propertyName") != kind.modified:
        raise _Invalid(f"the simulator sorts by {kind.modified} only")
    if first.get("direction", "ASCENDING") not in ("ASCENDING", "DESCENDING"):
        raise _Invalid("direction must be ASCENDING or DESCENDING")
    limit, after = body.get("limit", 10), str(body.get("after", "0") or "0")
    if type(limit) is not int or not 1 <= limit <= SEARCH_PAGE_MAX or not after.isdigit():
        raise _Invalid(f"limit must be 1 to {SEARCH_PAGE_MAX}, after a number")
    if int(after) >= SEARCH_CAP:
        raise _Invalid(f"a search returns at most {SEARCH_CAP} results: move the filter on")
    asked = tuple(n for n in body.get("properties") or () if n in kind.properties)
    descending = first.get("direction") == "DESCENDING"
    return _Search(ranges, descending, asked or kind.defaults, limit, int(after))


async def _search(
    kind: _ObjectType, q: _Search
) -> tuple[list[tuple[int, Entry | None]], int, int | None]:
    """One page of a search: the records, the total, and the next `after`."""
    if not q.ranges:
        return [], 0, None
    entries = kind.overlay.entries(kind.collection)
    changed = sorted(kind.key(i, e) for i, e in entries.items() if not e.deleted)
    generated_after = q.ranges[0][0] + _EPOCH_MS >= kind.clock.horizon * 1000
    base = [] if generated_after else await run_in_threadpool(kind.by_modified.keys)
    stale = [kind.key(i, None) for i in entries if i < kind.size] if len(base) else []
    bounds = [(pack(low, 0), pack(high, 0)) for low, high in q.ranges]
    total = sum(count(base, changed, stale, low, high) for low, high in bounds)
    start = bounds[-1][1] - 1 if q.descending else bounds[0][0]
    keys = (
        k
        for k in walk(base, changed, entries, start, q.descending)
        if any(low <= k < high for low, high in bounds)
    )
    wanted = min(q.limit, SEARCH_CAP - q.after)
    found = [k for _, k in zip(range(q.after + wanted), keys, strict=False)][q.after :]
    end = q.after + len(found)
    following = end if end < min(total, SEARCH_CAP) and len(found) == wanted else None
    return [(index_of(k), entries.get(index_of(k))) for k in found], total, following


# -- property definitions and writes -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    """A property as `GET /crm/v3/properties/{objectType}/{propertyName}` describes it (the
    Properties spec's `Property`), and what a write may put in it."""

    name: str
    label: str
    type: str  # string, number, enumeration, datetime, bool
    field_type: str  # text, textarea, phonenumber, number, radio, select, date, ...
    group: str
    read_only: bool = False  # set by HubSpot only (modificationMetadata.readOnlyValue)
    options: tuple[tuple[str, str], ...] = ()  # (value, label), in display order
    custom: bool = False  # made by the portal's users, not HubSpot (hubspotDefined false)

    def shape(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": "",
            "groupName": self.group,
            "options": [
                {"label": label, "value": value, "displayOrder": n, "hidden": False}
                for n, (value, label) in enumerate(self.options)
            ],
            "displayOrder": -1,
            "calculated": self.name.startswith("hs_is_"),
            "externalOptions": self.name == "hubspot_owner_id",
            "hasUniqueValue": self.name == "hs_object_id",
            "hidden": False,
            "hubspotDefined": not self.custom,
            "formField": not self.read_only,
            "archived": False,
            "modificationMetadata": {
                "archivable": False,
                "readOnlyDefinition": True,
                "readOnlyValue": self.read_only,
            },
        }


def _options(values: Sequence[str], labels: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(values, labels, strict=True))


_OWNER_OPTIONS = _options(OWNER_IDS, ("Amy Agent", "Ben Broker", "Cara Closer"))
_TRUE_FALSE = (("true", "True"), ("false", "False"))
_CONTACT_DEFINITIONS = (
    PropertyDefinition("firstname", "First Name", "string", "text", "contactinformation"),
    PropertyDefinition("lastname", "Last Name", "string", "text", "contactinformation"),
    PropertyDefinition("email", "Email", "string", "text", "contactinformation"),
    PropertyDefinition("phone", "Phone Number", "string", "phonenumber", "contactinformation"),
    PropertyDefinition(
        "mobilephone", "Mobile Phone Number", "string", "phonenumber", "contactinformation"
    ),
    PropertyDefinition("company", "Company Name", "string", "text", "contactinformation"),
    PropertyDefinition("address", "Street Address", "string", "text", "contactinformation"),
    PropertyDefinition("city", "City", "string", "text", "contactinformation"),
    PropertyDefinition("state", "State/Region", "string", "text", "contactinformation"),
    PropertyDefinition("zip", "Postal Code", "string", "text", "contactinformation"),
    PropertyDefinition("country", "Country/Region", "string", "text", "contactinformation"),
    PropertyDefinition(
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        "contactinformation",
        options=_options(
            LIFECYCLE_STAGES,
            (
                "Subscriber",
                "Lead",
                "Marketing Qualified Lead",
                "Sales Qualified Lead",
                "Opportunity",
                "Customer",
                "Evangelist",
                "Other",
            ),
        ),
    ),
    PropertyDefinition(
        "hs_lead_status",
        "Lead Status",
        "enumeration",
        "radio",
        "sales_properties",
        options=_options(
            LEAD_STATUSES,
            (
                "New",
                "Open",
                "In Progress",
                "Open Deal",
                "Unqualified",
                "Attempted to Contact",
                "Connected",
                "Bad Timing",
            ),
        ),
    ),
    PropertyDefinition(
        "hubspot_owner_id",
        "Contact owner",
        "enumeration",
        "select",
        "sales_properties",
        options=_OWNER_OPTIONS,
    ),
    PropertyDefinition("message", "Message", "string", "textarea", "contactinformation"),
    PropertyDefinition("createdate", "Create Date", "datetime", "date", "contactinformation", True),
    PropertyDefinition(
        "lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", True
    ),
    PropertyDefinition("hs_object_id", "Record ID", "number", "number", "contactinformation", True),
    PropertyDefinition("lender", "Lender", "string", "text", "contactinformation", custom=True),
    PropertyDefinition(
        "price_range", "Price Range", "number", "number", "contactinformation", custom=True
    ),
    PropertyDefinition(
        "closing_date", "Closing Date", "date", "date", "contactinformation", custom=True
    ),
)
_DEAL_DEFINITIONS = (
    PropertyDefinition("dealname", "Deal Name", "string", "text", "dealinformation"),
    PropertyDefinition("amount", "Amount", "number", "number", "dealinformation"),
    PropertyDefinition(
        "dealstage",
        "Deal Stage",
        "enumeration",
        "radio",
        "dealinformation",
        options=_options(
            DEAL_STAGES,
            (
                "Appointment Scheduled",
                "Qualified To Buy",
                "Presentation Scheduled",
                "Decision Maker Bought-In",
                "Contract Sent",
                "Closed Won",
                "Closed Lost",
            ),
        ),
    ),
    PropertyDefinition(
        "pipeline",
        "Pipeline",
        "enumeration",
        "select",
        "dealinformation",
        options=(("default", "Sales Pipeline"),),
    ),
    PropertyDefinition("closedate", "Close Date", "datetime", "date", "dealinformation"),
    PropertyDefinition("createdate", "Create Date", "datetime", "date", "dealinformation", True),
    PropertyDefinition(
        "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", True
    ),
    PropertyDefinition("hs_object_id", "Record ID", "number", "number", "dealinformation", True),
    PropertyDefinition(
        "hubspot_owner_id",
        "Deal owner",
        "enumeration",
        "select",
        "dealinformation",
        options=_OWNER_OPTIONS,
    ),
    PropertyDefinition(
        "deal_currency_code",
        "Currency",
        "enumeration",
        "select",
        "dealinformation",
        options=(("USD", "US Dollar"),),
    ),
    PropertyDefinition(
        "hs_is_closed",
        "Is Deal Closed?",
        "bool",
        "booleancheckbox",
        "dealinformation",
        True,
        _TRUE_FALSE,
    ),
    PropertyDefinition(
        "hs_is_closed_won",
        "Is Closed Won",
        "bool",
        "booleancheckbox",
        "dealinformation",
        True,
        _TRUE_FALSE,
    ),
)
DEFINITIONS: dict[str, dict[str, PropertyDefinition]] = {
    "contacts": {d.name: d for d in _CONTACT_DEFINITIONS},
    "deals": {d.name: d for d in _DEAL_DEFINITIONS},
}
NO_PROPERTIES = "No properties found to update, please provide at least one."


@dataclass(frozen=True, slots=True)
class _Problem:
    """One property a write may not set, as HubSpot lists it under `errors`."""

    name: str
    code: str  # PROPERTY_DOESNT_EXIST, READ_ONLY_VALUE, INVALID_OPTION, INVALID_DATE
    message: str


class _InvalidProperties(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _value_text(name: str, value: object) -> str:
    """A property value as HubSpot stores it: a string. JSON numbers and booleans are taken
    as their text, null as the empty string (clear); an object or a list is no value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return str(value)
    raise _Invalid(f"Invalid input JSON: properties.{name} must be a string")


def _datetime_text(value: str) -> str | None:
    """A date or date-time as HubSpot returns it (UTC, milliseconds, Z), from epoch
    milliseconds, an ISO date (midnight UTC) or an ISO date-time; None when it is none."""
    try:
        if value.isdigit():
            return stamp_epoch(int(value) / 1000)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return _stamp((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC))


def _checked(definition: PropertyDefinition, value: str) -> str | _Problem:
    if definition.type == "enumeration" and value not in dict(definition.options):
        allowed = ", ".join(v for v, _ in definition.options)
        return _Problem(
            definition.name,
            "INVALID_OPTION",
            f"{value} was not one of the allowed options: [{allowed}]",
        )
    if definition.type == "date":  # a date property takes YYYY-MM-DD (or epoch ms)
        day = _datetime_text(value)
        if day is None:
            return _Problem(definition.name, "INVALID_DATE", f"{value} is not a valid date")
        return day[:10]
    if definition.type == "number":
        try:
            float(value)
        except ValueError:
            return _Problem(definition.name, "INVALID_FLOAT", f"{value} is not a valid number")
        return value
    if definition.type == "datetime":
        moment = _datetime_text(value)
        if moment is None:
            return _Problem(definition.name, "INVALID_DATE", f"{value} is not a valid date")
        return moment
    return value


def property_patch(kind: str, properties: dict[str, Any]) -> dict[str, str | None]:
    """What a `PATCH {properties}` writes: each value checked against its definition ("" and
    null clear a property: stored as no value, served as null). Every property at fault is
    reported at once, as HubSpot does."""
    definitions = DEFINITIONS[kind]
    patch: dict[str, str | None] = {}
    problems: list[_Problem] = []
    for name, raw in properties.items():
        definition = definitions.get(name)
        if definition is None:
            problems.append(
                _Problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            )
            continue
        if definition.read_only:
            message = f'Property "{name}" is a read only property; its value cannot be set'
            problems.append(_Problem(name, "READ_ONLY_VALUE", message))
            continue
        value = _value_text(name, raw)
        checked = _checked(definition, value) if value else None
        if isinstance(checked, _Problem):
            problems.append(checked)
        else:
            patch[name] = checked
    if problems:
        raise _InvalidProperties(problems)
    if "dealstage" in patch:  # the calculated flags follow the stage
        patch.update(closed_flags(patch["dealstage"]))
    return patch


def _invalid_properties(problems: list[_Problem], headers: dict[str, str]) -> Response:
    """HubSpot's answer to a write with invalid properties, as served live: the `Error`
    shape, the old per-property list inside `message`, and `errors[]` with each code."""
    listed = [
        {
            "isValid": False,
            "message": p.message,
            "error": p.code,
            "name": p.name,
            "localizedErrorMessage": p.message,
        }
        for p in problems
    ]
    body = {
        "status": "error",
        "message": "Property values were not valid: " + orjson.dumps(listed).decode(),
        "correlationId": str(uuid.uuid4()),
        "category": "VALIDATION_ERROR",
        "errors": [
            {"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}
            for p in problems
        ],
    }
    return json_response(body, 400, headers)


# -- the app -------------------------------------------------------------------------------


def _types(
    seed: int, contacts: int, overlay: Overlay, clock: DemoClock = FIXED
) -> dict[str, _ObjectType]:
    deals = data.deal_count(contacts)
    contact_type = _ObjectType(
        "contacts",
        CONTACTS,
        contacts,
        max(contacts, data.LONG_NOTE_INDEX + 1) + ARCHIVED_CONTACTS,
        lambda i: hubspot_contact(seed, i, contacts, clock),
        hubspot_id,
        (ARCHIVED_CONTACTS, lambda k: hubspot_archived_contact(seed, k, contacts, clock)),
        frozenset(CONTACT_PROPERTIES),
        DEFAULT_CONTACT_PROPERTIES,
        "lastmodifieddate",
        overlay,
        seed,
        clock,
    )
    deal_type = _ObjectType(
        "deals",
        DEALS,
        deals,
        deals + ARCHIVED_DEALS,
        lambda j: hubspot_deal(seed, j, contacts, clock),
        hubspot_deal_id,
        (ARCHIVED_DEALS, lambda k: hubspot_archived_deal(seed, k, contacts, clock)),
        frozenset(DEAL_PROPERTIES),
        DEFAULT_DEAL_PROPERTIES,
        "hs_lastmodifieddate",
        overlay,
        seed,
        clock,
    )
    return {"contacts": contact_type, "0-1": contact_type, "deals": deal_type, "0-3": deal_type}


class _Associations:
    """Who is linked to whom, the changes included: an archived record is nobody's
    association; a created deal belongs to a contact as a generated one does."""

    def __init__(self, seed: int, contacts: int, overlay: Overlay) -> None:
        self.seed, self.contacts, self.overlay = seed, contacts, overlay
        self._deals_of: dict[str, list[str]] | None = None

    def contact_deals(self, contact_id: str) -> list[str]:
        # Built on the first ask only: a sync that never asks contacts for their deals never
        # pays for walking every deal.
        if self._deals_of is None:
            self._deals_of = {}
            for j in range(data.deal_count(self.contacts)):
                self._deals_of.setdefault(self._owner(j), []).append(hubspot_deal_id(j))
        ids = list(self._deals_of.get(contact_id, []))
        ids += [
            hubspot_deal_id(j)
            for j in self.overlay.created(DEALS)
            if self._owner(j) == (contact_id)
        ]
        gone = {hubspot_deal_id(j) for j in self.overlay.deleted(DEALS)}
        return [d for d in ids if d not in gone]

    def _owner(self, j: int) -> str:
        return hubspot_id(_deal_contact(self.seed, j, self.contacts))

    def contact_alive(self, contact_id: str) -> bool:
        gone = {hubspot_id(i) for i in self.overlay.deleted(CONTACTS)}
        return contact_id not in gone


def _shape(
    record: dict[str, Any],
    kind: _ObjectType,
    names: Sequence[str],
    linked: Sequence[str],
    links: _Associations,
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
        if kind.name == "deals" and other == "contacts" and "associations" in record:
            contact = record["associations"]["contacts"]
            if links.contact_alive(contact["results"][0]["id"]):
                associations["contacts"] = contact
        elif kind.name == "contacts" and other == "deals" and "id" in record:
            ids = links.contact_deals(record["id"]) if not record["archived"] else []
            if ids:
                associations["deals"] = {
                    "results": [{"id": d, "type": "contact_to_deal"} for d in ids]
                }
    if associations:
        out["associations"] = associations
    return out


class _Budget:
    """The ten-second window and the daily count, with HubSpot's headers and 401/429."""

    def __init__(self, token: str, rate_limit: int, window: float) -> None:
        self.token, self.rate_limit, self.window = token, rate_limit, window
        self.window_budget = SlidingWindow(rate_limit, window)
        self.daily_used = 0

    def check(self, request: Request) -> tuple[dict[str, str], Response | None]:
        scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or value != self.token:
            body = {
                "status": "error",
                "message": AUTH_MESSAGE,
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            }
            return {}, json_response(body, 401, {"x-hubspot-auth-failure": "401 Unauthorized"})
        allowed, remaining, _ = self.window_budget.take()
        if allowed:
            self.daily_used += 1
        headers = {
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(DAILY_LIMIT - self.daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }
        if allowed:
            return headers, None
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING",
            "requestId": str(uuid.uuid4()),
        }
        return headers, json_response(body, 429, headers)


def _link(request: Request, after: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
    return f"{str(request.url).split('?', 1)[0]}?{urlencode([*query, ('after', after)])}"


@dataclass
class _Served:
    """What every HubSpot handler reads."""

    types: dict[str, _ObjectType]
    links: _Associations
    budget: _Budget
    faults: Faults

    def fields(self, kind: _ObjectType, params: Any) -> tuple[Sequence[str], list[str]]:
        asked = _names(params.getlist("properties"))
        names = [n for n in asked if n in kind.properties] if asked else kind.defaults
        types = self.types
        return names, [types[t].name for t in _names(params.getlist("associations")) if t in types]


def _listing(served: _Served) -> Callable[[Request], Any]:
    async def listing(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", "10")), 1), PAGE_MAX)
        except ValueError:
            return _validation_error(f"limit is not an integer: {params['limit']!r}", headers)
        archived = params.get("archived", "false").lower()
        if archived not in ("true", "false"):
            return _validation_error(f"archived is not a boolean: {archived!r}", headers)
        decoded: int | None = 0
        if "after" in params:
            decoded = _decode_after(params["after"])
            # a live listing's cursor names the next record; an archived one's, a position
            if decoded is None or not (
                archived == "true" or kind.overlay.exists(kind.collection, decoded)
            ):
                return _validation_error(f"Invalid paging cursor: {params['after']!r}", headers)
        start = decoded or 0
        names, linked = served.fields(kind, params)
        if archived == "true":
            records, total = _archived_page(kind, start, limit)
            following = start + limit if start + limit < total else None
        else:
            page, following = _live_page(kind, start, limit, served.faults.overlap_pages)
            records = [kind.record(i, e) for i, e in page]
        shaped = [_shape(r, kind, names, linked, served.links) for r in records]
        body: dict[str, Any] = {"results": shaped}
        if following is not None:
            after = _encode_after(following)
            body["paging"] = {"next": {"after": after, "link": _link(request, after)}}
        return json_response(body, 200, headers)

    return listing


def _one(served: _Served) -> Callable[[Request], Any]:
    async def one(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        i = kind.index(request.path_params["id"])
        if i is None:
            return _not_found(headers)
        names, linked = served.fields(kind, request.query_params)
        record = kind.record(i, kind.overlay.get(kind.collection, i))
        return json_response(_shape(record, kind, names, linked, served.links), 200, headers)

    return one


def _updating(served: _Served) -> Callable[[Request], Any]:
    """`PATCH /crm/v3/objects/{type}/{id}` `{properties: {...}}`: 200 with the object as a
    GET returns it, plus the properties written."""

    async def patch_object(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        if "idProperty" in request.query_params:
            return _validation_error("idProperty is not simulated: use the record id", headers)
        i = kind.index(request.path_params["id"])
        if i is None:
            return _not_found(headers)
        try:
            properties = (await json_object(request)).get("properties")
            if not isinstance(properties, dict):
                raise _Invalid("Invalid input JSON: the body must be {properties: {...}}")
            if not properties:
                raise _Invalid(NO_PROPERTIES)
            patch = property_patch(kind.name, properties)
        except WriteError as error:
            return _validation_error(f"Invalid input JSON: {error.message}", headers)
        except _Invalid as error:
            return _validation_error(str(error), headers)
        except _InvalidProperties as error:
            return _invalid_properties(error.problems, headers)
        update(kind.overlay, kind.collection, i, patch)
        names = [*kind.defaults, *(n for n in properties if n not in kind.defaults)]
        record = kind.record(i, kind.overlay.get(kind.collection, i))
        return json_response(_shape(record, kind, names, (), served.links), 200, headers)

    return patch_object


def _definitions(served: _Served) -> Callable[[Request], Any]:
    """`GET /crm/v3/properties/{objectType}`: `{results: [Property]}`, every property of the
    type, the portal's custom ones included (`hubspotDefined` false); not paged."""

    async def definitions(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        results = [d.shape() for d in DEFINITIONS[kind.name].values()]
        return json_response({"results": results}, 200, headers)

    return definitions


def _definition(served: _Served) -> Callable[[Request], Any]:
    """`GET /crm/v3/properties/{objectType}/{propertyName}`: the property's definition, its
    options for an enumeration; 404 for a property the object type does not have."""

    async def definition(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        name = request.path_params["name"]
        found = DEFINITIONS[kind.name].get(name)
        if found is None:
            body = {
                "status": "error",
                "message": f"Unable to find property with name {name} for object type {kind.name}",
                "correlationId": str(uuid.uuid4()),
                "category": "OBJECT_NOT_FOUND",
            }
            return json_response(body, 404, headers)
        return json_response(found.shape(), 200, headers)

    return definition


def _searching(served: _Served) -> Callable[[Request], Any]:
    async def search(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        kind = served.types[request.path_params["type"]]
        try:
            query = _parse_search(orjson.loads(await request.body()), kind)
        except (orjson.JSONDecodeError, _Invalid, AttributeError) as error:
            return _validation_error(str(error), headers)
        found, total, following = await _search(kind, query)
        links = served.links
        results = [_shape(kind.record(i, e), kind, query.names, (), links) for i, e in found]
        body: dict[str, Any] = {"total": total, "results": results}
        if following is not None:
            body["paging"] = {"next": {"after": str(following)}}
        return json_response(body, 200, headers)

    return search


def _associated(served: _Served) -> Callable[[Request], Any]:
    """`POST /crm/v4/associations/deals/contacts/batch/read` (the v4 associations API): each
    live deal's contact as `{from: {id}, to: [{toObjectId, associationTypes}]}`; ids with no
    association (unknown, archived, contact gone) come back under `errors`, with a 207."""

    async def associated(request: Request) -> Response:
        headers, refused = served.budget.check(request)
        if refused:
            return refused
        pair = (request.path_params["from"], request.path_params["to"])
        if pair != ("deals", "contacts"):
            return _validation_error(f"associations {pair[0]} to {pair[1]}: not simulated", headers)
        try:
            inputs = orjson.loads(await request.body())["inputs"]
            ids = [str(item["id"]) for item in inputs]
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            return _validation_error(f"invalid batch input: {error}", headers)
        kind = served.types["deals"]
        results, missing = [], []
        for ident in ids:
            i = kind.index(ident)
            record = None if i is None else kind.record(i, kind.overlay.get(kind.collection, i))
            shaped = _shape(record, kind, (), ("contacts",), served.links) if record else {}
            contacts = shaped.get("associations", {}).get("contacts", {}).get("results", [])
            if not contacts:
                missing.append(ident)
                continue
            kinds = [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]
            to = [{"toObjectId": c["id"], "associationTypes": kinds} for c in contacts]
            results.append({"from": {"id": ident}, "to": to})
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            body["numErrors"] = len(missing)
            context = {"fromObjectId": missing}
            body["errors"] = [
                {"status": "error", "category": "OBJECT_NOT_FOUND", "context": context}
            ]
        return json_response(body, 207 if missing else 200, headers)

    return associated


def hubspot_app(
    token: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 200,
    window: float = 10.0,
    overlay: Overlay | None = None,
    clock: DemoClock = FIXED,
) -> FaultInjector:
    shared = overlay or Overlay(seed)
    types = _types(seed, contacts, shared, clock)
    served = _Served(
        types, _Associations(seed, contacts, shared), _Budget(token, rate_limit, window), faults
    )
    kinds = "{type:str}"
    app = Starlette(
        routes=[
            Route(
                "/crm/v4/associations/{from:str}/{to:str}/batch/read",
                _associated(served),
                methods=["POST"],
            ),
            Route(f"/crm/v3/objects/{kinds}/search", _searching(served), methods=["POST"]),
            Route(f"/crm/v3/objects/{kinds}/{{id:str}}", _one(served), methods=["GET"]),
            Route(f"/crm/v3/objects/{kinds}/{{id:str}}", _updating(served), methods=["PATCH"]),
            Route(f"/crm/v3/properties/{kinds}", _definitions(served)),
            Route(f"/crm/v3/properties/{kinds}/{{name:str}}", _definition(served)),
            Route(f"/crm/v3/objects/{kinds}", _listing(served)),
        ]
    )
    known = _KnownTypes(app, frozenset(types))
    return FaultInjector(known, faults, lambda p: p.startswith("/crm/"))


class _KnownTypes:
    """Only the object types served answer; any other path is Starlette's 404."""

    def __init__(self, app: Starlette, names: frozenset[str]) -> None:
        self.app, self.names = app, names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope.get("path", "").split("/")
        if scope["type"] == "http" and (len(parts) < 5 or parts[4] not in self.names):
            await Response("Not Found", 404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- the registry entry --------------------------------------------------------------------


def _build(ctx: SimulatorContext) -> FaultInjector:
    return hubspot_app(
        ctx.credentials.hubspot_token,
        ctx.contacts,
        ctx.seed,
        ctx.faults,
        ctx.rate_limit,
        overlay=ctx.overlay,
        clock=ctx.clock,
    )


def _env(url: str, credentials: DemoCredentials) -> dict[str, str]:
    return {
        "HUBSPOT_API_BASE_URL": url,
        "HUBSPOT_ACCESS_TOKEN": credentials.hubspot_token,
        "HUBSPOT_CLIENT_SECRET": credentials.hubspot_client_secret,
    }


def _collections(contacts: int, seed: int) -> dict[str, Collection]:
    """What a non-archived listing serves, in order: every property (as a listing naming
    them all in `properties=` returns it) and, for deals, the `associations=contacts` part."""
    return {
        "contacts": (contacts, lambda i: hubspot_contact(seed, i, contacts)),
        "deals": (data.deal_count(contacts), lambda j: hubspot_deal(seed, j, contacts)),
    }


HUBSPOT = Simulator("hubspot", _build, _env, _collections)
