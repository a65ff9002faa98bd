"""Simulated Lofty (formerly Chime) public API: leads and transactions, as documented.

What the vendor documents (developer.lofty.com, stored copies), and this server follows:

- Auth (authentication/overview): `Authorization: token <api_key>` for API keys,
  `Authorization: Bearer <access_token>` for OAuth 2. Errors (authentication/error-codes):
  bodies are `{"code": ..., "message": ...}`; a missing or invalid key or token is 401 with
  code `BAD_CREDENTIALS` ("Invalid API key or access token."); `LIMIT_NOT_VALID` (400) is
  "limit parameter is out of the allowed range (typically 1-100)"; `INVALID_PARAMETER` (400)
  "one or more request parameters are invalid or missing".
- Rate limits (authentication/overview): per app, 100 requests a minute in development and 500
  in production; "the window resets every 60 seconds"; every response carries
  `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (UTC epoch seconds);
  past the limit, HTTP 429 with the body `{"message":"Too Many Requests"}`. No `Retry-After`
  is documented, so none is sent.
- `GET /v1.0/leads` (api-reference/leads/list-leads, guides/lead-management): `limit`,
  `offset`, and "use scrollId from the response for efficient cursor-based pagination over
  large result sets". The body is `{"get_metadata": {"collection", "limit", "offset",
  "total", "scrollId"}, "leads": [...]}`: the metadata key is literally `get_metadata` (not
  `_metadata` or `metadata`, which sibling endpoints such as /v2.0/working-leads use).
- A lead (same pages, concepts/leads): `leadId` int64 ("standard 32-bit integers will
  overflow"; the guide's example is 651095960136641), `leadUserId`, `firstName`, `lastName`,
  `emails` and `phones` as plain string lists, `leadSource` (int) beside `source` (label),
  `stageId` beside `stage` (name), `assignedUserId` (int64) and `assignedUser`, `score`,
  `teamId`, `leadTypes` (Buyer 2, Seller 1, Renter 5, Investor 6, ...), `tags` as
  `[{leadId, tagId, createTime, updateTime, tagName, creatorUserId, visibleType}]`,
  `streetAddress`, `city`, `state`, `zipCode`, `createTime`, `assignTime`, `hiddenFlag`,
  `referredBy`, `leadPropertyList` (each with a free-text `note`). No top-level update
  time is shown on a lead, so none is served. Common stages: New Lead, Contacted, Qualified,
  Under Contract, Closed.
- `GET /v2.0/transactions` (api-reference/transactions/list-transactions): `pageSize`
  ("must be between 1 and 100", default 20), `pageNum` ("0-based; must be >= 0", default 0);
  body `{"pageNum", "pageSize", "totalCount", "pageData": [...]}`; a transaction has
  `transactionId`, `leadId`, `propertyId`, `transactionName` ("123 Main St"), `leadName`,
  `agentName`, `assignedAgent`, `transactionType` ("Purchase"), `transactionStatus`
  ("Pre-contract"), `homePrice`, `commissionRate` (3 meaning 3 %), `gci`, `teamRevenue`,
  `agentRevenue`, `customFields [{id, value}]`, and its dates (`created`, `updated`,
  `expectedCloseDate`, `closeDate`, `appointmentDate`, `agreementSignedDate`, `offerDate`,
  `contractDate`, `appraisalDate`, `homeInspectionDate`, `escrowDate`, `expiration`) as epoch
  milliseconds.

Writes and single reads (api-reference/leads/overview, update-lead, guides/lead-management,
concepts/leads, authentication/error-codes), and followed: `GET /v1.0/leads/{leadId}` reads
one lead; `PUT /v1.0/leads/{leadId}` "send only the fields you want to change", the
reference's body listing cannotText, cannotCall, cannotEmail, firstName, lastName, emails
(string[]), phones (string[]), leadTypes, assignedUserId, streetAddress, city, state,
zipCode, referredBy, isHidden, stage (by name), groups, segments, tags (string[]), tagsAdd,
source, inquiry, property, customAttributeList; first and last names hold at most 30
characters. Errors are `{"code", "message"}`: 400 INVALID_PARAMETER ("invalid or missing"),
PARAMETER_TOO_LONG ("a string parameter exceeds the maximum allowed length"), 404
LEAD_NOT_EXIST ("the specified lead was not found").

Unconfirmed (no vendor text found), and the reading chosen (writes):

- Both answer the bare lead, as the listing shows it (the reference shows no response
  body for either). A PUT answers the lead after the write.
- `tags` replaces the lead's tags, `tagsAdd` adds to them (a tag the lead holds keeps its
  object and times; a new one gets a tag id and the write's time); tags come as strings
  (the reference) or `{tagName}` objects (the guide's example).
- `stage` must be one of this team's stages (the reference's example "Pending" is not one
  here), and sets `stageId` too; `source` must be a known source and sets `leadSource`;
  `assignedUserId` must be an agent's and sets `assignedUser`; `isHidden` is the lead's
  `hiddenFlag`; `leadTypes` are the documented type ids; e-mails need an "@".
- groups, segments, inquiry, property and customAttributeList are accepted and ignored (a
  lead here holds none of the first four; its custom attributes are read-only here); any
  other name is INVALID_PARAMETER, as is a body that is no JSON object. Unknown, deleted or
  id-less leads are 404 LEAD_NOT_EXIST.
- Leads and transactions live in the shared overlay ("lofty:leads",
  "lofty:transactions"): a write, or a change a test makes behind the product's back, is in
  the next read and listing; a deleted lead leaves the listing (Lofty's DELETE trashes, and
  `total` counts what is listed); a changed transaction's `updated` is the change (epoch
  ms). Lofty has no updated-since filter (crm-apis.md), so nothing incremental is served.

Unconfirmed (no vendor text found), and the reading chosen:

- The leads `limit` default and maximum: the example metadata shows 10, the error-codes page
  says "typically 1-100", sibling lists document a maximum of 100. Default 10; outside 1-100
  is refused with 400 `LIMIT_NOT_VALID` (never clamped: a connector must ask for what exists).
- How the last leads page is signalled, and scrollId's lifetime: nothing says. scrollId is
  served on every page (as an Elasticsearch-style scroll would), pointing past the page just
  served, so the end shows as an empty `leads` array or as `offset + len(leads) >= total`;
  a null scrollId never marks it. With `scrollId`, `offset` is ignored; `limit` still applies.
- The lead's `createTime`, `assignTime` and the tags' times are typed string with no format;
  they are written like the ISO-8601 UTC times of the lead's nested objects in the same
  example (`2023-11-07T05:31:56Z`).
- `get_metadata.collection` is printed as "note" in the leads example (likely a copy slip);
  served verbatim, since no connector should read it.
- Default order: undocumented (`sort`, `desc` exist). Records come in index order; `sort`,
  `desc` and the filters (`stage`, `source`, `email`, `queryKey`, `leadId`, ...) are not
  simulated and are ignored.
- Transaction types and statuses beyond "Purchase" and "Pre-contract", and whether unset
  dates are null or absent: null here, as dates a deal has not reached yet.
- The 401 `message` wording: the error-codes table's description is used.
- The window: the docs describe a fixed minute ("resets every 60 seconds"); this server counts
  a sliding 60 seconds (never more than the limit in any minute, so a client that honours the
  headers honours both), and `X-RateLimit-Reset` is when the oldest counted request ages out.
- `leadId` is int64 and may pass 2**53 in Lofty; here every id stays below it (see
  `data.lofty_id`), so a connector's exactness past 2**53 is not exercised.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_tui.demo import data
from crm_tui.demo.changes import Entry, Kind, Overlay, Target
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.data import lofty_id
from crm_tui.demo.servers import (
    Collection,
    DemoCredentials,
    FaultInjector,
    Faults,
    FieldWriter,
    Simulator,
    SimulatorContext,
    SlidingWindow,
    WriteError,
    boolean,
    json_object,
    json_response,
    maybe_text,
    one_of,
    sets,
    strings,
    union,
    update,
    written,
)

__all__ = ["LOFTY", "lofty_app", "lofty_id", "lofty_lead", "lofty_transaction", "transaction_id"]

LEAD_STAGES = ("New Lead", "Contacted", "Qualified", "Under Contract", "Closed")
LEAD_SOURCES = ("Zillow", "Realtor.com", "Website", "Open House", "Referral")
LEAD_TYPES = (2, 1, 5, 6)  # Buyer, Seller, Renter, Investor
AGENTS = (
    ("Amy Agent", 10_000_000_514),
    ("Ben Broker", 10_000_000_515),
    ("Cara Closer", 10_000_000_516),
)
TEAM_ID = 10_000_000_101
TRANSACTION_TYPES = ("Purchase", "Sale")
TRANSACTION_STATUSES = ("Pre-contract", "Under Contract", "Closed", "Terminated")
DEFAULT_LIMIT = 10
MAX_PAGE = 100
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


LENDER_ATTRIBUTE = 1001  # the leads' custom attribute ids
PRICE_RANGE_ATTRIBUTE = 1002
LENDER_FIELD = 2001  # the transactions' custom field id


def transaction_id(j: int) -> int:
    return 10_001 + j


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp()) * 1000


def lofty_lead(seed: int, i: int, count: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    p = data.person(seed, data.population_index("lofty", i, count))
    s = data.spelled(seed, "lofty", i, p, count)
    r = data.rng(seed, "lofty", "lead", i)
    created = clock.moment(_EPOCH + timedelta(days=r.randint(0, 900), seconds=r.randint(0, 86_399)))
    assigned = created + timedelta(minutes=r.randint(1, 240))
    agent, agent_id = r.choice(AGENTS)
    stage = r.choice(LEAD_STAGES)
    source = r.choice(LEAD_SOURCES)
    lead_id = lofty_id(i)
    lead_user_id = 90_000_000_000 + i
    record: dict[str, Any] = {
        "cannotText": False,
        "cannotCall": False,
        "cannotEmail": False,
        "leadId": lead_id,
        "leadUserId": lead_user_id,
        "firstName": s.first,
        "lastName": s.last,
        "birthday": None,
        "emails": [s.email] if s.email else [],
        "phones": [s.phone],
        "leadSource": LEAD_SOURCES.index(source) + 1,
        "source": source,
        "stageId": 30_001 + LEAD_STAGES.index(stage),
        "stage": stage,
        "assignedUserId": agent_id,
        "assignedUser": agent,
        "lenderUserId": None,
        "score": r.randint(0, 100),
        "tags": [
            {
                "leadId": lead_id,
                "tagId": 7_001 + data.TAGS.index(tag),
                "createTime": _iso(created),
                "updateTime": _iso(created),
                "tagName": tag,
                "creatorUserId": agent_id,
                "visibleType": 1,
            }
            for tag in p.tags
        ],
        "teamId": TEAM_ID,
        "leadTypes": [r.choice(LEAD_TYPES)],
        "streetAddress": p.street,
        "city": p.city,
        "state": p.state,
        "zipCode": p.zip,
        "createTime": _iso(created),
        "assignTime": _iso(assigned),
        "facebook": None,
        "twitter": None,
        "hiddenFlag": False,
        "referredBy": None,
        "leadPropertyList": [
            {
                "id": 40_000_000_000 + i,
                "leadUserId": lead_user_id,
                "streetAddress": p.street,
                "city": p.city,
                "state": p.state,
                "zipCode": p.zip,
                "propertyType": "Single Family Home",
                "mailAddress": True,
                "label": "Home",
                # The lead's only documented free-text field: where a long note lands.
                "note": s.note,
            }
        ],
    }
    # The lead's custom attributes: `customAttributeList` is the name Lofty's PUT takes;
    # the item shape is not documented for leads, so the transactions' documented
    # `customFields [{id, value}]` with the attribute's name beside it. Every attribute is
    # listed in the account's order, null when the lead has no value: `[0]` is always Lender.
    custom = data.custom_values(seed, "lofty", i, clock)
    record["customAttributeList"] = [
        {"id": LENDER_ATTRIBUTE, "name": "Lender", "value": custom.lender},
        {
            "id": PRICE_RANGE_ATTRIBUTE,
            "name": "Price Range",
            "value": None if custom.price_range is None else str(custom.price_range),
        },
    ]
    if i == data.MISSING_ID_INDEX:
        # No id of the lead anywhere in it: a connector cannot fall back on a nested copy.
        del record["leadId"], record["leadUserId"]
        del record["leadPropertyList"][0]["leadUserId"]
        for tag in record["tags"]:
            del tag["leadId"]
    return record


def _lead_index(seed: int, j: int, contacts: int) -> int:
    """The lead transaction `j` belongs to: always one that has an id."""
    i = data.rng(seed, "lofty", "transaction-lead", j).randrange(max(contacts, 1))
    if i == data.MISSING_ID_INDEX and contacts > data.MISSING_ID_INDEX:
        i = (i + 1) % contacts
    return i


def lofty_transaction(seed: int, j: int, contacts: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    r = data.rng(seed, "lofty", "transaction", j)
    i = _lead_index(seed, j, contacts)
    lead = lofty_lead(seed, i, contacts, clock)
    agent, agent_id = r.choice(AGENTS)
    status = r.choice(TRANSACTION_STATUSES)
    reached = TRANSACTION_STATUSES.index(status)  # 0 pre-contract ... 2 closed
    created = _EPOCH + timedelta(days=r.randint(0, 900), seconds=r.randint(0, 86_399))
    offer = created + timedelta(days=r.randint(3, 30))
    contract = offer + timedelta(days=r.randint(1, 10))
    expected = contract + timedelta(days=r.randint(20, 60))
    closed = expected + timedelta(days=r.randint(-5, 10))
    updated = (closed if status == "Closed" else contract) + timedelta(days=r.randint(0, 5))
    expected = clock.moment(expected)  # an expected closing may be ahead, the rest happened
    created, offer, contract, closed, updated = map(
        clock.past, (created, offer, contract, closed, updated)
    )
    price = r.randrange(180_000, 2_400_000, 500)
    rate = r.choice((2, 2.5, 3))
    gci = round(price * rate / 100, 2)
    agent_share = round(gci * 0.8, 2)
    under_contract = reached in (1, 2) or (status == "Terminated" and r.random() < 0.5)
    return {
        "created": _ms(created),
        "updated": _ms(updated),
        "transactionId": transaction_id(j),
        "leadId": lofty_id(i),
        "propertyId": 20_001 + j,
        "transactionName": (
            f"{r.randint(100, 9999)} {r.choice(data.STREETS)} {r.choice(data.SUFFIXES)}"
        ),
        "leadName": f"{lead['firstName']} {lead['lastName']}",
        "agentName": agent,
        "assignedAgent": agent_id,
        "transactionType": r.choice(TRANSACTION_TYPES),
        "transactionStatus": status,
        "homePrice": price,
        "expectedCloseDate": _ms(expected),
        "closeDate": _ms(closed) if status == "Closed" else None,
        "commissionRate": rate,
        "gci": gci,
        "teamRevenue": round(gci - agent_share, 2),
        "agentRevenue": agent_share,
        "appointmentDate": _ms(clock.settled(created + timedelta(days=1))),
        "agreementSignedDate": _ms(clock.settled(created + timedelta(days=2))),
        "offerDate": _ms(offer),
        "contractDate": _ms(contract) if under_contract else None,
        "appraisalDate": None,
        "homeInspectionDate": None,
        "escrowDate": _ms(clock.settled(contract + timedelta(days=3))) if under_contract else None,
        "expiration": None,
        # documented `customFields [{id, value}]`: the account's one transaction field
        "customFields": [
            {"id": LENDER_FIELD, "value": data.custom_values(seed, "lofty-deal", j, clock).lender}
        ],
    }


# -- live changes and writes ----------------------------------------------------------------

LEADS = "lofty:leads"
TRANSACTIONS = "lofty:transactions"
NAME_MAX = 30  # firstName / lastName, "max 30 chars each" (concepts/leads)
LEAD_TYPE_IDS = (2, 1, 5, 6, 7, 8, 9, -1)  # Buyer, Seller, Renter, Investor, Agent, ...
#: Documented PUT fields this simulator keeps nothing for: accepted and ignored.
_UNSIMULATED = frozenset({"groups", "segments", "inquiry", "property", "customAttributeList"})


def lead_stage(stage: str) -> dict[str, Any]:
    """A stage name with its id, in step as the generator keeps them."""
    return {"stage": stage, "stageId": 30_001 + LEAD_STAGES.index(stage)}


def mutate_lead(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    return {} if kind == "create" else lead_stage(r.choice(LEAD_STAGES))


def mutate_transaction(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    return {} if kind == "create" else {"transactionStatus": r.choice(TRANSACTION_STATUSES)}


def lead_now(
    seed: int, i: int, count: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = lofty_lead(seed, i, count, clock)
    if entry is not None:
        record.update(entry.patch)
    return record


def transaction_now(
    seed: int, j: int, contacts: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = lofty_transaction(seed, j, contacts, clock)
    if entry is not None:
        record.update(entry.patch)
        if entry.created_at is not None:
            record["created"] = int(entry.created_at) * 1000
        record["updated"] = int(entry.updated_at) * 1000  # epoch ms, as the generator's
    return record


def _short(value: object, name: str) -> str | None:
    checked = maybe_text(value, name)
    if checked is not None and len(checked) > NAME_MAX:
        raise WriteError(f"{name} is longer than {NAME_MAX} characters.", code="PARAMETER_TOO_LONG")
    return checked


def _emails(value: object, name: str) -> list[str]:
    emails = strings(value, name)
    bad = [e for e in emails if "@" not in e]
    if bad:
        raise WriteError(f"{name}: {bad[0]!r} is not an e-mail address.")
    return emails


def _tag_names(value: object, name: str) -> list[str]:
    """Tag names, as strings (the reference's example) or `{tagName}` objects (the guide's)."""
    if isinstance(value, list):
        value = [v.get("tagName") if isinstance(v, dict) else v for v in value]
    return strings(value, name)


def _tag(lead: dict[str, Any], name: str, now: str) -> dict[str, Any]:
    """A tag object as leads list them; a name the team has not used yet gets a new id."""
    known = data.TAGS.index(name) if name in data.TAGS else None
    return {
        "leadId": lead.get("leadId"),
        "tagId": 7_001 + known
        if known is not None
        else 8_000_000 + zlib.crc32(name.encode()) % 10**6,
        "createTime": now,
        "updateTime": now,
        "tagName": name,
        "creatorUserId": lead["assignedUserId"],
        "visibleType": 1,
    }


def _tags(lead: dict[str, Any], names: list[str], now: str) -> list[dict[str, Any]]:
    """The lead's tags as `names` says, each tag the lead already had kept as it was."""
    held = {tag["tagName"]: tag for tag in lead["tags"]}
    return [held.get(name) or _tag(lead, name, now) for name in names]


