"""Write-back of custom columns, against the demo simulators over loopback HTTP: a column
mapped from a custom field the vendor takes writes of is editable (Follow Up Boss custom*
by name on PUT, HubSpot properties on PATCH, Pipedrive v2 `custom_fields` on PATCH), goes
through the outbox with its conflict check, and lands at the vendor and in the cache."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from crm_tui.config import Settings
from crm_tui.custom_columns import Column
from crm_tui.demo.pipedrive import LENDER_FIELD
from crm_tui.demo.servers import DemoServers, start_demo_servers
from crm_tui.fields.service import save
from crm_tui.local_crm import ValidationFailed
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.writeback.service import WriteBack
from tests.helpers.env import make_settings

CONTACTS = 30
pytestmark = pytest.mark.usefixtures("no_retry_sleep")


@pytest.fixture
def demo() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=CONTACTS, seed=7, fub_rate_limit=10_000)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def settings(tmp_path: Path, demo: DemoServers) -> Settings:
    return make_settings(tmp_path, **{k.lower(): v for k, v in demo.env().items()})


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[SyncEngine]:
    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)
    store.load_sync()
    built = SyncEngine(settings, store)
    yield built
    await built.aclose()
    db.close()


async def mapped(engine: SyncEngine, source: str, **paths: tuple[str, str]) -> None:
    """Columns mapped (name -> (path, type)) and the source synced with them."""
    db, settings = engine.store.db, engine.settings
    for name, (path, kind) in paths.items():
        column = Column(name, name.title(), kind)
        args = (db, settings, source, "contacts", f"custom.{name}", path, column)
        await asyncio.to_thread(save, *args)
    await engine.reload_mappings()
    await engine.sync_source(source, full=True)


def raw(demo: DemoServers, source: str, path: str, headers: dict[str, str]) -> dict:
    return httpx.get(demo.servers[source].url + path, headers=headers).json()


async def fub_person(demo: DemoServers, remote_id: int) -> dict:
    """A person as the Follow Up Boss simulator holds it, custom fields and all."""
    url = f"{demo.servers['followupboss'].url}/v1/people/{remote_id}"
    answer = await call("GET", url, params={"fields": "allFields"}, auth=FUB_AUTH)
    return answer.json()


async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """A request to a simulator behind the product's back (as another app would)."""
    async with httpx.AsyncClient() as client:
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


FUB_AUTH = ("demo-fub-key", "")


async def test_fub_custom_fields_are_written_by_name_and_read_back(engine, demo):
    await mapped(
        engine,
        "followupboss",
        lender=("customLender", "text"),
        price=("customPriceRange", "number"),
        birthday=("addresses[0].city", "text"),  # a list index: not a custom field's path
    )
    wb = WriteBack(engine)
    record = engine.store.get("contacts", "followupboss:5")
    assert record is not None
    assert wb.custom_writable(record) == ("custom.lender", "custom.price")
    assert "custom.lender" not in wb.writable(record)  # the form's fields stay attributes
    with pytest.raises(ValidationFailed) as refused:
        await wb.check(record, {"custom.price": "lots", "custom.birthday": "x"})
    assert refused.value.errors == {
        "custom.price": "not a number value",
        "custom.birthday": "this source does not let crm-tui change it",
    }

    entry = await wb.edit(record, {"custom.lender": "Quicken Loans", "custom.price": "615000"})
    assert entry.state == "pending" and entry.wanted == {
        "custom.lender": "Quicken Loans",
        "custom.price": "615000",
    }
    shown = engine.store.get("contacts", "followupboss:5")
    assert shown.custom["lender"] == "Quicken Loans"  # the cache shows it at once, pending
    [sent] = await wb.drain()
    assert sent.state == "done", sent.error
    person = await fub_person(demo, 5)
    assert (person["customLender"], person["customPriceRange"]) == ("Quicken Loans", 615000)
    cached = engine.store.get("contacts", "followupboss:5")
    assert cached.custom["lender"] == "Quicken Loans"
    assert cached.custom["price"] == Decimal("615000")

    cleared = await wb.edit(cached, {"custom.lender": ""})  # an empty value clears it
    [done] = await wb.drain()
    assert done.state == "done" and cleared.wanted == {"custom.lender": None}
    after = await fub_person(demo, 5)
    assert "customLender" not in after  # null deletes a custom field


