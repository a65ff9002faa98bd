"""Field mapping over real SQLite files: discovery of the cached payloads, saving a mapping
(refused when most records would lose their id), re-mapping the cache without a request,
and the commands that do it for scripts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from crm_tui.config import ConfigError, Settings
from crm_tui.custom_columns import Column
from crm_tui.demo import data
from crm_tui.demo.pipedrive import LEAD_SOURCE_FIELD, pipedrive_person
from crm_tui.fields.discover import COMPUTED
from crm_tui.fields.service import discover_stream, remap, save
from crm_tui.sources.mapping_file import MappingRefused, mappings_path
from crm_tui.store import CacheStore, Database
from crm_tui.store import cache as cache_module
from crm_tui.store.errors import StreamBusy
from crm_tui.store.remap import RemapCancelled, RemapFailed
from tests.helpers.backends import SQLITE_ONLY
from tests.helpers.env import make_settings
from tests.helpers.field_mapping import SEED, N, cache, fub_people


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, fub_api_key="k")


@pytest.fixture
def db(open_db: Callable[[], Database]):
    """On each back end; on SQLite, the file in the settings' data dir (the CLI's)."""
    database = open_db()
    yield database
    database.close()


def field(found, path):
    return next(f for f in found.fields if f.path == path)


# -- discovery -----------------------------------------------------------------------------


def test_discovery_lists_the_demo_payloads_fields_with_fill_rates_and_samples(db, settings):
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    found = discover_stream(db, settings, "followupboss", "contacts")
    assert (found.total, found.sampled, found.estimated) == (len(people), len(people), False)

    lender = field(found, "customLender")
    with_lender = sum("customLender" in p for p in people)
    assert lender.filled == with_lender
    assert lender.fill_rate == pytest.approx(with_lender / len(people))
    assert 0 < with_lender < len(people)  # the demo fills a good share, not all
    assert lender.samples and set(lender.samples) <= {*data.LENDERS, data.HOSTILE_LENDER}
    price = field(found, "customPriceRange")
    assert price.types == ("number",) and price.filled == sum(
        "customPriceRange" in p for p in people
    )
    assert lender.types == ("string",) and lender.mapped_to == ()

    background = field(found, "background")
    assert background.filled == sum(bool(p["background"]) for p in people)
    assert set(background.types) <= {"string", "null"}
    assert field(found, "lastActivity").types == ("null",)
    assert field(found, "lastActivity").filled == 0

    city = field(found, "addresses[0].city")  # a list of objects, through its first one
    assert city.mapped_to == ("city",) and city.fill_rate == 1.0
    assert field(found, "addresses").types == ("array",)
    assert field(found, "addresses").samples == ("[1 item]",)
    assert field(found, "tags").samples[0] == ", ".join(people[0]["tags"])[:40]

    targets = {t.name: t for t in found.targets}
    assert targets["city"].spec == "addresses[0].city" and targets["city"].origin == "built-in"
    assert targets["email"].spec == COMPUTED  # a getter: the primary e-mail of a list
    assert targets["company"].spec == "" and targets["company"].origin == ""


def test_discovery_finds_pipedrive_custom_fields_and_marks_what_maps_to_them(db, settings):
    people = [pipedrive_person(SEED, i, N) for i in range(N)]
    people = [p for p in people if "id" in p]
    cache(db, settings, "pipedrive", "contacts", people)
    path = f"custom_fields.{LEAD_SOURCE_FIELD}"
    before = field(discover_stream(db, settings, "pipedrive", "contacts"), path)
    assert before.filled == sum(bool(p["custom_fields"][LEAD_SOURCE_FIELD]) for p in people)
    assert 0 < before.filled < len(people) and before.mapped_to == ()

    column = Column("lead_source", "Lead source", "text")
    save(db, settings, "pipedrive", "contacts", "custom.lead_source", path, column)
    found = discover_stream(db, settings, "pipedrive", "contacts")
    assert field(found, path).mapped_to == ("custom.lead_source",)
    target = next(t for t in found.targets if t.name == "custom.lead_source")
    assert (target.label, target.type, target.origin) == ("Lead source", "text", "mappings.toml")


def test_a_large_stream_is_sampled_evenly_and_says_so(db, settings):
    people = [{"id": i, "third": "x" if i % 3 == 0 else None} for i in range(1, 1001)]
    cache(db, settings, "followupboss", "contacts", people)
    found = discover_stream(db, settings, "followupboss", "contacts", limit=100)
    assert (found.total, found.sampled, found.estimated) == (1000, 100, True)
    assert field(found, "third").fill_rate == pytest.approx(1 / 3, abs=0.05)
    assert found.to_json()["estimated"] is True


def test_hostile_text_in_samples_comes_out_plain_and_short(db, settings):
    hostile = "[bold]x[/bold] [@click=app.quit]q[/]\x1b[31m\u202eevil\x07\nline2" + "y" * 80
    payloads = [{"id": 1, "note": hostile, "nested": {"deep": "\x9b[2J[red]r[/red]"}}]
    payloads.append({"id": 2, "[@click=app.quit]": "k", "a.b": "dotted key", "note": "ok"})
    cache(db, settings, "followupboss", "contacts", payloads)
    found = discover_stream(db, settings, "followupboss", "contacts")
    note = field(found, "note")
    plain = "[bold]x[/bold] [@click=app.quit]q[/][31mevil line2" + "y" * 80
    assert note.samples[0] == plain[:39] + "…"  # controls gone, markup left as text
    assert len(note.samples[0]) == 40
    assert field(found, "nested.deep").samples == ("[2J[red]r[/red]",)
    paths = {f.path for f in found.fields}
    assert "[@click=app.quit]" not in paths and "a.b" not in paths  # no path can name them
    text = json.dumps(found.to_json(), ensure_ascii=False)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)


# -- saving --------------------------------------------------------------------------------


def test_a_map_leaving_most_records_without_an_id_is_refused_before_saving(db, settings):
    cache(db, settings, "followupboss", "contacts", fub_people())
    with pytest.raises(MappingRefused, match=r"would have no id under this map; not saved"):
        save(db, settings, "followupboss", "contacts", "remote_id", "customClosingDate")
    assert not mappings_path().exists()  # about 40% have a closing date: most without
    save(db, settings, "followupboss", "contacts", "remote_id", "id")  # the same: fine
    assert "remote_id" in mappings_path().read_text()


def test_a_map_giving_records_one_id_is_refused_before_saving(db, settings):
    """`remote_id <- source`: every record still has an id, but 299 contacts would share 5
    of them; the re-map would keep one of each and the others' payloads would be gone."""
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    with pytest.raises(MappingRefused) as refused:
        save(db, settings, "followupboss", "contacts", "remote_id", "source")
    assert str(refused.value) == (
        "294 of 299 cached followupboss contacts would share an id with another under this"
        " map (5 distinct ids): the re-map would keep one of each; not saved"
    )
    assert not mappings_path().exists()
    assert len(list(db.load_records(settings.user_id, "contacts"))) == len(people)


