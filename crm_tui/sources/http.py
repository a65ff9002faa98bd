"""The HTTP layer every API connector shares: client, auth, retries, rate budget, deadlines.

One `httpx.AsyncClient` per source. Each request gets httpx's per-chunk timeouts plus an
overall deadline, auth applied afresh on every attempt, one token refresh and re-send after a
401, and the retry table below with jittered exponential backoff (stamina) capped in attempts
and total time. Cancellation is never retried: stamina only catches `Exception`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import email.utils
import functools
import logging
import math
import ssl
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpx
import stamina
import stamina.instrumentation

from crm_tui import jsoncodec
from crm_tui.config import ConfigError, insecure_url_problem
from crm_tui.logs import SecretMasker
from crm_tui.models import RateReading, utc_now
from crm_tui.sources.errors import (
    AnswerLost,
    AuthError,
    NotFound,
    RateLimited,
    Rejected,
    RemoteError,
)
from crm_tui.sources.kit import Auth as AuthSpec
from crm_tui.sources.kit import (
    Basic,
    Bearer,
    ClientCredentials,
    KeyHeader,
    RateHeaders,
    RetryPolicy,
)
from crm_tui.sources.messages import (
    connect_failure,
    no_answer,
    refused,
    vendor_said,
    where_to_fix,
)
from crm_tui.text import single_line
from crm_tui.timefmt import UTC_STAMP

if TYPE_CHECKING:
    from crm_tui.sources.base import Source

log = logging.getLogger(__name__)
T = TypeVar("T")
_retry_log = logging.getLogger("crm_tui.retry")


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    _retry_log.warning(
        "retry %d in %.2f s after %r", details.retry_num, details.wait_for, details.caused_by
    )


# stamina's default hook logs `stamina.retry_scheduled` to the "stamina" logger (or through
# structlog, to stdout, when that is installed); with no handler there, Python's last-resort
# handler printed each retry on stderr. Ours goes where crm-tui's logs go: the log file,
# and stderr only with --debug.
stamina.instrumentation.set_on_retry_hooks([_log_retry])

#: Retried with backoff. 401 is handled apart (refresh once); every other 4xx fails at once.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_LARGE_BODY = 2_000_000  # parse bigger JSON bodies off the event loop


@dataclass(slots=True)
class StreamStats:
    """Counters of the stream being read; set per stream task through a context variable."""

    retries: int = 0
    requests: int = 0


current_stats: contextvars.ContextVar[StreamStats | None] = contextvars.ContextVar(
    "current_stats", default=None
)


class _Retryable(Exception):
    def __init__(
        self, details: str, retry_after: float | None = None, *, unprocessed: bool = False
    ) -> None:
        super().__init__(details)
        self.details = details
        self.retry_after = retry_after
        # nothing was done: the request never reached the server, or it says so (a 429)
        self.unprocessed = unprocessed


#: The longest wait any header may ask for: past it, a number is as good as "never".
_LONGEST_WAIT = 7 * 86_400.0


def _seconds(value: float) -> float:
    """A number of seconds from a header, kept finite and at most a week (NaN and
    infinities are garbled headers: `asyncio.sleep(nan)` never wakes)."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return min(value, _LONGEST_WAIT)


def parse_http_date(value: str | None) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header in either form (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _LONGEST_WAIT)
    when = parse_http_date(value)
    if when is None:
        return None
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), _LONGEST_WAIT)


def shown_url(url: str) -> str:
    """A URL for a message: scheme, host, port and path, without a user, password or query
    that could carry a secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def require_secure_url(url: str, what: str) -> None:
    """Credentials go only over HTTPS or to this machine, whatever built the URL. (Redirects
    are never followed, so a server cannot move them elsewhere either.)"""
    problem = insecure_url_problem(url)
    if problem is not None:
        raise ConfigError(f"{what} {shown_url(url)}: {problem}")


# -- auth ----------------------------------------------------------------------------------


class Auth(ABC):
    @abstractmethod
    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        """Headers for one attempt; called afresh on every retry."""

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        """Forget cached credentials after a 401. True when a fresh attempt can help."""
        return False


class HeaderAuth(Auth):
    """Static headers: Brivity's `Token token=KEY`, Follow Up Boss's Basic, system headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    @classmethod
    def token(cls, key: str) -> HeaderAuth:
        return cls({"Authorization": f"Token token={key}"})

    @classmethod
    def basic(cls, username: str, extra: dict[str, str] | None = None) -> HeaderAuth:
        encoded = base64.b64encode(f"{username}:".encode()).decode()
        return cls({"Authorization": f"Basic {encoded}", **(extra or {})})

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        return self._headers


