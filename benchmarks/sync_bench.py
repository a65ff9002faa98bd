"""Engine throughput against the demo Follow Up Boss server, beside a bare httpx loop.

    python benchmarks/sync_bench.py --contacts 100000

Both fetch the same pages over loopback in the same run; the engine also maps, validates,
stores and persists. Targets (issue 4): ratio >= 0.8 and >= 20,000 records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crm_tui.config import Settings
from crm_tui.demo.data import deal_count
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine


async def bare_loop(base: str, key: str) -> int:
    """Fetch every page and throw it away: the floor the engine is measured against."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    count = 0
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": auth}, timeout=30
    ) as client:
        for collection in ("people", "deals"):
            params: dict[str, object] = {"limit": 100}
            while True:
                body = (await client.get(collection, params=params)).json()
                count += len(body[collection])
                cursor = body["_metadata"]["next"]
                if not cursor:
                    break
                params = {"limit": 100, "next": cursor}
    return count


async def engine_run(settings: Settings) -> tuple[int, CacheStore]:
    """One sync of Follow Up Boss. The store comes back to the caller so that freeing the
    cache it filled (120,000 records: ~50 ms) is not counted as the sync's time."""
    store = CacheStore(settings.user_id, Database(settings.database_path))
    engine = SyncEngine(settings, store)
    try:
        report = await engine.sync_source("followupboss")
    finally:
        await engine.aclose()
    assert report.success, report.error
    return sum(s.read for s in report.streams.values()), store


def start_simulator(contacts: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The demo servers in their own process, as a remote CRM would be: the server's work
    does not compete with the client's for one interpreter lock."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crm_tui",
            "simulator",
            "--contacts",
            str(contacts),
            "--seed",
            "3",
            "--rate-limit",
            str(10**9),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    env: dict[str, str] = {}
    assert process.stdout is not None
    while "TOPPRODUCER_API_KEY" not in env:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator did not start")
        if "=" in line and not line.startswith("#"):
            key, _, value = line.strip().partition("=")
            env[key] = value
    return process, env


async def run(contacts: int) -> None:
    process, env = start_simulator(contacts)
    try:
        base = env["FUB_API_BASE_URL"] + "/"
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                _env_file=None,
                fub_api_key="demo-fub-key",  # type: ignore[call-arg]
                fub_api_base_url=base,
                crm_data_dir=Path(folder),
                crm_user_id="bench",
            )
            await bare_loop(base, "demo-fub-key")  # warm the server's code paths
            started = time.perf_counter()
            bare_records = await bare_loop(base, "demo-fub-key")
            bare = time.perf_counter() - started
            started = time.perf_counter()
            engine_records, store = await engine_run(settings)
            full = time.perf_counter() - started
            assert store.db is not None
            store.db.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    total = contacts + deal_count(contacts)
    assert bare_records == engine_records == total, (bare_records, engine_records, total)
    print(
        f"records             {total:>10,} ({contacts:,} contacts, {deal_count(contacts):,} deals)"
    )
    print(f"bare httpx loop     {bare_records / bare:>10,.0f} records/s  ({bare:.2f} s)")
    print(
        f"engine              {engine_records / full:>10,.0f} records/s  ({full:.2f} s)"
        "   (target >= 20,000)"
    )
    print(f"ratio               {bare / full:>10.2f}   (target >= 0.8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().contacts))


if __name__ == "__main__":
    main()