def _agent(value: object, name: str) -> dict[str, Any]:
    agents = {agent_id: agent for agent, agent_id in AGENTS}
    agent_id = one_of(value, name, agents)
    return {"assignedUserId": agent_id, "assignedUser": agents[agent_id]}


def _source(value: object, name: str) -> dict[str, Any]:
    source = one_of(value, name, LEAD_SOURCES)
    return {"source": source, "leadSource": LEAD_SOURCES.index(source) + 1}


def _lead_types(value: object, name: str) -> list[int]:
    if not isinstance(value, list):
        raise WriteError(f"{name} must be a list of lead type ids.")
    return union([], (one_of(v, name, LEAD_TYPE_IDS) for v in value))


_LEAD_WRITERS: dict[str, FieldWriter] = {
    "firstName": sets(_short),
    "lastName": sets(_short),
    "emails": sets(_emails),
    "phones": sets(strings),
    "stage": lambda value, name: lead_stage(one_of(value, name, LEAD_STAGES)),
    "source": _source,
    "assignedUserId": _agent,
    "leadTypes": sets(_lead_types),
    "streetAddress": sets(maybe_text),
    "city": sets(maybe_text),
    "state": sets(maybe_text),
    "zipCode": sets(maybe_text),
    "referredBy": sets(maybe_text),
    "cannotText": sets(boolean),
    "cannotCall": sets(boolean),
    "cannotEmail": sets(boolean),
    "isHidden": sets(boolean, "hiddenFlag"),
}


