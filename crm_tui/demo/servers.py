"""Simulated CRM servers on loopback: Brivity's Core API and the integration guide's OAuth
contract (TopProducer's API mode) here; Follow Up Boss, HubSpot, Pipedrive and Lofty in
modules of their own. Starlette apps served by uvicorn
in background threads, each on its own port, with reproducible faults. The helpers every
simulator's write endpoints share (`WriteError`, `json_object`, the field checks, `update`)
live here too.

Brivity, documented (crm-apis.md) and followed: `Authorization: Token token=<KEY>`, else 401
"Bad Credentials"; `GET /api/people?limit=N` answers a bare JSON array; `POST /api/v2/leads
{lead_type, status, source, first_name, last_name, email, phone, description}` creates a
lead; no update endpoint is known, so none is served (PUT/PATCH on /api/v2/leads is 405,
on /api/people/{id} 404).

Brivity, where nothing is documented, the reading chosen:
- A lead is a new person at the end of `GET /api/people` (the people live in the shared
  overlay, "brivity:people"): `email` lands in `email_address`, `phone` in `phone_number`;
  the other person fields are empty, status "new" and stage "Lead" unless given. The answer
  is 201 with the person as the listing shows it. No de-duplication (nothing says there is).
- Refusals take Rails' shape (Brivity is a Rails app): 422 `{"errors": {field:
  [message]}}` for a status or lead_type Brivity does not hold, an e-mail without "@", a
  lead with no name, e-mail or phone (field "base"); 400 `{"errors": {"base": [...]}}` for
  a body that is no JSON object. Fields it does not know are dropped, as Rails drops
  unpermitted parameters.
- A person deleted behind the product's back (`DemoServers.apply_change`) leaves the
  listing."""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from collections.abc import Collection as Collection_
from dataclasses import dataclass, field, fields
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_tui.config import ConfigError
from crm_tui.demo import data
from crm_tui.demo.changes import Change, Entry, Kind, Overlay, Target
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.webhooks import Subscriptions

if TYPE_CHECKING:
    from crm_tui.demo.churn import Churn

_T = TypeVar("_T")
HOST = "127.0.0.1"  # never 0.0.0.0: the simulators hold no secrets, but they are no service


@dataclass(slots=True)
class Faults:
    """Each fault is off by default and reproducible from `seed`."""

    seed: int = 0
    error_rate: float = 0.0  # share of data requests answered 500/502/503
    latency: float = 0.0  # seconds added to every data request
    hang_request: int = 0  # the n-th data request hangs for `hang_seconds`
    hang_seconds: float = 600.0
    malformed_request: int = 0  # the n-th data request gets truncated JSON
    burst_every: int = 0  # every n-th data request starts a burst of three 429s
    retry_after: str = "1"
    token_expiry_every: int = 0  # every n data requests, every token expires
    reset_rate: float = 0.0  # share of data requests whose connection is reset
    gone_after: int = 0  # after n data requests the server drops every connection
    overlap_pages: bool = False  # each page repeats the last record of the page before

    @classmethod
    def parse(cls, items: list[str]) -> Faults:
        """`name=value` pairs as the CLI's --fault takes them."""
        faults = cls()
        names = {f.name: f.type for f in fields(cls)}
        for item in items:
            name, _, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if name not in names or not value:
                raise ValueError(f"unknown fault {item!r}; known: {', '.join(names)}")
            kind = names[name]
            try:
                converted: Any = (
                    float(value) if kind == "float" else int(value) if kind == "int" else value
                )
            except ValueError:
                raise ValueError(f"fault {name}: {value!r} is not a {kind}") from None
            setattr(faults, name, converted)
        return faults


