"""The demo servers' datasets as each connector maps them, and a sync of every source."""

from __future__ import annotations

from typing import Any

from crm_tui.demo.servers import DemoServers, iter_records
from crm_tui.models import RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.errors import InvalidRecord
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine

STREAMS = {
    "brivity": ("contacts",),
    "followupboss": ("contacts", "deals"),
    "topproducer": ("contacts", "deals"),
    "hubspot": ("contacts", "deals"),
    "pipedrive": ("contacts", "deals"),
    "lofty": ("contacts", "deals"),
}


def comparable(record: Any) -> dict[str, Any]:
    values = record.to_json()
    values.pop("synced_at")
    return values


def as_served(source: Source, stream: RecordKind, raw: Any) -> Any:
    """A record as the server answers the connector's request: HubSpot returns only the
    `properties` asked for (those that exist)."""
    endpoint = source.endpoint(stream)
    wanted = endpoint.params.get("properties") if endpoint is not None else None
    if not wanted or not isinstance(raw.get("properties"), dict):
        return raw
    held = raw["properties"]
    return {**raw, "properties": {n: held[n] for n in wanted.split(",") if n in held}}


def expected(source: Source, stream: RecordKind, servers: DemoServers) -> dict[str, Any]:
    """The server's dataset, mapped as the connector maps it."""
    out = {}
    for raw in iter_records(f"{source.name}:{stream}", servers.contacts, servers.seed):
        try:
            record = source.map_record(stream, as_served(source, stream, raw), "x")
        except InvalidRecord:
            continue
        out[record.id] = comparable(record)
    return out


async def sync_all(settings, full: bool = False) -> tuple[SyncEngine, dict]:
    """Every source, as the app does; `full` reads every stream in full (a test whose
    servers swapped their whole dataset, timestamps and all, needs that)."""
    store = CacheStore(settings.user_id, Database(settings.database_path))
    await store.load()  # as the app and the CLI do: start from the snapshot
    engine = SyncEngine(settings, store)
    try:
        reports = await engine.sync_all(full=full)
    finally:
        await engine.aclose()
    return engine, reports