def test_a_map_the_records_would_not_map_under_is_refused_before_saving(db, settings):
    """`amount <- name`: every cached deal would be invalid; the re-map (and the next sync)
    would refuse it, so the save does."""
    cache(db, settings, "followupboss", "deals", deals({}))
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text("# mine\n")
    with pytest.raises(MappingRefused) as refused:
        save(db, settings, "followupboss", "deals", "amount", "name")
    assert str(refused.value) == (
        "30 of 30 cached followupboss deals would not map under this map"
        " (amount: not a number: 'Deal 1'); not saved"
    )
    assert mappings_path().read_text() == "# mine\n"
    # a few odd records are the sync's to quarantine, not a reason to refuse the map
    cache(db, settings, "followupboss", "deals", deals({7: "lots"}))
    save(db, settings, "followupboss", "deals", "amount", "alt")
    assert 'amount = "alt"' in mappings_path().read_text()


# -- re-mapping ----------------------------------------------------------------------------


async def test_a_remap_changes_the_cached_records_without_a_request(db, settings, open_db):
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    store = CacheStore(settings.user_id, db)
    await store.load()
    other = open_db()  # another process's view of the same store
    seen = other.last_change()
    column = Column("lender", "Lender", "text")
    save(db, settings, "followupboss", "contacts", "custom.lender", "customLender", column)
    save(db, settings, "followupboss", "contacts", "company", "source")
    steps: list[tuple[int, int]] = []
    report = await remap(store, settings, "followupboss", "contacts", lambda *a: steps.append(a))

    assert (report.read, report.written, report.kept) == (len(people), len(people), 0)
    assert report.changed == len(people)  # every company changed
    assert steps[-1] == (len(people), len(people))
    by_id = {p["id"]: p for p in people}
    for record in store.contacts("followupboss"):
        payload = by_id[int(record.remote_id)]
        assert record.company == payload["source"]
        assert record.custom == (
            {"lender": payload["customLender"]} if "customLender" in payload else {}
        )
    stored = {r.id: r for r in other.load_records(settings.user_id, "contacts")}
    assert stored == {r.id: r for r in store.contacts("followupboss")}
    changes = other.changes_since(settings.user_id, seen)
    assert changes.ids[("contacts", "followupboss")] == {r.id for r in stored.values()}
    run = other.list_runs(settings.user_id)[0]
    assert (run["stream"], run["records_read"], run["records_written"], run["mode"]) == (
        "remap:contacts",
        len(people),
        len(people),
        "remap",
    )
    assert other.leases(settings.user_id) == []  # let go
    other.close()


