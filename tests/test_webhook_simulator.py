"""Webhooks end to end with the real sync engine, against the Follow Up Boss simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_tui.demo.servers import DemoServers, start_demo_servers
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.webhooks import subscriptions
from crm_tui.webhooks.server import WebhookService
from crm_tui.webhooks.worker import WorkerOptions
from tests.helpers.env import make_settings
from tests.helpers.webhooks import fub_event, fub_sign


@pytest.fixture
def servers() -> Iterator[DemoServers]:
    # Our own: the records change here, and the shared simulators must stay as generated.
    demo = start_demo_servers(contacts=40, seed=5, fub_rate_limit=10_000)
    yield demo
    demo.stop()


@pytest.fixture
async def live(
    tmp_path: Path, servers: DemoServers
) -> AsyncIterator[tuple[WebhookService, CacheStore, str]]:
    env = {k.lower(): v for k, v in servers.env().items()}
    settings = make_settings(tmp_path, **env)
    database = Database(settings.database_path)
    store = CacheStore(settings.user_id, database)
    await store.load()
    engine = SyncEngine(settings, store)
    report = await engine.sync_source("followupboss")
    assert report.success, report
    service = WebhookService(
        settings, store, engine, "127.0.0.1", 0, options=WorkerOptions(poll_seconds=0.05)
    )
    await service.start()
    try:
        yield service, store, env["fub_system_key"]
    finally:
        await service.close()
        await engine.aclose()
        database.close()


async def settled(service: WebhookService, rows: int, seconds: float = 15) -> dict[str, int]:
    """The inbox once `rows` rows are done (or `seconds` passed)."""
    states: dict[str, int] = {}
    for _ in range(int(seconds / 0.05)):
        states = service.inbox.counts().get("followupboss", {})
        if states.get("done", 0) >= rows:
            break
        await asyncio.sleep(0.05)
    return states


async def test_posted_webhooks_are_applied_by_the_real_engine(servers, live):
    service, store, key = live
    assert store.get("contacts", "followupboss:5") is not None
    servers.overlay.apply("followupboss:people", "update", 4, patch={"lastName": "Webhooked"})
    servers.overlay.apply("followupboss:people", "delete", 6)  # FUB: to the trash
    async with httpx.AsyncClient() as client:
        for n, (event, ids) in enumerate(
            [("peopleUpdated", [5]), ("peopleUpdated", [7]), ("notesCreated", [1])]
        ):
            body = json.dumps(fub_event(event, ids, n)).encode()
            answer = await client.post(
                f"{service.url}/webhooks/followupboss",
                content=body,
                headers={"FUB-Signature": fub_sign(body, key)},
            )
            assert answer.status_code == 200
    states = await settled(service, 3)
    assert states["done"] == 3, states
    person = store.get("contacts", "followupboss:5")
    assert person is not None and person.last_name == "Webhooked"
    trashed = store.get("contacts", "followupboss:7")
    assert trashed is None or trashed.deleted


async def test_a_registered_subscription_delivers_to_the_receiver(servers, live):
    service, store, _ = live
    client = SyncEngine(service.worker.engine.settings, store).source("followupboss").client
    try:
        url = f"{service.url}/webhooks/followupboss"
        made = await subscriptions.register(client, url, ["peopleUpdated", "peopleDeleted"])
        assert [s.event for s in made.done] == ["peopleUpdated", "peopleDeleted"]
        again = await subscriptions.register(client, url, ["peopleUpdated"])
        assert (again.done, [s.event for s in again.existing]) == ([], ["peopleUpdated"])
        listed = await subscriptions.list_webhooks(client)
        assert {s.event for s in listed} == {"peopleUpdated", "peopleDeleted"}
    finally:
        await client.aclose()
    servers.start_churn(0)  # no random changes: only ours, announced by webhook
    try:
        servers.overlay.apply("followupboss:people", "update", 9, patch={"lastName": "Pushed"})
        states = await settled(service, 1)
    finally:
        servers.stop_churn()
    assert states.get("done", 0) >= 1, states
    person: Any = store.get("contacts", "followupboss:10")
    assert person is not None and person.last_name == "Pushed"
