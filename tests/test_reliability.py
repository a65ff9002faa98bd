"""Reliability: every fault alone and all together over real sockets, and crashes mid-sync.

The faulty servers serve a different dataset (another seed) from the one synced first, so
"a failed stream keeps the previous good data" cannot pass by accident.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_tui.app import make_app
from crm_tui.config import Settings
from crm_tui.demo.servers import DemoCredentials, DemoServers, Faults, start_demo_servers
from crm_tui.models import Outcome, SyncState
from crm_tui.search.index import SearchIndex
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from tests.helpers.dataset import STREAMS, comparable, expected, sync_all
from tests.helpers.env import make_settings
from tests.helpers.reliability import FULL, REPORT, FaultRun
from tests.helpers.tui import idle, until

CONTACTS = 2000 if FULL else 260
GOOD_SEED, NEW_SEED = 11, 12
#: Count-based faults fire every n requests; a bigger dataset makes more requests, so n
#: grows with it. Kept above twice the paginator's concurrency, or a burst or an expiry
#: would meet every retry of the same page and no retry policy could get past it.
EVERY = 5 if FULL else 1
TRANSIENT = dict(
    error_rate=0.1,
    burst_every=11 * EVERY,
    token_expiry_every=5 * EVERY,
    reset_rate=0.05,
    malformed_request=3,
    hang_request=4,
    hang_seconds=30,
    overlap_pages=True,
)
SCENARIOS: dict[str, Faults] = {
    "20% 5xx": Faults(seed=1, error_rate=0.2),
    "429 bursts with Retry-After": Faults(seed=2, burst_every=4 * EVERY, retry_after="1"),
    "connection resets": Faults(seed=3, reset_rate=0.3),
    "a page hangs past the deadline": Faults(seed=4, hang_request=2, hang_seconds=30),
    "a malformed JSON page": Faults(seed=5, malformed_request=2),
    "token expiry mid-sync": Faults(seed=6, token_expiry_every=3 * EVERY),
    "the same record on two pages": Faults(seed=7, overlap_pages=True),
    "server goes away mid-stream": Faults(seed=8, gone_after=3 * EVERY),
    "server answers only 5xx": Faults(seed=9, error_rate=1.0),
    "all transient faults together": Faults(seed=10, **TRANSIENT),  # type: ignore[arg-type]
    "all together, then the server goes away": Faults(
        seed=11,
        gone_after=6 * EVERY,
        **TRANSIENT,  # type: ignore[arg-type]
    ),
}
LOAD_QUERIES = ("an", "jo sm", "austin", "555", "status:lead ma")
#: Faults no retry can get past: some stream must fail, and keep its old data.
FATAL = {
    "server goes away mid-stream",
    "server answers only 5xx",
    "all together, then the server goes away",
}


def env_of(servers: DemoServers) -> dict[str, Any]:
    return {k.lower(): v for k, v in servers.env().items()}


@pytest.fixture(scope="module")
def good_servers() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=CONTACTS, seed=GOOD_SEED, fub_rate_limit=10_000)
    yield servers
    servers.stop()


def snapshot(store: CacheStore) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (name, stream): {r.id: comparable(r) for r in store.records(stream, name)}
        for name, streams in STREAMS.items()
        for stream in streams
    }


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.usefixtures("no_retry_sleep")
async def test_every_fault_keeps_the_cache_exact(tmp_path, good_servers, scenario):
    REPORT.contacts = CONTACTS
    settings = make_settings(tmp_path, crm_http_timeout_seconds=0.5, **env_of(good_servers))
    first, reports = await sync_all(settings)
    assert all(r.outcome is Outcome.SUCCESS for r in reports.values())
    previous = snapshot(first.store)

    faulty = start_demo_servers(
        contacts=CONTACTS, seed=NEW_SEED, faults=SCENARIOS[scenario], fub_rate_limit=10_000
    )
    try:
        bad = make_settings(tmp_path, crm_http_timeout_seconds=0.5, **env_of(faulty))
        engine, reports = await sync_all(bad, full=True)  # another dataset: read it all
        run = FaultRun(scenario)
        runs = {r["source"]: r for r in reversed(engine.store.db.list_runs(bad.user_id))}
        for name, streams in STREAMS.items():
            report, audit = reports[name], runs[name]
            assert audit["outcome"] == str(report.outcome)
            assert (audit["error_message"] or None) == (report.error or None)
            status = engine.store.status(name)
            if report.outcome is Outcome.SUCCESS:
                assert status.state is SyncState.IDLE and not status.last_error
            else:
                assert status.state is SyncState.ERROR and status.last_error
                assert report.error and report.error in status.last_error
            source = engine.source(name)
            audit_streams = {s["stream"]: s for s in audit["streams"]}
            for stream in streams:
                result = report.streams[stream]
                cached = {r.id: comparable(r) for r in engine.store.records(stream, name)}
                row = audit_streams[stream]
                assert row["outcome"] == str(result.outcome)
                if result.success:
                    want = expected(source, stream, faulty)
                    assert cached == want, (name, stream)  # nothing lost, doubled or changed
                    run.streams_ok += 1
                    run.records_compared += len(want)
                    quarantined = engine.store.db.list_quarantine(bad.user_id, row["id"])
                    missing_id = [q for q in quarantined if q["reason"] == "missing id"]
                    assert len(missing_id) == (1 if stream == "contacts" else 0), (name, stream)
                    assert row["quarantined"] == len(missing_id)
                    run.quarantined += len(missing_id)
                    run.duplicates += row["duplicates"]
                else:
                    assert cached == previous[(name, stream)], (name, stream)
                    assert row["error_message"] == result.error and result.error
                    run.streams_failed += 1
                    run.records_compared += len(cached)
                run.retries += row["retries"]
        if scenario in FATAL:
            assert run.streams_failed > 0
        else:
            assert run.streams_failed == 0, {n: r.error for n, r in reports.items()}
        if scenario != "the same record on two pages":
            assert run.retries > 0  # the fault really happened
        if SCENARIOS[scenario].overlap_pages:
            assert run.duplicates > 0
        REPORT.faults.append(run)
    finally:
        faulty.stop()


# -- crashes -------------------------------------------------------------------------------

CRASH_SEEDS = range(12 if FULL else 4)


@pytest.fixture(scope="module")
def slow_servers() -> Iterator[DemoServers]:
    """The new dataset, slowly: a sync takes long enough to be killed in the middle."""
    servers = start_demo_servers(
        contacts=CONTACTS, seed=NEW_SEED, faults=Faults(latency=0.3), fub_rate_limit=10_000
    )
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def sync_seconds(slow_servers: DemoServers, tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long a whole `crm-tui sync` takes here, start to exit: kills land inside it."""
    env = {**slow_servers.env(), "CRM_DATA_DIR": str(tmp_path_factory.mktemp("timing"))}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "crm_tui", "sync", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        check=True,
    )
    return time.monotonic() - started