class FaultInjector:
    """Raw ASGI middleware: decides per data request whether and how to misbehave."""

    def __init__(self, app: ASGIApp, faults: Faults, is_data: Callable[[str], bool]) -> None:
        self.app = app
        self.faults = faults
        self.is_data = is_data
        self.rng = random.Random(faults.seed)
        self.requests = 0
        self._burst_left = 0
        self.on_token_expiry: Callable[[], None] = lambda: None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_data(scope["path"]):
            await self.app(scope, receive, send)
            return
        f = self.faults
        self.requests += 1
        n = self.requests
        if f.token_expiry_every and n % f.token_expiry_every == 0:
            self.on_token_expiry()
        if f.latency:
            await asyncio.sleep(f.latency)
        if f.hang_request and n == f.hang_request:
            await asyncio.sleep(f.hang_seconds)
        gone = bool(f.gone_after) and n > f.gone_after
        if gone or (f.reset_rate and self.rng.random() < f.reset_rate):
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()
                return
        if f.burst_every and n % f.burst_every == 0:
            self._burst_left = 3
        if self._burst_left:
            self._burst_left -= 1
            response: Response = PlainTextResponse(
                "Too Many Requests", 429, headers={"Retry-After": f.retry_after}
            )
            await response(scope, receive, send)
            return
        if f.error_rate and self.rng.random() < f.error_rate:
            status = self.rng.choice((500, 502, 503))
            await PlainTextResponse("simulated failure", status)(scope, receive, send)
            return
        if f.malformed_request and n == f.malformed_request:
            await Response(b'[{"id": 1, "first', 200, media_type="application/json")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON body encoded with orjson (Starlette's JSONResponse is several times slower on
    the large pages the benchmarks serve)."""
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


# -- writes: what every simulator's write endpoints share ------------------------------------


class WriteError(Exception):
    """A write refused. Each simulator renders it in its vendor's error shape: `status` (400
    unless said), the field at fault and the vendor's code where the simulator has one."""

    def __init__(
        self, message: str, status: int = 400, field: str | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.code = code


async def json_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise WriteError("The body must be a JSON object")
    return body


def text(value: object, name: str, *, nullable: bool = False, blank: bool = True) -> str | None:
    """A string field (None too when `nullable`; not only spaces unless `blank`)."""
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise WriteError(f"{name} must be a string", field=name)
    if not blank and not value.strip():
        raise WriteError(f"{name} must not be empty", field=name)
    return value


def maybe_text(value: object, name: str) -> str | None:
    """A string field that null clears."""
    return text(value, name, nullable=True)


def boolean(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise WriteError(f"{name} must be true or false", field=name)
    return value


def number(value: object, name: str, *, nullable: bool = False) -> int | float | None:
    """A number of zero or more (JSON true/false are no numbers, though Python says so)."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise WriteError(f"{name} must be a number of zero or more", field=name)
    return value


def one_of(value: object, name: str, options: Collection_[Any]) -> Any:
    if isinstance(value, bool) or value not in options:
        shown = ", ".join(map(str, options))
        raise WriteError(f"{name} must be one of: {shown}", field=name)
    return value


def strings(value: object, name: str) -> list[str]:
    """A list of strings, each once (the first kept), in the order given."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WriteError(f"{name} must be a list of strings", field=name)
    return union([], value)


def day(value: object, name: str, *, nullable: bool = False) -> str | None:
    """A calendar date, YYYY-MM-DD."""
    if value is None and nullable:
        return None
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise WriteError(f"{name} must be a date, YYYY-MM-DD", field=name)


def union(
    kept: Iterable[_T], added: Iterable[_T], key: Callable[[_T], object] = lambda v: v
) -> list[_T]:
    """`kept`, then each of `added` whose key is new, in order: tags merged, lists deduped."""
    seen: set[object] = set()
    out: list[_T] = []
    for item in (*kept, *added):
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out


#: A body field's writer: the checked value in, the record fields it sets out (WriteError
#: when the value is not one the vendor takes).
FieldWriter = Callable[[Any, str], dict[str, Any]]


def sets(check: Callable[[Any, str], Any], field: str | None = None) -> FieldWriter:
    """A writer that puts the checked value in `field` (by default the body's own name)."""
    return lambda value, name: {field or name: check(value, name)}


def written(
    body: dict[str, Any],
    writers: dict[str, FieldWriter],
    passed: Collection_[str] = (),
    refuse: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Each body field through its writer. A name in `passed` is left to the caller (or
    accepted and ignored); any other is refused with `refuse(name)` as the message, or
    ignored when `refuse` is None (vendors that drop what they do not know)."""
    patch: dict[str, Any] = {}
    for name, value in body.items():
        if name in writers:
            patch.update(writers[name](value, name))
        elif name not in passed and refuse is not None:
            raise WriteError(refuse(name), field=name)
    return patch


def update(
    overlay: Overlay,
    collection: str,
    index: int,
    patch: dict[str, Any],
    at: float | None = None,
) -> None:
    """Write `patch` over a record as one change (at `at`, else now): the listings,
    incremental reads and webhooks all see it. Nothing to write is no change (nor a new
    `updated`)."""
    if patch:
        overlay.apply(collection, "update", index, at, patch)


# -- Brivity -------------------------------------------------------------------------------

BRIVITY_PEOPLE = "brivity:people"
BRIVITY_LEAD_TYPES = ("buyer", "seller", "landlord", "tenant")
#: What a created person holds besides what the lead gives: nothing, bar the defaults a new
#: lead plainly has (no generated name or address leaks into it).
_BRIVITY_BLANK: dict[str, Any] = {
    "first_name": None,
    "last_name": None,
    "phone_number": None,
    "email_address": None,
    "company": None,
    "job_title": None,
    "source": None,
    "status": "new",
    "stage": "Lead",
    "lead_type": None,
    "description": None,
    "street_address": None,
    "city": None,
    "locality": None,
    "postal_code": None,
    "country": None,
    "market_report_count": 0,
    "active_market_report_count": 0,
    "tags": [],
}
#: The lead's fields and the person fields they land in (`email` is `email_address`).
_BRIVITY_LEAD_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email_address",
    "phone": "phone_number",
    "source": "source",
    "status": "status",
    "lead_type": "lead_type",
    "description": "description",
}


def mutate_brivity_person(index: int, version: int, kind: Kind, r: random.Random) -> dict[str, Any]:
    if kind == "create":
        return {}
    return {"status": r.choice(data.BRIVITY_STATUSES)}


def brivity_person_now(seed: int, i: int, contacts: int, entry: Entry | None) -> dict[str, Any]:
    record = data.brivity_person(seed, i, contacts)
    if entry is not None:
        record.update(entry.patch)
    return record


def brivity_lead_patch(body: dict[str, Any]) -> dict[str, Any]:
    """The person fields a `POST /api/v2/leads` body sets; WriteError (field named) when a
    value is not one Brivity holds."""
    patch: dict[str, Any] = {}
    for name, target in _BRIVITY_LEAD_FIELDS.items():
        if name in body:
            patch[target] = maybe_text(body[name], name)
    if patch.get("status") is not None:
        one_of(patch["status"], "status", data.BRIVITY_STATUSES)
    if patch.get("lead_type") is not None:
        one_of(patch["lead_type"], "lead_type", BRIVITY_LEAD_TYPES)
    email = patch.get("email_address")
    if email is not None and "@" not in email:
        raise WriteError("is invalid", field="email")
    named = ("first_name", "last_name", "email_address", "phone_number")
    if not any(patch.get(name) for name in named):
        raise WriteError("a lead needs a name, an e-mail or a phone", field="base")
    return {**_BRIVITY_BLANK, **{k: v for k, v in patch.items() if v is not None}}


def _brivity_error(error: WriteError) -> Response:
    # Rails' model errors: {field: [messages]}; 422 for values, 400 for a body that is none
    status = 400 if error.field is None else 422
    return JSONResponse({"errors": {error.field or "base": [error.message]}}, status)


def brivity_app(
    key: str, contacts: int, seed: int, faults: Faults, overlay: Overlay | None = None
) -> FaultInjector:
    shared = overlay or Overlay(seed)
    shared.register(Target(BRIVITY_PEOPLE, contacts, contacts, mutate_brivity_person))

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Token token={key}"

    async def people(request: Request) -> Response:
        if not authorized(request):
            return PlainTextResponse("Bad Credentials", 401)
        positions = shared.positions(BRIVITY_PEOPLE)
        entries = shared.entries(BRIVITY_PEOPLE)
        try:
            limit = int(request.query_params.get("limit", positions.total))
        except ValueError:
            return PlainTextResponse("limit must be a number", 400)
        count = max(0, min(limit, positions.total))

        async def body() -> AsyncIterator[bytes]:
            # A bare JSON array streamed in chunks: a million people never sit in memory.
            yield b"["
            for start in range(0, count, 500):
                chunk = [
                    brivity_person_now(seed, i, contacts, entries.get(i))
                    for i in positions.indices(start, min(start + 500, count))
                ]
                yield (b"," if start else b"") + orjson.dumps(chunk)[1:-1]
                await asyncio.sleep(0)
            yield b"]"

        return StreamingResponse(body(), media_type="application/json")

    async def create_lead(request: Request) -> Response:
        if not authorized(request):
            return PlainTextResponse("Bad Credentials", 401)
        try:
            patch = brivity_lead_patch(await json_object(request))
        except WriteError as error:
            return _brivity_error(error)
        change = shared.apply(BRIVITY_PEOPLE, "create", patch=patch)
        person = brivity_person_now(
            seed, change.index, contacts, shared.get(BRIVITY_PEOPLE, change.index)
        )
        return json_response(person, 201)

    app = Starlette(
        routes=[
            Route("/api/people", people),
            Route("/api/v2/leads", create_lead, methods=["POST"]),
        ]
    )
    return FaultInjector(app, faults, lambda path: path.startswith("/api/"))


# -- Follow Up Boss ------------------------------------------------------------------------


class SlidingWindow:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.hits: deque[float] = deque()

    def take(self) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until a slot frees)."""
        now = time.monotonic()
        while self.hits and now - self.hits[0] >= self.window:
            self.hits.popleft()
        if len(self.hits) >= self.limit:
            return False, 0, self.hits[0] + self.window - now
        self.hits.append(now)
        return True, self.limit - len(self.hits), 0.0


# -- the guide's OAuth contract (TopProducer API mode) -------------------------------------


def oauth_app(
    client_id: str,
    client_secret: str,
    api_key: str,
    contacts: int,
    seed: int,
    faults: Faults,
    expires_in: int = 3600,
    clock: DemoClock = FIXED,
) -> FaultInjector:
    deals = data.deal_count(contacts)
    tokens: dict[str, float] = {}
    collections: dict[str, tuple[int, Callable[[int], dict[str, Any]]]] = {
        "contacts": (contacts, lambda i: data.tp_contact(seed, i, contacts, clock)),
        "transactions": (deals, lambda j: data.tp_transaction(seed, j, contacts, clock)),
    }

    async def token(request: Request) -> Response:
        # parsed by hand: Starlette's form parser needs python-multipart for this one call
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        value = secrets.token_urlsafe(24)
        tokens[value] = time.monotonic() + expires_in
        return JSONResponse(
            {"access_token": value, "token_type": "Bearer", "expires_in": expires_in}
        )

    async def listing(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        expiry = tokens.get(auth.removeprefix("Bearer "))
        if expiry is None or expiry < time.monotonic():
            return JSONResponse({"error": "invalid_token"}, 401)
        if api_key and request.headers.get("x-api-key") != api_key:
            return JSONResponse({"error": "invalid_api_key"}, 401)
        name = request.url.path.strip("/")
        total, make = collections[name]
        try:
            top = min(max(int(request.query_params.get("$top", 100)), 1), 100)
            skip = max(int(request.query_params.get("$skip", 0)), 0)
        except ValueError:
            return JSONResponse({"error": "$top and $skip must be numbers"}, 400)
        items = [make(i) for i in range(skip, min(skip + top, total))]
        if faults.overlap_pages and 0 < skip < total:
            items.insert(0, make(skip - 1))
        return json_response({"value": items, "@odata.count": total})

    app = Starlette(
        routes=[
            Route("/auth/oauth/token", token, methods=["POST"]),
            Route("/contacts", listing),
            Route("/transactions", listing),
        ]
    )
    injector = FaultInjector(app, faults, lambda path: not path.startswith("/auth/"))
    injector.on_token_expiry = tokens.clear
    return injector


# -- serving -------------------------------------------------------------------------------


@dataclass
class RunningServer:
    name: str
    server: uvicorn.Server
    thread: threading.Thread
    app: FaultInjector
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(name: str, app: FaultInjector, port: int = 0) -> RunningServer:
    """Start `app` on 127.0.0.1 in a daemon thread; returns once it accepts connections."""
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
        http="httptools",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"demo-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} simulator did not start (port {port} in use?)")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(name, server, thread, app, bound)


@dataclass
class DemoCredentials:
    brivity_key: str = "demo-brivity-key"
    fub_key: str = "demo-fub-key"
    tp_client_id: str = "demo-topproducer-client"
    tp_client_secret: str = "demo-topproducer-secret"
    tp_api_key: str = "demo-topproducer-key"
    hubspot_token: str = "demo-hubspot-token"
    pipedrive_token: str = "demo-pipedrive-token"
    lofty_key: str = "demo-lofty-key"
    fub_system: str = "crm-tui-demo"  # the X-System a registered FUB integration sends
    fub_system_key: str = "demo-fub-system-key"  # signs FUB webhooks (FUB-Signature)
    hubspot_client_secret: str = "demo-hubspot-client-secret"  # signs HubSpot webhooks (v3)


@dataclass(frozen=True, slots=True)
class SimulatorContext:
    """What every simulator is built from."""

    contacts: int
    seed: int
    faults: Faults
    credentials: DemoCredentials
    rate_limit: int = 200  # requests per window, for the simulators that enforce one
    token_expires_in: int = 3600  # seconds, for those that hand out tokens
    # the live changes every changing simulator reads, and FUB's webhook subscriptions
    overlay: Overlay = field(default_factory=Overlay)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    clock: DemoClock = FIXED  # where the generated dates sit (the demo: dated to its day)


#: A collection's size and its i-th record, as a simulator serves them.
Collection = tuple[int, Callable[[int], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Simulator:
    """One simulated CRM: its app, the settings that point crm-tui at it, and what it
    serves (`"stream": (count, make)`, for the tests that compare)."""

    name: str
    build: Callable[[SimulatorContext], FaultInjector]
    env: Callable[[str, DemoCredentials], dict[str, str]]
    collections: Callable[[int, int], dict[str, Collection]]


@dataclass
class DemoServers:
    contacts: int
    seed: int
    credentials: DemoCredentials
    servers: dict[str, RunningServer] = field(default_factory=dict)
    overlay: Overlay = field(default_factory=Overlay)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    churn: Churn | None = None

    def apply_change(
        self,
        collection: str,
        kind: Kind,
        index: int | None = None,
        at: float | None = None,
        patch: dict[str, Any] | None = None,
    ) -> Change:
        """Change one record now (or `at`, epoch seconds), behind the product's back:
        `collection` is e.g. "followupboss:people", "hubspot:deals", "pipedrive:persons",
        "lofty:leads", "brivity:people"; a create takes the next new index. `patch` sets
        chosen fields in the vendor's own shape (`{"stage": "Lead"}` for a Follow Up Boss
        person); without it the collection's churn picks them. Webhooks go out as for churn
        when a sender is attached."""
        return self.overlay.apply(collection, kind, index, at, patch)

    def start_churn(
        self, rate: float, webhook_url: str | None = None, seed: int | None = None
    ) -> Churn:
        """Change about `rate` records a second (0: none, only webhooks for scripted changes)
        in a background thread, and post each change to `webhook_url` (FUB- and
        HubSpot-signed) and to FUB's registered subscriptions. Replaces a running churn."""
        from crm_tui.demo.churn import Churn

        self.stop_churn()
        self.churn = Churn(self, rate, webhook_url, self.seed if seed is None else seed)
        self.churn.start()
        return self.churn

    def stop_churn(self) -> None:
        if self.churn is not None:
            self.churn.stop()
            self.churn = None

    def env(self) -> dict[str, str]:
        """The environment lines that point crm-tui at these servers."""
        from crm_tui.demo.simulators import SIMULATORS

        lines: dict[str, str] = {}
        for simulator in SIMULATORS:
            if simulator.name in self.servers:
                lines.update(simulator.env(self.servers[simulator.name].url, self.credentials))
        return lines

    def stop(self) -> None:
        self.stop_churn()
        # Told all at once, then waited for: each takes up to a tick of its loop to notice.
        for running in self.servers.values():
            running.server.should_exit = True
        for running in self.servers.values():
            running.stop()

    def __enter__(self) -> DemoServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: What a production install lacks: the simulators run on uvicorn's C parser (see serve).
MISSING_EXTRA = (
    "the demo's simulated CRMs need the demo extra: pip install 'crm-tui[demo]'"
    " (httptools is not installed)"
)


def require_demo_extra() -> None:
    """Fail at once, in one line, where the demo extra is not installed: uvicorn would only
    fail inside each server's thread, and the demo would wait for servers that never start."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None


def start_demo_servers(
    contacts: int = 2000,
    seed: int = 7,
    faults: Faults | None = None,
    *,
    credentials: DemoCredentials | None = None,
    ports: tuple[int, ...] | None = None,
    fub_rate_limit: int = 200,
    token_expires_in: int = 3600,
    clock: DemoClock = FIXED,
) -> DemoServers:
    """Start every simulator, each on its own port (`ports`, in the order of SIMULATORS;
    0 or none: a free one). `clock` places the generated dates (default: the fixed window
    tests compare; a demo a person looks at is dated to its day)."""
    from crm_tui.demo.simulators import SIMULATORS

    require_demo_extra()

    c = credentials or DemoCredentials()
    overlay, subscriptions = Overlay(seed), Subscriptions()
    context = SimulatorContext(
        contacts,
        seed,
        faults or Faults(),
        c,
        fub_rate_limit,
        token_expires_in,
        overlay,
        subscriptions,
        clock,
    )
    demo = DemoServers(contacts, seed, c, overlay=overlay, subscriptions=subscriptions)
    wanted = list(ports or ())
    try:
        for number, simulator in enumerate(SIMULATORS):
            port = wanted[number] if number < len(wanted) else 0
            demo.servers[simulator.name] = serve(simulator.name, simulator.build(context), port)
    except BaseException:
        demo.stop()
        raise
    return demo


def iter_records(name: str, contacts: int, seed: int) -> Iterator[dict[str, Any]]:
    """Every record a simulator serves for a collection (`"source:stream"`), in index
    order (tests compare)."""
    from crm_tui.demo.simulators import SIMULATORS

    source, _, stream = name.partition(":")
    simulator = next(s for s in SIMULATORS if s.name == source)
    total, make = simulator.collections(contacts, seed)[stream]
    for i in range(total):
        yield make(i)


# -- the three simulators this module serves -------------------------------------------------

BRIVITY = Simulator(
    "brivity",
    lambda ctx: brivity_app(
        ctx.credentials.brivity_key, ctx.contacts, ctx.seed, ctx.faults, ctx.overlay
    ),
    lambda url, c: {"BRIVITY_API_BASE_URL": url, "BRIVITY_API_KEY": c.brivity_key},
    lambda contacts, seed: {
        "contacts": (contacts, lambda i: data.brivity_person(seed, i, contacts)),
    },
)
TOPPRODUCER = Simulator(
    "topproducer",
    lambda ctx: oauth_app(
        ctx.credentials.tp_client_id,
        ctx.credentials.tp_client_secret,
        ctx.credentials.tp_api_key,
        ctx.contacts,
        ctx.seed,
        ctx.faults,
        expires_in=ctx.token_expires_in,
        clock=ctx.clock,
    ),
    lambda url, c: {
        "TOPPRODUCER_API_BASE_URL": url,
        "TOPPRODUCER_CLIENT_ID": c.tp_client_id,
        "TOPPRODUCER_CLIENT_SECRET": c.tp_client_secret,
        "TOPPRODUCER_API_KEY": c.tp_api_key,
    },
    lambda contacts, seed: {
        "contacts": (contacts, lambda i: data.tp_contact(seed, i, contacts)),
        "deals": (data.deal_count(contacts), lambda j: data.tp_transaction(seed, j, contacts)),
    },
)
