"""Engine throughput against each simulated CRM, beside a bare httpx loop over the same one.

    python benchmarks/sync_bench.py --contacts 100000 [--sources followupboss hubspot]

For each connector, both fetch the same pages over loopback in the same run (the bare loop
runs the connector's own paginator, decodes each page and throws it away); the engine also
maps, validates, stores and persists. Targets: ratio >= 0.8 for every connector (issue 18),
and >= 20,000 records/s from Follow Up Boss (issue 4).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crm_tui.cli.sync import committed_streams
from crm_tui.config import Settings
from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.http import client_for
from crm_tui.sources.pagination import Response, extract_records
from crm_tui.sources.registry import build_source
from crm_tui.store import CacheStore, Database
from crm_tui.store.settling import settle_all
from crm_tui.sync.engine import SyncEngine
from crm_tui.tuning import tune_batch

CONNECTORS = ("brivity", "topproducer", "followupboss", "hubspot", "pipedrive", "lofty")


async def bare_loop(source: Source) -> int:
    """Fetch every page of every stream the connector reads, and throw it away: the floor
    the engine is measured against."""
    auth = client_for(source).auth
    count = 0
    async with httpx.AsyncClient(
        base_url=str(getattr(source.ctx.settings, str(source.base_url_setting).lower())) + "/",
        timeout=60,
    ) as client:
        for stream in source.streams():
            endpoint = source.endpoint(stream)
            assert endpoint is not None
            paginator = endpoint.paginator
            request = paginator.first(paginator.page_size)
            while request is not None:
                params = {**endpoint.params, **dict(request.params)}
                answer = await client.get(
                    request.path or endpoint.path,
                    params=params,
                    headers=await auth.headers(client),
                )
                body = answer.json()
                records = extract_records(body, endpoint.records, stream)
                count += len(records)
                response = Response(request, body, answer.headers, records)
                request = paginator.next_request(response) if records else None
    return count


async def engine_run(settings: Settings, name: str) -> tuple[int, CacheStore, float]:
    """One sync of a source, then (timed apart) its streams' artifacts made ready as
    `crm-tui sync` leaves them. The store comes back to the caller so that freeing the cache
    it filled (120,000 records: ~50 ms) is not counted as the sync's time."""
    store = CacheStore(settings.user_id, Database(settings.database_path))
    engine = SyncEngine(settings, store)
    try:
        report = await engine.sync_source(name)
        started = time.perf_counter()
        await settle_all(store, committed_streams({name: report}))
        settle = time.perf_counter() - started
    finally:
        await engine.aclose()
    assert report.success, report.error
    return sum(s.read for s in report.streams.values()), store, settle


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
    while "LOFTY_API_KEY" not in env:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator did not start")
        if "=" in line and not line.startswith("#"):
            key, _, value = line.strip().partition("=")
            env[key] = value
    return process, env


async def measure(settings: Settings, name: str) -> tuple[int, float, float, float]:
    """(records, bare seconds, engine seconds, settle seconds) for one connector."""
    source = build_source(name, SourceContext(settings, settings.user_id))
    try:
        await bare_loop(source)  # warm the server's code paths
        started = time.perf_counter()
        bare_records = await bare_loop(source)
        bare = time.perf_counter() - started
    finally:
        await source.aclose()
    started = time.perf_counter()
    engine_records, store, settle = await engine_run(settings, name)
    full = time.perf_counter() - started - settle
    assert store.db is not None
    store.db.close()
    # the engine also reads what the bare loop skips: the record without an id
    assert bare_records == engine_records, (name, bare_records, engine_records)
    return engine_records, bare, full, settle


async def run(contacts: int, names: list[str]) -> None:
    process, env = start_simulator(contacts)
    try:
        with tempfile.TemporaryDirectory() as folder:
            values = {key.lower(): value for key, value in env.items()}
            settings = Settings(
                _env_file=None,
                crm_data_dir=Path(folder),
                crm_user_id="bench",
                **values,  # type: ignore[arg-type]
            )
            results = {name: await measure(settings, name) for name in names}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    print(f"contacts per CRM    {contacts:>10,}")
    print(
        f"{'connector':<14} {'records':>9} {'bare loop/s':>12} {'engine/s':>10} {'ratio':>6}"
        f" {'target':>7}         {'settle s':>8}"
    )
    for name, (records, bare, full, settle) in results.items():
        target = RATIO_TARGETS.get(name, 0.8)
        verdict = "met" if bare / full >= target else "MISSED"
        print(
            f"{name:<14} {records:>9,} {records / bare:>12,.0f} {records / full:>10,.0f}"
            f" {bare / full:>6.2f} {'>= ' + str(target):>7} {verdict:<7} {settle:>8.2f}"
        )
    print("and followupboss >= 20,000 records/s (issue 4)")
    print("settle: the streams' records artifacts made ready after the sync, as `crm-tui sync`")
    print("does (not in engine/s)")


#: Ratio to the bare loop each connector must keep (issue 18: Follow Up Boss's unchanged by
#: the kit, 0.95; every other >= 0.8). Below 100,000 contacts start-up costs weigh in.
RATIO_TARGETS = {"followupboss": 0.95}


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--sources", nargs="+", choices=CONNECTORS, default=list(CONNECTORS))
    args = parser.parse_args()
    asyncio.run(run(args.contacts, args.sources))


if __name__ == "__main__":
    main()
