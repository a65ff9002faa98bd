"""A simulator of Pipedrive API v2 (persons and deals), as its published contract reads.

Sources: PD-php = pipedrive/client-php `docs/versions/v2` (the official SDK generated from
Pipedrive's OpenAPI: `Api/PersonsApi.md`, `Api/DealsApi.md`, `Model/PersonItem.md`,
`Model/DealItem.md`, `Model/AdditionalDataWithCursorPagination.md`); RL = pipedrive.readme.io
core-api-concepts-rate-limiting; SC = pipedrive.readme.io core-api-concepts-http-status-codes.

Documented, and followed:
- `GET /api/v2/persons`, `GET /api/v2/deals`; auth by the `x-api-token` header or an OAuth
  `Authorization: Bearer` token (PD-php). A bad or missing token is 401 (SC).
- `limit`: 100 when absent, "a maximum value of 500 is allowed" (PD-php). `cursor`: "an
  opaque string value representing the first item on the next page". `sort_by` id |
  update_time | add_time (default id), `sort_direction` asc | desc (default asc).
  `updated_since`: `update_time` later than or equal to it; `updated_until`: earlier than it;
  both RFC 3339 (PD-php).
- Deals `status`: open | won | lost | deleted, several comma-separated; "if omitted, all not
  deleted deals are returned" (PD-php).
- Body `{"success": true, "data": [...], "additional_data": {"next_cursor": ...}}`;
  `next_cursor` is null at the end of the dataset (PD-php `GetPersons`,
  `AdditionalDataWithCursorPagination`). Items carry the `PersonItem` / `DealItem` fields:
  related objects are ids only, custom fields sit under `custom_fields` keyed by 40-character
  hashes.
- Every response carries `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`
  (seconds left in the window) and, for api_token requests only, `x-daily-requests-left`,
  which counts POST/PUT requests (RL). Bursts are limited per 2-second window (RL); over the
  limit is 429 (RL, SC).

Writes, as the official SDK's request models document them (pipedrive/client-nodejs
`src/versions/v2/models/update-person-request.ts`, `update-deal-request.ts`; client-php
`docs/versions/v2/Model/DealRequestBody.md`), and followed:
- Persons take name, owner_id, org_id, emails[{value, primary, label}], phones[{value,
  primary, label}], visible_to, label_ids, marketing_status (no_consent | unsubscribed |
  subscribed | archived), custom_fields, add_time, update_time. There is no first_name or
  last_name in v2's update: they are refused like any other field the model lacks.
- Deals take title, owner_id, person_id, org_id, pipeline_id, stage_id, value, currency,
  is_deleted, is_archived, archive_time, status, probability, lost_reason ("can only be set
  if deal status is lost"), visible_to, close_time ("only if status is won or lost"),
  won_time (won), lost_time (lost), expected_close_date, label_ids, custom_fields (null
  clears one), add_time, update_time, stage_change_time. `pipeline_id` alone puts the deal
  in that pipeline's first stage; with `stage_id` it is ignored, the pipeline following the
  stage (changelog "Bug fix in the behavior of pipeline_id and stage_id").
- The answer is `{success: true, data: <the item as GET returns it>}`; errors keep the
  failure shape above with 400 (a bad value) or 404.

Where the docs are silent, the plain reading (writes):
- A name the request model lacks is a 400 (`"<name> is not a field this update takes"`).
  add_time / update_time / stage_change_time are accepted and ignored: the server stamps
  its own times (a client's update_time would move every incremental reader's watermark).
- `name` sets first_name / last_name, split at the first space (whitespace collapsed).
- Values are checked against what this company holds: owners 13101-13103, the
  organisations, label ids (persons 1-3, deals 4-6), visible_to 1/3/5/7, stages 1-12 of
  pipelines 1-2, an existing person for `person_id`, the custom field hashes, e-mail labels
  work/home/other, phone labels work/home/mobile/other, a 3-letter upper-case currency,
  probability 0-100, dates YYYY-MM-DD, times RFC 3339 or "YYYY-MM-DD HH:MM:SS" (UTC).
  `status` is open | won | lost (deleting goes by `is_deleted: true`).
- A status change stamps close_time and won_time / lost_time with the write's moment
  (open clears them and the lost reason); a stage change stamps stage_change_time.
  `is_archived: true` hides the deal from `/api/v2/deals` (its archived list is not
  simulated); `is_deleted: true` deletes it (status "deleted").
- Unknown ids, the person served without an id, deleted persons and deleted deals are 404:
  a deleted record takes no writes.
- `x-daily-requests-left` starts at 10,000 and each write (any method but GET/HEAD) spends
  one; at 0 a write is refused with the 429 body, reads go on.

Where the docs are silent, the plain reading:
- `limit` above 500 (or below 1, or not a number) is refused with 400, not clamped: the docs
  say 500 is the maximum allowed and never that more is cut down.
- Error bodies use the shape of Pipedrive's documented failure models (`success: false`,
  `error`, `error_info`, `data`, `additional_data`). The 401 and 429 bodies are v1's as
  served live (`"unauthorized access"` / `"Request over limit"` with `errorCode`): no v2
  text gives them; RL's 429 example is cut off after `{"succ`.
- No `Retry-After` on 429: RL names only the four headers above (only a 2015 copy of the
  page mentioned it).
- Invalid `sort_by`, `sort_direction`, `status` or timestamps are 400 as well; a timestamp
  must carry its offset (RFC 3339 requires one). A cursor is bound to the sort it was made
  for; used with another, it is refused like a malformed one.
- 401 is answered before the burst limit is counted: limits are per token (RL), and an
  unknown token has no budget to count against; 401 carries no rate headers.
- Deleted deals have `status: "deleted"` and `is_deleted: true`. Every deleted deal counts
  as deleted within the 30 days the docs keep them for (the data has no clock).
- The simulated company has contact sync enabled, so persons carry `postal_address`,
  `notes`, `im`, `birthday` and `job_title` (PD-php: "only included if contact sync is
  enabled"); the 10,000-character text is a `notes` value, the documented maximum. A person
  without an e-mail has `emails: []`. `arr`/`mrr`/`acv` (Growth plans and up) are absent.
- Live changes (`demo/changes.py`): a changed record gets `update_time` = the change (whole
  seconds, UTC); a created one `add_time` too. A deleted deal has `status: "deleted"` and
  is listed with `status=deleted` (deleted within the 30 days); a deleted person is no
  longer listed and `GET /api/v2/persons/{id}` answers 404, while `GET /api/v2/deals/{id}`
  still returns a deleted deal. `updated_since` with `sort_by=update_time` past every
  generated record's time reads only the changes (no index over a million records).
- Writes (`PATCH /api/v2/persons/{id}`, `/api/v2/deals/{id}`) are one overlay change each,
  so listings, `updated_since` and GETs see them.
- Other documented filters (`ids`, `owner_id`, `org_id`, `person_id`, `deal_id`,
  `pipeline_id`, `stage_id`, `filter_id`, `include_fields`, `custom_fields`, `include_*`)
  are accepted and ignored: crm-tui's connector lists everything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from collections.abc import Collection as Collection_
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_tui.demo import data
from crm_tui.demo.changes import (
    BASE_HORIZON,
    Entry,
    IdKeys,
    Keys,
    Kind,
    Overlay,
    SortIndex,
    Target,
    index_of,
    pack,
    unpack,
    walk,
)
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.data import pipedrive_id
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
    day,
    json_object,
    maybe_text,
    number,
    one_of,
    sets,
    text,
    update,
    written,
)

__all__ = [
    "PIPEDRIVE",
    "deal_slot",
    "pipedrive_app",
    "pipedrive_deal",
    "pipedrive_deal_id",
    "pipedrive_id",
    "pipedrive_person",
]

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
BURST_WINDOW = 2.0  # seconds (RL)
DAILY_REQUESTS = 10_000  # RL's fair-usage figure for POST/PUT; GETs leave it untouched
DELETED_EVERY = 10  # every tenth deal slot holds a deleted deal
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
UNAUTHORIZED = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": ERROR_INFO,
}
OVER_LIMIT = {
    "success": False,
    "error": "Request over limit",
    "errorCode": 429,
    "error_info": ERROR_INFO,
}

_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z, where the dates start (before a DemoClock)
_DAY = 86_400
_OWNERS = (13_101, 13_102, 13_103)
_FREEMAIL = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com")
_COUNTIES = {
    "Austin": "Travis County",
    "Round Rock": "Williamson County",
    "Cedar Park": "Williamson County",
    "Georgetown": "Williamson County",
    "Pflugerville": "Travis County",
    "Dallas": "Dallas County",
    "Houston": "Harris County",
    "San Antonio": "Bexar County",
    "Denver": "Denver County",
    "Phoenix": "Maricopa County",
    "Nashville": "Davidson County",
    "Raleigh": "Wake County",
}
_PIPELINES = {1: range(1, 7), 2: range(7, 13)}  # Buyers, Sellers: their stage ids
_LOST_REASONS = ("Went with another agent", "Financing fell through", "Stopped responding")
_SOURCES = ("Zillow", "Realtor.com", "Open House", "Referral", "Website")
_JOBS = ("Owner", "Engineer", "Teacher", "Nurse", "Manager", "Attorney")
_SHORT_NOTES = ("Prefers texts after 6pm.", "Pre-approved with Hilltop.", "Wants a big yard.")


def _hash_key(name: str) -> str:
    # Pipedrive names custom fields by random 40-character hashes; these are stable ones.
    return hashlib.sha1(f"crm-tui-demo:{name}".encode()).hexdigest()


LEAD_SOURCE_FIELD = _hash_key("person:lead source")
BUDGET_FIELD = _hash_key("person:budget")
LENDER_FIELD = _hash_key("person:lender")
COMMISSION_FIELD = _hash_key("deal:commission rate")
MLS_FIELD = _hash_key("deal:mls number")


def pipedrive_deal_id(j: int) -> int:
    return 3_000_001 + j


def deal_slot(k: int) -> int:
    """The deal slot that the k-th deal of a default listing (every deal not deleted) sits in."""
    return k + k // (DELETED_EVERY - 1)


def _is_deleted_slot(j: int) -> bool:
    return j % DELETED_EVERY == DELETED_EVERY - 1


def _deal_slots(contacts: int) -> int:
    return deal_slot(data.deal_count(contacts) - 1) + 1


def _draw(seed: int, *parts: object) -> int:
    # blake2b, not random.Random: the server sorts by these times across every record
    text = ":".join(map(str, (seed, *parts)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")


def _stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _day(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class _Meta:
    """What the server filters and sorts on, without building the record."""

    add: int
    update: int
    status: str  # persons: "" (they have none)


def _person_meta(seed: int, i: int, clock: DemoClock = FIXED) -> _Meta:
    h = _draw(seed, "person-times", i)
    add = _EPOCH + h % (900 * _DAY)
    update = clock.past_seconds(add + h // (900 * _DAY) % (60 * _DAY))
    return _Meta(add + clock.seconds, update, "")


def _deal_times(seed: int, j: int, clock: DemoClock = FIXED) -> tuple[int, int, int, str]:
    """(add, stage change, update, status) of deal slot j."""
    h = _draw(seed, "deal-times", j)
    draws = []
    for span in (900 * _DAY, 45 * _DAY, 20 * _DAY, 20):  # 128 bits hold all four
        draws.append(h % span)
        h //= span
    add = _EPOCH + draws[0]
    stage_change = add + draws[1]
    update = stage_change + draws[2]
    roll = draws[3]
    if _is_deleted_slot(j):
        status = "deleted"
    else:
        status = "open" if roll < 12 else "won" if roll < 17 else "lost"
    moved = add + clock.seconds, clock.past_seconds(stage_change), clock.past_seconds(update)
    return *moved, status


def _deal_meta(seed: int, j: int, clock: DemoClock = FIXED) -> _Meta:
    add, _, update, status = _deal_times(seed, j, clock)
    return _Meta(add, update, status)


_FIRST_ORG = 4_001  # the organisations' ids: one per company, in data.COMPANIES order


def _org_id(company: str | None) -> int | None:
    return None if company is None else _FIRST_ORG + data.COMPANIES.index(company)


def pipedrive_person(seed: int, i: int, count: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    """Person `i` as `GET /api/v2/persons` returns it (PD-php `PersonItem`)."""
    p = data.person(seed, data.population_index("pipedrive", i, count))
    s = data.spelled(seed, "pipedrive", i, p, count)
    r = data.rng(seed, "pipedrive", "person", i)
    meta = _person_meta(seed, i, clock)
    emails = []
    if s.email:
        free = s.email.rsplit("@", 1)[-1] in _FREEMAIL
        emails.append({"value": s.email, "primary": True, "label": "home" if free else "work"})
    phones = [{"value": s.phone, "primary": True, "label": r.choice(("mobile", "mobile", "work"))}]
    address = None
    if r.random() < 0.85:
        number, _, route = p.street.partition(" ")
        subpremise = r.choice((None, None, None, f"Apt {r.randint(1, 40)}"))
        address = {
            "value": f"{p.street}{', ' + subpremise if subpremise else ''}, {p.city}, "
            f"{p.state} {p.zip}, USA",
            "country": "United States",
            "admin_area_level_1": p.state,
            "admin_area_level_2": _COUNTIES.get(p.city),
            "locality": p.city,
            "sublocality": None,
            "route": route,
            "street_number": number,
            "subpremise": subpremise,
            "postal_code": p.zip,
        }
    budget = r.choice((None, 350_000, 500_000, 750_000, 1_200_000))
    record: dict[str, Any] = {
        "id": pipedrive_id(i),
        "name": f"{s.first} {s.last}",
        "first_name": s.first,
        "last_name": s.last,
        "owner_id": r.choice(_OWNERS),
        "org_id": _org_id(p.company),
        "add_time": _stamp(meta.add),
        "update_time": _stamp(meta.update),
        "emails": emails,
        "phones": phones,
        "is_deleted": False,
        "visible_to": r.choice((3, 3, 3, 1)),
        "label_ids": sorted(r.sample((1, 2, 3), r.randint(0, 2))),
        "picture_id": None,
        "postal_address": address,
        "notes": s.note if s.note is not None else r.choice((None, None, *_SHORT_NOTES)),
        "im": [],
        "birthday": r.choice((None, None, f"19{r.randint(50, 99)}-0{r.randint(1, 9)}-1{i % 10}")),
        "job_title": r.choice((None, *_JOBS)),
        "custom_fields": {
            LEAD_SOURCE_FIELD: r.choice((None, *_SOURCES)),
            BUDGET_FIELD: None if budget is None else {"value": budget, "currency": "USD"},
            # a draw of its own (data.custom_values): the other fields stay as they were
            LENDER_FIELD: data.custom_values(seed, "pipedrive", i, clock).lender,
        },
    }
    if i == data.MISSING_ID_INDEX:
        del record["id"]
    return record


def pipedrive_deal(seed: int, j: int, contacts: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    """Deal slot `j` as `GET /api/v2/deals` returns it (PD-php `DealItem`); every
    `DELETED_EVERY`-th slot holds a deleted deal (see `deal_slot`)."""
    r = data.rng(seed, "pipedrive", "deal", j)
    add, stage_change, update, status = _deal_times(seed, j, clock)
    i = r.randrange(max(contacts, 1))
    if i == data.MISSING_ID_INDEX:  # that person is listed without an id to point at
        i = 0
    person = data.person(seed, data.population_index("pipedrive", i, contacts))
    city, state, zip3 = r.choice(data.CITIES)
    title = (
        f"{r.randint(100, 9999)} {r.choice(data.STREETS)} {r.choice(data.SUFFIXES)}, "
        f"{city}, {state} {zip3}{r.randint(0, 99):02d}"
    )
    pipeline = r.choice(tuple(_PIPELINES))
    closed = status in ("won", "lost")
    expected = add + r.randint(30, 150) * _DAY  # may be ahead
    return {
        "id": pipedrive_deal_id(j),
        "title": title,
        "owner_id": r.choice(_OWNERS),
        "person_id": pipedrive_id(i),
        "org_id": _org_id(person.company),
        "pipeline_id": pipeline,
        "stage_id": r.choice(_PIPELINES[pipeline]),
        "value": r.randrange(180_000, 2_400_000, 500),
        "currency": "USD",
        "add_time": _stamp(add),
        "update_time": _stamp(update),
        "stage_change_time": _stamp(stage_change),
        "is_deleted": status == "deleted",
        "is_archived": False,
        "status": status,
        "probability": r.choice((None, None, 10, 25, 50, 75, 90)),
        "lost_reason": r.choice(_LOST_REASONS) if status == "lost" else None,
        "visible_to": r.choice((3, 3, 3, 1)),
        "close_time": _stamp(update) if closed else None,
        "won_time": _stamp(update) if status == "won" else None,
        "lost_time": _stamp(update) if status == "lost" else None,
        "expected_close_date": r.choice((None, _day(expected), _day(expected))),
        "label_ids": sorted(r.sample((4, 5, 6), r.randint(0, 1))),
        "origin": r.choice(("ManuallyCreated", "ManuallyCreated", "API")),
        "origin_id": None,
        "channel": r.choice((None, None, 1, 2)),
        "channel_id": None,
        "custom_fields": {
            COMMISSION_FIELD: r.choice((None, 2.5, 3)),
            MLS_FIELD: r.choice((None, f"MLS{seed % 100:02d}{j:07d}")),
        },
    }


# -- the listing ---------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Query:
    limit: int
    sort_by: str
    descending: bool
    since: float | None
    until: float | None
    statuses: frozenset[str] | None  # None: the endpoint has no status
    cursor: tuple[int, int] | None  # (sort value, id) of the first item of the page


def _timestamp(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _BadRequest(f"{name} must be an RFC 3339 date-time, e.g. 2025-01-01T10:20:00Z")
    return moment.timestamp()


def _encode_cursor(sort_by: str, descending: bool, key: tuple[int, int]) -> str:
    body = {"field": sort_by, "direction": "desc" if descending else "asc", "value": key[0]}
    raw = orjson.dumps({**body, "id": key[1]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort_by: str, descending: bool) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = orjson.loads(raw)
        key = (body["value"], body["id"])
        same_sort = body["field"] == sort_by and body["direction"] == (
            "desc" if descending else "asc"
        )
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _BadRequest("Invalid cursor") from None
    if not same_sort or not all(type(part) is int and 0 <= part < 2**31 for part in key):
        raise _BadRequest("Invalid cursor")
    return key


def _parse(params: QueryParams, has_status: bool) -> _Query:
    raw_limit = params.get("limit")
    try:
        limit = DEFAULT_LIMIT if raw_limit is None else int(raw_limit)
    except ValueError:
        raise _BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    sort_by = params.get("sort_by", "id")
    if sort_by not in ("id", "update_time", "add_time"):
        raise _BadRequest("sort_by must be one of: id, update_time, add_time")
    direction = params.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise _BadRequest("sort_direction must be one of: asc, desc")
    statuses = None
    if has_status:
        wanted = params.get("status")
        statuses = frozenset(
            ("open", "won", "lost") if wanted is None else (s.strip() for s in wanted.split(","))
        )
        if not statuses <= {"open", "won", "lost", "deleted"}:
            raise _BadRequest("status must be one of: open, won, lost, deleted")
    descending = direction == "desc"
    cursor = params.get("cursor")
    return _Query(
        limit=limit,
        sort_by=sort_by,
        descending=descending,
        since=_timestamp("updated_since", params.get("updated_since")),
        until=_timestamp("updated_until", params.get("updated_until")),
        statuses=statuses,
        cursor=None if cursor is None else _decode_cursor(cursor, sort_by, descending),
    )


PERSONS = "pipedrive:persons"
DEALS = "pipedrive:deals"


def _stamp_float(moment: float) -> str:
    return _stamp(int(moment))


def mutate_person(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    if r.random() < 0.5:
        last = r.choice(data.LAST)
        return {"last_name": last}
    digits = f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}"
    phone = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return {"phones": [{"value": phone, "primary": True, "label": "mobile"}]}


def mutate_deal(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        # a new slot may be one the generator keeps deleted deals in: a new deal is open
        return {"status": "open", "is_deleted": False, "lost_reason": None}
    if r.random() < 0.6:
        pipeline = r.choice(tuple(_PIPELINES))
        return {"pipeline_id": pipeline, "stage_id": r.choice(_PIPELINES[pipeline])}
    return {"value": r.randrange(180_000, 2_400_000, 500)}


def person_now(
    seed: int, i: int, count: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = pipedrive_person(seed, i, count, clock)
    if entry is None:
        return record
    record.update(entry.patch)
    record["name"] = " ".join(n for n in (record["first_name"], record["last_name"]) if n)
    if entry.created_at is not None:
        record["add_time"] = _stamp_float(entry.created_at)
    record["update_time"] = _stamp_float(entry.updated_at)
    record["is_deleted"] = entry.deleted
    return record


def deal_now(
    seed: int, j: int, contacts: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = pipedrive_deal(seed, j, contacts, clock)
    if entry is None:
        return record
    record.update(entry.patch)
    if entry.created_at is not None:
        record["add_time"] = record["stage_change_time"] = _stamp_float(entry.created_at)
        record["close_time"] = record["won_time"] = record["lost_time"] = None
    record["update_time"] = _stamp_float(entry.updated_at)
    if entry.deleted:
        record["status"], record["is_deleted"] = "deleted", True
    return record


def _meta_now(meta: _Meta, entry: Entry | None, deals: bool) -> _Meta:
    """What the listing filters on, for a changed record. A deleted person is never
    listed (persons have no deleted listing): its status is "deleted" for the filter."""
    if entry is None:
        return meta
    add = int(entry.created_at) if entry.created_at is not None else meta.add
    status = str(entry.patch.get("status", meta.status)) if deals else ""
    if entry.patch.get("is_archived"):
        status = "archived"  # listed by /api/v2/deals/archived only, which is not simulated
    return _Meta(add, int(entry.updated_at), "deleted" if entry.deleted else status)


@dataclass
class _Listing:
    """One collection: generated slots in id order, changed and created ones from the
    overlay, and how to filter and sort them. Keys are `changes.pack(value, slot)`."""

    name: str  # the overlay's collection
    size: int
    make: Callable[[int, Entry | None], dict[str, Any]]
    ident: Callable[[int], int]  # the slot's id (kept for the one record served without it)
    meta: Callable[[int], _Meta]
    overlay: Overlay
    deals: bool
    horizon: int = BASE_HORIZON  # every generated record's update lies before it
    _orders: dict[str, SortIndex] = field(default_factory=dict)

    def value(self, sort_by: str, slot: int, meta: _Meta) -> int:
        if sort_by == "id":
            return self.ident(slot)
        return meta.add if sort_by == "add_time" else meta.update

    async def base(self, query: _Query) -> Keys:
        if query.sort_by == "id":
            return IdKeys(self.size, self.ident)
        if query.sort_by == "update_time" and (query.since or 0) >= self.horizon:
            return []  # every generated record changed before: no index needed
        if query.sort_by not in self._orders:
            # built once per sort, in arrays (8 bytes a record: a million stay small);
            # pages after the first search it for their cursor
            sort_by = query.sort_by
            self._orders[sort_by] = SortIndex(
                self.size, lambda j: pack(self.value(sort_by, j, self.meta(j)), j)
            )
        return await run_in_threadpool(self._orders[query.sort_by].keys)

    def matches(self, meta: _Meta, query: _Query) -> bool:
        if query.since is not None and meta.update < query.since:
            return False
        if query.until is not None and meta.update >= query.until:
            return False
        if not self.deals:
            return meta.status != "deleted"
        return query.statuses is None or meta.status in query.statuses

    def slot(self, ident: int) -> int:
        return ident - self.ident(0)

    async def page(self, query: _Query, overlap: bool) -> tuple[list[dict[str, Any]], str | None]:
        entries = self.overlay.entries(self.name)
        metas = {j: _meta_now(self.meta(j), e, self.deals) for j, e in entries.items()}
        changed = sorted(pack(self.value(query.sort_by, j, m), j) for j, m in metas.items())
        base = await self.base(query)

        def listed(key: int) -> bool:
            slot = index_of(key)
            return self.matches(metas.get(slot) or self.meta(slot), query)

        if query.cursor is None:
            start = (1 << 62) if query.descending else 0
        else:
            start = pack(query.cursor[0], self.slot(query.cursor[1]))
        keys = (k for k in walk(base, changed, entries, start, query.descending) if listed(k))
        found = [k for _, k in zip(range(query.limit + 1), keys, strict=False)]
        following = None
        if len(found) > query.limit:
            value, slot = unpack(found.pop())
            following = _encode_cursor(query.sort_by, query.descending, (value, self.ident(slot)))
        if overlap and query.cursor is not None:
            # the overlap_pages fault: the last record of the page before comes again
            back = start + (1 if query.descending else -1)
            previous = walk(base, changed, entries, back, not query.descending)
            before = next((k for k in previous if listed(k)), None)
            if before is not None:
                found.insert(0, before)
        return [self.make(index_of(k), entries.get(index_of(k))) for k in found], following


def _error(status: int, message: str, headers: dict[str, str]) -> Response:
    body = {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _listings(
    seed: int, contacts: int, overlay: Overlay, clock: DemoClock = FIXED
) -> dict[str, _Listing]:
    slots = _deal_slots(contacts)
    overlay.register(
        Target(PERSONS, contacts, contacts, mutate_person, lambda i: i != data.MISSING_ID_INDEX)
    )
    overlay.register(Target(DEALS, slots, slots, mutate_deal, lambda j: not _is_deleted_slot(j)))
    return {
        "persons": _Listing(
            PERSONS,
            contacts,
            lambda i, e: person_now(seed, i, contacts, e, clock),
            pipedrive_id,
            lambda i: _person_meta(seed, i, clock),
            overlay,
            deals=False,
            horizon=clock.horizon,
        ),
        "deals": _Listing(
            DEALS,
            slots,
            lambda j, e: deal_now(seed, j, contacts, e, clock),
            pipedrive_deal_id,
            lambda j: _deal_meta(seed, j, clock),
            overlay,
            deals=True,
            horizon=clock.horizon,
        ),
    }


class _Budget:
    """The token check, the 2-second burst window and the daily budget that writes spend,
    with Pipedrive's headers."""

    def __init__(self, token: str, rate_limit: int) -> None:
        self.token = token
        self.burst = max(1, rate_limit * 2 // 10)
        self.window = SlidingWindow(self.burst, BURST_WINDOW)
        self.daily_left = DAILY_REQUESTS

    def check(self, request: Request) -> tuple[dict[str, str], Response | None]:
        api_token = request.headers.get("x-api-token") == self.token
        if not api_token and request.headers.get("authorization") != f"Bearer {self.token}":
            return {}, Response(orjson.dumps(UNAUTHORIZED), 401, media_type="application/json")
        allowed, remaining, wait = self.window.take()
        if allowed:  # the window ends when its oldest request leaves it
            wait = self.window.hits[0] + self.window.window - time.monotonic()
        headers = {
            "x-ratelimit-limit": str(self.burst),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(1, math.ceil(wait))),
        }
        write = request.method not in ("GET", "HEAD")
        if allowed and write:
            allowed = self.daily_left > 0  # a spent daily budget refuses writes, not reads
            self.daily_left -= allowed
        if api_token:
            headers["x-daily-requests-left"] = str(self.daily_left)
        if not allowed:
            body = orjson.dumps(OVER_LIMIT)
            return headers, Response(body, 429, headers, media_type="application/json")
        return headers, None


