"""Paginators, and the one driver that runs them all.

A paginator is a small pure object: the first request of a stream, and from each page (its
decoded body, headers and records) the next request, or None at the end. The driver sends
them, checks the server never sends it round in circles, and yields `Page`s of raw records.

Two speed-ups live in the driver, for the paginators that allow them:
- `remaining`: when the first page tells every other page's request (an offset or a page
  number, and a total), those are fetched a few at a time, yielded in order;
- `peek`: when a cursor can be read off the head of a body before it is decoded, the next
  request leaves at once, so the server works while this page is decoded (a cursor puts a
  sync in lock-step with its server). The decoded page is checked against the guess.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from crm_tui import jsoncodec
from crm_tui.sources.errors import PaginationError, RemoteError
from crm_tui.sources.mapping import get_path

if TYPE_CHECKING:
    from crm_tui.sources.http import HttpClient

DEFAULT_MAX_PAGES = 20_000
# How long a page's decoding waits for the request read ahead to be sent: it normally takes
# a few turns of the event loop; longer means a retry's backoff or a full pool.
_SEND_WAIT = 0.005


@dataclass(slots=True)
class Page:
    records: list[Any]
    total: int | None = None
    #: Raw records the stream skips (archived, deleted, in the trash): deletions, to an
    #: incremental sync.
    gone: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Request:
    """One page's request: its query, and another path than the stream's if the server
    named one (a Link header's)."""

    params: tuple[tuple[str, Any], ...]
    path: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any], path: str | None = None) -> Request:
        return cls(tuple(params.items()), path)


@dataclass(frozen=True, slots=True)
class Response:
    """What a paginator sees of a page."""

    request: Request
    body: Any
    headers: Mapping[str, str]
    records: list[Any]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def first_at(body: Any, paths: Sequence[str]) -> Any:
    """The first value found at one of `paths` (dotted, or a key holding dots such as
    OData's `@odata.count`), or None."""
    for path in paths:
        if not isinstance(body, dict):
            return None
        value = body[path] if path in body else get_path(body, path)
        if value is not None:
            return value
    return None


def extract_records(body: Any, paths: Sequence[str], what: str) -> list[Any]:
    """The records of a page: a bare array, or the list at the first of `paths` that holds
    one."""
    if isinstance(body, list):
        return body
    found = first_at(body, [p for p in paths if isinstance(get_path(body, p), list)])
    if isinstance(found, list):
        return found
    raise RemoteError(f"Failed to fetch {what}", "malformed page: no list of records in it")


class Paginator(ABC):
    page_size: int = 100
    total_at: Sequence[str] = ()

    @abstractmethod
    def first(self, page_size: int) -> Request:
        """The first page's request."""

    @abstractmethod
    def next_request(self, response: Response) -> Request | None:
        """The next page's request; None when this page was the last."""

    def remaining(self, response: Response) -> Iterator[Request] | None:
        """Every other page's request, when the first page tells them all (made as they are
        needed: a total can be huge)."""
        return None

    def total(self, body: Any) -> int | None:
        return _count(first_at(body, self.total_at))

    def guess(self, content: bytes, request: Request) -> Request | None:
        """The next request read off the head of a body, before it is decoded; None when
        this paginator cannot tell (see the module)."""
        return None

    @property
    def guesses(self) -> bool:
        return False


@dataclass
class SinglePage(Paginator):
    """The whole collection in one response (Brivity's people). `probe_param` asks for a
    single record when a connection is only being tested. With `stream`, a bare array's
    records are handed on as its body arrives (`ArraySplitter`), so they are mapped while
    the rest is still on its way."""

    probe_param: str | None = None
    page_size: int = 0  # no pages
    stream: bool = False

    def first(self, page_size: int) -> Request:
        probing = page_size == 1 and self.probe_param is not None
        return Request.of({self.probe_param: 1}) if probing else Request(())

    def next_request(self, response: Response) -> Request | None:
        return None