def lead_patch(body: dict[str, Any], lead: dict[str, Any]) -> dict[str, Any]:
    """What a PUT (only the changed fields) writes. `tags` replaces the lead's tags,
    `tagsAdd` adds to them; documented fields this simulator does not keep are ignored; any
    other name is a 400 INVALID_PARAMETER."""
    passed = {"tags", "tagsAdd", *_UNSIMULATED}
    patch = written(body, _LEAD_WRITERS, passed, lambda name: f"{name} is not a lead field.")
    now = _iso(datetime.now(UTC))
    names = [tag["tagName"] for tag in lead["tags"]]
    if "tags" in body:
        names = _tag_names(body["tags"], "tags")
    if "tagsAdd" in body:
        names = union(names, _tag_names(body["tagsAdd"], "tagsAdd"))
    if {"tags", "tagsAdd"} & body.keys():
        patch["tags"] = _tags(lead, names, now)
    return patch


# -- the server ----------------------------------------------------------------------------


def _error(code: str, message: str, status: int, headers: dict[str, str]) -> Response:
    return json_response({"code": code, "message": message}, status, headers)


def _encode_scroll(offset: int) -> str:
    return base64.urlsafe_b64encode(f"lofty-scroll:{offset}".encode()).decode().rstrip("=")


def _decode_scroll(scroll: str) -> int | None:
    try:
        decoded = base64.urlsafe_b64decode(scroll + "=" * (-len(scroll) % 4)).decode()
        prefix, _, number = decoded.partition(":")
        return int(number) if prefix == "lofty-scroll" and number.isdigit() else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _number(value: str | None, default: int) -> int | None:
    """A query parameter as an int (its default when absent); None when it is not one."""
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None


