"""Edits of vendor records over real loopback, through real processes: the CLI killed with
SIGKILL at each step of an edit's way to the vendor, the vendor down and back, the vendor
changing the record behind the product's back. Afterwards the vendor has each edit exactly
once, and the outbox says so.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_tui.demo.servers import DemoCredentials, DemoServers, Faults, start_demo_servers
from crm_tui.models import Contact
from crm_tui.store import CacheStore, Database
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.sync.engine import SyncEngine
from crm_tui.writeback.service import WriteBack
from tests.helpers.env import DEMO_CONTACTS, make_settings, run_crm
from tests.helpers.reliability import REPORT

SEED = 13
CANARY = "canary-fub-key-0b5e"


@pytest.fixture(scope="module")
def faults() -> Faults:
    return Faults()


@pytest.fixture(scope="module")
def servers(faults: Faults) -> Iterator[DemoServers]:
    credentials = DemoCredentials(fub_key=CANARY)
    running = start_demo_servers(
        contacts=DEMO_CONTACTS,
        seed=SEED,
        faults=faults,
        credentials=credentials,
        fub_rate_limit=10_000,
    )
    yield running
    running.stop()


@pytest.fixture
def env(servers: DemoServers, tmp_path: Path) -> dict[str, str]:
    fub = {k: v for k, v in servers.env().items() if k.startswith("FUB_")}
    values = {**fub, "CRM_DATA_DIR": str(tmp_path / "data"), "CRM_USER_ID": "team"}
    synced = run_crm("sync", "followupboss", "--json", env=values)
    assert synced.returncode == 0, synced.stderr
    return values


def vendor(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=env["FUB_API_BASE_URL"] + "/", auth=(env["FUB_API_KEY"], ""))


def outbox(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = run_crm("outbox", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    payload = json.loads(listed.stdout)
    return payload["outbox"]


@pytest.mark.parametrize("crash_at", ["outbox:saved", "outbox:sending", "outbox:answered"])
def test_an_edit_killed_at_any_step_reaches_the_vendor_once(env, crash_at):
    last = f"Killed{crash_at.split(':')[1].title()}"
    killed = run_crm(
        "edit",
        "followupboss:5",
        "--type",
        "contact",
        "--last-name",
        last,
        "--json",
        env={**env, "CRM_CRASH_AT": crash_at},
    )
    assert killed.returncode == -signal.SIGKILL
    [entry] = outbox(env)
    assert entry["after"] == {"last_name": last}  # saved before anything left
    resent = run_crm("outbox", "send", "--json", env=env)
    assert resent.returncode == 0, resent.stdout + resent.stderr
    [entry] = outbox(env)
    assert entry["state"] == "done", entry
    with vendor(env) as client:
        assert client.get("people/5").json()["lastName"] == last
    REPORT.crashes.append((0, 0.0, f"edit killed at {crash_at}: sent once, done"))


def test_a_note_killed_after_the_vendor_answered_is_not_added_twice(env):
    text = "Called, wants a showing Sat"
    killed = run_crm(
        "note", "followupboss:6", text, "--json", env={**env, "CRM_CRASH_AT": "outbox:answered"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert run_crm("outbox", "send", "--json", env=env).returncode == 0
    [entry] = outbox(env)
    assert entry["state"] == "done" and "arrived" in entry["answer"]
    with vendor(env) as client:
        notes = client.get("notes", params={"personId": 6}).json()["notes"]
    assert [n["body"] for n in notes].count(text) == 1


def test_no_secret_reaches_the_outbox_the_audit_or_a_dry_run(env):
    dry = run_crm(
        "edit",
        "followupboss:7",
        "--type",
        "contact",
        "--stage",
        "Lead",
        "--dry-run",
        "--json",
        env=env,
    )
    edit = run_crm(
        "edit",
        "followupboss:7",
        "--type",
        "contact",
        "--last-name",
        "Canary",
        "--json",
        env=env,
    )
    listed = run_crm("outbox", "--json", env=env)
    database = (Path(env["CRM_DATA_DIR"]) / "crm.sqlite3").read_bytes()
    for text in (dry.stdout, dry.stderr, edit.stdout, edit.stderr, listed.stdout):
        assert CANARY not in text
    assert CANARY.encode() not in database
    assert "***" in dry.stdout  # the header is named, its value masked
    REPORT.canaries += 1


@pytest.fixture
async def engine(servers: DemoServers, tmp_path: Path, open_db: Callable[[], Database]):
    """In-process, on each back end (the processes above run the CLI: SQLite's alone)."""
    fub = {k.lower(): v for k, v in servers.env().items() if k.startswith("FUB_")}
    settings = make_settings(tmp_path, **fub)
    db = open_db()
    store = CacheStore(settings.user_id, db)
    running = SyncEngine(settings, store)
    await running.sync_source("followupboss")
    yield running
    await running.aclose()
    db.close()


def person(engine: SyncEngine, n: int) -> Contact:
    """The n-th Follow Up Boss person in the cache with a live stage; each back end's of
    people of its own, as the module's servers keep what the run before changed."""
    live = [c for c in engine.store.contacts("followupboss") if c.stage != "Trash"]
    first = 2 if isinstance(engine.store.db, PostgresDatabase) else 0
    return sorted(live, key=lambda c: int(c.remote_id))[first + n]


@pytest.mark.usefixtures("no_retry_sleep")
async def test_an_edit_made_while_the_vendor_is_down_goes_out_when_it_returns(engine, faults):
    wb = WriteBack(engine)
    record = person(engine, 0)
    await wb.edit(record, {"last_name": "Offline"})
    faults.error_rate = 1.0
    try:
        [waiting] = await wb.drain()
    finally:
        faults.error_rate = 0.0
    assert waiting.state == "pending" and "HTTP 50" in waiting.error
    assert engine.store.get("contacts", record.id).last_name == "Offline"  # still shown
    [sent] = await wb.drain()
    assert sent.state == "done"
    assert engine.store.pending(record.id) is None


async def test_a_change_at_the_vendor_meanwhile_is_never_overwritten(engine, servers):
    wb = WriteBack(engine)
    record = person(engine, 1)
    entry = await wb.edit(record, {"last_name": "Mine"})
    index = int(record.remote_id) - 1  # the simulator's person i has id i + 1
    servers.apply_change("followupboss:people", "update", index, patch={"lastName": "Theirs"})
    [stopped] = await wb.drain()
    assert stopped.state == "conflict" and stopped.theirs == {"last_name": "Theirs"}
    at_vendor = servers.overlay.get("followupboss:people", index)
    assert at_vendor.patch["lastName"] == "Theirs"  # not overwritten
    await wb.settle(entry.id, {"last_name": "mine"})
    [sent] = await wb.drain()
    assert sent.state == "done"
