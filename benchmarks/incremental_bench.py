"""Incremental sync at scale: a cache of N Follow Up Boss people, 1% of them changed at the
vendor, then `crm-tui sync followupboss` (incremental) while the app is open on the cache.

    python benchmarks/incremental_bench.py --contacts 100000 --contacts 1000000

Per size it prints: the requests the incremental sync sent beside those of the full sync
(target: under 2%), the seconds from the sync's start until the open app shows every change
(target <= 1 s at 1M, the vendor's time excluded: the sync's own duration is printed
beside), and the app's worst event-loop stall meanwhile (target <= 50 ms). Then the same
for a webhook: from the vendor's POST to the change in the open app, p95 of 20 (target
<= 1 s), through `crm-tui webhooks serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from crm_tui.config import Settings
from crm_tui.tuning import tune_batch

HERE = Path(__file__).parent
SOURCE_KEYS = ("FUB_",)


class Vendor:
    """benchmarks/_vendor.py in its own process."""

    def __init__(
        self, contacts: int, webhook_url: str | None = None, rate_limit: int | None = None
    ) -> None:
        args = [sys.executable, str(HERE / "_vendor.py"), "--contacts", str(contacts)]
        if webhook_url:
            args += ["--webhook-url", webhook_url]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.env: dict[str, str] = json.loads(self.process.stdout.readline())

    def update(self, count: int) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"update {count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        self.process.wait(timeout=30)


def environment(vendor: Vendor, data_dir: Path) -> dict[str, str]:
    fub = {k: v for k, v in vendor.env.items() if k.startswith(SOURCE_KEYS)}
    return {**fub, "CRM_DATA_DIR": str(data_dir), "CRM_USER_ID": "bench"}


def cli(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout), time.perf_counter() - started


def requests_of(result: dict[str, Any]) -> int:
    return int(result["streams"]["followupboss"]["contacts"]["requests"])


class CommitClock:
    """When the change log of a database first moves past where it was: the moment a
    sync's commit landed, seen from a connection of its own, polled every 2 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.at: float | None = None
        self._stop = threading.Event()
        conn = sqlite3.connect(path)
        self._start = conn.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0
        conn.close()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        conn = sqlite3.connect(self.path)
        try:
            while not self._stop.wait(0.002):
                seq = conn.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0
                if seq > self._start:
                    self.at = time.time()
                    return
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Watchdog:
    """The app's event loop, ticking every 10 ms: the longest it was late."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        expected = time.perf_counter() + 0.01
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.worst = max(self.worst, now - expected)
            expected = now + 0.01

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return self.worst


async def until_shown(app: Any, marker: str, count: int, limit: float = 600.0) -> float:
    """When (epoch seconds) the app's search shows `count` records carrying `marker`."""
    deadline = time.time() + limit
    while time.time() < deadline:
        found = app.index.search(marker, limit=1).counts.get("followupboss", 0)
        if found >= count:
            return time.time()
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{marker}: {count} changes never showed")


async def open_app(settings: Settings) -> Any:
    from crm_tui.app import make_app

    return make_app(settings, sync_stale=False)


async def wait_idle(pilot: Any, app: Any) -> None:
    while not app.loaded:
        await pilot.pause(0.05)
    groups = ("load", "index", "people")
    while any(not w.is_finished for w in app.workers if w.group in groups):
        await pilot.pause(0.05)
    await pilot.pause(1.0)


async def incremental(contacts: int, share: float) -> None:
    vendor = Vendor(contacts)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = environment(vendor, Path(tmp) / "data")
            full, full_seconds = cli(env, "sync", "followupboss", "--json")
            settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
            app = await open_app(settings)
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_idle(pilot, app)
                changed = max(1, int(contacts * share))
                marker = vendor.update(changed)["marker"]
                dog = Watchdog()
                dog.start()
                clock = CommitClock(settings.database_path)
                started = time.time()
                sync = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "crm_tui",
                    "sync",
                    "followupboss",
                    "--json",
                    env={**os.environ, **env},
                    stdout=subprocess.PIPE,
                )
                shown = await until_shown(app, marker, changed)
                out, _ = await sync.communicate()
                synced = time.time()
                clock.stop()
                await pilot.pause(1.0)
                stall = dog.stop()
            result = json.loads(out)
            stream = result["streams"]["followupboss"]["contacts"]
            share_of_full = requests_of(result) / requests_of(full)
            print(f"{contacts:>9,} contacts, {changed:,} changed at the vendor")
            print(f"  full sync: {requests_of(full):,} requests, {full_seconds:.1f} s")
            print(
                f"  incremental: {stream['requests']:,} requests ({share_of_full:.2%} of full;"
                f" target < 2%), {stream['written']:,} written, mode {stream['mode']}"
            )
            committed = clock.at or shown
            print(
                f"  shown in the open app {shown - committed:.2f} s after the sync's commit"
                f" (target <= 1 s), {shown - started:.2f} s after the sync started; the sync"
                f" process took {synced - started:.2f} s (start-up, the vendor's answers, commit)"
            )
            print(f"  worst event-loop stall in the app: {stall * 1000:.0f} ms (target <= 50 ms)")
    finally:
        vendor.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def webhooks(contacts: int, rounds: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/followupboss"
    vendor = Vendor(contacts, webhook_url=url)
    receiver = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = environment(vendor, Path(tmp) / "data")
            cli(env, "sync", "followupboss", "--json")
            receiver = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "crm_tui",
                "webhooks",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                env={**os.environ, **env},
                stderr=subprocess.DEVNULL,
            )
            settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
            app = await open_app(settings)
            latencies: list[float] = []
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_idle(pilot, app)
                dog = Watchdog()
                dog.start()
                for _ in range(rounds):
                    sent = vendor.update(1)
                    shown = await until_shown(app, sent["last"], 1, limit=30)
                    latencies.append(shown - sent["at"])
                stall = dog.stop()
            p95 = statistics.quantiles(latencies, n=20)[-1]
            print(
                f"{contacts:>9,} contacts: webhook to screen median"
                f" {statistics.median(latencies):.2f} s, p95 {p95:.2f} s (target <= 1 s),"
                f" worst stall {stall * 1000:.0f} ms"
            )
    finally:
        if receiver is not None:
            receiver.terminate()
            await receiver.wait()
        vendor.close()


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, action="append")
    parser.add_argument("--share", type=float, default=0.01, help="changed at the vendor")
    parser.add_argument("--webhook-rounds", type=int, default=20)
    args = parser.parse_args()
    for contacts in args.contacts or [100_000]:
        asyncio.run(incremental(contacts, args.share))
        if args.webhook_rounds:
            asyncio.run(webhooks(contacts, args.webhook_rounds))


if __name__ == "__main__":
    main()
