"""Incremental sync against the vendors' documented contracts (respx): what is asked for,
what moves the watermark, what a failure leaves, how deletions arrive."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from crm_tui.models import Outcome
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from tests.helpers.env import make_settings

FUB = "https://fub.example/v1"
HUBSPOT = "https://hubspot.example"
PIPEDRIVE = "https://pd.example/api/v2"
pytestmark = pytest.mark.usefixtures("no_retry_sleep")


def fub_page(items: list[dict], next_cursor: str | None = None) -> httpx.Response:
    meta = {"collection": "people", "next": next_cursor, "total": len(items)}
    return httpx.Response(200, json={"_metadata": meta, "people": items})


def person(i: int, updated: str, **fields: object) -> dict:
    return {"id": i, "firstName": f"P{i}", "lastName": "Lee", "updated": updated, **fields}


@pytest.fixture
def make_engine(tmp_path, open_db):
    """Engines over one store, on each back end; another call is another process."""
    dbs = []

    def build(**values: object) -> SyncEngine:
        settings = make_settings(tmp_path, **values)
        db = open_db()
        dbs.append(db)
        store = CacheStore("alice", db)
        store.load_sync()  # as the CLI and the app do
        return SyncEngine(settings, store)

    yield build
    for db in dbs:
        db.close()


def fub(make_engine, **values: object) -> SyncEngine:
    return make_engine(fub_api_key="k", fub_api_base_url=FUB, **values)


async def sync(engine: SyncEngine, name: str, **kwargs: object):
    try:
        return await engine.sync_source(name, **kwargs)
    finally:
        await engine.aclose()


def names(engine: SyncEngine, source: str = "followupboss") -> dict[str, str | None]:
    return {c.remote_id: c.first_name for c in engine.store.contacts(source)}


@respx.mock
async def test_fub_people_after_a_full_read_only_what_changed_is_asked_for(make_engine):
    people = respx.get(f"{FUB}/people")
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
    people.side_effect = [
        fub_page([person(1, "2026-11-20T10:00:00Z"), person(2, "2026-11-21T08:30:00Z")])
    ]
    first = await sync(fub(make_engine), "followupboss")
    assert first.streams["contacts"].mode == "full"
    assert first.streams["contacts"].watermark == "2026-11-21T08:30:00Z"

    people.side_effect = [
        fub_page(
            [
                person(2, "2026-11-21T08:30:00Z"),  # the overlap brings it again: no harm
                person(3, "2026-11-22T09:00:00Z", firstName="Cleo"),
                person(1, "2026-11-22T09:00:01Z", stage="Trash"),  # moved to the trash
            ]
        )
    ]
    engine = fub(make_engine, crm_sync_overlap_seconds=60)
    report = await sync(engine, "followupboss")
    contacts = report.streams["contacts"]
    assert (contacts.mode, contacts.written, contacts.deleted) == ("incremental", 2, 1)
    assert report.streams["deals"].mode == "full"  # no documented updated time
    sent = people.calls.last.request.url.params
    assert sent["updatedAfter"] == "2026-11-21T08:29:00Z"  # the watermark less a minute
    assert sent["sort"] == "updated" and sent["includeTrash"] == "true"
    assert names(engine) == {"2": "P2", "3": "Cleo"}
    mark = engine.store.db.bookmark("alice", "followupboss", "contacts")
    assert mark.watermark == "2026-11-22T09:00:00Z"  # a deletion read again next time: harmless


@respx.mock
async def test_a_failed_incremental_read_keeps_the_rows_and_the_watermark(make_engine, open_db):
    people = respx.get(f"{FUB}/people")
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
    people.side_effect = [fub_page([person(1, "2026-11-20T10:00:00Z")])]
    await sync(fub(make_engine), "followupboss")
    people.side_effect = [
        fub_page([person(1, "2026-11-23T10:00:00Z", firstName="Changed")], "c2"),
        httpx.Response(400, json={"errorMessage": "bad cursor"}),
    ]
    engine = fub(make_engine)
    report = await sync(engine, "followupboss")
    assert report.streams["contacts"].outcome is Outcome.FAILED
    assert names(engine) == {"1": "P1"}
    reread = open_db()
    try:
        mark = reread.bookmark("alice", "followupboss", "contacts")
        assert mark.watermark == "2026-11-20T10:00:00Z"
        kept = CacheStore("alice", reread)
        kept.load_sync()
        assert [c.first_name for c in kept.contacts("followupboss")] == ["P1"]
    finally:
        reread.close()


@respx.mock
async def test_full_is_read_when_asked_when_due_and_when_never_read(make_engine):
    people = respx.get(f"{FUB}/people")
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
    people.side_effect = lambda request: fub_page([person(1, "2026-11-20T10:00:00Z")])
    assert (await sync(fub(make_engine), "followupboss")).streams["contacts"].mode == "full"
    second = await sync(fub(make_engine), "followupboss")
    assert second.streams["contacts"].mode == "incremental"
    forced = await sync(fub(make_engine), "followupboss", full=True)
    assert forced.streams["contacts"].mode == "full"
    assert "updatedAfter" not in people.calls.last.request.url.params
    always = await sync(fub(make_engine, crm_full_sync_hours=0), "followupboss")
    assert always.streams["contacts"].mode == "full"
    engine = fub(make_engine)
    stale = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with engine.store.db.transaction() as conn:
        conn.execute("UPDATE bookmarks SET full_at = ?", (stale,))
    assert (await sync(engine, "followupboss")).streams["contacts"].mode == "full"


@respx.mock
async def test_a_vendor_clock_ahead_never_pushes_the_watermark_past_the_run(make_engine):
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
    respx.get(f"{FUB}/people").respond(
        json={"_metadata": {}, "people": [person(1, "2099-01-01T00:00:00Z")]}
    )
    report = await sync(fub(make_engine), "followupboss")
    watermark = report.streams["contacts"].watermark
    assert watermark is not None and watermark <= report.streams["contacts"].started_at


def hubspot_contact(i: int, modified: str, **properties: str) -> dict:
    props = {"firstname": f"H{i}", "lastname": "Ng", "lastmodifieddate": modified, **properties}
    return {"id": str(i), "properties": props, "updatedAt": modified, "archived": False}


@respx.mock
async def test_hubspot_pages_by_the_latest_change_seen_and_reads_archived(
    make_engine,
):
    listing = respx.get(f"{HUBSPOT}/crm/v3/objects/contacts")
    respx.get(f"{HUBSPOT}/crm/v3/objects/deals").respond(json={"results": []})
    listing.respond(json={"results": [hubspot_contact(1, "2026-11-20T10:00:00.000Z")]})
    engine = make_engine(hubspot_access_token="t", hubspot_api_base_url=HUBSPOT)
    await sync(engine, "hubspot")

    bodies: list[dict] = []

    def search(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if len(bodies) == 1:  # more pages follow: the next query starts at its latest change
            results = [hubspot_contact(2, "2026-11-21T10:00:00.000Z")]
            paging = {"next": {"after": "200"}}
            return httpx.Response(200, json={"total": 12000, "results": results, "paging": paging})
        assert "after" not in body  # a new query, not the next offset of the old one
        results = [hubspot_contact(3, "2026-11-22T10:00:00.000Z", firstname="Ivy")]
        return httpx.Response(200, json={"total": 1, "results": results})

    respx.post(f"{HUBSPOT}/crm/v3/objects/contacts/search").side_effect = search
    respx.post(f"{HUBSPOT}/crm/v3/objects/deals/search").respond(json={"results": []})
    archived = {**hubspot_contact(1, "2026-11-22T11:00:00.000Z"), "archived": True}
    listing.side_effect = lambda request: httpx.Response(
        200, json={"results": [archived] if request.url.params.get("archived") else []}
    )
    engine = make_engine(hubspot_access_token="t", hubspot_api_base_url=HUBSPOT)
    report = await sync(engine, "hubspot")
    contacts = report.streams["contacts"]
    assert (contacts.mode, contacts.written, contacts.deleted) == ("incremental", 2, 1)
    first, second = bodies
    condition = first["filterGroups"][0]["filters"][0]
    assert condition["propertyName"] == "lastmodifieddate" and condition["operator"] == "GTE"
    watermark_ms = int(datetime(2026, 11, 20, 9, 58, tzinfo=UTC).timestamp() * 1000)
    assert condition["value"] == str(watermark_ms)  # the watermark less two minutes
    assert first["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert "firstname" in first["properties"] and first["limit"] == 200
    restart = second["filterGroups"][0]["filters"][0]["value"]
    assert restart == str(int(datetime(2026, 11, 21, 10, tzinfo=UTC).timestamp() * 1000))
    assert names(engine, "hubspot") == {"2": "H2", "3": "Ivy"}


@respx.mock
async def test_hubspot_deals_from_a_search_get_their_contact_from_the_v4_batch_read(
    make_engine,
):
    deal = {
        "id": "7",
        "properties": {"dealname": "Oak St", "hs_lastmodifieddate": "2026-11-20T10:00:00Z"},
        "associations": {"contacts": {"results": [{"id": "41", "type": "deal_to_contact"}]}},
    }
    respx.get(f"{HUBSPOT}/crm/v3/objects/contacts").respond(json={"results": []})
    deals = respx.get(f"{HUBSPOT}/crm/v3/objects/deals")
    deals.respond(json={"results": [deal]})
    engine = make_engine(hubspot_access_token="t", hubspot_api_base_url=HUBSPOT)
    await sync(engine, "hubspot")
    changed = [
        {"id": "7", "properties": {"dealname": "Oak Street", "hs_lastmodifieddate": "2026-11-21"}},
        {"id": "8", "properties": {"dealname": "Elm", "hs_lastmodifieddate": "2026-11-21"}},
    ]
    respx.post(f"{HUBSPOT}/crm/v3/objects/contacts/search").respond(json={"results": []})
    respx.post(f"{HUBSPOT}/crm/v3/objects/deals/search").respond(json={"results": changed})
    kinds = [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]
    linked = respx.post(f"{HUBSPOT}/crm/v4/associations/deals/contacts/batch/read").respond(
        207,
        json={
            "status": "COMPLETE",
            "results": [
                {"from": {"id": "7"}, "to": [{"toObjectId": 52, "associationTypes": kinds}]}
            ],
            "errors": [{"status": "error", "context": {"fromObjectId": ["8"]}}],
        },
    )
    deals.respond(json={"results": []})  # nothing archived
    engine = make_engine(hubspot_access_token="t", hubspot_api_base_url=HUBSPOT)
    await sync(engine, "hubspot")
    assert json.loads(linked.calls.last.request.content) == {"inputs": [{"id": "7"}, {"id": "8"}]}
    got = {d.remote_id: (d.name, d.contact_remote_id) for d in engine.store.deals("hubspot")}
    assert got == {"7": ("Oak Street", "52"), "8": ("Elm", None)}


@respx.mock
async def test_pipedrive_reads_updated_since_and_lists_deleted_deals(make_engine):
    persons = respx.get(f"{PIPEDRIVE}/persons")
    deals = respx.get(f"{PIPEDRIVE}/deals")
    one = {"id": 5, "name": "Deal", "status": "open", "update_time": "2026-11-20T10:00:00Z"}
    persons.respond(json={"data": [], "additional_data": {"next_cursor": None}})
    deals.respond(json={"data": [one], "additional_data": {"next_cursor": None}})
    await sync(make_engine(pipedrive_api_token="t", pipedrive_api_base_url=PIPEDRIVE), "pipedrive")

    def answer(request: httpx.Request) -> httpx.Response:
        gone = {**one, "status": "deleted", "update_time": "2026-11-21T10:00:00Z"}
        data = [gone] if request.url.params.get("status") == "deleted" else []
        return httpx.Response(200, json={"data": data, "additional_data": {}})

    deals.side_effect = answer
    engine = make_engine(pipedrive_api_token="t", pipedrive_api_base_url=PIPEDRIVE)
    report = await sync(engine, "pipedrive")
    assert report.streams["deals"].deleted == 1
    assert engine.store.deals("pipedrive") == []
    asked = [dict(call.request.url.params) for call in deals.calls[-2:]]
    assert all(p["updated_since"] == "2026-11-20T09:58:00Z" for p in asked)
    assert all(p["sort_by"] == "update_time" for p in asked)
    assert [p.get("status") for p in asked] == [None, "deleted"]


@respx.mock
async def test_webhook_ids_are_fetched_and_a_404_deletes(make_engine):
    people = respx.get(f"{FUB}/people")
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
    people.respond(
        json={
            "_metadata": {},
            "people": [person(1, "2026-11-20T10:00:00Z"), person(2, "2026-11-20T10:00:00Z")],
        }
    )
    engine = fub(make_engine)
    await engine.sync_source("followupboss")
    respx.get(f"{FUB}/people/1").respond(json=person(1, "2026-11-24T10:00:00Z", firstName="Al"))
    respx.get(f"{FUB}/people/2").respond(404, json={"errorMessage": "not found"})
    before = len(respx.calls)
    try:
        report = await engine.apply_remote_changes(
            "followupboss", "contacts", ["1", "2", "../deals", "1?x=2"], []
        )
    finally:
        await engine.aclose()
    paths = sorted(call.request.url.path for call in respx.calls[before:])
    assert paths == ["/v1/people/1", "/v1/people/2"]  # an id that is no id never goes out
    assert (report.mode, report.written, report.deleted) == ("webhook", 1, 1)
    assert names(engine) == {"1": "Al"}
    runs = engine.store.db.list_runs("alice")
    assert runs[0]["stream"] == "webhook:contacts" and runs[0]["mode"] == "webhook"


async def test_a_hubspot_record_changed_between_search_pages_makes_none_skipped(
    tmp_path, monkeypatch
):
    """A record read on the first page changes before the second is asked for: it moves to
    the end of the order. Paging by offset would skip the record that slid into its place
    (and the watermark would pass it by); a new query from the latest change seen does not."""
    from crm_tui.demo.servers import start_demo_servers
    from crm_tui.sync import engine as engine_module

    servers = start_demo_servers(contacts=500, seed=31, fub_rate_limit=10_000)
    hubspot = {k.lower(): v for k, v in servers.env().items() if k.startswith("HUBSPOT_")}

    def cached(engine: SyncEngine) -> dict[str, dict]:
        records = engine.store.contacts("hubspot")
        return {r.id: {**r.to_json(), "synced_at": None} for r in records}

    try:
        first = make_engine_at(tmp_path / "kept", hubspot)
        await sync(first, "hubspot")
        now = time.time()
        for k in range(300):  # two search pages of changes, a second apart
            servers.overlay.apply("hubspot:contacts", "update", k + 20, at=now - 600 + k)
        moved: list[object] = []

        def meanwhile(point: str) -> None:
            if point == "page:hubspot:contacts" and not moved:
                moved.append(servers.overlay.apply("hubspot:contacts", "update", 25))

        monkeypatch.setattr(engine_module, "fault_point", meanwhile)
        kept = make_engine_at(tmp_path / "kept", hubspot)
        report = await sync(kept, "hubspot")
        assert moved and report.streams["contacts"].mode == "incremental"
        monkeypatch.undo()
        fresh = make_engine_at(tmp_path / "fresh", hubspot)
        await sync(fresh, "hubspot")
        assert cached(kept) == cached(fresh)
    finally:
        servers.stop()


def make_engine_at(data_dir, values: dict[str, str]) -> SyncEngine:
    settings = make_settings(data_dir, **values)
    db = Database(settings.database_path)
    store = CacheStore("alice", db)
    store.load_sync()
    return SyncEngine(settings, store)


@respx.mock
async def test_the_rate_budget_the_vendor_reports_is_shown_and_kept(make_engine, open_db):
    headers = {
        "X-RateLimit-Limit": "250",
        "X-RateLimit-Remaining": "183",
        "X-RateLimit-Window": "10",
    }
    respx.get(f"{FUB}/people").respond(
        json={"_metadata": {}, "people": [person(1, "2026-11-20T10:00:00Z")]}, headers=headers
    )
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []}, headers=headers)
    engine = fub(make_engine)
    await sync(engine, "followupboss")
    rate = engine.store.status("followupboss").rate
    assert rate is not None and (rate.limit, rate.remaining, rate.window) == (250, 183, 10.0)
    assert rate.describe() == "183 of 250 left per 10 s"
    other = CacheStore("alice", open_db())  # another process
    try:
        other.load_statuses_sync()
        assert other.status("followupboss").rate == rate
    finally:
        other.db.close()


async def test_a_change_read_twice_or_undone_ends_as_the_vendor_left_it():
    from crm_tui.models import Contact
    from crm_tui.sync.delta import Delta

    def person_at(i: int, updated: str, first: str = "A") -> Contact:
        return Contact(
            id=f"x:{i}",
            source="x",
            remote_id=str(i),
            user_id="u",
            first_name=first,
            remote_updated=updated,
        )

    delta = Delta()
    delta.upsert(person_at(1, "2026-11-20T10:00:00Z"))
    delta.upsert(person_at(1, "2026-11-20T10:05:00Z", "B"))  # read again: the last wins
    delta.delete("x:2")
    delta.upsert(person_at(2, "2026-11-20T09:00:00Z"))  # restored after its deletion
    delta.upsert(person_at(3, "2026-11-20T09:30:00Z"))
    delta.delete("x:3")  # deleted after it was read
    delta.delete(None)  # a deletion without an id is no deletion
    assert {i: r.first_name for i, r in delta.upserts.items()} == {"x:1": "B", "x:2": "A"}
    assert list(delta.deletes) == ["x:3"]
    assert delta.duplicates == 1 and delta.latest == "2026-11-20T10:05:00Z"
