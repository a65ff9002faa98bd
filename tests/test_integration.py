"""The engine against the demo servers over real loopback sockets, with and without faults."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from crm_tui.config import config_dir
from crm_tui.demo import data
from crm_tui.demo.csvfiles import write_demo_csvs
from crm_tui.demo.servers import DemoServers, Faults
from crm_tui.models import Outcome, RecordKind, SyncState
from crm_tui.sources.base import Capabilities, Source, SourceContext
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.http import HeaderAuth, HttpClient
from crm_tui.sources.pagination import Page
from crm_tui.sources.registry import CONNECTORS, build_source
from crm_tui.store import Database
from crm_tui.sync.engine import SyncEngine
from tests.helpers.dataset import STREAMS, comparable, expected, sync_all
from tests.helpers.env import DEMO_CONTACTS, make_settings


async def assert_cache_equals_dataset(engine: SyncEngine, servers: DemoServers) -> int:
    compared = 0
    for name, streams in STREAMS.items():
        source = engine.source(name)
        for stream in streams:
            cached = {r.id: comparable(r) for r in engine.store.records(stream, name)}
            want = expected(source, stream, servers)
            assert cached.keys() == want.keys(), (name, stream)
            assert cached == want, (name, stream)
            compared += len(want)
    return compared


async def test_sync_all_reaches_every_record_exactly(demo_settings, demo_servers):
    engine, reports = await sync_all(demo_settings)
    assert all(r.outcome is Outcome.SUCCESS for r in reports.values()), reports
    assert engine.store.count("contacts", "followupboss") == data.expected_contacts(DEMO_CONTACTS)
    assert engine.store.count("deals", "topproducer") == data.deal_count(DEMO_CONTACTS)
    compared = await assert_cache_equals_dataset(engine, demo_servers)
    with_deals = sum(1 for streams in STREAMS.values() if "deals" in streams)
    assert compared == len(STREAMS) * data.expected_contacts(
        DEMO_CONTACTS
    ) + with_deals * data.deal_count(DEMO_CONTACTS)
    quarantined = engine.store.db.list_quarantine(demo_settings.user_id)
    assert {(q["source"], q["reason"]) for q in quarantined} == {
        (name, "missing id") for name in STREAMS
    }


async def test_hostile_records_arrive_clean(demo_settings):
    engine, _ = await sync_all(demo_settings)
    bob = engine.store.get("contacts", "followupboss:1")
    assert bob is not None and bob.first_name == "[@click=app.quit]Bob[/]"
    for record in engine.store.contacts():
        for value in (record.first_name, record.last_name, record.raw):
            assert "\x1b" not in (value or "") and "\x07" not in (value or "")


@pytest.mark.parametrize("faulty_servers", [Faults(error_rate=1.0)], indirect=True)
@pytest.mark.usefixtures("no_retry_sleep")
async def test_a_dead_server_leaves_the_previous_good_data(tmp_path, demo_servers, faulty_servers):
    good = {k.lower(): v for k, v in demo_servers.env().items()}
    settings = make_settings(tmp_path, **good)
    engine, _ = await sync_all(settings)
    before = {r.id: comparable(r) for r in engine.store.contacts()}
    bad = make_settings(tmp_path, **{k.lower(): v for k, v in faulty_servers.env().items()})
    engine2, reports = await sync_all(bad)
    assert {r.outcome for n, r in reports.items() if n != "local"} == {Outcome.FAILED}
    assert {r.id: comparable(r) for r in engine2.store.contacts()} == before
    status = engine2.store.status("followupboss")
    assert status.state is SyncState.ERROR
    assert "contacts: the server answered HTTP 50" in status.last_error
    run = next(
        r for r in engine2.store.db.list_runs(settings.user_id) if r["source"] == "followupboss"
    )
    assert run["outcome"] == "failed" and "HTTP 50" in run["error_message"]


async def test_wrong_keys_are_authentication_errors(tmp_path, demo_servers):
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    env.update(brivity_api_key="refused-key-0", topproducer_client_secret="refused-secret-0")
    _, reports = await sync_all(make_settings(tmp_path, **env))
    env_file = config_dir() / ".env"  # where the key should be: it is set nowhere else
    assert reports["brivity"].streams["contacts"].error == (
        f"the API key was refused: set BRIVITY_API_KEY in {env_file}\nBad Credentials"
    )
    assert reports["topproducer"].streams["contacts"].error == (
        "the client id or secret was refused: set TOPPRODUCER_CLIENT_ID and"
        f" TOPPRODUCER_CLIENT_SECRET in {env_file}\ninvalid_client"
    )
    assert reports["followupboss"].outcome is Outcome.SUCCESS


async def test_topproducer_csv_mode_and_brivity_transactions(tmp_path, demo_servers):
    files = write_demo_csvs(tmp_path / "imports", 120, 4)
    settings = make_settings(
        tmp_path,
        brivity_api_key="demo-brivity-key",
        brivity_api_base_url=demo_servers.servers["brivity"].url,
        brivity_transactions_csv=files["brivity_transactions"],
        topproducer_import_dir=files["topproducer_contacts"].parent,
    )
    engine, reports = await sync_all(settings)
    assert reports["topproducer"].outcome is Outcome.SUCCESS
    assert engine.store.count("contacts", "topproducer") == 120
    assert engine.store.count("deals", "topproducer") == data.deal_count(120)
    assert engine.store.count("deals", "brivity") == data.deal_count(120)
    deal = engine.store.deals("brivity")[0]
    assert deal.amount is not None and deal.close_date and deal.property_address


async def test_a_failing_stream_of_a_csv_folder_says_why_and_keeps_the_other(tmp_path):
    """A folder source builds no HTTP client: a failed stream must not make it build one
    (which would answer with an unrelated token-URL error)."""
    files = write_demo_csvs(tmp_path / "imports", 40, 4)
    closings = files["topproducer_contacts"].parent / "closings.csv"
    closings.unlink(missing_ok=True)
    os.mkfifo(closings)  # a FIFO where the closings export should be: refused, not read
    settings = make_settings(tmp_path, topproducer_import_dir=closings.parent)
    engine, reports = await sync_all(settings)
    report = reports["topproducer"]
    assert report.outcome is Outcome.PARTIAL
    assert "not a regular file" in (report.streams["deals"].error or "")
    assert "token" not in (report.streams["deals"].error or "")
    assert engine.store.count("contacts", "topproducer") == 40
    assert engine.store.status("topproducer").state is SyncState.ERROR


# -- conformance: every connector ----------------------------------------------------------


async def conformance(source: Source) -> list[str]:
    """Problems found: invalid records, null or repeated ids, two reads that disagree."""
    problems: list[str] = []
    reads = []
    for _ in range(2):
        ids: list[str] = []
        for stream in source.streams():
            async for page in source.read(stream):
                for raw in page.records:
                    try:
                        record = source.map_record(stream, raw, "x")
                    except InvalidRecord:
                        continue
                    if not record.remote_id or record.id != f"{source.name}:{record.remote_id}":
                        problems.append(f"bad id {record.id!r}")
                    ids.append(f"{stream}/{record.id}")  # ids are unique per stream
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} repeated ids")
        reads.append(sorted(ids))
    if reads[0] != reads[1]:
        problems.append("two full reads disagree")
    return problems


@pytest.mark.parametrize("name", list(CONNECTORS))
async def test_every_connector_conforms(demo_settings, name):
    db = Database(demo_settings.database_path)
    db.save_local_record(
        demo_settings.user_id,
        "contacts",
        {"first_name": "Loc", "last_name": "Al"},
        "2026-01-01T00:00:00Z",
    )
    source = build_source(name, SourceContext(demo_settings, demo_settings.user_id, db=db))
    try:
        assert await conformance(source) == []
    finally:
        await source.aclose()


class Repeating(Source):
    """A broken connector: the conformance check must catch it."""

    name = "broken"
    display_name = "Broken"
    short_name = "BRK"
    field_maps = {"contacts": {"remote_id": "id"}}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        yield Page([{"id": 1}, {"id": 2}])
        yield Page([{"id": 2}])


async def test_the_conformance_check_can_fail(settings):
    assert await conformance(Repeating(SourceContext(settings, "alice"))) == [
        "1 repeated ids",
        "1 repeated ids",
    ]


async def test_a_request_says_when_it_is_on_the_wire(demo_servers):
    """Reading ahead waits for this signal (httpcore's trace) before decoding a page."""
    client = HttpClient(
        "Follow Up Boss",
        f"{demo_servers.servers['followupboss'].url}/v1",
        HeaderAuth.basic("demo-fub-key"),
    )
    sent: list[int] = []
    try:
        body, headers = await client.get_page(
            "people", {"limit": 3}, on_sent=lambda: sent.append(len(sent))
        )
        await client.get_json("people", {"limit": 3})
    finally:
        await client.aclose()
    assert len(body["people"]) == 3
    assert headers["x-ratelimit-context"] == "global"
    assert sent == [0]