def kill_sync_after(seconds: float, env: dict[str, str]) -> bool:
    """Start `crm-tui sync`, SIGKILL it after `seconds`; True if it had already finished."""
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_tui", "sync", "--full", "--json"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(seconds)
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return finished


@pytest.mark.parametrize("seed", CRASH_SEEDS)
async def test_a_sync_killed_at_any_point_leaves_old_or_new_never_a_mix(
    tmp_path, good_servers, slow_servers, sync_seconds, seed
):
    REPORT.contacts = CONTACTS
    settings = make_settings(tmp_path, **env_of(good_servers))
    first, _ = await sync_all(settings)
    previous = snapshot(first.store)
    first.store.db.close()

    # anywhere from the interpreter starting to the last commit
    kill_at = random.Random(seed).uniform(0.15, 0.95) * sync_seconds
    env = {
        **slow_servers.env(),
        "CRM_USER_ID": settings.user_id,
        "CRM_DATA_DIR": str(settings.crm_data_dir),
    }
    finished = kill_sync_after(kill_at, env)

    db = Database(settings.database_path)  # opens (and recovers the WAL) cleanly
    assert db._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = CacheStore(settings.user_id, db)
    store.load_sync()
    after = snapshot(store)
    db.close()
    fresh = make_settings(tmp_path, **env_of(slow_servers))
    engine, reports = await sync_all(fresh, full=True)  # the next sync completes
    assert all(r.outcome is Outcome.SUCCESS for r in reports.values())
    states = []
    for (name, stream), cached in after.items():
        new = expected(engine.source(name), stream, slow_servers)
        assert cached in (previous[(name, stream)], new), (name, stream)
        states.append("new" if cached == new else "old")
        assert {r.id: comparable(r) for r in engine.store.records(stream, name)} == new
    new_streams = states.count("new")
    if finished:
        state = "already finished"
    elif new_streams in (0, len(states)):
        state = "every stream old" if new_streams == 0 else "every stream new"
    else:
        state = "some streams new, each whole"
    REPORT.crashes.append((seed, kill_at, state))