async def test_a_remap_is_no_point_of_the_sync_health_chart(db, settings):
    """A re-map leaves an audit row (the Audit screen lists it), but it read nothing from
    the vendor: the Pipeline's sync health counts syncs only, and 30 re-maps push none out."""
    from crm_tui.insights.health import sync_health
    from crm_tui.models import SyncReport

    cache(db, settings, "followupboss", "contacts", fub_people()[:10])
    run = db.start_run(settings.user_id, "followupboss", "2026-11-01T00:00:00Z")
    db.finish_run(run, SyncReport(source="followupboss"))
    store = CacheStore(settings.user_id, db)
    for _ in range(31):
        await remap(store, settings, "followupboss", "contacts")
    assert len(db.list_runs(settings.user_id)) == 32  # the audit keeps every one
    recent = db.recent_runs(settings.user_id)
    assert [r["id"] for r in recent] == [run]
    for rows in (recent, db.list_runs(settings.user_id)):
        fub = sync_health(rows, {}).get("followupboss")
        assert (
            fub is not None
            and len(fub.runs) == 1
            and fub.runs[0].started_at == ("2026-11-01T00:00:00Z")
        )


def deals(alt: dict[int, object]) -> list[dict]:
    return [
        {"id": i, "name": f"Deal {i}", "price": 1000 * i, "alt": alt.get(i, i)}
        for i in range(1, 31)
    ]


async def test_a_payload_the_new_map_refuses_keeps_its_row_and_is_quarantined(db, settings):
    cache(db, settings, "followupboss", "deals", deals({7: "lots"}))
    store = CacheStore(settings.user_id, db)
    await store.load()
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text('[followupboss.deals]\namount = "alt"\n')
    report = await remap(store, settings, "followupboss", "deals")
    assert (report.read, report.written, report.kept) == (30, 30, 1)
    amounts = {r.remote_id: r.amount for r in store.deals("followupboss")}
    assert amounts["7"] == Decimal(7000)  # as it was: the previous good data
    assert amounts["8"] == Decimal(8) and amounts["30"] == Decimal(30)
    (bad,) = db.list_quarantine(settings.user_id, report.run_id)
    assert "amount: not a number: 'lots'" in bad["reason"]
    assert json.loads(bad["payload"])["id"] == 7


async def test_a_map_gone_wrong_commits_nothing(db, settings):
    cache(db, settings, "followupboss", "deals", deals({}))
    before = sorted((r.id, r.amount) for r in db.load_records(settings.user_id, "deals"))
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text('[followupboss.deals]\nremote_id = "nothing"\n')  # by hand
    store = CacheStore(settings.user_id, db)
    with pytest.raises(RemapFailed, match="30 of 30 stored records would not map"):
        await remap(store, settings, "followupboss", "deals")
    after = sorted((r.id, r.amount) for r in db.load_records(settings.user_id, "deals"))
    assert after == before
    assert db._conn.execute("SELECT count(*) FROM deals").fetchone() == (30,)  # nothing left over
    assert db._conn.execute("SELECT count(*) FROM pending_generations").fetchone() == (0,)
    assert db.list_runs(settings.user_id)[0]["outcome"] == "failed"


