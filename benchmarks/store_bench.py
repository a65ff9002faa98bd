"""Snapshot save and load times and resident memory per cached contact.

    python benchmarks/store_bench.py --contacts 1000000

Targets (issue 2): load 1M from the snapshot in <= 3 s; <= 1 KB resident per contact.
Issue 21: the records live in a memory-mapped artifact: <= 500 B resident (anonymous) per
contact after load, the app usable about a second after start.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SOURCES, contacts, deals, rss_bytes

from crm_tui.models import KINDS, Deal
from crm_tui.store import CacheStore, Database
from crm_tui.store.leases import Holder
from crm_tui.store.stored_records import WHAT
from crm_tui.store.stream_loading import StreamLoader
from crm_tui.tuning import tune_batch


async def run(count: int, deal_count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "crm.sqlite3"
        records = list(contacts(count))
        writer = CacheStore("bench", Database(path))
        started = time.perf_counter()
        for source in SOURCES:
            await writer.replace_stream(
                source, "contacts", (r for r in records if r.source == source)
            )
        save = time.perf_counter() - started
        for source, part in _by_source(deals(deal_count)).items():
            await writer.replace_stream(source, "deals", part)
        writer.db.close()
        del records, writer
        gc.collect()

        builds = {way: _in_child(path, count, "--build", way) for way in BUILDS}
        build = _in_child(path, count, "--build", "load")["seconds"]
        figures = _in_child(path, count, "--load")
        settles = {way: _in_child(path, count, "--settle", way) for way in SETTLES}
        load, per_contact, anon, traced = (figures[k] for k in ("load", "rss", "anon", "traced"))
        get_ms, iterate = figures["get_ms"], figures["iterate"]
        size = path.stat().st_size
        print(f"contacts            {count:>12,}")
        print(f"snapshot save       {save:>12.2f} s")
        print(f"deals               {deal_count:>12,}")
        for way, built in builds.items():
            print(
                f"build {way:<13} {built['seconds']:>12.2f} s   "
                f"(peak RssAnon +{built['peak'] / 1e6:,.0f} MB; {BUILDS[way]})"
            )
        print(f"artifact build      {build:>12.2f} s   (a load with no artifact: every stream)")
        for way, settled in settles.items():
            print(
                f"settle {way:<12} {settled['seconds']:>12.2f} s   "
                f"(peak RssAnon +{settled['peak'] / 1e6:,.0f} MB; {SETTLES[way]})"
            )
        print(f"snapshot load       {load:>12.2f} s   (artifact present; target <= 1 s)")
        print(f"resident / contact  {per_contact:>12,.0f} B   (RSS, mapped pages too)")
        print(f"anonymous / contact {anon:>12,.0f} B   (RssAnon; target <= 500 B)")
        print(f"traced / contact    {traced:>12,.0f} B   (tracemalloc: heap kept by load)")
        print(f"get 1,000 ids       {get_ms:>12.1f} ms")
        print(f"iterate all         {iterate:>12.2f} s")
        print(f"database file       {size / 1e6:>12,.1f} MB")


#: The ways `--build` makes every stream's records artifact (contacts and deals).
BUILDS = {
    "per-stream": "one read through the index per stream, as before",
    "one-pass": "one pass over each kind's table for all its streams",
}


def _by_source(records: Iterable[Deal]) -> dict[str, list[Deal]]:
    parts: dict[str, list[Deal]] = {}
    for record in records:
        parts.setdefault(record.source, []).append(record)
    return parts


def _in_child(path: Path, count: int, *how: str) -> dict[str, float]:
    """A measure in a process of its own: this one's heap holds what writing a million
    records left, which a load could reuse without growing."""
    child = subprocess.run(
        [sys.executable, __file__, "--db", str(path), "--contacts", str(count), *how],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout)  # type: ignore[no-any-return]


def measure_build(path: Path, way: str) -> dict[str, float]:
    """Every stream's records artifact built with none saved: its time, and how far the
    process's anonymous resident memory (its heap, not the mapped files) rose at its peak."""
    db = Database(path)
    loader = StreamLoader(db, "bench")
    shutil.rmtree(loader.shelf.root / WHAT, ignore_errors=True)
    streams = {kind: db.stream_sources("bench", kind) for kind in KINDS}
    gc.collect()
    before = rss_anon_bytes()
    with _peak_sampled(rss_anon_bytes) as peak:
        started = time.perf_counter()
        if way == "load":
            CacheStore("bench", db).load_sync()
        for kind, sources in streams.items():
            if way == "one-pass":
                loader.prepare(kind, sources)
            elif way == "per-stream":
                for source in sources:
                    loader._stored(kind, source, True)
        took = time.perf_counter() - started
    db.close()
    return {"seconds": took, "peak": max(peak[0] - before, 0)}