# -- secrets -------------------------------------------------------------------------------


def secret_fields() -> list[str]:
    # Not the team database's URL: a canary there is no URL, so every command would stop
    # at the configuration; its password's canaries are test_team_security's.
    return [
        name
        for name, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation) and name != "crm_database_url"
    ]


def crm_tui(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout, done.stderr


def every_file(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def leaks(canaries: dict[str, str], places: dict[str, bytes]) -> list[tuple[str, str]]:
    """(place, which secret) for every canary found, raw or in the forms HTTP puts it in."""
    found = []
    for name, value in canaries.items():
        forms = [value, base64.b64encode(f"{value}:".encode()).decode()]
        for place, content in places.items():
            if any(form.encode() in content for form in forms):
                found.append((place, name))
    return found


@pytest.mark.usefixtures("no_retry_sleep")
async def test_secret_canaries_appear_nowhere(tmp_path: Path):
    token = secrets.token_hex(4)
    canaries = {name: f"canary-{name}-{token}" for name in secret_fields()}
    wrong = {name: f"wrong-canary-{name}-{token}" for name in secret_fields()}
    servers = canary_servers(canaries)
    try:
        base = {
            **servers.env(),
            "CRM_DATA_DIR": str(tmp_path / "data"),
            "CRM_HTTP_TIMEOUT_SECONDS": "0.5",
            "FUB_SYSTEM": "crm-tui-tests",
        }
        good = {**base, **{name.upper(): value for name, value in canaries.items()}}
        bad = {**base, **{name.upper(): value for name, value in wrong.items()}}
        outputs = every_command_output(good, bad, tmp_path / "exports")
        assert any(b"authentication failed" in v.lower() for v in outputs.values())
        assert any(b"Traceback" in v for v in outputs.values())  # --debug printed some
        outputs |= await screens_of_the_app(tmp_path, good)
    finally:
        servers.stop()
    files = every_file(tmp_path)
    assert any(p.endswith(".log") for p in files) and any("sqlite" in p for p in files)
    places = {**outputs, **files}
    assert leaks({**canaries, **wrong}, places) == []
    REPORT.canaries = len(canaries) + len(wrong)
    REPORT.canary_places = len(places)


def canary_servers(canaries: dict[str, str]) -> DemoServers:
    """The demo servers, faulty so errors, retries and token refreshes all get a chance to
    print a secret, each vendor asking for its canary."""
    return start_demo_servers(
        contacts=CONTACTS,
        seed=NEW_SEED,
        # Brivity's read timeout is 90 s: a short hang, that still times out the others
        faults=Faults(seed=5, error_rate=0.1, hang_request=3, hang_seconds=2, token_expiry_every=2),
        credentials=DemoCredentials(
            brivity_key=canaries["brivity_api_key"],
            fub_key=canaries["fub_api_key"],
            tp_client_secret=canaries["topproducer_client_secret"],
            tp_api_key=canaries["topproducer_api_key"],
            hubspot_token=canaries["hubspot_access_token"],
            pipedrive_token=canaries["pipedrive_api_token"],
            lofty_key=canaries["lofty_api_key"],
        ),
        fub_rate_limit=10_000,
    )


def every_command_output(
    good: dict[str, str], bad: dict[str, str], export_dir: Path
) -> dict[str, bytes]:
    """The stdout and stderr of each command, with the right keys and with wrong ones."""
    export_dir.mkdir()
    runs = [
        (good, ["--debug", "sync", "--json"]),
        (bad, ["--debug", "sync", "--json"]),  # authentication errors
        (bad, ["--debug", "test-connection", "--json"]),
        (good, ["--debug", "test-connection", "--json"]),
        (good, ["--debug", "status", "--json"]),
        (good, ["cached-data", "--json"]),
        (good, ["--debug", "search", "an", "--json"]),
        (good, ["duplicates", "--json"]),
        (good, ["export", "--format", "json"]),
        (good, ["export", "--format", "csv", "-o", str(export_dir / "contacts.csv")]),
        (good, ["export", "--format", "vcf", "-o", str(export_dir / "contacts.vcf")]),
        (bad, ["--debug", "merge", "p-none", "--json"]),
        (bad, ["--debug", "merge", "p-none"]),  # a traceback on stderr
        (bad, ["--debug", "test-connection", "brivity"]),
    ]
    outputs: dict[str, bytes] = {}
    for number, (env, args) in enumerate(runs):
        stdout, stderr = crm_tui(args, env)
        outputs[f"stdout of {' '.join(args)} ({number})"] = stdout.encode()
        outputs[f"stderr of {' '.join(args)} ({number})"] = stderr.encode()
    return outputs


async def screens_of_the_app(tmp_path: Path, good: dict[str, str]) -> dict[str, bytes]:
    """What the TUI shows on the screens a secret could reach, with the right keys."""
    settings = make_settings(
        tmp_path, **{k.lower(): v for k, v in good.items() if k != "CRM_DATA_DIR"}
    )
    app = make_app(settings, sync_stale=False)
    screens: dict[str, bytes] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded)
        for key in ("4", "enter", "escape", "f1", "5"):
            await pilot.press(key)
            await idle(pilot)
            screens[f"screen after {key}"] = app.export_screenshot().encode()
    return screens


def test_the_canary_check_can_see_a_leak():
    assert leaks({"k": "canary-k"}, {"log": b"... canary-k ..."}) == [("log", "k")]
    basic = base64.b64encode(b"canary-k:")
    assert leaks({"k": "canary-k"}, {"header": b"Basic " + basic}) == [("header", "k")]


# -- files and isolation -------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_is_private_whatever_the_umask(tmp_path, good_servers):
    data_dir, exports = tmp_path / "data", tmp_path / "exports"
    exports.mkdir()
    env = {**good_servers.env(), "CRM_DATA_DIR": str(data_dir), "CRM_USER_ID": "alice"}
    commands = [["sync", "--json"], ["status", "--json"]]
    commands += [
        ["export", "--format", fmt, "-o", str(exports / f"contacts.{fmt}")]
        for fmt in ("csv", "xlsx", "json", "vcf")
    ]
    for args in commands:
        subprocess.run(
            [sys.executable, "-m", "crm_tui", *args],
            env={**os.environ, **env},
            capture_output=True,
            check=True,
            preexec_fn=lambda: os.umask(0),  # in the child only
        )
    assert mode(data_dir) == 0o700
    logs = list(data_dir.rglob("*.log"))
    files = [p for p in [*data_dir.rglob("*"), *exports.iterdir()] if p.is_file()]
    folders = [data_dir, *(p for p in data_dir.rglob("*") if p.is_dir())]
    assert logs and len([f for f in files if f.suffix == ".sqlite3"]) == 1
    assert {str(f): oct(mode(f)) for f in files} == {str(f): oct(0o600) for f in files}
    assert {str(d): oct(mode(d)) for d in folders} == {str(d): oct(0o700) for d in folders}
    REPORT.umask_files = len(files)


def test_one_user_never_sees_another_users_data(tmp_path, good_servers):
    alice = {**good_servers.env(), "CRM_DATA_DIR": str(tmp_path / "data"), "CRM_USER_ID": "alice"}
    bob = {**alice, "CRM_USER_ID": "bob"}
    crm_tui(["sync", "--json"], alice)
    clusters = json.loads(crm_tui(["duplicates", "--json"], alice)[0])["clusters"]
    assert clusters
    alice_ids = {c["members"][0].split(":", 1)[1] for c in clusters}
    outputs = {
        "status": crm_tui(["status", "--json"], bob)[0],
        "cached-data": crm_tui(["cached-data", "--json"], bob)[0],
        "contacts": crm_tui(["contacts", "--json"], bob)[0],
        "deals": crm_tui(["deals", "--json"], bob)[0],
        "search": crm_tui(["search", "an", "--json"], bob)[0],
        "export": crm_tui(["export", "--format", "json"], bob)[0],
        "duplicates": crm_tui(["duplicates", "--json"], bob)[0],
        "merge": crm_tui(["merge", clusters[0]["id"], "--json"], bob)[0],
    }
    assert json.loads(outputs["contacts"])["count"] == 0
    assert json.loads(outputs["search"])["total"] == 0
    assert json.loads(outputs["duplicates"])["total"] == 0
    assert json.loads(outputs["merge"])["error"] == "Unknown cluster"
    status = json.loads(outputs["status"])["status"]
    assert all(s["contactCount"] == 0 for s in status.values())
    for name, text in outputs.items():
        assert not any(f'"{remote}"' in text for remote in alice_ids), name


# -- load ------------------------------------------------------------------------------------


def hits(result: Any) -> tuple[int, dict[str, list[str]]]:
    """What a person sees of a search: the total and the records, in order, per source."""
    return result.total, {s: [h.record.id for h in g] for s, g in result.groups.items()}


@pytest.mark.usefixtures("no_retry_sleep")
async def test_searches_stay_correct_through_back_to_back_syncs(tmp_path, good_servers):
    """Searching every 10 ms through repeated syncs of the same dataset: every answer is the
    same, whether it came from the old index or the new one (the figures are load_bench's)."""
    syncs = 5 if FULL else 2
    settings = make_settings(tmp_path, **env_of(good_servers))
    store = CacheStore(settings.user_id, Database(settings.database_path))
    engine = SyncEngine(settings, store)
    index = SearchIndex()
    await engine.sync_all()
    await asyncio.to_thread(index.rebuild_from, store)
    baseline = {q: hits(index.search(q, "contacts")) for q in LOAD_QUERIES}
    answers: list[tuple[str, object]] = []
    stop = asyncio.Event()

    async def search_every_10ms() -> None:
        n = 0
        while not stop.is_set():
            query = LOAD_QUERIES[n % len(LOAD_QUERIES)]
            n += 1
            result = await asyncio.to_thread(index.search, query, "contacts")
            answers.append((query, hits(result)))
            await asyncio.sleep(0.01)

    searcher = asyncio.create_task(search_every_10ms())
    try:
        for _ in range(syncs):
            reports = await engine.sync_all()
            assert all(r.outcome is Outcome.SUCCESS for r in reports.values())
            await asyncio.to_thread(index.rebuild_from, store, None, ("contacts", "deals"))
    finally:
        stop.set()
        await searcher
        await engine.aclose()
    assert len(answers) > syncs
    assert all(answer == baseline[query] for query, answer in answers)
    REPORT.load_syncs += syncs
    REPORT.load_searches += len(answers)