class OAuthClientCredentials(Auth):
    """Client-credentials tokens, cached until shortly before expiry, fetched single-flight."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        display_name: str,
        extra_headers: dict[str, str] | None = None,
        timeout: float = 15.0,
        settings: tuple[str, ...] = (),
    ) -> None:
        require_secure_url(token_url, f"{display_name} token URL")
        self._settings = settings  # where the id and the secret are set, for a refusal
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._masker = SecretMasker((client_secret,))  # the vendor may echo it back
        self._display = display_name
        self._extra = extra_headers or {}
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.token_requests = 0

    def _valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires_at

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        if not self._valid():
            async with self._lock:
                if not self._valid():  # another task may have refreshed while we waited
                    await self._fetch(client)
        return {"Authorization": f"Bearer {self._token}", **self._extra}

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        stale = self._token
        async with self._lock:
            if self._token == stale:
                self._token = None
                await self._fetch(client)
        return True

    async def _fetch(self, client: httpx.AsyncClient) -> None:
        started = time.monotonic()  # expiry counts from before the request
        self.token_requests += 1
        try:
            # Token endpoints have bad moments too: a short retry on network errors and 5xx.
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _Retryable),
                attempts=3,
                timeout=30.0,
                wait_initial=0.2,
                wait_max=2.0,
            ):
                with attempt:
                    response = await client.post(
                        self._token_url,
                        data={
                            "grant_type": "client_credentials",
                            "client_id": self._client_id,
                            "client_secret": self._client_secret,
                        },
                        headers=self._extra,
                        timeout=self._timeout,
                    )
                    if response.status_code >= 500:
                        raise _Retryable(f"the token endpoint answered HTTP {response.status_code}")
        except _Retryable as exc:  # the network, not the credentials: never an auth error
            raise RemoteError(f"cannot get an access token: {exc.details}") from None
        except httpx.TimeoutException:
            raise RemoteError(f"cannot get an access token: {no_answer(self._timeout)}") from None
        except httpx.TransportError as exc:
            failure = connect_failure(exc, httpx.URL(self._token_url))
            raise RemoteError(f"cannot get an access token: {failure}") from None
        if response.status_code in (400, 401, 403):
            raise AuthError(
                refused(self._settings or ("client_id", "client_secret")),
                where_to_fix(self._settings),
                self._masker(vendor_said(response.text)) or "Invalid client_id or client_secret",
            )
        if response.status_code != 200:
            raise AuthError(
                "cannot get an access token",
                f"the token endpoint answered HTTP {response.status_code}",
            )
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise AuthError("cannot get an access token", "malformed token response") from None
        if not isinstance(token, str) or not token:
            raise AuthError("cannot get an access token", "the token endpoint sent an empty one")
        early = min(60.0, expires_in * 0.1)
        self._token = token
        self._expires_at = started + max(expires_in - early, 0.0)
        log.debug("[%s] access token fetched, valid %.0f s", self._display, expires_in)


# -- rate budget ---------------------------------------------------------------------------


class RateBudget:
    """A sliding-window budget kept below the server's, corrected from the rate-limit
    headers the source declares (Follow Up Boss's X-RateLimit-* by default)."""

    def __init__(
        self,
        limit: int | None = None,
        window: float | None = None,
        reserve: int = 2,
        headers: RateHeaders | None = None,
    ) -> None:
        self.names = headers or RateHeaders()
        self.limit = limit
        self.window = window if window is not None else self.names.window_seconds
        self.reserve = reserve
        self._sent: deque[float] = deque()
        self._remaining: int | None = None
        self._observed_at = 0.0
        self._reset_at: float | None = None  # monotonic; when the server's window restarts
        self._daily_remaining: int | None = None
        self.observed_at = ""  # UTC, when a header last said how much is left
        self.waited = 0.0

    def reading(self) -> RateReading | None:
        """What the server said last, for the Status screen; None before it said anything."""
        if self._remaining is None:
            return None
        return RateReading(
            self.limit, self._remaining, self.window, self._daily_remaining, self.observed_at
        )

    def observe(self, headers: httpx.Headers) -> None:
        names = self.names
        try:
            if names.limit in headers:
                self.limit = int(headers[names.limit])
            if names.window is not None and names.window in headers:
                window = _seconds(float(headers[names.window].rstrip("s")) * names.window_unit)
                if window > 0:
                    self.window = window
            if names.remaining in headers:
                self._remaining = int(headers[names.remaining])
                self._observed_at = time.monotonic()
                self.observed_at = utc_now()
            if names.reset is not None and names.reset in headers:
                self._reset_at = time.monotonic() + self._reset_in(headers)
            if names.daily_remaining is not None and names.daily_remaining in headers:
                self._daily_remaining = int(headers[names.daily_remaining])
        except ValueError:
            pass  # a garbled header must not break a sync; the 429 path still protects us

    def _reset_in(self, headers: httpx.Headers) -> float:
        """Seconds until the server's window restarts; ValueError if the header is garbled.
        An epoch is counted from the response's Date, so a skewed clock here does not
        matter."""
        assert self.names.reset is not None
        seconds = float(headers[self.names.reset])
        if self.names.reset_is_epoch:
            if seconds > 1e11:  # an epoch in milliseconds
                seconds /= 1000
            sent = parse_http_date(headers.get("date"))
            seconds -= sent.timestamp() if sent is not None else time.time()
        return max(_seconds(seconds), 0.0)

    def wait_after_limit(self, headers: httpx.Headers) -> float | None:
        """How long a 429 without Retry-After asks for: until the window restarts when the
        server says when (if that is not already past), a whole window when it says nothing
        is left, else None (the usual backoff)."""
        names = self.names
        try:
            if names.reset is not None and names.reset in headers:
                return self._reset_in(headers) or None
            if names.remaining in headers and int(headers[names.remaining]) <= 0:
                return self.window
        except ValueError:
            pass
        return None

    def daily_spent(self, headers: httpx.Headers) -> bool:
        name = self.names.daily_remaining
        if name is None or name not in headers:
            return False
        try:
            return int(headers[name]) <= 0
        except ValueError:
            return False

    def delay(self, now: float) -> float:
        """How long to wait before the next request."""
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        wait = 0.0
        if self.limit and len(self._sent) >= self.limit:
            wait = self._sent[0] + self.window - now
        spent = self._remaining is not None and self._remaining <= self.reserve
        if spent and self._reset_at is not None:
            # The server's own count is nearly spent and it said when it restarts (capped
            # at a window, in case the header is wrong).
            wait = max(wait, min(self._reset_at - now, self.window))
        elif spent and self.limit and self._remaining is not None:
            # ... or it did not: spread the rest over its window.
            spacing = self.window / self.limit * (self.reserve - self._remaining + 1)
            wait = max(wait, self._observed_at + spacing - now)
        return max(wait, 0.0)

    async def acquire(self) -> None:
        wait = self.delay(time.monotonic())
        if wait > 0:
            self.waited += wait
            await asyncio.sleep(wait)
        self._sent.append(time.monotonic())


# -- client --------------------------------------------------------------------------------


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle takes ~50 ms, too long to pay
    on the event loop each time a source's client is built. The app warms it in a thread."""
    return ssl.create_default_context(cafile=certifi.where())


def _sent_tracer(on_sent: Callable[[], None]) -> Callable[[str, Any], Awaitable[None]]:
    """httpcore's `trace` extension, reduced to one event: the request is on the wire."""

    async def trace(event: str, info: Any) -> None:
        if event.endswith("send_request_body.complete"):
            on_sent()

    return trace


class HttpClient:
    def __init__(
        self,
        display_name: str,
        base_url: str,
        auth: Auth,
        *,
        read_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
        budget: RateBudget | None = None,
        masker: SecretMasker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 8,
        credentials: tuple[str, ...] = (),
    ) -> None:
        require_secure_url(base_url, f"{display_name} base URL")
        self.display_name = display_name
        self.credentials = credentials  # the settings a refusal tells a person to check
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self.budget = budget or RateBudget()
        self.masker = masker or SecretMasker()
        self.read_timeout = read_timeout
        self.deadline = deadline or read_timeout * 2 + connect_timeout
        self.rate_limited_until: str | None = None
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=10.0),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
            follow_redirects=False,
            verify=tls_context(),
        )
        self._authenticated = False

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def get_json(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        what: str = "records",
    ) -> Any:
        """GET and decode JSON, under the retry table. Raises SourceError subclasses only."""
        body, _ = await self.get_page(path, params, what=what)
        return body

    async def get_page(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        what: str = "records",
        on_body: Callable[[bytes], Awaitable[None]] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> tuple[Any, httpx.Headers]:
        """GET one page: its decoded JSON and its headers, under the retry table. Raises
        SourceError subclasses only. `on_body` is awaited with each successful response's
        bytes before they are decoded; `on_sent` is called once a request is on the wire.
        `path` may be a URL (a Link header's) only on this client's own server."""
        relative = self._relative(path)
        return await self._retried(what, lambda: self._attempt(relative, params, on_body, on_sent))

    async def _retried(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` under the retry table, retries counted; SourceError subclasses only."""
        stats = current_stats.get()
        try:
            async for trying in self._retrying(self._backoff):
                with trying:
                    if trying.num > 1 and stats is not None:
                        stats.retries += 1
                    return await attempt()
        except _Retryable as exc:
            raise RemoteError(self.masker(exc.details)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        what: str = "records",
        repeatable: bool = True,
    ) -> tuple[Any, httpx.Headers]:
        """Any method with an optional JSON body (a search, a webhook subscription, an
        edit), under the same retry table, rate budget and errors as a GET; the decoded
        answer (None when it has no body) and its headers. A request that is not
        `repeatable` (one that would create a second note) is sent again only when it never
        reached the server or the server said it did nothing (a 429); any other failure
        raises AnswerLost: it may have been carried out."""
        content = jsoncodec.dumps(body).encode() if body is not None else None
        relative = self._relative(path)

        async def attempt() -> tuple[Any, httpx.Headers]:
            response = await self._respond(relative, params, method=method, content=content)
            decoded = await self._decode(response) if response.content else None
            return decoded, response.headers

        if repeatable:
            return await self._retried(what, attempt)

        def again(exc: Exception) -> bool | float:
            return isinstance(exc, _Retryable) and exc.unprocessed and self._backoff(exc)

        try:
            async for trying in self._retrying(again):
                with trying:
                    return await attempt()
        except (Rejected, NotFound, AuthError, RateLimited):
            raise  # the server said it did nothing
        except RemoteError as exc:
            # any other answer (a 5xx outside the retry table, a redirect) may follow work
            # done: never sent again blindly
            raise AnswerLost(exc.error, f"{exc.details}; it may have been carried out") from None
        except _Retryable as exc:
            if not exc.unprocessed:
                raise AnswerLost(
                    "no answer", f"{self.masker(exc.details)}; it may have been carried out"
                ) from None
            raise RemoteError(self.masker(exc.details)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def array_pages(
        self,
        path: str,
        params: dict[str, Any] | None,
        records: Sequence[str],
        *,
        what: str = "records",
    ) -> AsyncIterator[list[Any]]:
        """A long single response's records, a batch at a time as the body arrives (see
        `ArraySplitter`). Retried like `get_page` until the first batch is handed on; a body
        that breaks off after that fails the stream (what was handed on is dropped with it:
        the engine keeps the previous data)."""
        from crm_tui.sources.pagination import ArraySplitter

        stats = current_stats.get()
        handed_on: list[bool] = []  # a batch went out: no retry can take it back

        def retry(exc: Exception) -> bool | float:
            return not handed_on and self._backoff(exc)

        try:
            async for attempt in self._retrying(retry):
                with attempt:
                    if attempt.num > 1 and stats is not None:
                        stats.retries += 1
                    response = await self._respond(self._relative(path), params, stream=True)
                    try:
                        splitter = ArraySplitter(records, what)
                        with self._transport_errors():
                            async for chunk in response.aiter_bytes():
                                if batch := splitter.feed(chunk):
                                    handed_on.append(True)
                                    yield batch
                        yield splitter.close()
                        return
                    except ValueError:
                        raise _Retryable("the server sent malformed JSON") from None
                    finally:
                        await response.aclose()
        except _Retryable as exc:
            raise RemoteError(self.masker(exc.details)) from None

    def _retrying(self, on: Callable[[Exception], bool | float]) -> Any:
        """This client's retry table as stamina's attempts (`async for attempt in ...`)."""
        policy = self.retry
        return stamina.retry_context(
            on=on,
            attempts=policy.attempts,
            timeout=policy.total_seconds,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        )

    def _relative(self, path: str) -> str:
        """A path under the base URL; a full URL only if it points there too."""
        if "://" not in path:
            return path.lstrip("/")
        base = str(self._client.base_url)
        if not path.startswith(base):
            raise RemoteError(
                f"{self.display_name} request failed",
                f"the server pointed the next page at {shown_url(path)}, outside the configured"
                " base URL: not followed (credentials go only there)",
            )
        return path[len(base) :]

    def _backoff(self, exc: Exception) -> bool | float:
        if isinstance(exc, _Retryable):
            return exc.retry_after if exc.retry_after is not None else True
        return False

    async def _attempt(
        self,
        path: str,
        params: dict[str, Any] | None,
        on_body: Callable[[bytes], Awaitable[None]] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> tuple[Any, httpx.Headers]:
        response = await self._respond(path, params, on_sent=on_sent)
        if on_body is not None:
            await on_body(response.content)
        return await self._decode(response), response.headers

    async def _respond(
        self,
        path: str,
        params: dict[str, Any] | None,
        *,
        on_sent: Callable[[], None] | None = None,
        stream: bool = False,
        method: str = "GET",
        content: bytes | None = None,
    ) -> httpx.Response:
        """One try under the retry table: a successful response, after one token refresh on
        a 401. With `stream`, its body is the caller's to read (the deadline covers getting
        the headers; httpx's read timeout, each chunk after) and to close."""
        stats = current_stats.get()
        refreshed = False
        while True:
            await self.budget.acquire()
            headers = await self.auth.headers(self._client)
            if stats is not None:
                stats.requests += 1
            if content is not None:
                headers = {**headers, "Content-Type": "application/json"}
            response = await self._send(
                path, params, headers, on_sent, stream=stream, method=method, content=content
            )
            self.budget.observe(response.headers)
            if stream and response.status_code >= 300:
                response = await self._failure_of(response)
            if (
                response.status_code == 401
                and not refreshed
                and await self.auth.refresh(self._client)
            ):
                refreshed = True
                if stats is not None:
                    stats.retries += 1  # a re-send after a token refresh counts as a retry
                continue
            self._check(response)
            return response

    async def _failure_of(self, response: httpx.Response) -> httpx.Response:
        """A streamed failure with the head of its body, for the message: read under the
        deadline, at most a few KB, and the stream closed whatever happens."""
        head = b""
        try:
            with self._transport_errors():
                async with asyncio.timeout(self.deadline):
                    async for chunk in response.aiter_bytes():
                        head += chunk
                        if len(head) >= 4096:
                            break
        except _Retryable:
            pass  # the status says enough
        finally:
            await response.aclose()
        headers = response.headers.copy()
        for decoded in ("content-encoding", "content-length"):  # `head` is decoded and cut
            headers.pop(decoded, None)
        return httpx.Response(
            response.status_code, headers=headers, content=head, request=response.request
        )

    def _check(self, response: httpx.Response) -> None:
        """The retry table and the errors, for one response; returns when it succeeded."""
        status = response.status_code
        if status == 401:
            raise AuthError(
                refused(self.credentials), where_to_fix(self.credentials), self._said(response)
            )
        if status == 429 and self.budget.daily_spent(response.headers):
            raise RateLimited(
                "rate limited",
                "the daily request limit is spent; it restarts tomorrow",
                None,
            )
        if status in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None and status == 429:
                retry_after = self.budget.wait_after_limit(response.headers)
            if retry_after is not None and retry_after > self.retry.max_retry_after:
                until = datetime.now(UTC) + timedelta(seconds=retry_after)
                self.rate_limited_until = until.strftime(UTC_STAMP)
                raise RateLimited(
                    "rate limited",
                    f"retry after {retry_after:.0f} seconds",
                    self.rate_limited_until,
                )
            raise _Retryable(
                f"the server answered HTTP {status}", retry_after, unprocessed=status == 429
            )
        if status == 403:
            raise Rejected(
                "access denied (HTTP 403)",
                "the key works but lacks a permission this needs",
                self._said(response),
            )
        if status >= 400:
            refusal = NotFound if status == 404 else Rejected if status < 500 else RemoteError
            raise refusal(f"the server answered HTTP {status}", "", self._said(response))
        if status >= 300:
            location = shown_url(single_line(response.headers.get("location", "")[:500]))
            location = self.masker(location[:200])
            raise RemoteError(
                "the request was redirected",
                f"HTTP {status} redirect to {location or 'nowhere'} not followed: credentials"
                " go only to the configured base URL (change it if the service moved)",
            )
        if not self._authenticated:
            self._authenticated = True
            log.info("[%s] Authentication successful", self.display_name)

    async def _send(
        self,
        path: str,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        on_sent: Callable[[], None] | None = None,
        *,
        stream: bool = False,
        method: str = "GET",
        content: bytes | None = None,
    ) -> httpx.Response:
        extensions = {"trace": _sent_tracer(on_sent)} if on_sent is not None else None
        request = self._client.build_request(
            method, path, params=params, headers=headers, content=content, extensions=extensions
        )
        with self._transport_errors():
            async with asyncio.timeout(self.deadline):
                return await self._client.send(request, stream=stream)

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Timeouts and broken connections, as retryable failures that say which."""
        try:
            yield
        except TimeoutError:
            raise _Retryable(no_answer(self.deadline)) from None
        except (httpx.ConnectTimeout, httpx.ConnectError) as exc:
            failure = connect_failure(exc, self._client.base_url)
            raise _Retryable(failure, unprocessed=True) from None
        except httpx.TimeoutException:
            raise _Retryable(no_answer(self.read_timeout)) from None
        except httpx.TransportError as exc:
            raise _Retryable(connect_failure(exc, self._client.base_url)) from None

    async def _decode(self, response: httpx.Response) -> Any:
        content = response.content
        try:
            if len(content) > _LARGE_BODY:
                return await asyncio.to_thread(jsoncodec.loads, content)
            return jsoncodec.loads(content)
        except ValueError:
            raise _Retryable("the server sent malformed JSON") from None

    def _said(self, response: httpx.Response) -> str:
        """The vendor's message in an error body, one clean line, secrets masked."""
        try:
            text = response.text[:4096]
        except (UnicodeDecodeError, httpx.ResponseNotRead):
            return ""
        return self.masker(vendor_said(text))


# -- a source's client, from its declaration --------------------------------------------------


def _secret(settings: Any, env: str) -> str:
    value = getattr(settings, env.lower(), None)
    if value is None:
        return ""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _auth(
    spec: AuthSpec | None, settings: Any, display: str, base: str, extra: dict[str, str]
) -> Auth:
    timeout = settings.crm_http_timeout_seconds
    if isinstance(spec, KeyHeader):
        value = spec.template.format(key=_secret(settings, spec.setting))
        return HeaderAuth({spec.header: value, **extra})
    if isinstance(spec, Bearer):
        return HeaderAuth({"Authorization": f"Bearer {_secret(settings, spec.setting)}", **extra})
    if isinstance(spec, Basic):
        return HeaderAuth.basic(_secret(settings, spec.setting), extra)
    if isinstance(spec, ClientCredentials):
        return OAuthClientCredentials(
            f"{base.rstrip('/')}/{spec.token_path.lstrip('/')}",
            _secret(settings, spec.client_id),
            _secret(settings, spec.client_secret),
            display_name=display,
            extra_headers=extra,
            timeout=timeout,
            settings=(spec.client_id, spec.client_secret),
        )
    return HeaderAuth(extra)


def _with_path(base: str, path: str) -> str:
    """`base` ending in `path`: added unless the URL's path already ends with it."""
    if not base or not path:
        return base
    tail = "/" + path.strip("/")
    trimmed = base.rstrip("/")
    return trimmed if httpx.URL(trimmed).path.endswith(tail) else trimmed + tail


def client_for(source: Source) -> HttpClient:
    """The HTTP client a source declares: its base URL, auth, extra headers, rate-limit
    headers, retry policy and read timeout."""
    settings = source.ctx.settings
    kind = type(source)
    if kind.base_url_setting is None:
        raise ConfigError(f"{kind.display_name} has no API to call")
    base = _with_path(str(getattr(settings, kind.base_url_setting.lower()) or ""), kind.base_path)
    extra = {
        header: _secret(settings, env)
        for header, env in kind.extra_headers.items()
        if _secret(settings, env)
    }
    timeout = max(kind.min_read_timeout, settings.crm_http_timeout_seconds)
    return HttpClient(
        kind.display_name,
        base,
        _auth(kind.auth, settings, kind.display_name, base, extra),
        read_timeout=timeout,
        retry=kind.retry,
        budget=RateBudget(headers=kind.rate_headers),
        masker=source.ctx.masker,
        transport=source.ctx.transport,
        credentials=_credential_settings(kind.auth),
    )


def _credential_settings(spec: AuthSpec | None) -> tuple[str, ...]:
    """The settings holding what a 401 refuses."""
    if isinstance(spec, ClientCredentials):
        return (spec.client_id, spec.client_secret)
    if isinstance(spec, KeyHeader | Bearer | Basic):
        return (spec.setting,)
    return ()