async def test_a_remap_that_would_give_records_one_id_commits_nothing(db, settings):
    """A hand edit the save's check never saw: the re-map refuses to write fewer records
    than it read, and every payload stays (an unmap brings the records back)."""
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    before = sorted((r.id, r.raw) for r in db.load_records(settings.user_id, "contacts"))
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text('[followupboss.contacts]\nremote_id = "source"\n')
    store = CacheStore(settings.user_id, db)
    with pytest.raises(RemapFailed) as failed:
        await remap(store, settings, "followupboss", "contacts")
    assert failed.value.details == (
        "294 of 299 stored records would share an id with another under this map; nothing changed"
    )
    assert failed.value.exit_code == 2  # as a map refused before its save
    after = sorted((r.id, r.raw) for r in db.load_records(settings.user_id, "contacts"))
    assert after == before
    assert db._conn.execute("SELECT count(*) FROM pending_generations").fetchone() == (0,)
    assert db.list_runs(settings.user_id)[0]["outcome"] == "failed"


async def test_a_damaged_payload_is_kept_and_quarantined_not_fatal(db, settings):
    """One stored cell that is not JSON (the loader tolerates it): the re-map keeps its row,
    quarantines it with the reason, and maps the others; the save's check skips it."""
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    with db.transaction() as conn:
        damaged = conn.execute("SELECT id, raw FROM contacts ORDER BY rowid LIMIT 1").fetchone()
        conn.execute("UPDATE contacts SET raw = ? WHERE id = ?", ('{"id": 5, "firstN', damaged[0]))
    save(db, settings, "followupboss", "contacts", "company", "source")
    store = CacheStore(settings.user_id, db)
    report = await remap(store, settings, "followupboss", "contacts")
    assert (report.read, report.written, report.kept) == (len(people), len(people), 1)
    by_id = {p["id"]: p for p in people}
    for record in store.contacts("followupboss"):
        if record.id == damaged[0]:
            assert record.company != by_id[int(record.remote_id)]["source"]  # as it was
        else:
            assert record.company == by_id[int(record.remote_id)]["source"]
    (bad,) = db.list_quarantine(settings.user_id, report.run_id)
    assert bad["reason"].startswith("stored payload is not JSON: ")
    assert json.loads(bad["payload"]) == '{"id": 5, "firstN'


async def test_a_remap_shown_in_memory_keeps_a_change_committed_after_it(db, settings, monkeypatch):
    """The re-map lets its lease go, then its records are made the stream in memory: a
    webhook of this process committing (and applying to memory) meanwhile must not be
    undone on the screen by them."""
    people = fub_people()[:20]
    cache(db, settings, "followupboss", "contacts", people)
    store = CacheStore(settings.user_id, db)
    await store.load()
    target = f"followupboss:{people[3]['id']}"
    loop = asyncio.get_running_loop()
    read_done, applied = asyncio.Event(), threading.Event()
    real_by_id = cache_module._by_id

    def slow_by_id(records):
        found = real_by_id(records)
        loop.call_soon_threadsafe(read_done.set)
        applied.wait(5)  # the webhook lands before these records are swapped in
        return found

    monkeypatch.setattr(cache_module, "_by_id", slow_by_id)

    async def webhook() -> None:
        await read_done.wait()
        (now,) = db.load_records(settings.user_id, "contacts", False, "followupboss", [target])
        record = replace(now, first_name="Renamed")  # re-mapped, then renamed at the vendor
        async with store.lease("followupboss", "contacts", "webhook") as lease:
            await store.commit_changes("followupboss", "contacts", [record], [], lease, None)
        applied.set()

    task = asyncio.create_task(webhook())
    save(db, settings, "followupboss", "contacts", "company", "source")
    await remap(store, settings, "followupboss", "contacts")
    await task
    (stored,) = db.load_records(settings.user_id, "contacts", False, "followupboss", [target])
    assert stored.first_name == "Renamed"
    assert store.get("contacts", target) == stored
    assert stored.company == people[3]["source"]
    assert {r.company for r in store.contacts("followupboss")} <= {p["source"] for p in people}


