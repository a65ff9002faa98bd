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
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SOURCES, contacts, rss_bytes

from crm_tui.store import CacheStore, Database
from crm_tui.store.stored_records import WHAT
from crm_tui.tuning import tune_batch


async def run(count: int) -> None:
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
        writer.db.close()
        del records, writer
        gc.collect()

        build = _build_artifacts(path)
        figures = _measured_in_child(path, count)
        load, per_contact, anon, traced = (figures[k] for k in ("load", "rss", "anon", "traced"))
        get_ms, iterate = figures["get_ms"], figures["iterate"]
        size = path.stat().st_size
        print(f"contacts            {count:>12,}")
        print(f"snapshot save       {save:>12.2f} s")
        print(f"artifact build      {build:>12.2f} s   (from SQLite, every stream, no artifact)")
        print(f"snapshot load       {load:>12.2f} s   (artifact present; target <= 1 s)")
        print(f"resident / contact  {per_contact:>12,.0f} B   (RSS, mapped pages too)")
        print(f"anonymous / contact {anon:>12,.0f} B   (RssAnon; target <= 500 B)")
        print(f"traced / contact    {traced:>12,.0f} B   (tracemalloc: heap kept by load)")
        print(f"get 1,000 ids       {get_ms:>12.1f} ms")
        print(f"iterate all         {iterate:>12.2f} s")
        print(f"database file       {size / 1e6:>12,.1f} MB")


def _measured_in_child(path: Path, count: int) -> dict[str, float]:
    """`measure_load` in a process of its own: this one's heap holds what writing a
    million records left, which a load could reuse without growing."""
    child = subprocess.run(
        [sys.executable, __file__, "--load", str(path), "--contacts", str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout)  # type: ignore[no-any-return]


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


def _build_artifacts(path: Path) -> float:
    """A load with no artifact on the shelf: every stream's is built from SQLite."""
    store = CacheStore("bench", Database(path))
    assert store._loader.shelf is not None
    shutil.rmtree(store._loader.shelf.root / WHAT, ignore_errors=True)
    started = time.perf_counter()
    store.load_sync()
    took = time.perf_counter() - started
    store.db.close()
    return took


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
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)  # the measuring child
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(measure_load(args.load, args.contacts))))
        return
    asyncio.run(run(args.contacts))


if __name__ == "__main__":
    main()