@dataclass
class CursorInBody(Paginator):
    """The next page's cursor sits in the body at `cursor` (a dotted path): Follow Up Boss's
    `_metadata.next`, HubSpot's `paging.next.after`, Pipedrive's
    `additional_data.next_cursor`. It goes back as `param`; no cursor ends the stream."""

    cursor: str
    param: str
    size_param: str | None = "limit"
    page_size: int = 100
    total_at: Sequence[str] = ()
    #: The cursor read off the head of a raw body (a connector that knows its server writes
    #: it first), for reading ahead.
    peek: Callable[[bytes], str | None] | None = None

    def first(self, page_size: int) -> Request:
        return Request.of({self.size_param: page_size} if self.size_param else {})

    def next_request(self, response: Response) -> Request | None:
        cursor = get_path(response.body, self.cursor) if isinstance(response.body, dict) else None
        if cursor is None or cursor == "":
            return None
        if not isinstance(cursor, str | int) or isinstance(cursor, bool):
            raise RemoteError("Failed to fetch records", "malformed page: bad next cursor")
        return self.following(response.request, cursor)

    def following(self, request: Request, cursor: str | int) -> Request:
        params = {k: v for k, v in request.params if k != self.param}
        return Request.of({**params, self.param: cursor}, request.path)

    def guess(self, content: bytes, request: Request) -> Request | None:
        cursor = self.peek(content) if self.peek is not None else None
        return self.following(request, cursor) if cursor else None

    @property
    def guesses(self) -> bool:
        return self.peek is not None


_TAIL_BYTES = 2048


def tail_cursor(anchor: str, key: str) -> Callable[[bytes], str | None]:
    """A `peek` for APIs that write the next cursor after the records (HubSpot's
    `paging.next.after`, Pipedrive's `additional_data.next_cursor`): the first `"key": "..."`
    after the last `"anchor"` in the tail of the body (a record may hold a cursor of its
    own, such as a deal's associations: that one is followed by the end of the records
    array). Only a guess: the decoded page has the last word."""
    anchor_at = re.compile(rb'"' + re.escape(anchor.encode()) + rb'"\s*:')
    value_of = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*"([^"\\]+)"')

    def peek(content: bytes) -> str | None:
        tail = content[-_TAIL_BYTES:]
        anchors = list(anchor_at.finditer(tail))
        # The page's own block closes no array after it; one inside the last record (a
        # deal's association paging) is followed by the records array's `]`.
        if not anchors or b"]" in tail[anchors[-1].end() :]:
            return None
        found = value_of.search(tail, anchors[-1].end())
        return found.group(1).decode("utf-8", "replace") if found else None

    return peek


class _Numbered(Paginator):
    """Pages found by a position (an offset, a page number): the next one follows the
    records actually received (a server may cap a page below what was asked), until an
    empty page, a short one when no total is given, or the total."""

    total_at: Sequence[str] = ()

    @abstractmethod
    def at(self, index: int, size: int) -> Request:
        """The request for the page whose first record is the `index`-th (from 0)."""

    @abstractmethod
    def position(self, request: Request) -> tuple[int, int]:
        """(index of its first record, page size asked for) of a request."""

    def first(self, page_size: int) -> Request:
        return self.at(0, page_size)

    def next_request(self, response: Response) -> Request | None:
        index, size = self.position(response.request)
        received = len(response.records)
        total = self.total(response.body)
        reached = index + received
        if received == 0 or (total is not None and reached >= total):
            return None
        if total is None and received < size:
            return None
        return self.at(reached, size)

    def remaining(self, response: Response) -> Iterator[Request] | None:
        total = self.total(response.body)
        _, size = self.position(response.request)
        if total is None or len(response.records) != size:
            return None  # unknown, or pages smaller than asked: one after another
        return (self.at(index, size) for index in range(size, total, size))


@dataclass
class OffsetLimit(_Numbered):
    """`offset`/`limit` pages (the integration guide's `$skip`/`$top`, Lofty's leads)."""

    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = 100
    total_at: Sequence[str] = ()

    def at(self, index: int, size: int) -> Request:
        return Request.of({self.limit_param: size, self.offset_param: index})

    def position(self, request: Request) -> tuple[int, int]:
        params = dict(request.params)
        return int(params[self.offset_param]), int(params[self.limit_param])