async def test_a_remap_is_refused_while_a_sync_holds_the_stream(db, settings, open_db):
    cache(db, settings, "followupboss", "contacts", fub_people())
    syncing = open_db()  # a sync in another process
    lease = syncing.acquire_lease(settings.user_id, "followupboss", "contacts", "sync")
    store = CacheStore(settings.user_id, db)
    with pytest.raises(StreamBusy) as busy:
        await remap(store, settings, "followupboss", "contacts")
    assert "the sync in" in busy.value.details and busy.value.exit_code == 5
    syncing.release_lease(lease)
    report = await remap(store, settings, "followupboss", "contacts")
    assert report.read == len(fub_people())
    syncing.close()


def test_a_cancelled_remap_changes_nothing(db, settings):
    cache(db, settings, "followupboss", "contacts", fub_people())
    cancel = threading.Event()
    cancel.set()
    from crm_tui.fields.service import remapper

    with pytest.raises(RemapCancelled):
        db.remap_stream(
            settings.user_id,
            "followupboss",
            "contacts",
            remapper(settings, "followupboss", "contacts"),
            cancel=cancel,
        )
    assert db._conn.execute("SELECT count(*) FROM contacts").fetchone() == (len(fub_people()),)


async def test_a_running_engine_maps_with_the_saved_file_once_reloaded(db, settings):
    from crm_tui.sync.engine import SyncEngine

    engine = SyncEngine(settings, CacheStore(settings.user_id, db))
    assert "custom.lender" not in engine.source("followupboss").maps["contacts"]
    save(db, settings, "followupboss", "contacts", "custom.lender", "customLender")
    await engine.reload_mappings()
    record = engine.source("followupboss").map_record(
        "contacts", {"id": 1, "customLender": "Hilltop"}, "2026-11-01T00:00:00Z"
    )
    assert record.custom == {"lender": "Hilltop"}
    mappings_path().write_text("[zillow.contacts]\n")
    with pytest.raises(ConfigError, match="unknown source 'zillow'"):
        await engine.reload_mappings()
    assert engine.source("followupboss").maps["contacts"]["custom.lender"] == "customLender"
    await engine.aclose()


# -- the commands --------------------------------------------------------------------------


