"""A Follow Up Boss look-alike on a real loopback socket that serves the exact bytes a test
gives it: payloads no JSON encoder would write (lone surrogates, 10 MB fields, numbers past
every limit) reach the engine as they would from a hostile server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_tui.config import Settings
from crm_tui.demo.servers import FaultInjector, Faults, serve
from crm_tui.models import SyncReport
from crm_tui.store import CacheStore
from crm_tui.store.opening import open_database
from crm_tui.sync.engine import SyncEngine
from tests.helpers.env import make_settings


def page(collection: str, items: Sequence[bytes]) -> bytes:
    """One last page (no next cursor) of `items`, each one record's JSON text as written."""
    head = (
        b'{"_metadata":{"collection":"%s","offset":0,"limit":100,"total":%d,"next":null},"%s":['
        % (collection.encode(), len(items), collection.encode())
    )
    return head + b",".join(items) + b"]}"


@contextmanager
def hostile_fub(
    tmp_path: Path, people: Sequence[bytes], deals: Sequence[bytes] = (), **values: Any
) -> Iterator[Settings]:
    """Settings pointing Follow Up Boss at a server that answers `people` and `deals`."""
    bodies = {"people": page("people", people), "deals": page("deals", deals)}

    async def listing(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(bodies[name], 200, media_type="application/json")

    app = Starlette(routes=[Route("/v1/people", listing), Route("/v1/deals", listing)])
    server = serve("hostile-fub", FaultInjector(app, Faults(), lambda path: False))
    try:
        base = f"{server.url}/v1"
        yield make_settings(tmp_path, fub_api_key="k", fub_api_base_url=base, **values)
    finally:
        server.stop()


async def sync_fub(settings: Settings) -> tuple[SyncReport, CacheStore]:
    """One sync of Follow Up Boss into the settings' database: the report, and the store."""
    store = CacheStore(settings.user_id, open_database(settings))
    engine = SyncEngine(settings, store)
    try:
        return await engine.sync_source("followupboss"), store
    finally:
        await engine.aclose()


def person(remote_id: int, first: str = "Ana", last: str = "Lee", **extra: str) -> bytes:
    """A plain, valid person as JSON text; `extra` values are inserted as raw JSON."""
    fields = [
        f'"id":{remote_id}',
        f'"firstName":"{first}"',
        f'"lastName":"{last}"',
        f'"emails":[{{"value":"p{remote_id}@example.com","isPrimary":true}}]',
        *(f'"{key}":{value}' for key, value in extra.items()),
    ]
    return ("{" + ",".join(fields) + "}").encode()