# -- writes: PATCH /api/v2/persons/{id}, /api/v2/deals/{id} -----------------------------------

_VISIBILITY = (1, 3, 5, 7)  # owner, owner's visibility group, ..., entire company
_PERSON_LABELS = (1, 2, 3)  # the label ids generated persons carry
_DEAL_LABELS = (4, 5, 6)
_EMAIL_LABELS = ("work", "home", "other")
_PHONE_LABELS = ("work", "home", "mobile", "other")
_MARKETING = ("no_consent", "unsubscribed", "subscribed", "archived")
_ORGS = range(_FIRST_ORG, _FIRST_ORG + len(data.COMPANIES))
_STAGE_PIPELINE = {stage: pipeline for pipeline, stages in _PIPELINES.items() for stage in stages}
#: The SDK's request fields the server keeps itself (add_time, update_time): accepted and left
#: as they are, since a client setting `update_time` would move every incremental reader.
_SERVER_TIMES = frozenset({"add_time", "update_time", "stage_change_time"})
#: Deal fields the docs allow only for some statuses ("Can only be set if deal status is").
_STATUS_ONLY = {
    "lost_reason": ("lost",),
    "close_time": ("won", "lost"),
    "won_time": ("won",),
    "lost_time": ("lost",),
}


def _integer(value: object, name: str, options: Collection_[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in options:
        raise WriteError(f"{name}: {value!r} is not a valid value")
    return value


def _ids(value: object, name: str, options: Collection_[int]) -> list[int]:
    if not isinstance(value, list):
        raise WriteError(f"{name} must be a list of ids")
    return sorted({_integer(v, name, options) for v in value})


def _channels(value: object, name: str, labels: Sequence[str]) -> list[dict[str, Any]]:
    """`emails` / `phones`: `[{value, primary, label}]`, replacing the list; one primary
    (the first flagged, else the first)."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WriteError(f"{name} must be a list of objects {{value, primary, label}}")
    items = []
    for item in value:
        items.append(
            {
                "value": text(item.get("value"), f"{name}.value", blank=False),
                "primary": boolean(item.get("primary", False), f"{name}.primary"),
                "label": one_of(item.get("label", labels[0]), f"{name}.label", labels),
            }
        )
    first = next((n for n, item in enumerate(items) if item["primary"]), 0)
    return [{**item, "primary": n == first} for n, item in enumerate(items)]


def _custom(keys: Sequence[str]) -> Callable[[Any, str], dict[str, Any]]:
    """`custom_fields`, keyed by known hashes only (merged over the record's values after)."""

    def check(value: object, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise WriteError(f"{name} must be an object keyed by custom field hashes")
        unknown = [key for key in value if key not in keys]
        if unknown:
            raise WriteError(f"{name}: no custom field {unknown[0]!r}")
        return value

    return check


def _split_name(value: object, name: str) -> dict[str, Any]:
    # v2 takes `name` only; the item's first_name / last_name follow it, split at the first
    # space (nothing documents how Pipedrive splits)
    first, _, last = " ".join(str(text(value, name, blank=False)).split()).partition(" ")
    return {"first_name": first, "last_name": last or None}


def _currency(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha() or not value.isupper():
        raise WriteError(f"{name} must be a 3-letter currency code, e.g. USD")
    return value


def _percent(value: object, name: str) -> float | int | None:
    checked = number(value, name, nullable=True)
    if checked is not None and checked > 100:
        raise WriteError(f"{name} must be a percentage, 0 to 100")
    return checked


_PERSON_WRITERS: dict[str, FieldWriter] = {
    "name": _split_name,
    "owner_id": sets(lambda v, n: _integer(v, n, _OWNERS)),
    "org_id": sets(lambda v, n: None if v is None else _integer(v, n, _ORGS)),
    "emails": sets(lambda v, n: _channels(v, n, _EMAIL_LABELS)),
    "phones": sets(lambda v, n: _channels(v, n, _PHONE_LABELS)),
    "visible_to": sets(lambda v, n: _integer(v, n, _VISIBILITY)),
    "label_ids": sets(lambda v, n: _ids(v, n, _PERSON_LABELS)),
    "marketing_status": sets(lambda v, n: one_of(v, n, _MARKETING)),
    "custom_fields": sets(_custom((LEAD_SOURCE_FIELD, BUDGET_FIELD, LENDER_FIELD))),
}
_DEAL_WRITERS: dict[str, FieldWriter] = {
    "title": sets(lambda v, n: text(v, n, blank=False)),
    "owner_id": _PERSON_WRITERS["owner_id"],
    "org_id": _PERSON_WRITERS["org_id"],
    "value": sets(number),
    "currency": sets(_currency),
    "probability": sets(_percent),
    "visible_to": _PERSON_WRITERS["visible_to"],
    "expected_close_date": sets(lambda v, n: day(v, n, nullable=True)),
    "label_ids": sets(lambda v, n: _ids(v, n, _DEAL_LABELS)),
    "custom_fields": sets(_custom((COMMISSION_FIELD, MLS_FIELD))),
}
#: Deal fields whose rules read the deal's status or stage: `deal_patch` writes them.
_DEAL_STATE = frozenset(
    {
        "status",
        "stage_id",
        "pipeline_id",
        "lost_reason",
        "close_time",
        "won_time",
        "lost_time",
        "is_archived",
        "archive_time",
        "is_deleted",
        "person_id",
    }
)


def _moment(value: object, name: str) -> str:
    """A date-time, RFC 3339 or Pipedrive's "YYYY-MM-DD HH:MM:SS" (UTC), as items show it."""
    try:
        moment = datetime.fromisoformat(str(text(value, name)).replace("Z", "+00:00"))
    except ValueError:
        raise WriteError(f"{name} must be a date-time, YYYY-MM-DD HH:MM:SS") from None
    if moment.tzinfo is not None:
        return _stamp(int(moment.timestamp()))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _refused(name: str) -> str:
    # the SDK's request models list the fields a PATCH takes: any other is an error
    return f"{name} is not a field this update takes"


def _merged_custom(patch: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Given custom fields over the record's (null clears one)."""
    if "custom_fields" in patch:
        patch["custom_fields"] = {**current["custom_fields"], **patch["custom_fields"]}
    return patch


def person_patch(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    return _merged_custom(written(body, _PERSON_WRITERS, _SERVER_TIMES, _refused), current)


def deal_patch(
    body: dict[str, Any], current: dict[str, Any], now: str, person_alive: Callable[[int], bool]
) -> dict[str, Any]:
    """What a deal PATCH writes: the plain fields, then the status, stage and close times,
    which the docs tie together."""
    patch = written(body, _DEAL_WRITERS, _DEAL_STATE | _SERVER_TIMES, _refused)
    _merged_custom(patch, current)
    if "person_id" in body:
        person = body["person_id"]
        if person is not None and not (isinstance(person, int) and person_alive(person)):
            raise WriteError(f"person_id: no person {person!r}")
        patch["person_id"] = person
    if "is_deleted" in body:
        patch["is_deleted"] = boolean(body["is_deleted"], "is_deleted")
    patch.update(_stage_fields(body, current, now))
    patch.update(_status_fields(body, current, now))
    patch.update(_archive_fields(body, now))
    return patch


def _stage_fields(body: dict[str, Any], current: dict[str, Any], now: str) -> dict[str, Any]:
    """`stage_id` places the deal (its pipeline follows); `pipeline_id` alone moves it to that
    pipeline's first stage; given both, `pipeline_id` is ignored (the docs say so)."""
    if "stage_id" in body:
        stage = _integer(body["stage_id"], "stage_id", _STAGE_PIPELINE)
    elif "pipeline_id" in body:
        pipeline = _integer(body["pipeline_id"], "pipeline_id", _PIPELINES)
        stage = (
            current["stage_id"] if current["pipeline_id"] == pipeline else _PIPELINES[pipeline][0]
        )
    else:
        return {}
    fields = {"stage_id": stage, "pipeline_id": _STAGE_PIPELINE[stage]}
    if stage != current["stage_id"]:
        fields["stage_change_time"] = now
    return fields


def _status_fields(body: dict[str, Any], current: dict[str, Any], now: str) -> dict[str, Any]:
    """The status and what follows it: won/lost stamp the close time (and won_time or
    lost_time), open clears them and the lost reason. Explicit close times and a lost reason
    are taken only where the docs allow them (status won/lost; lost)."""
    status = one_of(body.get("status", current["status"]), "status", ("open", "won", "lost"))
    fields: dict[str, Any] = {}
    if status != current["status"]:
        fields = {
            "status": status,
            "close_time": now if status != "open" else None,
            "won_time": now if status == "won" else None,
            "lost_time": now if status == "lost" else None,
        }
        if status != "lost":
            fields["lost_reason"] = None
    for name, statuses in _STATUS_ONLY.items():
        if name not in body:
            continue
        if status not in statuses:
            raise WriteError(f"{name} can only be set if deal status is {' or '.join(statuses)}")
        value = body[name]
        if name == "lost_reason":
            fields[name] = maybe_text(value, name)
        else:
            fields[name] = None if value is None else _moment(value, name)
    return fields


def _archive_fields(body: dict[str, Any], now: str) -> dict[str, Any]:
    if "is_archived" not in body:
        if "archive_time" in body:
            raise WriteError("archive_time is set together with is_archived")
        return {}
    archived = boolean(body["is_archived"], "is_archived")
    when = _moment(body["archive_time"], "archive_time") if "archive_time" in body else now
    return {"is_archived": archived, "archive_time": when if archived else None}


# -- field metadata: personFields, dealFields -------------------------------------------------

#: (key, name, field_type, custom): a few standard fields, then the account's custom ones.
_PERSON_FIELDS = (
    ("name", "Name", "varchar", False),
    ("emails", "Email", "varchar", False),
    ("phones", "Phone", "phone", False),
    ("owner_id", "Owner", "user", False),
    (LEAD_SOURCE_FIELD, "Lead source", "varchar", True),
    (BUDGET_FIELD, "Budget", "monetary", True),
    (LENDER_FIELD, "Lender", "varchar", True),
)
_DEAL_FIELDS = (
    ("title", "Title", "varchar", False),
    ("value", "Value", "monetary", False),
    ("stage_id", "Stage", "stage", False),
    (COMMISSION_FIELD, "Commission rate", "double", True),
    (MLS_FIELD, "MLS number", "varchar", True),
)


def fields_v2(name: str) -> list[dict[str, Any]]:
    """The Fields API v2 items (`GET /api/v2/personFields`): fields by their code."""
    listed = _PERSON_FIELDS if name == "personFields" else _DEAL_FIELDS
    return [
        {
            "field_name": label,
            "field_code": key,
            "field_type": kind,
            "options": None,
            "subfields": None,
            "is_custom_field": custom,
            "is_optional_response_field": False,
        }
        for key, label, kind, custom in listed
    ]


def fields_v1(name: str) -> list[dict[str, Any]]:
    """The v1 items (`GET /api/v1/personFields`): `key`, `name`, `edit_flag` (custom)."""
    listed = _PERSON_FIELDS if name == "personFields" else _DEAL_FIELDS
    return [
        {"id": n + 1, "key": key, "name": label, "field_type": kind, "edit_flag": custom}
        for n, (key, label, kind, custom) in enumerate(listed)
    ]


def pipedrive_app(
    token: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 200,
    overlay: Overlay | None = None,
    clock: DemoClock = FIXED,
) -> FaultInjector:
    """`rate_limit` is requests per 10 s, as every simulator takes it; Pipedrive counts per
    2-second window, so the burst limit is a fifth of it (at least one)."""
    budget = _Budget(token, rate_limit)
    listings = _listings(seed, contacts, overlay or Overlay(seed), clock)
    routes = [
        *_field_routes(budget),
        *_read_routes(budget, listings, faults),
        *_write_routes(budget, listings),
    ]
    return FaultInjector(Starlette(routes=routes), faults, lambda path: path.startswith("/api/"))


def _read_routes(budget: _Budget, listings: dict[str, _Listing], faults: Faults) -> list[Route]:
    """`GET /api/v2/persons|deals` (cursor pages) and `GET /api/v2/persons|deals/{id}`."""

    async def listing(request: Request) -> Response:
        headers, refused = budget.check(request)
        if refused:
            return refused
        name = request.url.path.rsplit("/", 1)[-1]
        try:
            query = _parse(request.query_params, has_status=name == "deals")
        except _BadRequest as error:
            return _error(400, str(error), headers)
        items, following = await listings[name].page(query, faults.overlap_pages)
        body = {"success": True, "data": items, "additional_data": {"next_cursor": following}}
        return Response(orjson.dumps(body), 200, headers, media_type="application/json")

    async def one(request: Request) -> Response:
        headers, refused = budget.check(request)
        if refused:
            return refused
        kind = listings[request.url.path.split("/")[3]]
        slot = kind.slot(request.path_params["id"])
        entry = kind.overlay.get(kind.name, slot)
        known = kind.overlay.exists(kind.name, slot) and "id" in kind.make(slot, None)
        # a deleted person is gone (404); a deleted deal is still read, as status=deleted lists
        if not known or (entry is not None and entry.deleted and not kind.deals):
            return _error(404, "Not found", headers)
        body = {"success": True, "data": kind.make(slot, entry)}
        return Response(orjson.dumps(body), 200, headers, media_type="application/json")

    return [
        Route("/api/v2/persons", listing),
        Route("/api/v2/deals", listing),
        Route("/api/v2/persons/{id:int}", one, methods=["GET"]),
        Route("/api/v2/deals/{id:int}", one, methods=["GET"]),
    ]


def _write_routes(budget: _Budget, listings: dict[str, _Listing]) -> list[Route]:
    """`PATCH /api/v2/persons|deals/{id}`; `is_deleted: true` deletes a deal."""

    def writable(kind: _Listing, ident: int) -> int | None:
        """The slot of a record a PATCH may change: not unknown, id-less or deleted."""
        slot = kind.slot(ident)
        entry = kind.overlay.get(kind.name, slot)
        if not kind.overlay.exists(kind.name, slot) or (entry is not None and entry.deleted):
            return None
        record = kind.make(slot, entry)
        return None if "id" not in record or record.get("is_deleted") else slot

    def person_alive(ident: int) -> bool:
        return writable(listings["persons"], ident) is not None

    async def write(request: Request) -> Response:
        headers, refused = budget.check(request)
        if refused:
            return refused
        name = request.url.path.split("/")[3]
        kind = listings[name]
        slot = writable(kind, request.path_params["id"])
        if slot is None:
            return _error(404, f"{name[:-1].capitalize()} not found", headers)
        current = kind.make(slot, kind.overlay.get(kind.name, slot))
        moment = time.time()
        try:
            body = await json_object(request)
            if kind.deals:
                patch = deal_patch(body, current, _stamp(int(moment)), person_alive)
            else:
                patch = person_patch(body, current)
        except WriteError as error:
            return _error(error.status, error.message, headers)
        deleting = patch.pop("is_deleted", False)  # `is_deleted: true` deletes the deal
        update(kind.overlay, kind.name, slot, patch, moment)
        if deleting:
            kind.overlay.apply(kind.name, "delete", slot, moment)
        record = kind.make(slot, kind.overlay.get(kind.name, slot))
        out = {"success": True, "data": record}
        return Response(orjson.dumps(out), 200, headers, media_type="application/json")

    return [
        Route("/api/v2/persons/{id:int}", write, methods=["PATCH"]),
        Route("/api/v2/deals/{id:int}", write, methods=["PATCH"]),
    ]


def _field_routes(budget: _Budget) -> list[Route]:
    """`GET /api/v1|v2/personFields|dealFields`."""

    async def field_list(request: Request) -> Response:
        """v2 `{success, data, additional_data: {next_cursor}}`; v1 with `start` paging
        (`additional_data.pagination`). Every field fits one page."""
        headers, refused = budget.check(request)
        if refused:
            return refused
        version, name = request.url.path.split("/")[2:4]
        if version not in ("v1", "v2"):
            return _error(404, "Not found", headers)
        if version == "v2":
            body = {"success": True, "data": fields_v2(name), "additional_data": {}}
        else:
            items = fields_v1(name)
            paging = {"start": 0, "limit": len(items), "more_items_in_collection": False}
            body = {"success": True, "data": items, "additional_data": {"pagination": paging}}
        return Response(orjson.dumps(body), 200, headers, media_type="application/json")

    return [
        Route("/api/{version:str}/personFields", field_list),
        Route("/api/{version:str}/dealFields", field_list),
    ]


def _build(ctx: SimulatorContext) -> FaultInjector:
    token, c = ctx.credentials.pipedrive_token, ctx
    return pipedrive_app(token, c.contacts, c.seed, c.faults, c.rate_limit, c.overlay, c.clock)


def _env(url: str, credentials: DemoCredentials) -> dict[str, str]:
    # the documented form of the base URL; the connector also accepts it without /api/v2
    return {
        "PIPEDRIVE_API_BASE_URL": f"{url}/api/v2",
        "PIPEDRIVE_API_TOKEN": credentials.pipedrive_token,
    }


def _collections(contacts: int, seed: int) -> dict[str, Collection]:
    return {
        "contacts": (contacts, lambda i: pipedrive_person(seed, i, contacts)),
        "deals": (
            data.deal_count(contacts),
            lambda k: pipedrive_deal(seed, deal_slot(k), contacts),
        ),
    }


PIPEDRIVE = Simulator("pipedrive", _build, _env, _collections)
