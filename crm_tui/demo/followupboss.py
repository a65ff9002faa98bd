"""A simulator of Follow Up Boss v1: people and deals, as crm-apis.md describes them, with
the live changes of `demo/changes.py` and webhook subscriptions.

Documented, and followed: Basic auth with the API key as user name; `limit` (default 10,
max 100), `offset`, the `next` cursor; body `{_metadata: {collection, offset, limit, total,
next, nextLink}, <collection>: [...]}`; default order id descending; rate-limit headers on
every answer and 429 with `Retry-After`; `updatedAfter`/`updatedBefore` (ISO-8601 UTC),
`sort=updated`, `includeTrash`; `GET /v1/people/{id}`, `GET /v1/deals/{id}`; `POST
/v1/webhooks {event, url}` with `X-System` required and at most 2 per event per system,
`GET /v1/webhooks`, `GET/PUT/DELETE /v1/webhooks/{id}`.

Where the docs are silent, the plain reading:
- `updatedAfter` is inclusive (`updated >= updatedAfter`): a client that keeps the latest
  `updated` it saw as its watermark then never misses a record changed later in that same
  second (FUB's times have whole seconds); it sees the boundary records again, which an
  upsert by id absorbs. `updatedBefore` is exclusive.
- `sort=updated` is ascending by `updated`, ties by id; `sort=-updated` the reverse. Other
  `sort` values are a 400, as is `sort=updated` on deals (they have no `updated`). Deals
  ignore `updatedAfter`/`updatedBefore`: every deal is listed (the safe reading for a
  client: never fewer records than asked).
- `next` carries the whole query (filters, sort and the position of the next record), so
  `nextLink` (limit and next only) pages on consistently while records change: a record
  changed after the page was read moves past the cursor and is read again further on.
- `id=1,2` lists those records (the webhook payload's `uri` points there).
- A person deleted while running is trashed: stage "Trash", `updated` = the deletion,
  listed only with `includeTrash=true`, still returned by `GET /v1/people/{id}`. The
  generated data also holds people whose stage is "Trash"; they stay listed as they always
  were (the existing ground truth counts them). A deleted deal is gone: unlisted, and 404.
- `POST /v1/webhooks` answers 201 with the subscription; a plain-http URL is accepted when
  it points to loopback (the real API takes HTTPS only). `DELETE` answers 204.

Writes. Documented (crm-apis.md; docs.followupboss.com people-id-put, people-post,
events-post, notes-post, stages-id-put), and followed; every write goes through the shared
overlay, so the next listing, `updatedAfter` read and webhook see it, and passes the same
auth and rate window as the reads (401 `{"errorMessage"}`, 429 with `Retry-After`):
- `PUT /v1/people/{id}`, a partial body: firstName, lastName, stage, contacted, price,
  background, emails[], phones[], addresses[], tags[], assignedUserId / assignedTo, custom*.
  `emails`/`phones` replace the whole list; `tags` too unless `?mergeTags=true`.
  `source`/`sourceUrl` are set at creation only, so a PUT's are ignored. 200 with the whole
  person; `updated` moves to the write; `name` follows firstName and lastName.
- `POST /v1/events {source, system, type, message, person{...}}`: de-duplicates by e-mail,
  then phone; `person.id` forces the match (unknown: 404). 200 with the existing person, 201
  with a created one (its `source` the event's). 204 (lead flow archived) never happens here.
- `POST /v1/notes {personId, subject, body, isHtml}`; adding a note does not move the
  person's `updated`. `PUT /v1/deals/{id}`; `GET /v1/stages` (stages have `orderWeight` in
  gaps of 1000 and `isProtected`).

Where the docs are silent, the plain reading (writes):
- Errors are 400 `{"errorMessage": ...}` (FUB's error shape): a body that is not a JSON
  object; a `stage` not among the account's stages ("Invalid stage: ..."); an e-mail value
  without "@"; a value of the wrong type; a deal `stageId` of no stage; a
  `projectedCloseDate` that is not YYYY-MM-DD. 404 `{"errorMessage": "Person not found"}`
  (or "Deal not found") for an unknown id and for a trashed person or a deleted deal: a
  record gone from the listings takes no writes. Names FUB does not document as writable
  are ignored, as `source` is. A body with nothing to write answers 200 and writes nothing
  (`updated` stays).
- The account's stages are the generator's plus "Nurture" (generated people hold it), in
  that order; "Lead" and "Trash" are protected. Moving a person to "Trash" by PUT trashes
  them (stage "Trash", listed only with `includeTrash`), as a deletion does.
- emails/phones items are `{value, type, isPrimary}`: `type` "other" when not given, one
  primary (the first flagged, else the first), a value once (e-mails compared without case,
  phones by their digits). A custom field set to null is deleted.
- `GET /v1/pipelines`: one pipeline (id 1, "Transactions") holding `data.FUB_DEAL_STAGES`
  with ids 1.. in order, as every deal's `pipelineId`/`stageId`/`stageName` says. A deal's
  `stageId` sets its `stageName` and `status` ("Archived" for Lost, else "Active").
- Notes live in the simulator's memory beside the overlay (they send no webhook); ids count
  from 1; `createdBy` is the key's user (Amy Agent, id 1). `GET /v1/notes?personId=N` lists
  that person's notes newest first (every note without `personId`) in the `_metadata`
  envelope with `offset`/`limit` (default 10, max 100) and no `next`. A note for an unknown
  or trashed person is a 404; without `personId` or `body`, a 400.
- Events: an e-mail or phone matches the oldest live person holding it (a trashed person is
  no match: the lead is new). The match's first/last name and other given fields are set,
  bar the agent (the docs: a person cannot be reassigned by an event); emails, phones and
  tags are merged (new ones appended). A person with neither e-mail nor
  phone nor name (and no `id`) is a 400, as is an event without `person`. `type` is not
  checked. A created person holds only what the event gives: stage "Lead", price 0, no
  agent, `source` the event's `source` (else its `system`). Finding a match must not scan a
  million generated people per event: `changes.LookupIndex` hashes every generated person's
  e-mail and phone once, on the first event (in a worker thread: long at a million, a blink
  at the demo's size), and the people changed or created while running are scanned.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from collections.abc import Collection as Collection_
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from crm_tui.demo import data
from crm_tui.demo.changes import (
    BASE_HORIZON,
    Entry,
    IdKeys,
    Keys,
    Kind,
    LookupIndex,
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
    FieldWriter,
    Simulator,
    SimulatorContext,
    SlidingWindow,
    WriteError,
    boolean,
    day,
    json_object,
    json_response,
    maybe_text,
    number,
    one_of,
    sets,
    strings,
    text,
    union,
    update,
    written,
)
from crm_tui.demo.webhooks import SubscriptionError, Subscriptions

PEOPLE = "followupboss:people"
DEALS = "followupboss:deals"
_NEVER = 1 << 40  # a key past every time and id
_LIVE_STAGES = tuple(s for s in data.FUB_STAGES if s != "Trash")
#: The account's person stages: the generator's, with "Nurture", which generated people hold
#: (`data._listed_stage`), before "Trash", where deleted people go.
ACCOUNT_STAGES = (*_LIVE_STAGES, "Nurture", "Trash")
AGENTS = ("Amy Agent", "Ben Broker", "Cara Closer")  # assignedUserId 1, 2, 3, as generated
PIPELINE = (1, "Transactions")  # every generated deal's pipelineId and pipelineName
_CUSTOM = re.compile(r"custom[A-Z0-9_]\w*")  # FUB's custom field names: customBirthday, ...


#: The account's custom fields as `GET /v1/customFields` lists them (docs.followupboss.com
#: customfields-get: label, name, type text|date|number|dropdown, isRecurring for dates,
#: choices for dropdowns); the generator fills them (`data.fub_person`).
CUSTOM_FIELDS = (
    {"id": 1, "name": "customLender", "label": "Lender", "type": "text", "choices": []},
    {"id": 2, "name": "customPriceRange", "label": "Price Range", "type": "number", "choices": []},
    {
        "id": 3,
        "name": "customClosingDate",
        "label": "Closing Date",
        "type": "date",
        "isRecurring": False,
        "choices": [],
    },
)


def shown_fields(record: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """A person as a read returns it: custom fields only when `fields=allFields` (or the
    field by name) asks for them, as Follow Up Boss does."""
    asked = {f.strip() for f in (fields or "").split(",")}
    if "allFields" in asked:
        return record
    return {k: v for k, v in record.items() if not _CUSTOM.fullmatch(k) or k in asked}


def stamp(moment: float) -> str:
    """FUB's form: UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _updated_epoch(seed: int, i: int, clock: DemoClock = FIXED) -> int:
    day = data.fub_updated_day(seed, i, clock=clock)
    return int(datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC).timestamp())