@dataclass
class _Data:
    """The leads and transactions as they are now: generated, then changed through the
    overlay (by a PUT, or by a test behind the product's back)."""

    seed: int
    contacts: int
    overlay: Overlay
    clock: DemoClock = FIXED

    def __post_init__(self) -> None:
        deals = data.deal_count(self.contacts)
        self.overlay.register(
            Target(
                LEADS,
                self.contacts,
                self.contacts,
                mutate_lead,
                lambda i: i != data.MISSING_ID_INDEX,  # the lead served without an id
            )
        )
        self.overlay.register(Target(TRANSACTIONS, deals, deals, mutate_transaction))

    def lead(self, i: int) -> dict[str, Any]:
        return lead_now(self.seed, i, self.contacts, self.overlay.get(LEADS, i), self.clock)

    def transaction(self, j: int) -> dict[str, Any]:
        entry = self.overlay.get(TRANSACTIONS, j)
        return transaction_now(self.seed, j, self.contacts, entry, self.clock)

    def lead_index(self, lead_id: int) -> int | None:
        """The lead a `leadId` names, if it is there (not deleted, and has that id)."""
        i, rest = divmod(lead_id - lofty_id(0), lofty_id(1) - lofty_id(0))
        entry = self.overlay.get(LEADS, i)
        if rest or not self.overlay.exists(LEADS, i) or (entry is not None and entry.deleted):
            return None
        return None if i == data.MISSING_ID_INDEX else i


