"""The sync engine with Follow Up Boss mocked by respx: isolation, quarantine, audit."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import respx

from crm_tui.models import Failure, Outcome, SyncState, failure_of
from crm_tui.sources.errors import AuthError, RateLimited, SourceError
from crm_tui.store import CacheStore
from crm_tui.store.errors import StreamBusy
from crm_tui.sync.engine import AlreadySyncing, SyncEngine, guide_sync_result
from tests.helpers.env import make_settings

BASE = "https://fub.example/v1"
KEY = "fub-canary-key-123"
pytestmark = pytest.mark.usefixtures("no_retry_sleep")


def page(collection: str, items: list[dict], next_cursor: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "_metadata": {"collection": collection, "next": next_cursor, "total": len(items)},
            collection: items,
        },
    )


def people(*ids: int | None, **fields) -> list[dict]:
    out = []
    for i in ids:
        person = {"firstName": f"P{i}", "lastName": "Test", **fields}
        if i is not None:
            person["id"] = i
        out.append(person)
    return out


@pytest.fixture
def engine(tmp_path, open_db):
    settings = make_settings(tmp_path, fub_api_key=KEY, fub_api_base_url=BASE)
    db = open_db()
    store = CacheStore("alice", db)
    yield SyncEngine(settings, store)  # each test closes it on its own event loop
    db.close()


async def run(engine: SyncEngine, name: str = "followupboss"):
    try:
        return await engine.sync_source(name)
    finally:
        await engine.aclose()


@respx.mock
async def test_a_clean_sync_fills_the_store_and_audits(engine, caplog):
    caplog.set_level(logging.INFO, logger="crm_tui")
    respx.get(f"{BASE}/people").side_effect = [
        page("people", people(3, 2), "c1"),
        page("people", people(1)),
    ]
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": [{"id": 9, "price": 5}]})
    report = await run(engine)
    assert report.outcome is Outcome.SUCCESS
    assert sorted(c.remote_id for c in engine.store.contacts("followupboss")) == ["1", "2", "3"]
    assert engine.store.count("deals", "followupboss") == 1
    status = engine.store.status("followupboss")
    assert status.state is SyncState.IDLE and status.last_sync is not None
    runs = engine.store.db.list_runs("alice")
    assert runs[0]["outcome"] == "success"
    assert {
        s["stream"]: (s["records_read"], s["records_written"], s["pages"])
        for s in runs[0]["streams"]
    } == {"contacts": (3, 3, 2), "deals": (1, 1, 1)}
    assert "[Follow Up Boss] Successfully synced 3 contacts" in caplog.text
    assert "[Follow Up Boss] Starting Follow Up Boss sync..." in caplog.text
    assert "[Follow Up Boss] Authentication successful" in caplog.text


@respx.mock
async def test_records_without_id_are_quarantined_with_reason_and_payload(engine):
    respx.get(f"{BASE}/people").respond(
        json={"_metadata": {}, "people": people(1, 2, 3, 4, 5, 6, 7, 8, 9, None)}
    )
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    report = await run(engine)
    contacts = report.streams["contacts"]
    assert (contacts.read, contacts.written, contacts.quarantined) == (10, 9, 1)
    assert report.outcome is Outcome.SUCCESS
    [bad] = engine.store.db.list_quarantine("alice")
    assert bad["reason"] == "missing id"
    assert json.loads(bad["payload"]) == {"firstName": "PNone", "lastName": "Test"}


@respx.mock
async def test_too_many_invalid_records_fail_the_stream_and_keep_old_data(engine):
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1, 2)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    await run(engine)
    broken = people(*([None] * 12), 5)  # a mapping gone wrong: most records have no id
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": broken})
    report = await run(engine)
    assert report.streams["contacts"].outcome is Outcome.FAILED
    assert "12 of 13 records invalid" in report.streams["contacts"].error
    assert sorted(c.remote_id for c in engine.store.contacts()) == ["1", "2"]
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(None, None)})
    report = await run(engine)  # nothing valid at all: never replace the cache with nothing
    assert report.streams["contacts"].outcome is Outcome.FAILED
    assert sorted(c.remote_id for c in engine.store.contacts()) == ["1", "2"]


@respx.mock
async def test_one_bad_record_in_a_small_stream_is_quarantined_and_the_rest_land(engine):
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(None, 7)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    report = await run(engine)
    contacts = report.streams["contacts"]
    assert contacts.outcome is Outcome.SUCCESS and (contacts.written, contacts.quarantined) == (
        1,
        1,
    )
    assert [c.remote_id for c in engine.store.contacts()] == ["7"]


@respx.mock
async def test_one_failing_stream_does_not_lose_the_other(engine):
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": [{"id": 1}]})
    await run(engine)
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1, 2)})
    respx.get(f"{BASE}/deals").respond(503)
    report = await run(engine)
    assert report.outcome is Outcome.PARTIAL
    assert engine.store.count("contacts") == 2  # the healthy stream was replaced
    assert [d.remote_id for d in engine.store.deals()] == ["1"]  # the failed one kept
    status = engine.store.status("followupboss")
    assert status.state is SyncState.ERROR
    assert "deals: the server answered HTTP 503" in status.last_error
    body = guide_sync_result({"followupboss": report})
    assert body["success"] is False
    assert body["results"]["followupboss"]["contacts"] == {"success": True, "count": 2}
    assert body["results"]["followupboss"]["deals"]["success"] is False


@respx.mock
async def test_a_failed_sync_leaves_the_previous_data_exactly(engine):
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1, 2)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    await run(engine)
    before = [c.to_json() for c in engine.store.contacts()]
    respx.get(f"{BASE}/people").side_effect = [
        page("people", people(7), "c1"),
        httpx.Response(500),
    ] + [httpx.Response(500)] * 9
    report = await run(engine)
    assert report.streams["contacts"].outcome is Outcome.FAILED
    assert [c.to_json() for c in engine.store.contacts()] == before
    reloaded = CacheStore("alice", engine.store.db)
    await reloaded.load()
    assert [c.to_json() for c in reloaded.contacts()] == before


@respx.mock
async def test_duplicates_inside_one_pull_collapse_last_wins(engine):
    respx.get(f"{BASE}/people").side_effect = [
        page("people", people(1, 2), "c1"),
        page("people", [{"id": 2, "firstName": "Second", "lastName": "Copy"}]),
    ]
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    report = await run(engine)
    assert (report.streams["contacts"].duplicates, report.streams["contacts"].written) == (1, 2)
    assert engine.store.get("contacts", "followupboss:2").first_name == "Second"


@respx.mock
async def test_cancellation_keeps_old_data_and_is_audited(engine):
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    await engine.sync_source("followupboss")

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return page("people", people(5))

    respx.get(f"{BASE}/people").mock(side_effect=slow)
    task = asyncio.create_task(engine.sync_source("followupboss"))
    await asyncio.sleep(0.1)
    assert engine.is_running("followupboss")
    with pytest.raises(AlreadySyncing):
        await engine.sync_source("followupboss")
    assert engine.cancel("followupboss")
    with pytest.raises(asyncio.CancelledError):
        await task
    await engine.aclose()
    assert [c.remote_id for c in engine.store.contacts()] == ["1"]
    assert not engine.is_running("followupboss")
    assert engine.store.status("followupboss").state is SyncState.IDLE
    runs = engine.store.db.list_runs("alice")
    assert runs[0]["outcome"] == "cancelled"
    assert runs[0]["streams"][0]["outcome"] == "cancelled"


@respx.mock
async def test_auth_failure_is_masked_everywhere(engine):
    respx.get(f"{BASE}/people").respond(401, text=f"bad key {KEY}")
    respx.get(f"{BASE}/deals").respond(401, text=f"bad key {KEY}")
    report = await run(engine)
    assert report.outcome is Outcome.FAILED
    assert report.streams["contacts"].error_class == "AuthError"
    assert report.streams["contacts"].failure is Failure.AUTH
    text = json.dumps(engine.store.db.list_runs("alice")) + str(engine.store.statuses())
    assert "the API key was refused" in text
    assert KEY not in text


@respx.mock
async def test_test_connection_reads_one_small_page(engine):
    route = respx.get(f"{BASE}/people").respond(
        json={"_metadata": {"total": 42, "next": "x"}, "people": people(1)}
    )
    result = await engine.test_connection("followupboss")
    await engine.aclose()
    assert result.ok
    assert result.message == "connected: read 1 of 42 contacts"
    assert route.calls[0].request.url.params["limit"] == "1"
    assert route.call_count == 1  # a probe reads no page ahead
    respx.get(f"{BASE}/people").respond(401, text="Invalid API key")
    bad = await engine.test_connection("followupboss")
    await engine.aclose()
    assert not bad.ok and bad.message.startswith("the API key was refused: ")


async def test_a_disabled_source_says_what_is_missing(engine):
    from crm_tui.config import ConfigError

    with pytest.raises(ConfigError, match="missing BRIVITY_API_KEY"):
        await engine.sync_source("brivity")
    result = await engine.test_connection("brivity")
    assert not result.ok and "BRIVITY_API_KEY" in result.message


def test_stale_sources_follow_the_ttl(engine):
    assert engine.stale_sources() == ["followupboss", "local"]
    engine.store.update_status("followupboss", last_sync="2099-01-01T00:00:00Z")
    assert engine.stale_sources() == ["local"]


def test_a_source_without_its_settings_shows_disabled_whatever_its_last_sync(engine):
    from crm_tui.sync.shown import shown_statuses

    engine.store.update_status("brivity", state=SyncState.ERROR)
    shown = shown_statuses(engine.store, engine.settings)
    assert list(shown) == engine.store.sources()
    assert shown["brivity"].state is SyncState.DISABLED  # no BRIVITY_API_KEY
    assert shown["followupboss"].state is SyncState.IDLE
    assert engine.store.status("brivity").state is SyncState.ERROR  # the store's stays


def test_the_next_run_is_stamped_on_each_named_source(engine):
    from datetime import UTC, datetime, timedelta

    from crm_tui.sync.scheduler import announce_next_run

    when = announce_next_run(engine.store, ["local"], 600)
    assert timedelta(seconds=590) < when - datetime.now(UTC) <= timedelta(seconds=600)
    assert engine.store.status("local").next_run == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert engine.store.status("followupboss").next_run is None


@respx.mock
async def test_the_scheduler_runs_on_time_and_skips_a_running_source(engine):
    from crm_tui.sync.scheduler import Scheduler

    gate = asyncio.Event()

    async def slow_people(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return page("people", people(1))

    respx.get(f"{BASE}/people").mock(side_effect=slow_people)
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    running = asyncio.create_task(engine.sync_source("followupboss"))
    await asyncio.sleep(0.05)
    runs: list[dict] = []
    stop = asyncio.Event()

    def ran(reports: dict) -> None:
        runs.append(reports)
        if len(runs) == 2:
            stop.set()

    scheduler = Scheduler(engine, 0.001, on_run=ran)  # every 0.06 s
    await scheduler.run_forever(stop)
    assert [sorted(r) for r in runs] == [["local"], ["local"]]  # followupboss was busy
    assert engine.store.status("local").next_run is not None
    gate.set()
    report = await running
    await engine.aclose()
    assert report.success


@respx.mock
async def test_the_reported_count_is_what_the_commit_wrote_not_what_was_read(engine, monkeypatch):
    """Rows the database never got (here a stage that loses a page's last row) are not
    counted: the report and the audit say what the commit holds."""
    respx.get(f"{BASE}/people").respond(json={"_metadata": {}, "people": people(1, 2, 3)})
    respx.get(f"{BASE}/deals").respond(json={"_metadata": {}, "deals": []})
    db = engine.store.db
    stage = db.stage
    monkeypatch.setattr(
        db, "stage", lambda kind, gen, records: stage(kind, gen, list(records)[:-1])
    )
    report = await run(engine)
    assert report.streams["contacts"].read == 3
    assert report.streams["contacts"].written == 2
    (run_row,) = db.list_runs("alice")
    (audited,) = [r for r in run_row["streams"] if r["stream"] == "contacts"]
    assert (audited["records_read"], audited["records_written"]) == (3, 2)


def test_a_failure_kind_follows_the_exception_type_not_its_name():
    class Renamed(AuthError):  # a subclass under another name is still an auth failure
        pass

    assert failure_of(Renamed("refused")) is Failure.AUTH
    assert failure_of(RateLimited("slow down", "", None)) is Failure.RATE_LIMITED
    assert failure_of(StreamBusy("busy", "another process")) is Failure.BUSY
    assert failure_of(SourceError("down")) is Failure.OTHER
    assert failure_of(ValueError("a connector bug")) is Failure.OTHER


async def test_closing_lets_a_cancelled_sync_finish_recording_its_end(settings, store):
    """SIGTERM cancels the running syncs, then the command closes the engine: a second
    cancel there cut short the cleanup that ends the runs (a team worker left 20 runs open
    and its owner row, found by a multi-process run); the close waits for it instead."""
    import asyncio

    from crm_tui.sync.engine import SyncEngine

    engine = SyncEngine(settings, store)
    ended = asyncio.Event()

    async def syncing() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # the run's end and the leases' release, written
            ended.set()
            raise

    task = asyncio.ensure_future(syncing())
    engine._running["brivity"] = task
    await asyncio.sleep(0)
    task.cancel()  # the SIGTERM
    await engine.aclose()
    assert ended.is_set()
