"""crm-tui as real processes: the simulator, `sync --watch` and signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crm_tui.app import make_app
from crm_tui.demo import data
from crm_tui.demo.session import start_demo
from tests.helpers.tui import SIZE, settle, until


def crm(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crm_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_simulator_prints_its_environment_and_stops_on_ctrl_c():
    process = crm("simulator", "--contacts", "30", "--seed", "5", "--token-expires-in", "90")
    try:
        assert process.stdout is not None
        env: dict[str, str] = {}
        while "LOFTY_API_KEY" not in env:  # the last source's lines
            line = process.stdout.readline().strip()
            assert line, "the simulator stopped printing before its last source"
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
        assert env["BRIVITY_API_BASE_URL"].startswith("http://127.0.0.1:")
        people = httpx.get(
            f"{env['BRIVITY_API_BASE_URL']}/api/people",
            headers={"Authorization": f"Token token={env['BRIVITY_API_KEY']}"},
        )
        assert len(people.json()) == 30
        token = httpx.post(
            f"{env['TOPPRODUCER_API_BASE_URL']}/auth/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env["TOPPRODUCER_CLIENT_ID"],
                "client_secret": env["TOPPRODUCER_CLIENT_SECRET"],
            },
        )
        assert token.json()["expires_in"] == 90
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert "simulators stopped" in process.stderr.read()
    finally:
        process.kill()


def test_sync_watch_runs_on_schedule_and_exits_cleanly_on_sigterm(tmp_path, demo_servers):
    env = {**demo_servers.env(), "CRM_DATA_DIR": str(tmp_path / "data"), "CRM_USER_ID": "cron"}
    process = crm("sync", "--watch", "--interval", "0.05", env=env)  # three seconds apart
    try:
        deadline = time.monotonic() + 30
        runs = 0
        assert process.stderr is not None
        while runs < 2 * 4 and time.monotonic() < deadline:  # two rounds of four sources
            line = process.stderr.readline()
            runs += ": success" in line
        assert runs >= 8
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
    status = subprocess.run(
        [sys.executable, "-m", "crm_tui", "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    assert f'"contactCount": {data.expected_contacts(260)}' in status.stdout


async def test_the_demo_session_reaches_synced_for_every_source(tmp_path):
    with start_demo(data_dir=tmp_path / "demo", contacts=150) as demo:
        app = make_app(demo.settings, sync_on_start=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            statuses = app.store.statuses()
            assert set(data.SOURCES) <= set(statuses)  # six CRMs, and the local one
            for name in data.SOURCES:
                assert statuses[name].state.value == "idle", statuses[name]
                assert statuses[name].contact_count == data.expected_contacts(150)
                assert statuses[name].deal_count == data.deal_count(150)
            csv_file = Path(demo.settings.brivity_transactions_csv)
            assert await asyncio.to_thread(csv_file.is_file)
        # the CLI works on the running demo through the file it wrote
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crm_tui",
            "--env-file",
            str(demo.env_file),
            "sync",
            "followupboss",
            "--full",  # else only what changed since the app's sync: nothing, or little
            "--json",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "CRM_USER_ID": demo.settings.user_id},
        )
        out, _ = await cli.communicate()
        assert cli.returncode == 0
        contacts = json.loads(out)["results"]["followupboss"]["contacts"]["count"]
        assert contacts == data.expected_contacts(150)
        assert oct(demo.env_file.stat().st_mode & 0o777) == oct(0o600)
    assert not any(s.thread.is_alive() for s in demo.servers.servers.values())


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    env = {"CRM_DATA_DIR": str(tmp_path / "data"), "CRM_USER_ID": "team"}
    script = (
        "import subprocess, sys\n"
        "for i in range(15):\n"
        "    subprocess.run([sys.executable, '-m', 'crm_tui', 'local', 'add-contact',\n"
        "                    '--first-name', sys.argv[1] + str(i)], check=True,\n"
        "                   capture_output=True)\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, name], env={**os.environ, **env})
        for name in ("east", "west")
    ]
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    listing = subprocess.run(
        [sys.executable, "-m", "crm_tui", "contacts", "--source", "local", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    import json

    names = sorted(c["first_name"] for c in json.loads(listing.stdout)["contacts"])
    assert names == sorted([f"east{i}" for i in range(15)] + [f"west{i}" for i in range(15)])


async def test_an_open_app_shows_what_another_process_wrote(tmp_path):
    from crm_tui.config import Settings

    data_dir = tmp_path / "shared"
    settings = Settings(_env_file=None, crm_data_dir=data_dir, crm_user_id="team")
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.pause(1.2)  # the watcher has seen the database once
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crm_tui",
            "local",
            "add-contact",
            "--first-name",
            "Written",
            "--last-name",
            "Elsewhere",
            env={**os.environ, "CRM_DATA_DIR": str(data_dir), "CRM_USER_ID": "team"},
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await writer.wait() == 0
        await until(pilot, lambda: app.store.count("contacts", "local"), "the other's write")
        assert [c.name for c in app.store.contacts("local")] == ["Written Elsewhere"]
        await settle(pilot, app)
        assert app.index.search("elsewhere").total == 1


def test_the_demo_reads_and_writes_its_own_config_never_the_persons(tmp_path):
    """Trying the demo (its Mapping screen, `crm-tui --env-file demo.env map ...`) must not
    change the mappings.toml a person's real CRMs are read with."""
    from crm_tui.config import config_dir
    from crm_tui.sources.mapping_file import mappings_path

    real = config_dir()
    with start_demo(data_dir=tmp_path / "demo", contacts=20) as demo:
        assert mappings_path() == demo.config_dir / "mappings.toml"
        env = {k: v for k, v in os.environ.items() if k != "CRM_CONFIG_DIR"}  # a new shell
        command = ["map", "followupboss", "contacts", "custom.lender", "customLender"]
        mapped = subprocess.run(
            [sys.executable, "-m", "crm_tui", "--env-file", str(demo.env_file), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert mapped.returncode == 0, mapped.stderr
        assert "customLender" in (demo.config_dir / "mappings.toml").read_text()
    assert config_dir() == real and not (real / "mappings.toml").exists()
