"""Paginators: one array, a cursor in the body (Follow Up Boss), and $top/$skip offsets.

Each yields `Page`s of raw records. A repeated cursor or more pages than the cap stops the
stream with a PaginationError instead of looping forever.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

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


class CursorPaginator(Paginator):
    """`limit` pages following `_metadata.next` (Follow Up Boss)."""

    def __init__(
        self, keys: Sequence[str], page_size: int = 100, max_pages: int = DEFAULT_MAX_PAGES
    ) -> None:
        super().__init__(keys, max_pages)
        self.page_size = page_size

    async def pages(
        self, client: HttpClient, path: str, what: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[Page]:
        query: dict[str, Any] = {**(params or {}), "limit": self.page_size}
        seen: set[str] = set()
        for _ in range(self.max_pages):
            body = await client.get_json(path, query, what=what)
            records = extract_records(body, self.keys, what)
            meta = body.get("_metadata") if isinstance(body, dict) else None
            meta = meta if isinstance(meta, dict) else {}
            yield Page(records, total=_int_or_none(meta.get("total")))
            cursor = meta.get("next")
            if not cursor or not records:
                return
            if not isinstance(cursor, str):
                raise RemoteError(f"Failed to fetch {what}", "malformed page: bad next cursor")
            if cursor in seen:
                raise PaginationError(
                    f"Failed to fetch {what}", "the server repeated a page cursor; stopped"
                )
            seen.add(cursor)
            query = {**(params or {}), "limit": self.page_size, "next": cursor}
        raise PaginationError(f"Failed to fetch {what}", f"more than {self.max_pages} pages")


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