@dataclass
class PageNumber(_Numbered):
    """Numbered pages (Lofty's transactions: `pageNum` from 0, `pageSize`). A page number
    can only step by whole pages: one page smaller than asked ends the stream unless the
    total says otherwise."""

    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = 100
    first_page: int = 1
    total_at: Sequence[str] = ()

    def at(self, index: int, size: int) -> Request:
        return Request.of({self.size_param: size, self.page_param: self.first_page + index // size})

    def position(self, request: Request) -> tuple[int, int]:
        params = dict(request.params)
        size = int(params[self.size_param])
        return (int(params[self.page_param]) - self.first_page) * size, size

    def next_request(self, response: Response) -> Request | None:
        index, size = self.position(response.request)
        received = len(response.records)
        total = self.total(response.body)
        if received == 0 or (total is None and received < size):
            return None
        # The pages the server cut (smaller than asked) count as whole: an empty page past
        # the end stops it if the estimate runs over.
        pages = index // size + 1
        if total is not None and pages * received >= total:
            return None
        return self.at(index + size, size)


@dataclass
class LinkHeader(Paginator):
    """RFC 8288 `Link: <url>; rel="next"` headers (GitHub-style APIs). The next URL must stay
    on the server the stream started on: credentials never follow a link elsewhere."""

    size_param: str | None = "per_page"
    page_size: int = 100

    def first(self, page_size: int) -> Request:
        return Request.of({self.size_param: page_size} if self.size_param else {})

    def next_request(self, response: Response) -> Request | None:
        target = _next_link(response.headers.get("link", ""))
        if target is None:
            return None
        url = urlsplit(target)
        if url.scheme or url.netloc:
            return Request(tuple(parse_qsl(url.query)), f"{url.scheme}://{url.netloc}{url.path}")
        return Request(tuple(parse_qsl(url.query)), url.path)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        target, _, rest = part.partition(";")
        rels = {
            value.strip().strip('"')
            for name, _, value in (p.partition("=") for p in rest.split(";"))
            if name.strip().lower() == "rel"
        }
        if "next" in " ".join(rels).split():
            return target.strip().strip("<>")
    return None


class ArraySplitter:
    """The elements of a JSON array, a batch at a time, as its bytes arrive.

    A batch ends at the last boundary between two top-level elements in what has arrived
    (`},{`, with any whitespace): the run before it is decoded whole. A boundary inside a
    string or a nested value cannot decode (an open string, unbalanced brackets), and the
    one before it is tried. A body that is not an array (an envelope such as
    `{"people": [...]}`) is kept whole and decoded at the end."""

    _BOUNDARY = re.compile(rb"\}\s*,\s*\{")
    _FIRST_KEY = re.compile(rb'\s*\{\s*("(?:[^"\\]|\\.){0,200}")\s*:')
    #: Boundaries decoded per chunk, newest first. A boundary that once failed to decode
    #: always will (the bytes before it do not change), so none is tried twice, and those
    #: followed by the first record's first key (serializers write keys in one order;
    #: nested objects seldom start with the same one) are tried before the rest: a chunk
    #: costs a few decodes however many nested objects the records hold.
    _TRIES = 3

    def __init__(self, records: Sequence[str], what: str) -> None:
        self.records = records
        self.what = what
        self.buffer = b""
        self.started: bool | None = None  # None: the first byte is still to come
        self._tried = 0  # boundaries starting before this offset are spent
        self._record_start: re.Pattern[bytes] | None = None

    def feed(self, chunk: bytes) -> list[Any]:
        self.buffer += chunk
        if self.started is None:
            head = self.buffer.lstrip()
            if not head:
                return []
            self.started = head[:1] == b"["
            if self.started:
                self.buffer = head[1:]
        if not self.started:
            return []
        if self._record_start is None and (first := self._FIRST_KEY.match(self.buffer)):
            self._record_start = re.compile(rb"\{\s*" + re.escape(first.group(1)))
        fresh = list(self._BOUNDARY.finditer(self.buffer, self._tried))
        if not fresh:
            return []
        last = fresh[-1]
        likely = [b for b in fresh if self._starts_record(b)]
        candidates = (likely or fresh)[-self._TRIES :]
        # a boundary close to the end, not tried, may not show its key yet: next time
        fresh_tail = last not in candidates and len(self.buffer) - last.end() <= 256
        self._tried = last.start() + (0 if fresh_tail else 1)
        for boundary in reversed(candidates):
            try:
                batch = orjson.loads(b"[" + self.buffer[: boundary.start() + 1] + b"]")
            except orjson.JSONDecodeError:
                continue
            cut = boundary.end() - 1
            self.buffer = self.buffer[cut:]
            self._tried = max(self._tried - cut, 0)
            return batch if isinstance(batch, list) else []
        return []

    def _starts_record(self, boundary: re.Match[bytes]) -> bool:
        start = self._record_start
        return start is not None and start.match(self.buffer, boundary.end() - 1) is not None

    def close(self) -> list[Any]:
        """What is left, decoded; ValueError if the body was not whole."""
        if not self.started:
            body = jsoncodec.loads(self.buffer)
            return extract_records(body, self.records, self.what)
        rest = orjson.loads(b"[" + self.buffer)
        if not isinstance(rest, list):  # pragma: no cover - "[" + anything decodes to a list
            raise ValueError("not an array")
        return rest


# -- the driver -------------------------------------------------------------------------------


@dataclass
class Stream:
    """Where one stream's records are: a path, fixed query parameters, the record list's
    place in the body, and how it pages."""

    path: str
    paginator: Paginator
    records: Sequence[str] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Raw records that are not records (archived, deleted): left out, never mapped.
    skip: Callable[[Any], bool] | None = None


def read_pages(
    client: HttpClient,
    stream: Stream,
    what: str,
    *,
    probe: bool = False,
    max_pages: int = DEFAULT_MAX_PAGES,
    concurrency: int = 4,
) -> AsyncIterator[Page]:
    """Every page of `stream`, in order. `probe`: the smallest first page, nothing more.
    Paging is decided on the records as the server sent them; the ones the stream skips
    (archived, deleted) are left out of the pages only."""
    reading = _Reading(client, stream, what, dict(stream.params))
    paginator = stream.paginator
    if isinstance(paginator, SinglePage) and paginator.stream and not probe:
        return _streamed_array(reading)
    return _page_by_page(reading, probe, max_pages, concurrency)


@dataclass(slots=True)
class _Reading:
    """One stream being read: how its requests are sent and its records made pages."""

    client: HttpClient
    stream: Stream
    what: str
    fixed: dict[str, Any]

    def page(self, records: list[Any], total: int | None = None) -> Page:
        skip = self.stream.skip
        if skip is None:
            return Page(records, total)
        kept: list[Any] = []
        gone: list[Any] = []
        for record in records:
            (gone if skip(record) else kept).append(record)
        return Page(kept, total, gone)

    async def fetch(
        self,
        request: Request,
        on_body: Callable[[bytes], Any] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        body, headers = await self.client.get_page(
            request.path or self.stream.path,
            {**self.fixed, **dict(request.params)},
            what=self.what,
            on_body=on_body,
            on_sent=on_sent,
        )
        return Response(
            request, body, headers, extract_records(body, self.stream.records, self.what)
        )


async def _streamed_array(reading: _Reading) -> AsyncIterator[Page]:
    """A single page that is one big array: cut into pages as its bytes arrive."""
    stream = reading.stream
    pages = reading.client.array_pages(
        stream.path, reading.fixed, stream.records, what=reading.what
    )
    async for batch in pages:
        yield reading.page(batch)


async def _page_by_page(
    reading: _Reading, probe: bool, max_pages: int, concurrency: int
) -> AsyncIterator[Page]:
    """Each request from the page before it (sent ahead where the paginator can guess),
    until the first page tells every other page's request: those are fanned out."""
    paginator = reading.stream.paginator
    request = paginator.first(1 if probe else paginator.page_size)
    ahead = _ReadAhead(reading.fetch, paginator if paginator.guesses and not probe else None)
    seen: set[Request] = {request}
    previous: list[Any] | None = None
    try:
        current = ahead.send(request)
        for number in range(max_pages):
            response = await ahead.wait(current)
            following = paginator.next_request(response) if response.records else None
            ahead.settle(following)
            _not_again(response.records, previous, reading.what)
            previous = response.records
            yield reading.page(response.records, paginator.total(response.body))
            if probe or following is None:
                return
            rest = paginator.remaining(response) if number == 0 else None
            if rest is not None:
                fanned = _in_order(reading.fetch, rest, concurrency, max_pages - 1, reading.what)
                async for later in fanned:
                    _not_again(later.records, previous, reading.what)
                    previous = later.records
                    yield reading.page(later.records, paginator.total(later.body))
                return
            _not_seen(following, seen, reading.what)
            current = ahead.send(following)
        raise PaginationError(f"Failed to fetch {reading.what}", f"more than {max_pages} pages")
    finally:
        await ahead.close()


def _not_seen(request: Request, seen: set[Request], what: str) -> None:
    """A server that hands out a cursor it gave before would go round in circles."""
    if request in seen:
        raise PaginationError(
            f"Failed to fetch {what}", "the server repeated a page cursor; stopped"
        )
    seen.add(request)


def _not_again(records: list[Any], previous: list[Any] | None, what: str) -> None:
    """A server that ignores the page it is asked for sends the same one again: stop there,
    not after as many pages as its total claims."""
    if records and records == previous:
        raise PaginationError(
            f"Failed to fetch {what}", "the server sent the same page twice; stopped"
        )


async def _in_order(
    fetch: Callable[[Request], Any],
    requests: Iterator[Request],
    concurrency: int,
    max_pages: int,
    what: str,
) -> AsyncIterator[Response]:
    """Pages whose requests are all known: a few in flight at once, yielded in order, until
    the first empty one (a total that counts more than the key may read) or the cap."""
    pending: list[asyncio.Future[Response]] = []
    sent = 0
    try:
        while True:
            while len(pending) < concurrency and (request := next(requests, None)) is not None:
                sent += 1
                if sent > max_pages:
                    raise PaginationError(f"Failed to fetch {what}", f"more than {max_pages} pages")
                pending.append(asyncio.ensure_future(fetch(request)))
            if not pending:
                return
            response = await pending.pop(0)
            if not response.records:
                return
            yield response
    finally:
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class _ReadAhead:
    """Sends each page's request, and with a paginator that can guess, the next one as soon
    as this one's body arrives. At most one request is ahead of the page being read, and
    only while the reader waits for its page: a reader that has fallen behind gets no
    deeper queue of requests."""

    def __init__(self, fetch: Callable[..., Any], paginator: Paginator | None) -> None:
        self.fetch = fetch
        self.paginator = paginator  # None: no reading ahead
        self.current: asyncio.Future[Response] | None = None
        self.current_request: Request | None = None
        self.waiting = False
        self.guess: tuple[Request, asyncio.Future[Response]] | None = None

    def send(self, request: Request) -> asyncio.Future[Response]:
        """The future of `request`'s page: the guess already in flight, if it was right."""
        if self.guess is not None and self.guess[0] == request:
            future, self.guess = self.guess[1], None
        else:
            future = self._fetch(request)
        self.current, self.current_request = future, request
        return future

    def _fetch(
        self, request: Request, on_sent: Callable[[], None] | None = None
    ) -> asyncio.Future[Response]:
        on_body = self._on_body if self.paginator is not None else None
        return asyncio.ensure_future(self.fetch(request, on_body, on_sent))

    async def wait(self, future: asyncio.Future[Response]) -> Response:
        self.waiting = future is self.current
        try:
            return await future
        finally:
            self.waiting = False

    async def _on_body(self, content: bytes) -> None:
        if not self.waiting or self.guess is not None or self.current_request is None:
            return  # not the page being waited for, or a retried body: its first guess stands
        assert self.paginator is not None
        guess = self.paginator.guess(content, self.current_request)
        if guess is None:
            return
        sent = asyncio.Event()
        future = self._fetch(guess, on_sent=sent.set)
        self.guess = (guess, future)
        # Decoding this page holds the event loop for a while: let the next request reach
        # the wire first (or fail, or take longer than is worth waiting for).
        on_wire = asyncio.ensure_future(sent.wait())
        await asyncio.wait(
            {on_wire, future}, timeout=_SEND_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
        on_wire.cancel()

    def settle(self, following: Request | None) -> None:
        """The decoded page has the last word: a wrong guess is cancelled."""
        if self.guess is not None and self.guess[0] != following:
            self.guess[1].cancel()
            self.guess = None

    async def close(self) -> None:
        pending = [
            f for f in (self.current, self.guess[1] if self.guess else None) if f and not f.done()
        ]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
