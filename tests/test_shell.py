"""The app shell: quitting safely, audit runs never left running, errors and empty states."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_tui.app import make_app
from crm_tui.demo.servers import DemoServers, Faults
from crm_tui.screens.confirm import QuitConfirmScreen
from crm_tui.store import Database
from crm_tui.store.owners import LEASE_TTL_SECONDS, Owner, _machine, start_time
from tests.conftest import make_settings

SIZE = (120, 40)


def runs(path: Path) -> list[tuple[int, str, str | None, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT id, source, ended_at, outcome FROM sync_runs ORDER BY id"
        ).fetchall()


async def until(pilot, check, limit: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await pilot.pause(0.05)


# -- quitting ------------------------------------------------------------------------------


@pytest.mark.parametrize("faulty_servers", [Faults(latency=1.0)], indirect=True)
@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_quit_during_a_sync_asks_then_cancels_and_audits_it(
    tmp_path: Path, faulty_servers: DemoServers, key: str
) -> None:
    env = {k.lower(): v for k, v in faulty_servers.env().items()}
    settings = make_settings(tmp_path, **env)
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_source("followupboss")
        await until(pilot, lambda: app.engine.is_running("followupboss"))
        await pilot.press(key)
        assert isinstance(app.screen, QuitConfirmScreen)
        assert "A sync of Follow Up Boss is running: quit and cancel it?" in app.screen.question
        await pilot.press(key)  # asking again does not stack a second question
        assert len([s for s in app.screen_stack if isinstance(s, QuitConfirmScreen)]) == 1
        await pilot.press("n")
        assert not isinstance(app.screen, QuitConfirmScreen)
        assert app.engine.is_running("followupboss")  # "no" left the sync alone
        await pilot.press(key, "y")
        await until(pilot, lambda: app._exit)
        assert not app.engine.running()
    rows = runs(settings.database_path)
    assert rows, "the sync left no audit row"
    assert all(ended for _, _, ended, _ in rows)
    assert {outcome for *_, outcome in rows} <= {"cancelled", "interrupted", "success"}
    assert rows[0][3] == "cancelled"


async def test_quit_with_nothing_running_quits_at_once(settings) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        assert app.running_work() == []
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, QuitConfirmScreen)
        assert app._exit  # exiting


async def test_palette_quit_asks_while_a_save_runs(settings) -> None:
    app = make_app(settings, sync_stale=False)
    release = asyncio.Event()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.run_worker(release.wait(), group="form", name="save contact")
        await pilot.pause(0.05)
        await app.action_quit()  # what the palette's "Quit the application" runs
        await pilot.pause(0.05)
        assert isinstance(app.screen, QuitConfirmScreen)
        assert app.screen.question == "A save is running: quit and cancel it?"
        await pilot.press("escape")
        release.set()
        await pilot.pause(0.1)
        assert app.running_work() == []


# -- runs whose process is gone --------------------------------------------------------------


def _open_run(conn: sqlite3.Connection, source: str, owner: str | None) -> int:
    cursor = conn.execute(
        "INSERT INTO sync_runs (user_id, source, started_at, owner)"
        " VALUES ('alice', ?, '2026-01-01T00:00:00Z', ?)",
        (source, owner),
    )
    return int(cursor.lastrowid or 0)


def _owner(conn: sqlite3.Connection, owner: Owner, heartbeat: float) -> None:
    conn.execute(
        "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at) VALUES (?,?,?,?,?,?)",
        (owner.id, owner.host, owner.machine, owner.pid, owner.started, heartbeat),
    )


def test_next_start_marks_runs_of_dead_processes_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "data" / "crm.db"
    Database(path).close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        here = _machine()
        now = time.time()
        with sqlite3.connect(path) as conn:
            owners = {
                "dead-here": (Owner("dead-here", "me", here, dead.pid, "1"), now),
                "live-here": (Owner("live-here", "me", here, live.pid, start_time(live.pid)), 0.0),
                "fresh-away": (Owner("fresh-away", "far", "other-boot/1", 1, "1"), now),
                "stale-away": (
                    Owner("stale-away", "far", "other-boot/1", 1, "1"),
                    now - LEASE_TTL_SECONDS - 5,
                ),
            }
            for owner, heartbeat in owners.values():
                _owner(conn, owner, heartbeat)
            ids = {name: _open_run(conn, name, name) for name in owners}
            ids["swept"] = _open_run(conn, "swept", "no-such-owner")
            ids["legacy"] = _open_run(conn, "legacy", None)
        db = Database(path)  # the next start of any crm-tui process
        db.close()
        outcome = {run_id: (ended, out) for run_id, _, ended, out in runs(path)}
        assert outcome[ids["dead-here"]][1] == "interrupted"
        assert outcome[ids["stale-away"]][1] == "interrupted"
        assert outcome[ids["swept"]][1] == "interrupted"
        assert outcome[ids["legacy"]][1] == "interrupted"
        assert outcome[ids["live-here"]] == (None, None)  # a live process on this host
        assert outcome[ids["fresh-away"]] == (None, None)  # its lease has not expired
        with sqlite3.connect(path) as conn:
            why = conn.execute(
                "SELECT error_message FROM sync_runs WHERE id = ?", (ids["dead-here"],)
            ).fetchone()[0]
            left = {r[0] for r in conn.execute("SELECT id FROM owners")}
        assert why == f"process {dead.pid} ended before it finished"
        assert left == {"live-here", "fresh-away"}
    finally:
        live.kill()
        live.wait()


def test_a_run_keeps_its_owner_alive_and_closing_interrupts_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "crm.db"
    db = Database(path)
    run_id = db.start_run("alice", "pipedrive", "2026-01-01T00:00:00Z")
    other = Database(path)  # another process starting meanwhile (same PID: alive)
    other.close()
    assert runs(path)[0][2] is None
    with sqlite3.connect(path) as conn:  # the run names an owner row with a heartbeat
        assert conn.execute(
            "SELECT 1 FROM sync_runs r JOIN owners o ON o.id = r.owner WHERE r.id = ?",
            (run_id,),
        ).fetchone()
    db.close()  # a quit that could not wait for the run
    assert runs(path)[0][3] == "interrupted"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM owners").fetchone()[0] == 0
