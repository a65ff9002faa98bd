"""The receiver: `POST /webhooks/<source>` for each source whose connector declares webhooks
(Follow Up Boss, HubSpot), and `GET /healthz`.

A request is verified, then stored in the inbox (committed) before it is answered 2xx; no
vendor is called on the request path (Follow Up Boss wants an answer within 10 s). Every
refusal is counted in `webhook_refusals` and logged with its reason, never with the body
or a secret.

Behind a reverse proxy, give the receiver its public base URL (`--public-url
https://hooks.example.com`): HubSpot signs the URL it called, which the receiver cannot see.
Without it the request's own URL is used (its Host header; forwarded headers are ignored,
since anybody can send them). The signed URI is the public base URL followed by the path
and query the receiver got.

`WebhookService` runs the receiver (uvicorn's `Server.serve()` in the current event loop)
and the inbox worker together; it never touches signal handlers, so the CLI and the app
that embed it decide what a signal means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm_tui import jsoncodec
from crm_tui.config import ConfigError, Settings, insecure_url_problem
from crm_tui.logs import SecretMasker
from crm_tui.sources.kit import Signed, Webhooks
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store.cache import CacheStore
from crm_tui.text import single_line
from crm_tui.webhooks.events import event_name, payload_problem
from crm_tui.webhooks.inbox import WebhookInbox
from crm_tui.webhooks.worker import InboxWorker, RemoteApplier, WorkerOptions

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024


def declared() -> dict[str, Webhooks]:
    """The sources whose webhooks are taken, and how (their connectors say)."""
    return {name: c.webhooks for name, c in CONNECTORS.items() if c.webhooks is not None}


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def webhook_secrets(settings: Settings) -> dict[str, str | None]:
    """Each source's signing secret, or None when it is not configured."""
    found: dict[str, str | None] = {}
    for source, hooks in declared().items():
        value = getattr(settings, hooks.secret.lower(), None)
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        found[source] = str(raw) if raw else None
    return found


