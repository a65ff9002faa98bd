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
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
    Overlay,
    SortIndex,
    Target,
    count,
    index_of,
    pack,
    walk,
)
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
from crm_tui.demo.webhooks import SubscriptionError, Subscriptions

PEOPLE = "followupboss:people"
DEALS = "followupboss:deals"
_NEVER = 1 << 40  # a key past every time and id
_LIVE_STAGES = tuple(s for s in data.FUB_STAGES if s != "Trash")


def stamp(moment: float) -> str:
    """FUB's form: UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _updated_epoch(seed: int, i: int) -> int:
    day = data.fub_updated_day(seed, i)
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
        stage = r.choice(data.FUB_DEAL_STAGES)
        return {
            "stageId": data.FUB_DEAL_STAGES.index(stage) + 1,
            "stageName": stage,
            "status": "Active" if stage != "Lost" else "Archived",
        }
    price = r.randrange(180_000, 2_400_000, 500)
    return {"price": price, "commissionValue": round(price * 0.03, 2)}


def person_now(seed: int, i: int, count: int, entry: Entry | None) -> dict[str, Any]:
    record = data.fub_person(seed, i, count)
    if entry is None:
        return record
    record.update(entry.patch)
    if "lastName" in entry.patch:
        record["name"] = f"{record['firstName']} {record['lastName']}"
    if entry.created_at is not None:
        record["created"] = stamp(entry.created_at)
    record["updated"] = stamp(entry.updated_at)
    if entry.deleted:
        record["stage"] = "Trash"
    return record


def deal_now(seed: int, j: int, contacts: int, entry: Entry | None) -> dict[str, Any]:
    record = data.fub_deal(seed, j, contacts)
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
        if query.sort == "updated" and query.since is not None and query.since >= BASE_HORIZON:
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


def _collections(seed: int, contacts: int, overlay: Overlay) -> dict[str, tuple[_Collection, bool]]:
    deals = data.deal_count(contacts)
    updated = SortIndex(contacts, lambda i: pack(_updated_epoch(seed, i), i))
    overlay.register(
        Target(PEOPLE, contacts, contacts, mutate_person, lambda i: i != data.MISSING_ID_INDEX)
    )
    overlay.register(Target(DEALS, deals, deals, mutate_deal))
    people = _Collection(
        PEOPLE,
        contacts,
        lambda i, e: person_now(seed, i, contacts, e),
        overlay,
        updated,
        trashes=True,
    )
    deal = _Collection(
        DEALS, deals, lambda j, e: deal_now(seed, j, contacts, e), overlay, None, trashes=False
    )
    return {"people": (people, True), "deals": (deal, False)}


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


def fub_app(
    key: str,
    contacts: int,
    seed: int,
    faults: Faults,
    rate_limit: int = 200,
    window: float = 10.0,
    overlay: Overlay | None = None,
    subscriptions: Subscriptions | None = None,
) -> FaultInjector:
    guard = _Guard(key, rate_limit, window)
    collections = _collections(seed, contacts, overlay or Overlay(seed))
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
        body = {
            "_metadata": {
                "collection": name,
                "offset": page.offset,
                "limit": limit,
                "total": page.total,
                "next": following,
                "nextLink": f"{base}?limit={limit}&next={following}" if following else None,
            },
            name: page.records,
        }
        return json_response(body, headers=headers)

    routes = [
        Route("/v1/people", listing),
        Route("/v1/deals", listing),
        Route("/v1/people/{id:int}", _one(guard, collections)),
        Route("/v1/deals/{id:int}", _one(guard, collections)),
        *_webhook_routes(guard, hooks),
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