async def test_a_custom_value_changed_at_the_vendor_meanwhile_is_a_conflict(engine, demo):
    await mapped(engine, "followupboss", lender=("customLender", "text"))
    wb = WriteBack(engine)
    record = engine.store.get("contacts", "followupboss:6")
    entry = await wb.edit(record, {"custom.lender": "Mine Lending"})
    url = demo.servers["followupboss"].url + "/v1/people/6"
    await call("PUT", url, json={"customLender": "Theirs Bank"}, auth=FUB_AUTH)
    [stopped] = await wb.drain()
    assert stopped.state == "conflict" and stopped.theirs == {"custom.lender": "Theirs Bank"}
    await wb.settle(entry.id, {"custom.lender": "mine"})
    [done] = await wb.drain()
    assert done.state == "done"
    person = (await call("GET", url, params={"fields": "allFields"}, auth=FUB_AUTH)).json()
    assert person["customLender"] == "Mine Lending"


async def test_hubspot_custom_properties_are_patched_as_text(engine, demo):
    await mapped(
        engine,
        "hubspot",
        lender=("properties.lender", "text"),
        price=("properties.price_range", "number"),
    )
    wb = WriteBack(engine)
    record = next(r for r in engine.store.records("contacts", "hubspot") if r.custom)
    assert wb.custom_writable(record) == ("custom.lender", "custom.price")
    await wb.edit(record, {"custom.lender": "Guild Mortgage", "custom.price": "425000.50"})
    [sent] = await wb.drain()
    assert sent.state == "done", sent.error
    token = demo.credentials.hubspot_token
    body = raw(
        demo,
        "hubspot",
        f"/crm/v3/objects/contacts/{record.remote_id}?properties=lender,price_range",
        {"Authorization": f"Bearer {token}"},
    )
    assert body["properties"]["lender"] == "Guild Mortgage"
    assert body["properties"]["price_range"] == "425000.50"  # HubSpot keeps every value as text
    cached = engine.store.get("contacts", record.id)
    assert cached.custom == {**cached.custom, "lender": "Guild Mortgage"}
    assert cached.custom["price"] == Decimal("425000.50")


async def test_pipedrive_custom_fields_are_patched_in_their_object(engine, demo):
    await mapped(engine, "pipedrive", lender=(f"custom_fields.{LENDER_FIELD}", "text"))
    wb = WriteBack(engine)
    record = next(iter(engine.store.records("contacts", "pipedrive")))
    assert wb.custom_writable(record) == ("custom.lender",)
    preview = await wb.preview_edit(record, {"custom.lender": "Chase Home Lending"})
    assert preview.draft.body == {"custom_fields": {LENDER_FIELD: "Chase Home Lending"}}
    assert preview.draft.method == "PATCH"
    await wb.edit(record, {"custom.lender": "Chase Home Lending"})
    [sent] = await wb.drain()
    assert sent.state == "done", sent.error
    token = demo.credentials.pipedrive_token
    body = raw(demo, "pipedrive", f"/api/v2/persons/{record.remote_id}", {"x-api-token": token})
    fields = body["data"]["custom_fields"]
    assert fields[LENDER_FIELD] == "Chase Home Lending"
    assert len(fields) == 3  # the other custom fields kept
    assert engine.store.get("contacts", record.id).custom["lender"] == "Chase Home Lending"


def test_the_edit_command_sets_a_custom_column(settings, demo, tmp_path):
    env = {
        **os.environ,
        **demo.env(),
        "CRM_DATA_DIR": str(settings.data_dir),
        "CRM_USER_ID": settings.user_id,
    }

    def crm(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "crm_tui", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    assert crm("sync", "followupboss").returncode == 0
    done = crm("map", "followupboss", "contacts", "custom.lender", "customLender", "--type", "text")
    assert done.returncode == 0, done.stderr
    dry = crm("edit", "followupboss:9", "--set", "lender=Quicken", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    preview = json.loads(dry.stdout)
    assert "Quicken" in json.dumps(preview) and "demo-fub-key" not in dry.stdout
    edited = crm("edit", "followupboss:9", "--set", "custom.lender=Quicken", "--json")
    assert edited.returncode == 0, edited.stdout + edited.stderr
    person = httpx.get(
        demo.servers["followupboss"].url + "/v1/people/9",
        params={"fields": "allFields"},
        auth=FUB_AUTH,
    ).json()
    assert person["customLender"] == "Quicken"
    refused = crm("edit", "followupboss:9", "--set", "nothing=here", "--json")
    assert refused.returncode == 2
    assert "custom.nothing" in refused.stdout
    bad = crm("edit", "followupboss:9", "--set", "novalue", "--json")
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stdout