def lofty_app(
    key: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 500,
    window: float = 60.0,
    overlay: Overlay | None = None,
    clock: DemoClock = FIXED,
) -> FaultInjector:
    live = _Data(seed, contacts, overlay or Overlay(seed), clock)
    guard = _Guard(key, rate_limit, window)
    routes = [*_lead_routes(guard, live, faults), *_transaction_routes(guard, live, faults)]
    return FaultInjector(
        Starlette(routes=routes), faults, lambda path: path.startswith(("/v1.0/", "/v2.0/"))
    )


class _Guard:
    """The sliding-window budget, then the credentials, that every endpoint shares."""

    def __init__(self, key: str, rate_limit: int, window: float) -> None:
        self.budget = SlidingWindow(rate_limit, window)
        self.rate_limit = rate_limit
        self.window = window
        self.accepted = {f"token {key}", f"Bearer {key}"}

    def rate_headers(self, remaining: int) -> dict[str, str]:
        # In a sliding window the budget "resets" when the oldest counted request ages out.
        now = time.monotonic()
        hits = self.budget.hits
        frees_in = hits[0] + self.window - now if hits else self.window
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(time.time() + max(frees_in, 0.0))),
        }

    def check(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """(a refusal or None, the headers to send)."""
        allowed, remaining, _ = self.budget.take()
        headers = self.rate_headers(remaining)
        if not allowed:
            return json_response({"message": "Too Many Requests"}, 429, headers), headers
        if request.headers.get("authorization") not in self.accepted:
            refusal = _error("BAD_CREDENTIALS", "Invalid API key or access token.", 401, headers)
            return refusal, headers
        return None, headers


def _lead_routes(guard: _Guard, live: _Data, faults: Faults) -> list[Route]:
    """`GET /v1.0/leads` (offset or scrollId pages) and `GET|PUT /v1.0/leads/{id}`."""

    async def leads(request: Request) -> Response:
        refusal, headers = guard.check(request)
        if refusal is not None:
            return refusal
        params = request.query_params
        limit = _number(params.get("limit"), DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= MAX_PAGE:
            return _error(
                "LIMIT_NOT_VALID", f"limit must be between 1 and {MAX_PAGE}.", 400, headers
            )
        offset = _number(params.get("offset"), 0)
        if "scrollId" in params:
            offset = _decode_scroll(params["scrollId"])
        if offset is None or offset < 0:
            return _error("INVALID_PARAMETER", "offset or scrollId is not valid.", 400, headers)
        positions = live.overlay.positions(LEADS)
        total = positions.total
        end = min(offset + limit, total)
        items = [live.lead(i) for i in positions.indices(offset, end)]
        if faults.overlap_pages and 0 < offset < total:
            items[:0] = [live.lead(i) for i in positions.indices(offset - 1, offset)]
        body = {
            "get_metadata": {
                "collection": "note",
                "limit": limit,
                "offset": offset,
                "total": total,
                "scrollId": _encode_scroll(max(end, offset)),
            },
            "leads": items,
        }
        return json_response(body, headers=headers)

    async def one_lead(request: Request) -> Response:
        refusal, headers = guard.check(request)
        if refusal is not None:
            return refusal
        i = live.lead_index(request.path_params["id"])
        if i is None:
            return _error("LEAD_NOT_EXIST", "The specified lead was not found.", 404, headers)
        if request.method == "PUT":
            try:
                patch = lead_patch(await json_object(request), live.lead(i))
            except WriteError as error:
                code = error.code or "INVALID_PARAMETER"
                return _error(code, error.message, error.status, headers)
            update(live.overlay, LEADS, i, patch)
        return json_response(live.lead(i), headers=headers)

    return [
        Route("/v1.0/leads", leads),
        Route("/v1.0/leads/{id:int}", one_lead, methods=["GET", "PUT"]),
    ]


def _transaction_routes(guard: _Guard, live: _Data, faults: Faults) -> list[Route]:
    """`GET /v2.0/transactions` (pageNum and pageSize)."""

    async def transactions(request: Request) -> Response:
        refusal, headers = guard.check(request)
        if refusal is not None:
            return refusal
        params = request.query_params
        size = _number(params.get("pageSize"), 20)
        if size is None or not 1 <= size <= MAX_PAGE:
            return _error(
                "INVALID_PARAMETER", f"pageSize must be between 1 and {MAX_PAGE}.", 400, headers
            )
        page = _number(params.get("pageNum"), 0)
        if page is None or page < 0:
            return _error("INVALID_PARAMETER", "pageNum must be >= 0.", 400, headers)
        positions = live.overlay.positions(TRANSACTIONS)
        start = page * size
        items = [live.transaction(j) for j in positions.indices(start, start + size)]
        if faults.overlap_pages and 0 < start < positions.total:
            items[:0] = [live.transaction(j) for j in positions.indices(start - 1, start)]
        body = {"pageNum": page, "pageSize": size, "totalCount": positions.total, "pageData": items}
        return json_response(body, headers=headers)

    return [Route("/v2.0/transactions", transactions)]


def _build(ctx: SimulatorContext) -> FaultInjector:
    # ctx.rate_limit is the demo's budget per 10 seconds (Follow Up Boss's window); Lofty
    # documents a minute, so six of those.
    return lofty_app(
        ctx.credentials.lofty_key,
        ctx.contacts,
        ctx.seed,
        ctx.faults,
        rate_limit=ctx.rate_limit * 6,
        overlay=ctx.overlay,
        clock=ctx.clock,
    )


def _env(url: str, credentials: DemoCredentials) -> dict[str, str]:
    return {"LOFTY_API_BASE_URL": url, "LOFTY_API_KEY": credentials.lofty_key}


def _collections(contacts: int, seed: int) -> dict[str, Collection]:
    return {
        "contacts": (contacts, lambda i: lofty_lead(seed, i, contacts)),
        "deals": (data.deal_count(contacts), lambda j: lofty_transaction(seed, j, contacts)),
    }


LOFTY = Simulator("lofty", _build, _env, _collections)