# -- what a change does to a record --------------------------------------------------------


def mutate_person(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    field = r.choice(("stage", "phones", "lastName"))
    if field == "stage":
        return {"stage": r.choice(_LIVE_STAGES)}
    if field == "lastName":
        return {"lastName": r.choice(data.LAST)}
    digits = f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}"
    phone = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return {"phones": [{"value": phone, "type": "mobile", "isPrimary": 1}]}


def mutate_deal(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    if r.random() < 0.5:
        return deal_stage(data.FUB_DEAL_STAGES.index(r.choice(data.FUB_DEAL_STAGES)) + 1)
    price = r.randrange(180_000, 2_400_000, 500)
    return {"price": price, "commissionValue": round(price * 0.03, 2)}


def deal_stage(stage_id: int) -> dict[str, Any]:
    """The fields a deal's stage sets, in step as the generator keeps them: the name, and the
    status (closed or won is read from the stage; a lost deal is archived)."""
    stage = data.FUB_DEAL_STAGES[stage_id - 1]
    return {
        "stageId": stage_id,
        "stageName": stage,
        "status": "Active" if stage != "Lost" else "Archived",
    }


def person_now(
    seed: int, i: int, count: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = data.fub_person(seed, i, count, clock)
    if entry is None:
        return record
    record.update(entry.patch)
    if {"firstName", "lastName"} & entry.patch.keys():  # FUB's `name` follows the two
        record["name"] = " ".join(n for n in (record["firstName"], record["lastName"]) if n)
    for name in [k for k, v in entry.patch.items() if v is None and _CUSTOM.fullmatch(k)]:
        del record[name]  # a custom field set to null is deleted
    if entry.created_at is not None:
        record["created"] = stamp(entry.created_at)
    record["updated"] = stamp(entry.updated_at)
    if entry.deleted:
        record["stage"] = "Trash"
    return record


def deal_now(
    seed: int, j: int, contacts: int, entry: Entry | None, clock: DemoClock = FIXED
) -> dict[str, Any]:
    record = data.fub_deal(seed, j, contacts, clock)
    if entry is not None:
        record.update(entry.patch)
        if entry.created_at is not None:
            record["createdAt"] = stamp(entry.created_at)
    return record


# -- the query -----------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Query:
    sort: str  # "-id" (the default), "updated", "-updated"
    since: int | None  # updatedAfter, epoch seconds
    before: int | None  # updatedBefore
    trash: bool
    ids: tuple[int, ...] | None
    key: int | None = None  # where the page starts (from `next`)
    offset: int = 0

    def encode(self, key: int, offset: int) -> str:
        body = {
            "s": self.sort,
            "a": self.since,
            "b": self.before,
            "t": self.trash,
            "i": self.ids,
            "k": key,
            "o": offset,
        }
        return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> _Query:
        try:
            body = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            ids = None if body["i"] is None else tuple(int(i) for i in body["i"])
            query = cls(body["s"], body["a"], body["b"], bool(body["t"]), ids, body["k"], body["o"])
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise _BadRequest("Invalid next token") from None
        if query.sort not in ("-id", "updated", "-updated") or type(query.key) is not int:
            raise _BadRequest("Invalid next token")
        return query


def _moment(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise _BadRequest(f"{name} must be an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # FUB's times are UTC
    return int(moment.timestamp()) + (1 if moment.microsecond and name == "updatedAfter" else 0)


_SORTS = {True: ("-id", "updated", "-updated"), False: ("-id",)}


def _parse(params: Mapping[str, str], people: bool) -> _Query:
    if "next" in params:
        return _Query.decode(params["next"])
    sort = params.get("sort", "-id")
    if sort not in _SORTS[people]:
        raise _BadRequest(f"Invalid sort: {sort!r}")
    try:
        ids = (
            tuple(int(v) for v in params["id"].split(",") if v.strip()) if "id" in params else None
        )
        offset = max(int(params.get("offset", 0)), 0)
    except ValueError:
        raise _BadRequest("id and offset must be numbers") from None
    return _Query(
        sort=sort,
        since=_moment("updatedAfter", params.get("updatedAfter")) if people else None,
        before=_moment("updatedBefore", params.get("updatedBefore")) if people else None,
        trash=params.get("includeTrash", "false").lower() == "true",
        ids=ids,
        offset=offset,
    )


# -- a collection as the listing walks it --------------------------------------------------


@dataclass
class _Collection:
    name: str  # the overlay's collection name
    size: int  # generated records
    render: Callable[[int, Entry | None], dict[str, Any]]
    overlay: Overlay
    updated: SortIndex | None  # people: generated records by (updated, index)
    trashes: bool  # people are trashed (listable); deleted deals are gone
    horizon: int = BASE_HORIZON  # every generated record's `updated` lies before it

    def visible(self, entry: Entry, trash: bool) -> bool:
        return not entry.deleted or (self.trashes and trash)

    def key(self, sort: str, index: int, entry: Entry | None) -> int:
        if sort == "-id":
            return pack(index + 1, index)
        if entry is not None:
            return pack(int(entry.updated_at), index)
        assert self.updated is not None
        return self.updated.key(index)

    async def base(self, query: _Query) -> Keys:
        if query.sort == "-id":
            return IdKeys(self.size, lambda i: i + 1)
        assert self.updated is not None
        if query.sort == "updated" and query.since is not None and query.since >= self.horizon:
            return []  # every generated record is older: the index need not even exist
        return await run_in_threadpool(self.updated.keys)

    def bounds(self, query: _Query) -> tuple[int, int]:
        """[low, high) of the `updated` keys the query's filters allow."""
        low = pack(query.since, 0) if query.since is not None else 0
        high = pack(query.before, 0) if query.before is not None else _NEVER << 24
        return low, high

    def timed(self, query: _Query) -> bool:
        return query.since is not None or query.before is not None

    async def total(self, query: _Query, entries: Mapping[int, Entry]) -> int:
        """How many records the query lists, counted in the order the filter is on."""
        space = replace(query, sort="updated") if self.timed(query) else query
        listed = [(i, e) for i, e in entries.items() if self.visible(e, query.trash)]
        changed = sorted(self.key(space.sort, i, e) for i, e in listed)
        base = await self.base(space)
        stale = [self.key(space.sort, i, None) for i in entries if i < self.size]
        low, high = self.bounds(space) if self.timed(query) else (0, _NEVER << 24)
        return count(base, changed, stale if len(base) else [], low, high)


@dataclass
class _Page:
    records: list[dict[str, Any]]
    total: int
    offset: int
    following: str | None


async def _page(c: _Collection, query: _Query, limit: int, overlap: bool) -> _Page:
    entries = c.overlay.entries(c.name)
    if query.ids is not None:
        return _by_ids(c, query, entries)
    listed = [(i, e) for i, e in entries.items() if c.visible(e, query.trash)]
    changed = sorted(c.key(query.sort, i, e) for i, e in listed)
    base = await c.base(query)
    low, high = c.bounds(query)

    def allowed(key: int) -> bool:
        if query.sort != "-id":
            return low <= key < high  # the key is the time: a range check
        i = index_of(key)  # id order with a time filter: each record's time is checked
        return not c.timed(query) or low <= c.key("updated", i, entries.get(i)) < high

    descending = query.sort.startswith("-")
    start = query.key
    if start is None:
        start = (_NEVER << 24 if query.sort == "-id" else high) - 1 if descending else low
    inside = (k for k in walk(base, changed, entries, start, descending) if allowed(k))
    if query.key is None:
        for _ in zip(range(query.offset), inside, strict=False):
            pass  # offset paging skips (the cursor is the way to page deep)
    found = [k for _, k in zip(range(limit + 1), inside, strict=False)]
    following = query.encode(found[limit], query.offset + limit) if len(found) > limit else None
    found = found[:limit]
    if overlap and query.key is not None:
        back = start + 1 if descending else start - 1
        previous = walk(base, changed, entries, back, not descending)
        before = next((k for k in previous if allowed(k)), None)
        if before is not None:
            found.insert(0, before)
    records = [c.render(index_of(k), entries.get(index_of(k))) for k in found]
    return _Page(records, await c.total(query, entries), query.offset, following)


def _by_ids(c: _Collection, query: _Query, entries: Mapping[int, Entry]) -> _Page:
    records = []
    for ident in query.ids or ():
        index = ident - 1
        entry = entries.get(index)
        if not c.overlay.exists(c.name, index) or (entry and not c.visible(entry, query.trash)):
            continue
        record = c.render(index, entry)
        if "id" in record:
            records.append(record)
    return _Page(records, len(records), 0, None)


# -- the server ----------------------------------------------------------------------------


def _collections(
    seed: int, contacts: int, overlay: Overlay, clock: DemoClock = FIXED
) -> dict[str, tuple[_Collection, bool]]:
    deals = data.deal_count(contacts)
    updated = SortIndex(contacts, lambda i: pack(_updated_epoch(seed, i, clock), i))
    overlay.register(
        Target(PEOPLE, contacts, contacts, mutate_person, lambda i: i != data.MISSING_ID_INDEX)
    )
    overlay.register(Target(DEALS, deals, deals, mutate_deal))
    people = _Collection(
        PEOPLE,
        contacts,
        lambda i, e: person_now(seed, i, contacts, e, clock),
        overlay,
        updated,
        trashes=True,
        horizon=clock.horizon,
    )

    def deal(j: int, entry: Entry | None) -> dict[str, Any]:
        return deal_now(seed, j, contacts, entry, clock)

    # deals are listed by id only: no time order, so no horizon
    deal_collection = _Collection(DEALS, deals, deal, overlay, None, trashes=False)
    return {"people": (people, True), "deals": (deal_collection, False)}


class _Guard:
    """Basic auth and the sliding-window budget every endpoint shares."""

    def __init__(self, key: str, rate_limit: int, window: float) -> None:
        self.expected = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        self.budget = SlidingWindow(rate_limit, window)
        self.rate_limit = rate_limit
        self.window = window

    def check(self, request: Request) -> tuple[dict[str, str], Response | None]:
        allowed, remaining, wait = self.budget.take()
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Window": str(int(self.window)),
            "X-RateLimit-Context": "global",
        }
        if not allowed:
            retry = {**headers, "Retry-After": str(max(1, round(wait + 0.5)))}
            return headers, PlainTextResponse("Too Many Requests", 429, headers=retry)
        if request.headers.get("authorization") != self.expected:
            return headers, JSONResponse({"errorMessage": "Invalid API key"}, 401, headers=headers)
        return headers, None


def _error(message: str, status: int, headers: dict[str, str]) -> Response:
    return JSONResponse({"errorMessage": message}, status, headers=headers)


def _metadata(
    name: str,
    offset: int,
    limit: int,
    total: int,
    following: str | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """Every collection's `_metadata`, as the listings send it."""
    return {
        "collection": name,
        "offset": offset,
        "limit": limit,
        "total": total,
        "next": following,
        "nextLink": link,
    }


def fub_app(
    key: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 200,
    window: float = 10.0,
    overlay: Overlay | None = None,
    subscriptions: Subscriptions | None = None,
    clock: DemoClock = FIXED,
) -> FaultInjector:
    guard = _Guard(key, rate_limit, window)
    collections = _collections(seed, contacts, overlay or Overlay(seed), clock)
    hooks = subscriptions or Subscriptions()

    async def listing(request: Request) -> Response:
        headers, refused = guard.check(request)
        if refused:
            return refused
        name = request.url.path.rsplit("/", 1)[-1]
        collection, people = collections[name]
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", 10)), 1), 100)
            query = _parse(params, people)
        except ValueError:
            return _error("limit and offset must be numbers", 400, headers)
        except _BadRequest as error:
            return _error(str(error), 400, headers)
        page = await _page(collection, query, limit, faults.overlap_pages)
        base = str(request.url).split("?", 1)[0]
        following = page.following
        link = f"{base}?limit={limit}&next={following}" if following else None
        meta = _metadata(name, page.offset, limit, page.total, following, link)
        fields = params.get("fields")
        records = [shown_fields(r, fields) for r in page.records] if people else page.records
        return json_response({"_metadata": meta, name: records}, headers=headers)

    async def custom_fields(request: Request) -> Response:
        headers, refused = guard.check(request)
        if refused:
            return refused
        listed = list(CUSTOM_FIELDS)
        meta = _metadata("customfields", 0, len(listed), len(listed), None, None)
        return json_response({"_metadata": meta, "customfields": listed}, headers=headers)

    writes = _Writes(guard, collections["people"][0], collections["deals"][0], seed, contacts)
    routes = [
        Route("/v1/people", listing),
        Route("/v1/deals", listing),
        Route("/v1/customFields", custom_fields),
        Route("/v1/people/{id:int}", _one(guard, collections)),
        Route("/v1/deals/{id:int}", _one(guard, collections)),
        *_webhook_routes(guard, hooks),
        *writes.routes(),
    ]
    return FaultInjector(Starlette(routes=routes), faults, lambda path: path.startswith("/v1/"))


def _one(
    guard: _Guard, collections: dict[str, tuple[_Collection, bool]]
) -> Callable[[Request], Any]:
    async def one(request: Request) -> Response:
        headers, refused = guard.check(request)
        if refused:
            return refused
        collection, _ = collections[request.url.path.split("/")[2]]
        index = request.path_params["id"] - 1
        entry = collection.overlay.get(collection.name, index)
        known = collection.overlay.exists(collection.name, index)
        if not known or (entry is not None and not collection.visible(entry, trash=True)):
            return _error("Not found", 404, headers)
        record = collection.render(index, entry)
        if "id" not in record:
            return _error("Not found", 404, headers)
        if collection.name == PEOPLE:
            record = shown_fields(record, request.query_params.get("fields"))
        return json_response(record, headers=headers)

    return one


def _webhook_routes(guard: _Guard, hooks: Subscriptions) -> list[Route]:
    async def collection(request: Request) -> Response:
        headers, refused = guard.check(request)
        if refused:
            return refused
        if request.method == "GET":
            items = [s.body() for s in hooks.all()]
            meta = {"collection": "webhooks", "offset": 0, "limit": len(items), "total": len(items)}
            return json_response({"_metadata": meta, "webhooks": items}, headers=headers)
        system = request.headers.get("x-system")
        if not system:
            return _error("The X-System header is required to register webhooks", 400, headers)
        try:
            body = orjson.loads(await request.body())
            item = hooks.add(body.get("event"), body.get("url"), system)
        except (orjson.JSONDecodeError, AttributeError):
            return _error("The body must be a JSON object {event, url}", 400, headers)
        except SubscriptionError as error:
            return _error(str(error), 400, headers)
        return json_response(item.body(), 201, headers=headers)

    async def single(request: Request) -> Response:
        headers, refused = guard.check(request)
        if refused:
            return refused
        ident = request.path_params["id"]
        if request.method == "DELETE":
            return (
                Response(status_code=204, headers=headers)
                if hooks.delete(ident)
                else (_error("Webhook not found", 404, headers))
            )
        item = hooks.get(ident)
        if request.method == "PUT" and item is not None:
            try:
                body = orjson.loads(await request.body())
                item = hooks.update(ident, body if isinstance(body, dict) else {})
            except orjson.JSONDecodeError:
                return _error("The body must be a JSON object", 400, headers)
            except SubscriptionError as error:
                return _error(str(error), 400, headers)
        if item is None:
            return _error("Webhook not found", 404, headers)
        return json_response(item.body(), headers=headers)

    return [
        Route("/v1/webhooks", collection, methods=["GET", "POST"]),
        Route("/v1/webhooks/{id:int}", single, methods=["GET", "PUT", "DELETE"]),
    ]


# -- writes --------------------------------------------------------------------------------


def _contact_items(value: object, name: str, key: Callable[[str], str]) -> list[dict[str, Any]]:
    """`emails` / `phones` as FUB holds them: `{value, type, isPrimary}` each, one value once
    (by `key`), exactly one primary (the first flagged one, else the first)."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WriteError(f"{name} must be a list of objects {{value, type, isPrimary}}")
    items = []
    for item in value:
        text(item.get("value"), f"{name}.value", blank=False)
        kind = text(item.get("type", "other"), f"{name}.type")
        flag = item.get("isPrimary", 0)
        if flag not in (0, 1):  # FUB's own 0/1; true/false compare equal to them
            raise WriteError(f"{name}.isPrimary must be 0 or 1")
        items.append({"value": item["value"], "type": kind, "isPrimary": int(flag)})
    return _one_primary(union([], items, lambda item: key(item["value"])))


def _one_primary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = next((n for n, item in enumerate(items) if item["isPrimary"]), 0)
    return [{**item, "isPrimary": int(n == first)} for n, item in enumerate(items)]


def email_key(value: str) -> str:
    return value.strip().lower()


def phone_key(value: str) -> str:
    """A phone as dedupe compares it: its digits before any extension, without a leading
    US country code."""
    number = re.split(r"(?i)\s*(?:ext\.?|x|#|,)\s*\d*\s*$", value.strip())[0]
    digits = re.sub(r"\D", "", number)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _emails(value: object, name: str) -> list[dict[str, Any]]:
    items = _contact_items(value, name, email_key)
    for item in items:
        if "@" not in item["value"]:
            raise WriteError(f"Invalid email address: {item['value']!r}")
    return items


def _phones(value: object, name: str) -> list[dict[str, Any]]:
    return _contact_items(value, name, phone_key)


_ADDRESS_FIELDS = ("street", "city", "state", "code", "country", "type")


def _addresses(value: object, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WriteError(f"{name} must be a list of objects {{street, city, state, code}}")
    return [{f: maybe_text(item.get(f), f"{name}.{f}") for f in _ADDRESS_FIELDS} for item in value]


def _stage(value: object, name: str) -> str:
    if value not in ACCOUNT_STAGES:
        raise WriteError(f"Invalid stage: {value!r} is not one of the account's stages")
    return str(value)


def _agent(value: object, name: str) -> dict[str, Any]:
    """assignedUserId or assignedTo: the agent's id and name stay in step."""
    if name == "assignedTo":
        value = AGENTS.index(one_of(value, name, AGENTS)) + 1
    agent = int(one_of(value, name, range(1, len(AGENTS) + 1)))
    return {"assignedUserId": agent, "assignedTo": AGENTS[agent - 1]}


_PERSON_FIELDS: dict[str, FieldWriter] = {
    "firstName": sets(text),
    "lastName": sets(text),
    "stage": sets(_stage),
    "contacted": sets(boolean),
    "price": sets(number),
    "background": sets(maybe_text),
    "emails": sets(_emails),
    "phones": sets(_phones),
    "addresses": sets(_addresses),
    "tags": sets(strings),
    "assignedUserId": _agent,
    "assignedTo": _agent,
}
#: Lists an event merges into an existing person (a PUT replaces them; tags merge on
#: `?mergeTags=true`), each compared by its key.
_LIST_KEYS: dict[str, Callable[[Any], object]] = {
    "emails": lambda item: email_key(item["value"]),
    "phones": lambda item: phone_key(item["value"]),
    "tags": lambda tag: tag,
}


def person_patch(
    body: dict[str, Any], current: dict[str, Any], merge: Collection_[str] = ()
) -> dict[str, Any]:
    """The fields a PUT body (or an event's person) writes. `source`, `sourceUrl` (set at
    creation only, FUB says) and any name FUB does not document as writable are ignored."""
    patch = written(body, _PERSON_FIELDS)
    patch.update({k: v for k, v in body.items() if _CUSTOM.fullmatch(k)})  # null deletes one
    for name in set(merge) & patch.keys():
        patch[name] = union(current.get(name) or [], patch[name], _LIST_KEYS[name])
        if name != "tags":
            patch[name] = _one_primary(patch[name])
    return patch


def deal_patch(body: dict[str, Any]) -> dict[str, Any]:
    """The fields a `PUT /v1/deals/{id}` body writes; other names are ignored."""
    patch: dict[str, Any] = {}
    if "name" in body:
        patch["name"] = text(body["name"], "name", blank=False)
    if "price" in body:
        patch["price"] = number(body["price"], "price")
    if "commissionValue" in body:
        patch["commissionValue"] = number(body["commissionValue"], "commissionValue", nullable=True)
    if "projectedCloseDate" in body:
        patch["projectedCloseDate"] = day(
            body["projectedCloseDate"], "projectedCloseDate", nullable=True
        )
    if "stageId" in body:
        stage = body["stageId"]
        if isinstance(stage, bool) or stage not in range(1, len(data.FUB_DEAL_STAGES) + 1):
            raise WriteError(f"Invalid stageId: {stage!r} is no stage of the deal's pipeline")
        patch.update(deal_stage(stage))
    return patch


#: What a person created by an event holds besides what the event gives: no generated name,
#: contact or note leaks into it.
_NEW_PERSON: dict[str, Any] = {
    "lastActivity": None,
    "firstName": "",
    "lastName": "",
    "stage": "Lead",
    "source": None,
    "sourceUrl": None,
    "price": 0,
    "assignedTo": None,
    "assignedUserId": None,
    "contacted": False,
    "emails": [],
    "phones": [],
    "addresses": [],
    "tags": [],
    "background": None,
    # a new lead has no custom values but those it is given (None deletes the generated ones)
    **{field["name"]: None for field in CUSTOM_FIELDS},
}
_IDENTIFYING = ("emails", "phones", "firstName", "lastName")


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    person_id: int
    subject: str | None
    body: str
    is_html: bool
    created: float

    def shape(self) -> dict[str, Any]:
        when = stamp(self.created)
        return {
            "id": self.id,
            "created": when,
            "updated": when,
            "createdById": 1,  # the API key's user (the account owner, Amy Agent)
            "createdBy": AGENTS[0],
            "updatedById": 1,
            "updatedBy": AGENTS[0],
            "personId": self.person_id,
            "subject": self.subject,
            "body": self.body,
            "isHtml": self.is_html,
        }


class Notes:
    """The simulator's notes, in memory beside the overlay (not in it): adding a note does
    not move the person's `updated`, as FUB documents. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Note] = []
        self._ids = itertools.count(1)

    def add(self, person_id: int, subject: str | None, body: str, is_html: bool) -> Note:
        with self._lock:
            note = Note(next(self._ids), person_id, subject, body, is_html, time.time())
            self._items.append(note)
            return note

    def of(self, person_id: int | None) -> list[Note]:
        """Newest first; every person's when `person_id` is None."""
        with self._lock:
            found = [n for n in self._items if person_id is None or n.person_id == person_id]
        return found[::-1]


def _generated_keys(seed: int, i: int, count: int) -> list[str]:
    """Generated person i's e-mail and phone, as dedupe compares them, without building the
    whole record (the same draws `data.fub_person` makes)."""
    if i == data.MISSING_ID_INDEX:
        return []  # served without an id: nothing to match
    p = data.person(seed, data.population_index("followupboss", i, count))
    s = data.spelled(seed, "followupboss", i, p, count)
    keys = [f"p:{phone_key(s.phone)}"]
    return [f"e:{email_key(s.email)}", *keys] if s.email else keys


def _record_keys(record: dict[str, Any]) -> set[str]:
    emails = {f"e:{email_key(e['value'])}" for e in record.get("emails") or ()}
    return emails | {f"p:{phone_key(p['value'])}" for p in record.get("phones") or ()}


class _Directory:
    """Whom an event's e-mail or phone names. The generated people are looked up in a
    `LookupIndex` built on the first event (once, in a worker thread: long for a million
    people, a blink at the demo's size); people changed or created while running are
    scanned (they are few). Each candidate is checked against the person as they are now."""

    def __init__(self, people: _Collection, seed: int, contacts: int) -> None:
        self.people = people
        self.index = LookupIndex(contacts, lambda i: _generated_keys(seed, i, contacts))

    def find(self, keys: list[str]) -> int | None:
        """The oldest live person holding the first of `keys` (e-mails first, then phones)
        that anyone holds."""
        entries = self.people.overlay.entries(PEOPLE)
        touched = [
            i
            for i, e in entries.items()
            if e.created_at is not None or {"emails", "phones"} & e.patch.keys()
        ]
        for key in keys:
            holders = [
                i
                for i in {*self.index.candidates(key), *touched}
                if self._holds(i, entries.get(i), key)
            ]
            if holders:
                return min(holders)
        return None

    def _holds(self, i: int, entry: Entry | None, key: str) -> bool:
        if entry is not None and entry.deleted:
            return False  # a trashed person is no match: the lead is new
        record = self.people.render(i, entry)
        return "id" in record and key in _record_keys(record)


class _Missing(Exception):
    """A write names a record that is not there (or trashed, or deleted): 404."""


@dataclass
class _Writes:
    """The write endpoints (people, deals, notes, events) and what they read: stages and
    pipelines. Every one passes the guard (auth, then the rate window) first."""

    guard: _Guard
    people: _Collection
    deals: _Collection
    seed: int
    contacts: int
    notes: Notes = field(default_factory=Notes)
    directory: _Directory = field(init=False)

    def __post_init__(self) -> None:
        self.directory = _Directory(self.people, self.seed, self.contacts)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/people/{id:int}", self._guarded(self.put_person), methods=["PUT"]),
            Route("/v1/deals/{id:int}", self._guarded(self.put_deal), methods=["PUT"]),
            Route("/v1/stages", self._guarded(self.stages), methods=["GET"]),
            Route("/v1/pipelines", self._guarded(self.pipelines), methods=["GET"]),
            Route("/v1/notes", self._guarded(self.add_note), methods=["POST"]),
            Route("/v1/notes", self._guarded(self.list_notes), methods=["GET"]),
            Route("/v1/events", self._guarded(self.event), methods=["POST"]),
        ]

    def _guarded(
        self, handler: Callable[[Request, dict[str, str]], Any]
    ) -> Callable[[Request], Any]:
        """Auth and the rate window first; a refused write answers in FUB's shape."""

        async def guarded(request: Request) -> Response:
            headers, refused = self.guard.check(request)
            if refused:
                return refused
            try:
                return await handler(request, headers)
            except WriteError as error:
                return _error(error.message, error.status, headers)
            except _Missing as error:
                return _error(str(error), 404, headers)

        return guarded

    def _live(self, collection: _Collection, ident: object, what: str) -> int:
        """The index of a record a write may change: it exists, has an id and is not
        trashed or deleted."""
        index = ident - 1 if isinstance(ident, int) and not isinstance(ident, bool) else -1
        entry = collection.overlay.get(collection.name, index)
        known = collection.overlay.exists(collection.name, index)
        if not known or (entry is not None and entry.deleted):
            raise _Missing(f"{what} not found")
        if "id" not in collection.render(index, entry):
            raise _Missing(f"{what} not found")
        return index

    def _person(self, index: int) -> dict[str, Any]:
        return self.people.render(index, self.people.overlay.get(PEOPLE, index))

    async def put_person(self, request: Request, headers: dict[str, str]) -> Response:
        index = self._live(self.people, request.path_params["id"], "Person")
        merge = ("tags",) if request.query_params.get("mergeTags", "").lower() == "true" else ()
        patch = person_patch(await json_object(request), self._person(index), merge)
        trash = patch.get("stage") == "Trash"
        if trash:  # the Trash stage is where deleted people go: moving there trashes
            del patch["stage"]
        update(self.people.overlay, PEOPLE, index, patch)
        if trash:
            self.people.overlay.apply(PEOPLE, "delete", index)
        return json_response(self._person(index), headers=headers)

    async def put_deal(self, request: Request, headers: dict[str, str]) -> Response:
        index = self._live(self.deals, request.path_params["id"], "Deal")
        update(self.deals.overlay, DEALS, index, deal_patch(await json_object(request)))
        record = self.deals.render(index, self.deals.overlay.get(DEALS, index))
        return json_response(record, headers=headers)

    async def stages(self, request: Request, headers: dict[str, str]) -> Response:
        items = [
            {
                "id": n,
                "name": name,
                "orderWeight": n * 1000,  # FUB keeps gaps of 1000
                "isProtected": name in ("Lead", "Trash"),
            }
            for n, name in enumerate(ACCOUNT_STAGES, 1)
        ]
        meta = _metadata("stages", 0, len(items), len(items))
        return json_response({"_metadata": meta, "stages": items}, headers=headers)

    async def pipelines(self, request: Request, headers: dict[str, str]) -> Response:
        stages = [
            {"id": n, "name": name, "orderWeight": n * 1000}
            for n, name in enumerate(data.FUB_DEAL_STAGES, 1)
        ]
        items = [{"id": PIPELINE[0], "name": PIPELINE[1], "orderWeight": 1000, "stages": stages}]
        meta = _metadata("pipelines", 0, len(items), len(items))
        return json_response({"_metadata": meta, "pipelines": items}, headers=headers)

    async def add_note(self, request: Request, headers: dict[str, str]) -> Response:
        body = await json_object(request)
        if body.get("personId") is None:
            raise WriteError("personId is required")
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            raise WriteError("body is required")
        subject = maybe_text(body.get("subject"), "subject")
        is_html = boolean(body.get("isHtml", False), "isHtml")
        index = self._live(self.people, body["personId"], "Person")
        note = self.notes.add(index + 1, subject, body["body"], is_html)
        return json_response(note.shape(), 201, headers=headers)

    async def list_notes(self, request: Request, headers: dict[str, str]) -> Response:
        params = request.query_params
        try:
            person = int(params["personId"]) if "personId" in params else None
            limit = min(max(int(params.get("limit", 10)), 1), 100)
            offset = max(int(params.get("offset", 0)), 0)
        except ValueError:
            raise WriteError("personId, limit and offset must be numbers") from None
        found = self.notes.of(person)
        items = [note.shape() for note in found[offset : offset + limit]]
        meta = _metadata("notes", offset, limit, len(found))
        return json_response({"_metadata": meta, "notes": items}, headers=headers)

    async def event(self, request: Request, headers: dict[str, str]) -> Response:
        body = await json_object(request)
        given = body.get("person")
        if not isinstance(given, dict):
            raise WriteError("person is required: the lead the event is about")
        fields = person_patch(given, {})
        if "id" not in given and not any(fields.get(name) for name in _IDENTIFYING):
            raise WriteError("person needs an e-mail, a phone or a name")
        if fields.get("stage") == "Trash":
            raise WriteError("Invalid stage: an event does not trash a person")
        index = await self._match(given, fields)
        if index is None:
            return self._create(body, fields, headers)
        patch = person_patch(given, self._person(index), merge=_LIST_KEYS.keys())
        for name in ("assignedTo", "assignedUserId"):  # "a person cannot be reassigned" so
            patch.pop(name, None)
        update(self.people.overlay, PEOPLE, index, patch)
        return json_response(self._person(index), headers=headers)

    async def _match(self, given: dict[str, Any], fields: dict[str, Any]) -> int | None:
        """`person.id` forces the match; else the first e-mail, then phone, anyone holds."""
        if "id" in given:
            return self._live(self.people, given["id"], "Person")
        keys = [f"e:{email_key(e['value'])}" for e in fields.get("emails", ())]
        keys += [f"p:{phone_key(p['value'])}" for p in fields.get("phones", ())]
        return await run_in_threadpool(self.directory.find, keys) if keys else None

    def _create(
        self, body: dict[str, Any], fields: dict[str, Any], headers: dict[str, str]
    ) -> Response:
        source = maybe_text(body.get("source") or body.get("system"), "source")
        source_url = maybe_text(body.get("sourceUrl"), "sourceUrl")
        patch = {**_NEW_PERSON, **fields, "source": source, "sourceUrl": source_url}
        change = self.people.overlay.apply(PEOPLE, "create", patch=patch)
        return json_response(self._person(change.index), 201, headers=headers)


# -- the registry entry --------------------------------------------------------------------


def _build(ctx: SimulatorContext) -> FaultInjector:
    return fub_app(
        ctx.credentials.fub_key,
        ctx.contacts,
        ctx.seed,
        ctx.faults,
        rate_limit=ctx.rate_limit,
        overlay=ctx.overlay,
        subscriptions=ctx.subscriptions,
        clock=ctx.clock,
    )


def _env(url: str, c: DemoCredentials) -> dict[str, str]:
    return {
        "FUB_API_BASE_URL": f"{url}/v1",
        "FUB_API_KEY": c.fub_key,
        "FUB_SYSTEM": c.fub_system,
        "FUB_SYSTEM_KEY": c.fub_system_key,
    }


def _served(contacts: int, seed: int) -> dict[str, Collection]:
    return {
        "contacts": (contacts, lambda i: data.fub_person(seed, i, contacts)),
        "deals": (data.deal_count(contacts), lambda j: data.fub_deal(seed, j, contacts)),
    }


FOLLOWUPBOSS = Simulator("followupboss", _build, _env, _served)
