"""`crm-tui serve`: the same app in a browser, through textual-serve.

textual-serve runs one app process per browser connection and has no authentication of its
own (anyone who reaches its port gets an app with the team's data and keys). So:
- it binds to loopback unless told `--public` (then it warns: crm-tui has no login);
- a random token is required: in the page's URL (`/?token=...`, compared in constant time),
  and in the path of the websocket that starts an app (`/ws/<token>`, which the page is
  given); a websocket whose Origin is another site is refused as well;
- the page is sent with `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so
  the token does not leave in a Referer header or stay in a shared cache; the access log,
  which would print every URL, is off.
The token is printed once, with the URL, when the server starts. `/download/<key>` needs
no token: only an app's own delivery opens one, under a key Textual makes at random, and
crm-tui delivers no file through the browser.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import signal
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

TOKEN_BYTES = 24
NO_LOGIN_WARNING = (
    "crm-tui has no login of its own: anyone who can reach {where} and has the URL (its"
    " token) can use the app with your CRM data and keys. Put it behind your HTTPS proxy"
    " with its own authentication, or use an SSH tunnel to a loopback address instead."
)


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(given: str | None, token: str) -> bool:
    """Constant time, so the answer's timing says nothing about how much of it was right."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def page_url(host: str, port: int, token: str | None, public_url: str | None = None) -> str:
    """The URL to open: the public one (a proxy's) when given, else the bound address."""
    base = (public_url or f"http://{_url_host(host)}:{port}").rstrip("/")
    return f"{base}/?token={token}" if token else f"{base}/"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class TokenServer(Server):
    """textual-serve's server with a token in front of the page and of every app."""

    def __init__(
        self,
        command: str,
        host: str,
        port: int,
        token: str | None,
        *,
        public_url: str | None = None,
        title: str = "crm-tui",
    ) -> None:
        super().__init__(command, host=host, port=port, title=title, public_url=public_url)
        self.token = token
        self.given_public_url = public_url
        self.on_ready: Callable[[int], None] | None = None  # given the port bound

    async def _make_app(self) -> web.Application:
        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get("/ws", self.guarded_websocket),
                web.get("/ws/{token}", self.guarded_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        return app

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        if self.token is not None and not same_token(request.query.get("token"), self.token):
            raise web.HTTPForbidden(text="crm-tui: this address needs the URL with its token")
        context = {
            "font_size": _font_size(request.query.get("fontsize")),
            "app_websocket_url": self._websocket_url(request),
            "config": {"static": {"url": self._base(request) + "/static/"}},
            "application": {"name": self.title},
            "ping_url": "",
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def guarded_websocket(self, request: web.Request) -> web.StreamResponse:
        if self.token is not None and not same_token(request.match_info.get("token"), self.token):
            raise web.HTTPForbidden(text="crm-tui: no app without the token")
        if not _same_origin(request, self.given_public_url):
            raise web.HTTPForbidden(text="crm-tui: a page of another site may not start the app")
        return await self.handle_websocket(request)

    def _base(self, request: web.Request) -> str:
        """Where the browser reached us: the public URL (a proxy's) when given, else the
        request's own host (an SSH tunnel's local port is not ours)."""
        if self.given_public_url:
            return self.given_public_url.rstrip("/")
        forwarded = request.headers.get("X-Forwarded-Proto", "").lower()
        scheme = "https" if request.secure or forwarded == "https" else "http"
        return f"{scheme}://{request.host}"

    def _websocket_url(self, request: web.Request) -> str:
        base = self._base(request)
        scheme, rest = base.split("://", 1)
        path = f"/ws/{self.token}" if self.token is not None else "/ws"
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"

    def serve(self, debug: bool = False) -> None:
        """Until SIGINT or SIGTERM; the access log (every URL, tokens too) stays off."""
        self.debug = debug
        asyncio.run(self._run())

    async def _run(self) -> None:
        runner = web.AppRunner(await self._make_app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = runner.addresses[0][1]  # port 0 is the one the system chose
            if self.on_ready is not None:
                self.on_ready(self.port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()


def _font_size(value: str | None) -> int:
    try:
        return max(6, min(int(value or 16), 64))
    except ValueError:
        return 16


def _same_origin(request: web.Request, public_url: str | None) -> bool:
    """A browser names the page that opens a websocket in Origin: only ours may (a page
    elsewhere cannot read the token, but this costs nothing). No Origin: not a browser."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    ours = {request.host.lower()}
    if public_url:  # behind a proxy, the Host we see may be the proxy's upstream
        ours.add(urlsplit(public_url).netloc.lower())
    return urlsplit(origin).netloc.lower() in ours