def check_public_url(url: str) -> str:
    """The receiver's public base URL, checked: http(s), no query or fragment."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--public-url must be an https:// URL, not {single_line(url)!r}")
    if parsed.query or parsed.fragment:
        raise ValueError("--public-url takes a base URL without a query or fragment")
    problem = insecure_url_problem(url)
    if problem is not None:
        raise ValueError(f"--public-url {problem}")
    return url.rstrip("/")


def signed_uri(request: Request, public_url: str | None) -> str:
    """The URI HubSpot signed: the public base URL (or this request's) + path + query."""
    scope = request.scope
    path = scope.get("raw_path") or scope["path"].encode()
    tail = path.decode("latin-1")
    if scope.get("query_string"):
        tail += "?" + scope["query_string"].decode("latin-1")
    base = public_url or f"{request.url.scheme}://{request.url.netloc}"
    return base + tail


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, read a chunk at a time and abandoned past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Receiver:
    """The Starlette app's handlers, over one inbox."""

    def __init__(
        self,
        inbox: WebhookInbox,
        secrets: Mapping[str, str | None],
        *,
        public_url: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.inbox = inbox
        self.secrets = dict(secrets)
        self.public_url = public_url
        self.max_bytes = max_bytes
        self.on_stored = on_stored

    def app(self) -> Starlette:
        routes = [Route("/healthz", self.health, methods=["GET"])]
        for source in declared():

            async def endpoint(request: Request, source: str = source) -> JSONResponse:
                return await self.receive(source, request)

            routes.append(Route(f"/webhooks/{source}", endpoint, methods=["POST"]))
        return Starlette(routes=routes)

    async def receive(self, source: str, request: Request) -> JSONResponse:
        try:
            body, payload = await self._accept(source, request)
        except Refused as refused:
            return await self._refuse(source, request, refused)
        try:
            row = await asyncio.to_thread(
                self.inbox.add, source, event_name(source, payload), body.decode()
            )
        except Exception as exc:  # the sender retries a 5xx; nothing was stored
            log.error("could not store a %s webhook: %s", source, type(exc).__name__)
            return JSONResponse({"error": "could not store the webhook; retry later"}, 503)
        self.on_stored()
        return JSONResponse({"ok": True, "id": row})

    async def _accept(self, source: str, request: Request) -> tuple[bytes, Any]:
        secret = self.secrets.get(source)
        if not secret:
            setting = declared()[source].secret
            name = CONNECTORS[source].display_name
            message = f"{setting} is not set: {name} webhooks cannot be verified"
            raise Refused(503, "not_configured", message)
        body = await read_capped(request, self.max_bytes)
        reason = self._verify(source, request, body, secret)
        if reason is not None:
            raise Refused(401, reason, f"signature refused: {reason.replace('_', ' ')}")
        try:
            payload = jsoncodec.loads(body)
        except ValueError:
            raise Refused(400, "malformed_json", "the body is not JSON") from None
        problem = payload_problem(source, payload)
        if problem is not None:
            raise Refused(400, "malformed_payload", problem)
        return body, payload

    def _verify(self, source: str, request: Request, body: bytes, secret: str) -> str | None:
        uri = signed_uri(request, self.public_url)
        signed = Signed(request.method, uri, body, dict(request.headers))
        return declared()[source].check(signed, secret)

    async def _refuse(self, source: str, request: Request, refused: Refused) -> JSONResponse:
        client = request.client.host if request.client else "?"
        log.warning(
            "refused a %s webhook from %s: %s (HTTP %d)",
            source,
            single_line(client),
            refused.reason,
            refused.status,
        )
        try:
            await asyncio.to_thread(self.inbox.refuse, source, refused.reason)
        except Exception as exc:  # counting must never turn a refusal into a 500
            log.error("could not count a refusal: %s", type(exc).__name__)
        # A body we stopped reading is still on the wire: close rather than read it.
        headers = {"connection": "close"} if refused.status == 413 else None
        return JSONResponse({"error": refused.message}, refused.status, headers=headers)

    async def health(self, request: Request) -> JSONResponse:
        counts = await asyncio.to_thread(self.inbox.counts)
        states: dict[str, int] = {}
        for by_state in counts.values():
            for state, count in by_state.items():
                states[state] = states.get(state, 0) + count
        refusals = await asyncio.to_thread(self.inbox.refusals)
        return JSONResponse(
            {
                "ok": True,
                "inbox": states,
                "refused": sum(r["count"] for r in refusals),
                "verifying": sorted(s for s, secret in self.secrets.items() if secret),
            }
        )


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8787` for IPv6) as a host and a port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"--listen takes HOST:PORT, such as 127.0.0.1:8787, not {text!r}")
    return host.strip("[]"), int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound here so a port in use is a clear error (and
    not uvicorn's sys.exit), and port 0 is known before serving."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The program running the loop owns the signals (the CLI stops us on SIGTERM, the
        # app on quit); uvicorn's handlers would re-raise them after we stopped.
        yield


class WebhookService:
    """The receiver and the inbox worker in the current event loop.

    `await start()` returns once the port is listening; `await run()` serves until `stop()`
    (safe from a signal handler) and then shuts both down; `await close()` shuts down now.
    """

    def __init__(
        self,
        settings: Settings,
        store: CacheStore,
        engine: RemoteApplier,
        host: str = "127.0.0.1",
        port: int = 8787,
        public_url: str | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        options: WorkerOptions | None = None,
        bound: socket.socket | None = None,
    ) -> None:
        """`bound`: a socket already bound (see `bind`), used instead of host and port."""
        if store.db is None:
            raise ConfigError("webhooks need the database: the inbox lives there")
        self.host, self.port = bound.getsockname()[:2] if bound is not None else (host, port)
        self._bound = bound
        self.public_url = check_public_url(public_url) if public_url else None
        self.inbox = WebhookInbox(store.db, settings.user_id)
        masker = SecretMasker(settings.secret_values())
        self.worker = InboxWorker(self.inbox, engine, masker=masker, options=options)
        self.receiver = Receiver(
            self.inbox,
            webhook_secrets(settings),
            public_url=self.public_url,
            max_bytes=max_bytes,
            on_stored=self.worker.wake,
        )
        self._stop = asyncio.Event()
        self._server: _EmbeddedServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        sock = self._bound or bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.receiver.app(),
            log_config=None,  # never reconfigure the host program's logging
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # see signed_uri: the public URL is given, not guessed
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = server = _EmbeddedServer(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        self._tasks.append(serving)
        while not server.started:
            if serving.done():
                sock.close()
                await serving  # its exception, if it has one
                raise ConfigError(f"the webhook receiver did not start on {self.url}")
            await asyncio.sleep(0.01)
        self._tasks.append(asyncio.create_task(self.worker.run()))
        verified = [s for s, secret in self.receiver.secrets.items() if secret]
        log.info("webhook receiver listening on %s (verifying %s)", self.url, ", ".join(verified))

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until `stop()`; started first unless `start()` was awaited already."""
        if self._server is None:
            await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop taking requests (those in flight finish), then let the worker end its round
        (cancelled after a grace period: its rows go back to the inbox)."""
        if self._server is not None:
            self._server.should_exit = True
        self.worker.stop()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.worker.options.stop_grace_seconds)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("webhook service: %s", type(result).__name__)
        log.info("webhook receiver stopped")
