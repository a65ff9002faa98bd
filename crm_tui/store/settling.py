"""After a sync: each stream it committed left with its artifacts ready for its rows now, so
the next start (of the app, or of a CLI call) opens them instead of building them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable

from crm_tui.files import FileError
from crm_tui.models import RecordKind
from crm_tui.store.cache import CacheStore

log = logging.getLogger(__name__)

Streams = list[tuple[RecordKind, str]]


async def settle_all(store: CacheStore, streams: Iterable[tuple[RecordKind, str]]) -> Streams:
    """The records artifact of each of `streams` ready for its rows now: unless a usable one
    is saved, built from the records a refresh of this process committed, or else from the
    database (in one pass over a kind's table when several need it); a stream the store
    holds as a dict is put on it (`CacheStore.settle`). Returns the streams settled,
    in order: the others' artifacts are built by the next load, as before.

    The hook for what else is built per stream after its records (the search segment, the
    duplicate keys): call it with the streams this returns. A failure here loses nothing
    the sync wrote; it is logged and leaves the work to the next load."""
    wanted = list(dict.fromkeys(streams))
    if store.db is None or store.db.read_only or not wanted:
        return []
    # a refresh this process committed is built from its records by `settle`, not read
    read = [stream for stream in wanted if not store.settles_from_memory(*stream)]
    try:
        await asyncio.to_thread(store.prepare_artifacts, read)
    except (FileError, OSError, sqlite3.Error) as exc:
        log.warning("records artifacts not built after the sync: %s", exc)
        return []
    for kind, source in wanted:
        if store.holds(kind, source):
            await store.settle(kind, source)
    return wanted
