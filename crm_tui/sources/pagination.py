"""Paginators: one array, a cursor in the body (Follow Up Boss), and $top/$skip offsets.

Each yields `Page`s of raw records. A repeated cursor or more pages than the cap stops the
stream with a PaginationError instead of looping forever.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from crm_tui.sources.errors import PaginationError, RemoteError
from crm_tui.sources.http import HttpClient

DEFAULT_MAX_PAGES = 20_000


@dataclass(slots=True)
class Page:
    records: list[Any]
    total: int | None = None


def extract_records(body: Any, keys: Sequence[str], what: str) -> list[Any]:
    """The list of records in a page: a bare array, or the first list under one of `keys`."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, list):
                return value
    raise RemoteError(f"Failed to fetch {what}", "malformed page: no list of records in it")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Paginator(ABC):
    def __init__(self, keys: Sequence[str], max_pages: int = DEFAULT_MAX_PAGES) -> None:
        self.keys = tuple(keys)
        self.max_pages = max_pages

    @abstractmethod
    def pages(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[Page]:
        """Pages in order."""


class SingleRequest(Paginator):
    """The whole collection in one response (Brivity's people)."""

    async def pages(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[Page]:
        body = await client.get_json(path, params, what=what)
        records = extract_records(body, self.keys, what)
        yield Page(records, total=len(records))


# `{"_metadata": {...flat...}` at the start of a body: Follow Up Boss writes it first.
_LEADING_METADATA = re.compile(rb'\s*\{\s*"_metadata"\s*:\s*(\{[^{}]*\})')
_PEEK_BYTES = 4096
# How long a page's decoding waits for the request read ahead to be sent: it normally takes
# a few turns of the event loop (0.1 ms); longer means a retry's backoff or a full pool.
_SEND_WAIT = 0.005


def peek_cursor(content: bytes) -> str | None:
    """`_metadata.next` read off the head of a body, without decoding its records; None
    when the body does not start with a flat `_metadata` object. A guess: the decoded page
    has the last word."""
    match = _LEADING_METADATA.match(content[:_PEEK_BYTES])
    if match is None:
        return None
    try:
        meta = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return None
    cursor = meta.get("next") if isinstance(meta, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


class CursorPaginator(Paginator):
    """`limit` pages following `_metadata.next` (Follow Up Boss).

    A cursor puts a sync in lock-step with its server: the next request needs this page.
    With `read_ahead`, the next request leaves as soon as this page's cursor can be read
    off the head of its body, so the server works while this page is decoded (0.4 ms of 100
    records) rather than after. The decoded page is checked against the guess; at most one
    request is ever ahead of the page being read."""

    def __init__(
        self,
        keys: Sequence[str],
        page_size: int = 100,
        max_pages: int = DEFAULT_MAX_PAGES,
        *,
        read_ahead: bool = True,
    ) -> None:
        super().__init__(keys, max_pages)
        self.page_size = page_size
        self.read_ahead = read_ahead

    async def pages(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[Page]:
        base: dict[str, Any] = {**(params or {}), "limit": self.page_size}
        seen: set[str] = set()
        waiting = False  # this generator is blocked on the current request
        ahead: tuple[str, asyncio.Future[Any]] | None = None

        def fetch(
            query: dict[str, Any], on_sent: Callable[[], None] | None = None
        ) -> asyncio.Future[Any]:
            async def on_body(content: bytes) -> None:
                # Only for the request being waited for: a reader that has fallen behind
                # gets no deeper queue of requests.
                if waiting and future is current:
                    await read_ahead(content)

            future = asyncio.ensure_future(
                client.get_json(
                    path,
                    query,
                    what=what,
                    on_body=on_body if self.read_ahead else None,
                    on_sent=on_sent,
                )
            )
            return future

        async def read_ahead(content: bytes) -> None:
            nonlocal ahead
            cursor = peek_cursor(content)
            if ahead is not None or cursor is None or cursor in seen:
                return  # a retried body: its first guess stands until the page decides
            sent = asyncio.Event()
            ahead = (cursor, fetch({**base, "next": cursor}, on_sent=sent.set))
            # Decoding this page holds the event loop for a while: let the next request
            # reach the wire first (or fail, or take longer than is worth waiting for).
            on_wire = asyncio.ensure_future(sent.wait())
            await asyncio.wait(
                {on_wire, ahead[1]}, timeout=_SEND_WAIT, return_when=asyncio.FIRST_COMPLETED
            )
            on_wire.cancel()

        current = fetch(base)
        try:
            for _ in range(self.max_pages):
                waiting = True
                try:
                    body = await current
                finally:
                    waiting = False
                records = extract_records(body, self.keys, what)
                meta = body.get("_metadata") if isinstance(body, dict) else None
                meta = meta if isinstance(meta, dict) else {}
                cursor = meta.get("next")
                if ahead is not None and (ahead[0] != cursor or not records):
                    ahead[1].cancel()  # the guess was wrong: the page decides
                    await asyncio.gather(ahead[1], return_exceptions=True)
                    ahead = None
                yield Page(records, total=_int_or_none(meta.get("total")))
                if not cursor or not records:
                    return
                if not isinstance(cursor, str):
                    raise RemoteError(f"Failed to fetch {what}", "malformed page: bad next cursor")
                if cursor in seen:
                    raise PaginationError(
                        f"Failed to fetch {what}", "the server repeated a page cursor; stopped"
                    )
                seen.add(cursor)
                if ahead is not None:
                    current, ahead = ahead[1], None
                else:
                    current = fetch({**base, "next": cursor})
            raise PaginationError(f"Failed to fetch {what}", f"more than {self.max_pages} pages")
        finally:
            pending = [f for f in (current, ahead[1] if ahead else None) if f and not f.done()]
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class OffsetPaginator(Paginator):
    """`$top`/`$skip` pages. Once the total is known, up to `concurrency` pages are in flight;
    they are still yielded in order."""

    def __init__(
        self,
        keys: Sequence[str],
        page_size: int = 100,
        concurrency: int = 4,
        total_keys: Sequence[str] = ("@odata.count", "total", "count"),
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(keys, max_pages)
        self.page_size = page_size
        self.concurrency = concurrency
        self.total_keys = tuple(total_keys)

    def _total(self, body: Any) -> int | None:
        if isinstance(body, dict):
            for key in self.total_keys:
                total = _int_or_none(body.get(key))
                if total is not None:
                    return total
        return None

    async def _fetch(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None, skip: int
    ) -> tuple[list[Any], Any]:
        query = {**(params or {}), "$top": self.page_size, "$skip": skip}
        body = await client.get_json(path, query, what=what)
        return extract_records(body, self.keys, what), body

    async def pages(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[Page]:
        records, body = await self._fetch(client, path, what, params, 0)
        total = self._total(body)
        yield Page(records, total=total)
        if total is None:
            yield_count = 1
            skip = len(records)
            while len(records) == self.page_size:
                if yield_count >= self.max_pages:
                    raise PaginationError(
                        f"Failed to fetch {what}", f"more than {self.max_pages} pages"
                    )
                records, _ = await self._fetch(client, path, what, params, skip)
                skip += len(records)
                yield_count += 1
                yield Page(records)
            return
        offsets = list(range(self.page_size, total, self.page_size))
        if len(offsets) + 1 > self.max_pages:
            raise PaginationError(f"Failed to fetch {what}", f"more than {self.max_pages} pages")
        pending: list[asyncio.Task[tuple[list[Any], Any]]] = []
        try:
            for index in range(len(offsets)):
                while len(pending) < self.concurrency and index + len(pending) < len(offsets):
                    offset = offsets[index + len(pending)]
                    pending.append(
                        asyncio.ensure_future(self._fetch(client, path, what, params, offset))
                    )
                records, _ = await pending.pop(0)
                yield Page(records, total=total)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
