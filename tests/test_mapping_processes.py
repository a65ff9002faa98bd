"""mappings.toml changed by another process (`crm-tui map` in a shell, another app's Mapping
screen) while this one syncs, applies webhooks or sends: what this process writes next maps
with the saved rules, never the old ones over the re-map, and nothing in flight breaks."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from crm_tui.custom_columns import Column
from crm_tui.fields.service import connector, remap, remapper, save
from crm_tui.sources.mapping import Mappings
from crm_tui.sources.mapping_file import mappings_path
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.sync.scheduler import Scheduler
from tests.helpers.env import make_settings

PEOPLE = [{"id": i, "firstName": f"P{i}", "customLender": f"L{i}"} for i in range(1, 11)]
LENDERS = {str(p["id"]): p["customLender"] for p in PEOPLE}


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, fub_api_key="k")


@pytest.fixture
def db(settings):
    database = Database(settings.database_path)
    cached = connector(settings, "followupboss", Mappings())
    records = [cached.map_record("contacts", p, "2026-11-01T00:00:00Z") for p in PEOPLE]
    database.replace_stream(settings.user_id, "followupboss", "contacts", records)
    yield database
    database.close()


def lenders(db: Database, user: str) -> dict[str, str | None]:
    return {r.remote_id: r.custom.get("lender") for r in db.load_records(user, "contacts")}


def vendor_serving(people: list[dict]) -> respx.MockRouter:
    vendor = respx.mock(assert_all_called=False)
    page = {"_metadata": {"total": len(people)}, "people": people}
    vendor.get(url__regex=r".*/people/3.*").mock(return_value=httpx.Response(200, json=people[2]))
    vendor.get(url__regex=r".*/people.*").mock(return_value=httpx.Response(200, json=page))
    vendor.get(url__regex=r".*").mock(return_value=httpx.Response(200, json={}))
    return vendor


async def test_a_webhook_after_another_process_mapped_keeps_the_new_column(db, settings):
    engine = SyncEngine(settings, CacheStore(settings.user_id, db))
    engine.source("followupboss")  # built before, as by an earlier webhook
    other = Database(settings.database_path)
    lender = Column("lender", "Lender", "text")
    save(other, settings, "followupboss", "contacts", "custom.lender", "customLender", lender)
    await remap(CacheStore(settings.user_id, other), settings, "followupboss", "contacts")
    renamed = [dict(p, firstName="Renamed") if p["id"] == 3 else p for p in PEOPLE]
    with vendor_serving(renamed):
        report = await engine.apply_remote_changes("followupboss", "contacts", ["3"], [])
    assert report.written == 1
    got = {r.remote_id: r for r in other.load_records(settings.user_id, "contacts")}
    assert got["3"].first_name == "Renamed" and got["3"].custom == {"lender": "L3"}
    await engine.aclose()
    other.close()


async def test_a_sync_taking_its_lease_after_a_remap_maps_with_the_new_rules(
    db, settings, monkeypatch
):
    store = CacheStore(settings.user_id, db)
    engine = SyncEngine(settings, store)
    other = Database(settings.database_path)
    taking, acted = CacheStore.lease, []

    def lease(self, source, kind, purpose, *args, **kwargs):
        if not acted:  # the other process maps and re-maps just before this lease
            acted.append(kind)
            save(other, settings, "followupboss", "contacts", "custom.lender", "customLender")
            built = remapper(settings, "followupboss", "contacts")
            other.remap_stream(settings.user_id, "followupboss", "contacts", built)
            assert lenders(other, settings.user_id) == LENDERS
        return taking(self, source, kind, purpose, *args, **kwargs)

    monkeypatch.setattr(CacheStore, "lease", lease)
    with vendor_serving(PEOPLE):
        await engine.sync_source("followupboss")
    assert acted == ["contacts"] and lenders(other, settings.user_id) == LENDERS
    await engine.aclose()
    other.close()


async def test_a_typo_saved_by_hand_keeps_the_watcher_running_on_the_last_good_maps(
    db, settings, caplog
):
    engine = SyncEngine(settings, CacheStore(settings.user_id, db))
    save(db, settings, "followupboss", "contacts", "custom.lender", "customLender")
    engine.follow_mappings()
    mappings_path().write_text('[followupboss.contacts]\ncompnay = "x"\n')
    stop = asyncio.Event()
    with vendor_serving(PEOPLE):
        scheduler = Scheduler(engine, 0.001)
        task = asyncio.create_task(scheduler.run_forever(stop))
        while scheduler.runs < 1:  # noqa: ASYNC110 -- the scheduler says nothing else
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert lenders(db, settings.user_id) == LENDERS  # the last good maps, not none
    assert "compnay" in caplog.text and "the maps read before stay in use" in caplog.text
    await engine.aclose()


async def slow_vendor(seconds: float) -> asyncio.Server:
    """A Follow Up Boss that answers one person after `seconds`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(seconds)
        body = json.dumps({"id": 1, "firstName": "Ann"}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def test_maps_reloaded_mid_request_leave_the_request_to_finish(tmp_path):
    """The maps change while a webhook's fetch waits on the vendor: its client stays open
    (it was closed under it before) and the record is written."""
    server = await slow_vendor(0.6)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(tmp_path, fub_api_key="k", fub_api_base_url=f"http://127.0.0.1:{port}")
    db = Database(settings.database_path)
    engine = SyncEngine(settings, CacheStore(settings.user_id, db))
    fetch = asyncio.create_task(engine.apply_remote_changes("followupboss", "contacts", ["1"], []))
    await asyncio.sleep(0.2)
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text('[followupboss.contacts]\ncompany = "customCompany"\n')
    engine.follow_mappings()
    assert engine.source("followupboss").maps["contacts"]["company"] == "customCompany"
    report = await fetch
    server.close()
    await engine.aclose()
    db.close()
    assert (report.outcome, report.written) == ("success", 1)