def crm(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_DATA_DIR": str(settings.data_dir), "CRM_USER_ID": settings.user_id}
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@SQLITE_ONLY
def test_fields_map_and_unmap_for_scripts(db, settings):
    """The commands in a script's order: each step reads the cache and mappings file the
    one before left, so they run in one test."""
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    fields_json_lists_the_unmapped_lender(settings, people)
    map_fills_the_lender_column_and_fields_says_so(settings, people)
    bad_maps_exit_2_with_the_reason(settings)
    unmap_empties_the_column_and_keeps_its_declaration(settings)
    fields_table_has_its_header_and_says_all_was_read(settings, people)


def fields_json_lists_the_unmapped_lender(settings: Settings, people: list[dict]) -> None:
    listed = crm(settings, "fields", "followupboss", "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["success"] and body["total"] == len(people) and not body["estimated"]
    lender = next(f for f in body["fields"] if f["path"] == "customLender")
    assert set(lender) == {
        "path",
        "types",
        "filled",
        "fillRate",
        "samples",
        "mappedTo",
        "vendorLabel",
    }


def map_fills_the_lender_column_and_fields_says_so(settings: Settings, people: list[dict]) -> None:
    mapped = crm(
        settings, "map", "followupboss", "contacts", "custom.lender", "customLender",
        "--label", "Lender", "--type", "text", "--json",
    )  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    body = json.loads(mapped.stdout)
    assert body["column"] == {"name": "lender", "label": "Lender", "type": "text"}
    assert body["remap"]["read"] == len(people) and body["remap"]["kept"] == 0
    contacts = json.loads(crm(settings, "contacts", "--source", "followupboss", "--json").stdout)
    lenders = {c["remote_id"]: c["custom"].get("lender") for c in contacts["contacts"]}
    assert lenders == {str(p["id"]): p.get("customLender") for p in people}

    again = json.loads(crm(settings, "fields", "followupboss", "--json").stdout)
    assert next(f for f in again["fields"] if f["path"] == "customLender")["mappedTo"] == [
        "custom.lender"
    ]


def bad_maps_exit_2_with_the_reason(settings: Settings) -> None:
    refused = crm(settings, "map", "followupboss", "contacts", "nickname", "x", "--json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout) == {
        "success": False,
        "error": "Mapping refused",
        "details": "nickname: unknown field (a custom column is custom.NAME)",
    }
    plain = crm(settings, "map", "followupboss", "contacts", "company", "x", "--label", "L")
    assert plain.returncode == 2 and "--label and --type describe a custom column" in plain.stderr


def unmap_empties_the_column_and_keeps_its_declaration(settings: Settings) -> None:
    unmapped = crm(settings, "unmap", "followupboss", "contacts", "custom.lender", "--json")
    assert unmapped.returncode == 0, unmapped.stderr
    contacts = json.loads(crm(settings, "contacts", "--source", "followupboss", "--json").stdout)
    assert all(c["custom"] == {} for c in contacts["contacts"])
    assert "[columns.lender]" in mappings_path().read_text()  # the declaration stays


def fields_table_has_its_header_and_says_all_was_read(
    settings: Settings, people: list[dict]
) -> None:
    table = crm(settings, "fields", "followupboss")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "PATH",
        "TYPES",
        "FILLED",
        "SAMPLES",
        "MAPPED",
        "TO",
    ]
    assert f"all {len(people)} contacts records read" in table.stdout


@SQLITE_ONLY
def test_map_exits_5_with_the_mapping_saved_while_a_sync_holds_the_stream(db, settings):
    cache(db, settings, "followupboss", "contacts", fub_people())
    lease = db.acquire_lease(settings.user_id, "followupboss", "contacts", "sync")
    busy = crm(settings, "map", "followupboss", "contacts", "company", "source", "--json")
    assert busy.returncode == 5
    details = json.loads(busy.stdout)["details"]
    assert details.startswith("mapping saved, records not re-mapped: the sync in")
    assert "crm-tui remap followupboss --stream contacts" in details
    assert 'company = "source"' in mappings_path().read_text()
    db.release_lease(lease)
    done = crm(settings, "remap", "followupboss", "--stream", "contacts", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remap"][0]["changed"] == len(fub_people())


@SQLITE_ONLY
def test_map_refused_by_the_remap_is_not_left_saved(db, settings):
    """`crm-tui map`: a map giving records one id exits 2 and saves nothing; a map the
    save's sample passes but the re-map refuses (the odd half of 5,002 deals, which the
    even sample never reads, would not map) exits 2 with the file put back as it was."""
    cache(db, settings, "followupboss", "contacts", fub_people())
    collapsed = crm(settings, "map", "followupboss", "contacts", "remote_id", "source", "--json")
    assert collapsed.returncode == 2
    assert (
        "would share an id with another under this map" in json.loads(collapsed.stdout)["details"]
    )
    assert not mappings_path().exists()
    assert len(list(db.load_records(settings.user_id, "contacts"))) == len(fub_people())

    many = [{"id": i, "name": f"Deal {i}", "alt": i if i % 2 else "lots"} for i in range(1, 5003)]
    cache(db, settings, "followupboss", "deals", many)
    mine = '# my maps\r\n[followupboss.deals]  # FUB\r\nname = "name"\r\n'
    mappings_path().write_bytes(mine.encode())
    done = crm(settings, "map", "followupboss", "deals", "amount", "alt", "--json")
    body = json.loads(done.stdout)
    assert done.returncode == 2, body
    assert body == {
        "success": False,
        "error": "Re-map of followupboss deals refused",
        "details": "2501 of 5002 stored records would not map (more than 20%); nothing"
        " changed; mappings.toml put back as it was",
    }
    assert mappings_path().read_bytes() == mine.encode()  # comments and line endings too
    assert {r.amount for r in db.load_records(settings.user_id, "deals")} == {None}


@SQLITE_ONLY
def test_a_problem_already_in_the_file_exits_3_either_way(db, settings):
    mappings_path().parent.mkdir(parents=True, exist_ok=True)
    mappings_path().write_text('[zillow.contacts]\ncompany = "x"\n')
    plain = crm(settings, "map", "followupboss", "contacts", "custom.lender", "x", "--json")
    labelled = crm(
        settings, "map", "followupboss", "contacts", "custom.lender", "x", "--label", "L",
        "--json",
    )  # fmt: skip
    assert plain.returncode == labelled.returncode == 3
    assert json.loads(plain.stdout) == json.loads(labelled.stdout)
    assert json.loads(plain.stdout)["error"] == "Configuration error"
    assert "line 1: unknown source 'zillow'" in json.loads(plain.stdout)["details"]
    assert mappings_path().read_text() == '[zillow.contacts]\ncompany = "x"\n'


@SQLITE_ONLY
async def test_a_running_engine_follows_a_mapping_saved_by_another_process(db, settings):
    """`crm-tui map` in a shell while the app (or `sync --watch`) runs: the app's next sync
    maps with the saved file, and does not write the old mapping back over the re-map."""
    import httpx
    import respx

    from crm_tui.sync.engine import SyncEngine

    engine = SyncEngine(settings, CacheStore(settings.user_id, db))
    people = fub_people()[:30]
    assert engine.source("followupboss").maps["contacts"].get("custom.lender") is None
    crm(settings, "map", "followupboss", "contacts", "custom.lender", "customLender", "--no-remap")
    with respx.mock(assert_all_called=False) as vendor:
        vendor.get(url__regex=r".*/people.*").mock(
            return_value=httpx.Response(200, json={"_metadata": {"total": 30}, "people": people})
        )
        vendor.get(url__regex=r".*").mock(return_value=httpx.Response(200, json={}))
        await engine.sync_source("followupboss")
    store = engine.store
    lenders = {
        r.remote_id: r.custom.get("lender") for r in store.records("contacts", "followupboss")
    }
    assert lenders[str(people[0]["id"])] == people[0]["customLender"]
    assert sum(v is not None for v in lenders.values()) == sum("customLender" in p for p in people)
    await engine.aclose()


def test_fill_rates_read_as_people_expect() -> None:
    from crm_tui.fields.discover import FieldInfo

    def info(filled: int, rate: float) -> FieldInfo:
        return FieldInfo("background", ("string",), filled, rate, (), ())

    assert info(0, 0.0).fill_text() == "0%"
    assert info(1, 1 / 1999).fill_text() == "<1%"  # held by one record: not "0%"
    assert info(740, 0.74).fill_text() == "74%"
    assert info(740, 0.74).fill_text(estimated=True) == "~74%"
    assert info(0, 0.0).fill_text(estimated=True) == "0%"
    assert info(1991, 1991 / 1999).fill_text() == ">99%"  # 99.6%: not all of them
    assert info(1991, 1991 / 1999).fill_text(estimated=True) == "~>99%"
    assert info(1989, 1989 / 1999).fill_text() == "99%"
    assert info(1999, 1.0).fill_text() == "100%"  # every record


async def test_the_store_after_a_remap_holds_what_the_database_committed(db, settings):
    """The re-map hands the store the records it wrote (no second read of the stream):
    they must be exactly what a fresh load of the database gives."""
    people = fub_people()
    cache(db, settings, "followupboss", "contacts", people)
    store = CacheStore(settings.user_id, db)
    await store.load()
    column = Column("price", "Price", "number")
    save(db, settings, "followupboss", "contacts", "custom.price", "customPriceRange", column)
    report = await remap(store, settings, "followupboss", "contacts")
    assert report.kept == 0
    shown = {r.id: r.to_json() for r in store.records("contacts", "followupboss")}
    fresh = CacheStore(settings.user_id, db)
    await fresh.load()
    assert shown == {r.id: r.to_json() for r in fresh.records("contacts", "followupboss")}
    prices = [v for v in (j["custom"].get("price") for j in shown.values()) if v is not None]
    assert len(prices) == sum("customPriceRange" in p for p in people)


def test_the_vendors_field_labels_and_paths_come_out_plain() -> None:
    """Field metadata is CRM text as payloads are: no escape, C1 or bidi character reaches a
    label, and a path no map could name is left out."""
    from crm_tui.fields.discover import discover
    from crm_tui.sources.kit import VendorField

    vendor = [
        VendorField("customLender", "Lender\x1b[2J\u202e\x9b31m"),
        VendorField("evil\x1b]0;pwn\x07", "x"),
    ]
    payloads = ['{"id": 1, "customLender": "Q"}']
    found = discover("followupboss", "contacts", payloads, 1, {}, {}, {}, vendor)
    listed = {f.path: f.vendor_label for f in found.fields}
    assert listed["customLender"] == "Lender [2J  31m"  # each control a space
    assert not any("evil" in path for path in listed)
