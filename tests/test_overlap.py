"""Many processes on one data dir: overlapping syncs, syncs beside local edits and imports,
and a sync killed in the middle of its commit. Real processes, real sockets, on both back
ends: a SQLite file in the data dir, and a team database in PostgreSQL.

After every run, each stream equals the server's dataset record by record, and every local
contact and imported row is there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from crm_tui.config import Settings
from crm_tui.demo.servers import DemoServers, Faults, start_demo_servers
from crm_tui.models import RecordKind, SyncState
from crm_tui.sources.base import SourceContext
from crm_tui.sources.registry import build_source
from crm_tui.store import CacheStore
from tests.helpers.backends import Backing
from tests.helpers.dataset import STREAMS, comparable, expected
from tests.helpers.env import DEMO_CONTACTS, make_settings
from tests.helpers.reliability import FULL, REPORT

SEED = 12
CONTACTS = 2000 if FULL else DEMO_CONTACTS


@pytest.fixture(scope="module")
def slow_servers() -> Iterator[DemoServers]:
    """Every data request takes a while: a sync lasts long enough to be overlapped."""
    servers = start_demo_servers(
        contacts=CONTACTS, seed=SEED, faults=Faults(latency=0.05), fub_rate_limit=10_000
    )
    yield servers
    servers.stop()


def environment(servers: DemoServers, backing: Backing, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **servers.env(),
        "CRM_DATA_DIR": str(backing.data_dir),
        "CRM_USER_ID": "team",
        **backing.env(),
        **extra,
    }


class Child(subprocess.Popen[str]):
    """A crm-tui process whose output is read as it comes: a test waits for what it says
    (a loaded machine starts a process in seconds, not the moment a sleep allows)."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...]) -> None:
        super().__init__(
            [sys.executable, "-m", "crm_tui", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(pipe, into), daemon=True)
            for pipe, into in ((self.stdout, self.out), (self.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(pipe: Any, into: list[str]) -> None:
        for line in pipe:
            into.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.err)

    def outcome(self, timeout: float) -> tuple[int, str, str]:
        self.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return self.returncode, "".join(self.out), "".join(self.err)


def start(env: dict[str, str], *args: str) -> Child:
    return Child(env, args)


def finish(process: Child, timeout: float = 120) -> tuple[int, str, str]:
    return process.outcome(timeout)


def cached(backing: Backing, source: str, stream: RecordKind) -> dict[str, dict[str, Any]]:
    db = backing.open()
    try:
        store = CacheStore("team", db)
        store.load_sync()
        return {r.id: comparable(r) for r in store.records(stream, source)}
    finally:
        db.close()


def dataset(servers: DemoServers, tmp_path: Path, source: str, stream: RecordKind) -> dict:
    settings = make_settings(tmp_path, **{k.lower(): v for k, v in servers.env().items()})
    return expected(build_source(source, SourceContext(settings, "team")), stream, servers)


def leftovers(backing: Backing) -> dict[str, int]:
    """What a finished run must not leave: leases, unfinished generations, owners, and rows
    outside every visible generation."""
    db = backing.open()
    try:
        conn = db._conn
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("leases", "pending_generations", "owners")
        }
        for kind in ("contacts", "deals"):
            counts[f"hidden {kind}"] = conn.execute(
                f"SELECT count(*) FROM {kind} WHERE generation != 0"
                " AND generation NOT IN (SELECT generation FROM stream_generations)"
                " AND generation NOT IN (SELECT generation FROM imports)"
            ).fetchone()[0]
        return counts
    finally:
        db.close()


NOTHING_LEFT = {
    "leases": 0,
    "pending_generations": 0,
    "owners": 0,
    "hidden contacts": 0,
    "hidden deals": 0,
}


def reported_counts(stdout: str, source: str) -> dict[str, int]:
    results = json.loads(stdout)["results"][source]
    return {stream: item["count"] for stream, item in results.items()}


# -- two syncs of one stream -------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.02)


#: Where the first sync is when the second starts (a fault point it pauses at).
PAUSES = {
    "second starts while the first reads contacts": "page:followupboss:contacts",
    "second starts while the first reads deals": "page:followupboss:deals",
    "second starts inside the first's commit": "commit",
}
ORDERS = ("both at once", *PAUSES)
FULL_SYNC = ("sync", "followupboss", "--full", "--json")


def start_inside(
    env: dict[str, str],
    tmp_path: Path,
    point: str,
    *second_args: str,
    release: bool = True,
    crash_at: str | None = None,
    first_args: tuple[str, ...] = FULL_SYNC,
) -> tuple[Child, Child]:
    """A first sync paused at `point`, a second command started there; then both go on
    (or, without `release`, the first stays paused for the caller to deal with)."""
    barrier = tmp_path / "paused"
    paused = {**env, "CRM_PAUSE_AT": point, "CRM_PAUSE_FILE": str(barrier)}
    if crash_at is not None:
        paused["CRM_CRASH_AT"] = crash_at
    first = start(paused, *first_args)
    wait_until(barrier.exists, f"the first sync at {point}")
    second = start(env, *(second_args or FULL_SYNC))
    if point == "commit":  # the second waits for the commit's lock, and says nothing
        time.sleep(1.5)
    else:  # the second waits for the lease and says so, or is done (--no-wait, an import)
        wait_until(
            lambda: second.said("waiting for") or second.poll() is not None,
            "the second command waiting for the first",
        )
    if release:
        barrier.unlink()
    return first, second


def start_together(env: dict[str, str], tmp_path: Path, point: str) -> tuple[Child, Child]:
    """Two syncs that reach `point` (before their first lease) and are let go at once: a
    loaded machine may start one process seconds after the other, and then they would
    never meet."""
    barriers = [tmp_path / f"ready-{n}" for n in (1, 2)]
    children = tuple(
        start({**env, "CRM_PAUSE_AT": point, "CRM_PAUSE_FILE": str(barrier)}, *FULL_SYNC)
        for barrier in barriers
    )
    wait_until(lambda: all(b.exists() for b in barriers), f"both syncs at {point}")
    for barrier in barriers:
        barrier.unlink()
    return children[0], children[1]


@pytest.mark.parametrize("order", ORDERS)
def test_two_overlapping_syncs_of_one_source_lose_nothing(tmp_path, backing, slow_servers, order):
    env = environment(slow_servers, backing)
    first = second = None
    if order == "both at once":
        first, second = start_together(env, tmp_path, "lease:followupboss:contacts")
    else:
        first, second = start_inside(env, tmp_path, PAUSES[order])
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    want = {s: dataset(slow_servers, tmp_path, "followupboss", s) for s in ("contacts", "deals")}
    for stream, records in want.items():
        assert cached(backing, "followupboss", stream) == records, stream
    for _, out, _ in results:  # each report says what its commit wrote, no more
        assert reported_counts(out, "followupboss") == {s: len(r) for s, r in want.items()}
    if order == "both at once":  # either may win the lease; the other waits
        assert any("waiting for the sync in process" in err for _, _, err in results)
    elif PAUSES[order].startswith("page:"):
        assert f"waiting for the sync in process {first.pid}" in results[1][2]
    # (inside the commit, the second waits for SQLite's lock; the streams may then take
    # turns without either waiting for a lease)
    assert leftovers(backing) == NOTHING_LEFT
    REPORT.overlaps.append((order, 2, sum(len(r) for r in want.values())))


def test_with_no_wait_a_busy_stream_exits_5_and_keeps_the_other_run_whole(
    tmp_path, backing, slow_servers
):
    env = environment(slow_servers, backing)
    no_wait = ("sync", "followupboss", "--no-wait", "--json")
    first, second = start_inside(env, tmp_path, "page:followupboss:contacts", *no_wait)
    code, out, err = finish(second)
    assert code == 5, err
    result = json.loads(out)["results"]["followupboss"]["contacts"]
    assert result["success"] is False and f"process {first.pid}" in result["error"]
    assert finish(first)[0] == 0
    want = dataset(slow_servers, tmp_path, "followupboss", "contacts")
    assert cached(backing, "followupboss", "contacts") == want
    REPORT.overlaps.append(("second with --no-wait", 2, len(want)))


@pytest.mark.parametrize("crash_at", ["commit", "mid-stream"])
def test_a_sync_killed_while_another_waits_is_taken_over(tmp_path, backing, slow_servers, crash_at):
    """The first sync dies holding the lease: in the middle of its commit (the transaction
    half done), or while reading pages (SIGKILL). The waiting one takes over at once, and
    nothing the dead one wrote survives."""
    env = environment(slow_servers, backing)
    if crash_at == "commit":
        first, second = start_inside(env, tmp_path, "page:followupboss:contacts", crash_at="commit")
        assert finish(first)[0] == -signal.SIGKILL
    else:
        first, second = start_inside(env, tmp_path, "page:followupboss:contacts", release=False)
        first.send_signal(signal.SIGKILL)  # paused, holding the lease
        first.wait(timeout=10)
    code, _, err = finish(second)
    assert code == 0, err
    assert f"waiting for the sync in process {first.pid}" in err
    compared = 0
    for stream in ("contacts", "deals"):
        want = dataset(slow_servers, tmp_path, "followupboss", stream)
        assert cached(backing, "followupboss", stream) == want, stream
        compared += len(want)
    assert leftovers(backing) == NOTHING_LEFT
    when = "in its commit" if crash_at == "commit" else "reading pages"
    REPORT.overlaps.append((f"first killed {when} (SIGKILL), second waiting", 2, compared))


def test_a_commit_killed_halfway_keeps_the_previous_good_data(tmp_path, backing, demo_servers):
    """SIGKILL inside the commit transaction: the next process sees the old rows whole."""
    env = environment(demo_servers, backing)
    assert finish(start(env, "sync", "followupboss", "--json"))[0] == 0
    before = cached(backing, "followupboss", "contacts")
    crashed = start({**env, "CRM_CRASH_AT": "commit"}, "sync", "followupboss", "--json")
    assert finish(crashed)[0] == -signal.SIGKILL
    assert cached(backing, "followupboss", "contacts") == before
    assert finish(start(env, "sync", "followupboss", "--json"))[0] == 0
    assert leftovers(backing) == NOTHING_LEFT


# -- whole syncs beside local edits ----------------------------------------------------------


def test_two_syncs_of_everything_and_a_loop_of_local_edits_lose_nothing(
    tmp_path, backing, slow_servers
):
    env = environment(slow_servers, backing)
    names = [f"Overlap{i}" for i in range(12)]
    script = (
        "import subprocess, sys\n"
        "for name in sys.argv[1:]:\n"
        "    subprocess.run([sys.executable, '-m', 'crm_tui', 'local', 'add-contact',\n"
        "                    '--first-name', name], check=True, capture_output=True)\n"
    )
    # The first sync of everything pauses as it reads the local CRM; local edits and a
    # second sync of everything start there.
    barrier = tmp_path / "paused"
    paused = {**env, "CRM_PAUSE_AT": "page:local:contacts", "CRM_PAUSE_FILE": str(barrier)}
    syncs = [start(paused, "sync", "--json")]
    wait_until(barrier.exists, "the first sync reading the local CRM")
    editor = subprocess.Popen([sys.executable, "-c", script, *names], env=env)
    syncs.append(start(env, "sync", "--json"))
    time.sleep(3)
    barrier.unlink()
    results = [finish(s, timeout=240) for s in syncs]
    assert editor.wait(timeout=240) == 0
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    compared = 0
    for source, streams in STREAMS.items():
        for stream in streams:
            want = dataset(slow_servers, tmp_path, source, stream)
            assert cached(backing, source, stream) == want, (source, stream)
            compared += len(want)
    local = cached(backing, "local", "contacts")
    assert sorted(r["first_name"] for r in local.values()) == sorted(names)
    db = backing.open()
    assert len(db.local_records("team", "contacts")) == len(names)
    db.close()
    assert leftovers(backing) == NOTHING_LEFT
    REPORT.overlaps.append(("sync of everything x2 + 12 local adds", 3, compared + len(names)))


# -- imports beside syncs --------------------------------------------------------------------

IMPORTED = [("imp-1", "Imogen", "Port"), ("imp-2", "Ida", "Extra"), ("imp-3", "Ivo", "Row")]


def extra_csv(folder: Path) -> Path:
    path = folder / "extra contacts.csv"
    lines = ["Contact ID,First Name,Last Name,Email"]
    lines += [f"{i},{first},{last},{first.lower()}@example.com" for i, first, last in IMPORTED]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_topproducer_whole(backing: Backing, servers: DemoServers, tmp_path: Path) -> int:
    want = dataset(servers, tmp_path, "topproducer", "contacts")
    have = cached(backing, "topproducer", "contacts")
    imported = {f"topproducer:{i}": first for i, first, _ in IMPORTED}
    assert {k: have[k]["first_name"] for k in imported if k in have} == imported
    assert {k: v for k, v in have.items() if k not in imported} == want
    return len(have)


@pytest.mark.parametrize("order", ["import during the sync", "import before the sync"])
def test_imported_rows_survive_every_sync_of_their_source(tmp_path, backing, slow_servers, order):
    env = environment(slow_servers, backing)
    csv = extra_csv(tmp_path)
    importing = ["import", "topproducer", str(csv), "--json"]
    if order == "import during the sync":
        syncing = ("sync", "topproducer", "--json")
        sync, importer = start_inside(
            env,
            tmp_path,
            "page:topproducer:contacts",
            *importing,
            release=False,
            first_args=syncing,
        )
        code, out, err = finish(importer)  # all of it while the sync holds its stream
        (tmp_path / "paused").unlink()
        assert finish(sync)[0] == 0
    else:
        code, out, err = finish(start(env, *importing))
        assert finish(start(env, "sync", "topproducer", "--json"))[0] == 0
    assert code == 0, err
    assert json.loads(out)["applied"][0]["written"] == len(IMPORTED)
    rows = assert_topproducer_whole(backing, slow_servers, tmp_path)
    assert finish(start(env, "sync", "topproducer", "--json"))[0] == 0  # and the next one
    assert assert_topproducer_whole(backing, slow_servers, tmp_path) == rows
    assert leftovers(backing) == NOTHING_LEFT
    REPORT.overlaps.append((order, 2, rows))


# -- the app beside a cron sync ----------------------------------------------------------------


@contextmanager
def cron_reading_contacts(
    tmp_path: Path, backing: Backing, servers: DemoServers
) -> Iterator[tuple[Child, Settings, Path]]:
    """A `crm-tui sync followupboss` paused as it reads contacts (holding the stream's
    lease), the settings of an app on the same store, and the file that holds the pause."""
    env = environment(servers, backing)
    barrier = tmp_path / "paused"
    paused = {**env, "CRM_PAUSE_AT": "page:followupboss:contacts", "CRM_PAUSE_FILE": str(barrier)}
    cron = start(paused, "sync", "followupboss", "--json")
    settings = make_settings(
        tmp_path,
        crm_user_id="team",
        **{k.lower(): v for k, v in servers.env().items()},
        **backing.settings(),
    )
    try:
        wait_until(barrier.exists, "the cron sync reading contacts")
        yield cron, settings, barrier
    finally:
        cron.kill()


async def followupboss_row(pilot: Any, table: Any, shows: Callable[[str], bool]) -> list[str]:
    """The Status row of Follow Up Boss once it `shows` what a test waits for (the watcher
    looks every second)."""
    from tests.helpers.tui import until

    def row() -> list[str]:
        return [str(cell) for cell in table.get_row("followupboss")]

    await until(pilot, lambda: shows(" ".join(row())), "the Follow Up Boss row to change")
    return row()


async def test_the_app_shows_it_waits_for_another_processes_sync(tmp_path, backing, slow_servers):
    from textual.widgets import DataTable

    from crm_tui.app import make_app
    from tests.helpers.tui import SIZE, settle

    with cron_reading_contacts(tmp_path, backing, slow_servers) as (cron, settings, barrier):
        app = make_app(settings, sync_stale=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            table = app.screen.query_one("#sources", DataTable)
            busy = f"busy: the sync in process {cron.pid}"
            row = await followupboss_row(pilot, table, lambda r: busy in r)
            assert row[1::4] == ["↻ elsewhere", busy]  # the State and Progress columns
            app.sync_source("followupboss")
            row = await followupboss_row(pilot, table, lambda r: "⧗ waiting" in r)
            assert "⧗ waiting" in row
            assert f"waiting for the sync in process {cron.pid}" in " ".join(row)
            barrier.unlink()
            await settle(pilot, app, limit=60)
            assert app.store.status("followupboss").state is SyncState.IDLE
            want = dataset(slow_servers, tmp_path, "followupboss", "contacts")
            assert {r.id: comparable(r) for r in app.store.contacts("followupboss")} == want
        assert (await asyncio.to_thread(finish, cron))[0] == 0


async def test_the_app_stops_showing_a_sync_whose_process_died(tmp_path, backing, slow_servers):
    from textual.widgets import DataTable

    from crm_tui.app import make_app
    from tests.helpers.tui import SIZE, settle

    with cron_reading_contacts(tmp_path, backing, slow_servers) as (cron, settings, _):
        app = make_app(settings, sync_stale=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            table = app.screen.query_one("#sources", DataTable)
            busy = f"busy: the sync in process {cron.pid}"
            assert busy in await followupboss_row(pilot, table, lambda r: busy in r)
            cron.kill()
            await asyncio.to_thread(cron.wait)
            row = await followupboss_row(pilot, table, lambda r: "busy:" not in r)
            assert not any("busy:" in cell for cell in row)


# -- status: what the last run left, whoever ran it ------------------------------------------


def test_a_run_that_ends_late_never_moves_last_sync_back(open_db):
    from crm_tui.models import SourceStatus

    db = open_db()
    db.save_status("team", SourceStatus("followupboss", last_sync="2026-11-26T15:38:21Z"))
    stale = SourceStatus("followupboss", last_sync="2026-11-26T15:36:19Z", last_error="boom")
    db.save_status("team", stale)
    saved = db.load_statuses("team")["followupboss"]
    assert (saved.last_sync, saved.last_error) == ("2026-11-26T15:38:21Z", "boom")


async def test_an_open_app_shows_the_status_another_process_left(tmp_path, backing, demo_servers):
    from crm_tui.app import make_app
    from tests.helpers.tui import SIZE, settle, until

    env = environment(demo_servers, backing)
    settings = make_settings(
        tmp_path,
        crm_user_id="team",
        **{k.lower(): v for k, v in demo_servers.env().items()},
        **backing.settings(),
    )
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.store.status("followupboss").last_sync is None
        code, _, err = await asyncio.to_thread(finish, start(env, "sync", "followupboss"))
        assert code == 0, err
        await until(pilot, lambda: app.store.status("followupboss").last_sync)
        db = backing.open()
        saved = db.load_statuses("team")["followupboss"].last_sync
        db.close()
        assert saved and app.store.status("followupboss").last_sync == saved


def test_sigterm_stops_a_sync_and_leaves_nothing_half_written(tmp_path, backing, slow_servers):
    env = environment(slow_servers, backing)
    assert finish(start(env, "sync", "followupboss", "--json"))[0] == 0
    before = cached(backing, "followupboss", "contacts")
    barrier = tmp_path / "paused"
    paused = {**env, "CRM_PAUSE_AT": "page:followupboss:contacts", "CRM_PAUSE_FILE": str(barrier)}
    sync = start(paused, "sync", "followupboss", "--json")
    wait_until(barrier.exists, "the sync reading contacts")
    sync.send_signal(signal.SIGTERM)
    barrier.unlink()  # the page loop goes on, and meets the cancellation
    code, out, _ = finish(sync)
    assert code == 1
    assert json.loads(out)["error"] == "Stopped"
    assert cached(backing, "followupboss", "contacts") == before
    assert leftovers(backing) == NOTHING_LEFT
    db = backing.open()
    runs = db.list_runs("team")
    db.close()
    assert runs[0]["outcome"] == "cancelled" and runs[0]["ended_at"]
    REPORT.overlaps.append(("a sync stopped by SIGTERM while reading", 1, len(before)))


def test_sigterm_stops_a_team_worker_and_leaves_nothing(tmp_path, backing, slow_servers):
    """`sync --team --watch` under systemd: stopped while it syncs two people, it cancels
    their syncs, keeps their previous data, and leaves no lease, owner or open run."""
    team = tmp_path / "team"
    team.mkdir()
    keys = "".join(f"{k}={v}\n" for k, v in slow_servers.env().items() if k.startswith("FUB_"))
    for user in ("ann", "ben"):
        (team / f"{user}.env").write_text(keys)
    env = {k: v for k, v in environment(slow_servers, backing).items() if not k.endswith("_KEY")}
    barrier = tmp_path / "paused"
    paused = {**env, "CRM_PAUSE_AT": "page:followupboss:contacts", "CRM_PAUSE_FILE": str(barrier)}
    worker = start(paused, "sync", "--team", str(team), "--watch", "--interval", "0.05")
    wait_until(barrier.exists, "the worker reading contacts")
    worker.send_signal(signal.SIGTERM)
    barrier.unlink()
    code, _, err = finish(worker)
    assert code == 0, err
    assert leftovers(backing) == NOTHING_LEFT
    db = backing.open()
    runs = [run for user in ("ann", "ben") for run in db.list_runs(user)]
    db.close()
    assert runs and all(run["ended_at"] for run in runs)
    assert "cancelled" in {run["outcome"] for run in runs}