#: How `--settle` puts a stream a refresh just committed on its records artifact.
SETTLES = {
    "table": "one stream of a third after its refresh, read back from SQLite",
    "records": "the same, built from the records the refresh committed",
}


async def measure_settle(path: Path, count: int, way: str) -> dict[str, float]:
    """One source's contacts refreshed (staged, committed) as a sync does, then the stream
    settled on its records artifact: its time and the peak rise of anonymous memory."""
    store = CacheStore("bench", Database(path))
    db, source = store.db, SOURCES[0]
    assert db is not None
    records = {r.id: r for r in contacts(count) if r.source == source}
    lease = db.acquire_lease("bench", source, "contacts", "bench")
    assert not isinstance(lease, Holder)
    generation = db.new_generation("bench", source, "contacts")
    rows = list(records.values())
    for at in range(0, len(rows), 5_000):
        db.stage("contacts", generation, rows[at : at + 5_000])
    del rows
    await store.commit_staged(source, "contacts", generation, records, lease)
    db.release_lease(lease)
    if way == "table":
        store._committed.clear()
    gc.collect()
    before = rss_anon_bytes()
    with _peak_sampled(rss_anon_bytes) as peak:
        started = time.perf_counter()
        assert await store.settle("contacts", source)
        took = time.perf_counter() - started
    db.close()
    return {"seconds": took, "peak": max(peak[0] - before, 0)}


@contextmanager
def _peak_sampled(read: Callable[[], int]) -> Iterator[list[int]]:
    """The highest `read()` seen every 5 ms while the block runs (in `[0]` after it)."""
    peak = [read()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], read())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], read())


async def measure_load(path: Path, count: int) -> dict[str, float]:
    """A load with the artifacts present, in a fresh process: its time, what it added to
    resident memory per contact, and the reads after it."""
    gc.collect()
    before, anon_before = rss_bytes(), rss_anon_bytes()
    tracemalloc.start()
    reader = CacheStore("bench", Database(path))
    started = time.perf_counter()
    await reader.load()
    load = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()
    loaded = max(reader.count("contacts"), 1)
    assert loaded == count
    per_contact = (rss_bytes() - before) / loaded
    anon = (rss_anon_bytes() - anon_before) / loaded
    get_ms, iterate = _reads(reader, count)
    return {
        "load": load,
        "rss": per_contact,
        "anon": anon,
        "traced": traced / loaded,
        "get_ms": get_ms,
        "iterate": iterate,
    }


def rss_anon_bytes() -> int:
    """Anonymous resident memory (heap): what the process holds, not file pages mapped."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def _reads(store: CacheStore, count: int) -> tuple[float, float]:
    """Milliseconds to get 1,000 random ids; seconds to iterate every record."""
    picks = random.Random(2).sample(range(count), min(1_000, count))
    ids = [f"{SOURCES[i % 3]}:{100_000 + i}" for i in picks]
    started = time.perf_counter()
    found = [store.get("contacts", record_id) for record_id in ids]
    get_ms = (time.perf_counter() - started) * 1e3
    assert all(found)
    started = time.perf_counter()
    seen = sum(1 for _ in store.records("contacts"))
    assert seen == count
    return get_ms, time.perf_counter() - started


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deals", type=int, help="deals (default: a fifth of the contacts)")
    # the measuring children
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build", choices=[*BUILDS, "load"], help=argparse.SUPPRESS)
    parser.add_argument("--settle", choices=list(SETTLES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.db and args.settle:
        print(json.dumps(asyncio.run(measure_settle(args.db, args.contacts, args.settle))))
    elif args.db and args.build:
        print(json.dumps(measure_build(args.db, args.build)))
    elif args.db:
        print(json.dumps(asyncio.run(measure_load(args.db, args.contacts))))
    else:
        deal_count = args.contacts // 5 if args.deals is None else args.deals
        asyncio.run(run(args.contacts, deal_count))


if __name__ == "__main__":
    main()
