"""What the store's changes ask of the search index, gathered until applied: per source and
kinds, the ids that changed, or everything. No Textual: the app and the team benchmark
keep their index up to date the same way."""

from __future__ import annotations

import asyncio
import functools

from crm_tui.models import RecordKind
from crm_tui.search.index import SearchIndex
from crm_tui.search.stored import index_streams
from crm_tui.store.cache import CacheStore, StoreChange
from crm_tui.tuning import settle_heap

Key = tuple[str | None, tuple[RecordKind, ...]]


class PendingReindex:
    def __init__(self) -> None:
        self._pending: dict[Key, set[str] | None] = {}

    def add(self, change: StoreChange) -> Key | None:
        """Gather `change`. Its key when no re-index of it waits yet (start one for it);
        None when one does (it will take this change too)."""
        key = (change.source, change.kinds)
        queued = key in self._pending
        pending = self._pending.get(key, set())
        if change.ids is None or change.source is None or pending is None:
            self._pending[key] = None
        else:
            self._pending[key] = pending | change.ids
        return None if queued else key

    async def apply(self, key: Key, index: SearchIndex, store: CacheStore) -> None:
        """A stream replaced is indexed afresh; a few records changed are patched in."""
        source, kinds = key
        ids = self._pending.pop(key, None)
        if ids is None or source is None:
            await asyncio.to_thread(index_streams, index, store, store.shelf, source, kinds)
        else:
            for kind in kinds:
                current = functools.partial(store.stream, kind, source)
                await asyncio.to_thread(index.patch, kind, source, current, ids)
        settle_heap()
