"""Two-way sync: how long an edit takes to reach the vendor, and how the outbox drains.

    python benchmarks/writeback_bench.py --contacts 20000 --edits 1000 --latency-edits 50

(`--contacts` only sizes the cache: the first sync spends the vendor's budget, so the
edits start after one window of 10 s.)

Against the Follow Up Boss simulator in a process of its own, with the vendor's documented
budget (200 requests per 10 s, `X-RateLimit-*`, 429 with Retry-After over it):
- save to confirmed: from the save of an edit (what `ctrl+s` in the form does: checked, put
  in the outbox, shown pending) until the vendor serves the new value, read back with a
  request of the benchmark's own; p50 and p95 (target p95 <= 1 s);
- the outbox draining `--edits` queued edits: how long, the requests sent per second beside
  the vendor's budget, and how many 429s came back (target: none beyond a handful: the
  client paces itself from the rate headers, it does not storm).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from incremental_bench import Vendor, environment

from crm_tui.config import Settings
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.tuning import tune_batch
from crm_tui.writeback.service import WriteBack

BUDGET = 200  # requests per 10 s: Follow Up Boss's documented example
WINDOW = 10.0


class Counting(httpx.AsyncBaseTransport):
    """Every response's status, as the product's client saw it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def settings_for(env: dict[str, str]) -> Settings:
    lowered = {k.lower(): v for k, v in env.items()}
    return Settings(_env_file=None, **lowered)  # type: ignore[call-arg]


async def confirmed(client: httpx.AsyncClient, remote_id: str, last: str) -> None:
    """Poll the vendor until it serves the new last name (its budget counts these too)."""
    while True:
        response = await client.get(f"people/{remote_id}")
        if response.status_code == 429:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.json().get("lastName") == last:
            return
        await asyncio.sleep(0.005)


async def latency(engine: SyncEngine, env: dict[str, str], count: int) -> list[float]:
    wb, store = WriteBack(engine), engine.store
    records = [r for r in store.contacts("followupboss") if r.remote_id][:count]
    base = env["FUB_API_BASE_URL"].rstrip("/") + "/"
    auth = (env["FUB_API_KEY"], "")
    seconds = []
    async with httpx.AsyncClient(base_url=base, auth=auth) as vendor:
        for n, record in enumerate(records):
            last = f"Benchlast{n}"
            started = time.perf_counter()
            await wb.edit(record, {"last_name": last})
            await wb.drain(["followupboss"])
            await confirmed(vendor, record.remote_id, last)
            seconds.append(time.perf_counter() - started)
    return seconds


async def drain(engine: SyncEngine, transport: Counting, count: int) -> tuple[float, int, int]:
    wb, store = WriteBack(engine), engine.store
    records = [r for r in store.contacts("followupboss") if r.remote_id][-count:]
    for n, record in enumerate(records):
        await wb.edit(record, {"last_name": f"Drained{n}"})
    transport.statuses.clear()
    started = time.perf_counter()
    finished = await wb.drain(["followupboss"])
    elapsed = time.perf_counter() - started
    done = sum(1 for e in finished if e.state == "done")
    return elapsed, done, len(transport.statuses)


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    vendor = Vendor(args.contacts, rate_limit=args.rate_limit)
    try:
        env = environment(vendor, data_dir)
        settings = settings_for(env)
        db = Database(settings.database_path)
        store = CacheStore(settings.user_id, db)
        transport = Counting()
        engine = SyncEngine(settings, store, transport=transport)
        try:
            await engine.sync_source("followupboss")
            await asyncio.sleep(WINDOW)  # the sync spent the vendor's budget: a fresh window
            seconds = await latency(engine, env, args.latency_edits)
            p95 = statistics.quantiles(seconds, n=20)[-1] if len(seconds) > 1 else seconds[0]
            print(
                f"save to confirmed: p50 {statistics.median(seconds) * 1000:.0f} ms,"
                f" p95 {p95 * 1000:.0f} ms over {len(seconds)} edits (target p95 <= 1000 ms)"
            )
            elapsed, done, requests = await drain(engine, transport, args.edits)
            too_many = sum(1 for s in transport.statuses if s == 429)
            rate = requests / elapsed if elapsed else 0.0
            print(
                f"outbox drain: {done} of {args.edits} edits in {elapsed:.1f} s,"
                f" {requests} requests, {rate:.1f} requests/s against a budget of"
                f" {args.rate_limit / WINDOW:.1f}/s, {too_many} answered 429"
            )
        finally:
            await engine.aclose()
            db.close()
    finally:
        vendor.close()


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--latency-edits", type=int, default=50)
    parser.add_argument("--rate-limit", type=int, default=BUDGET, help="requests per 10 s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
