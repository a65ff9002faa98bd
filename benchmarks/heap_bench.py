"""What the speed machinery buys: the longest stall while a dict grows, one dict beside a
`Sharded` one; a bulk build with the collector running beside one under `gc_paused`; and
the database writer's nice value beside the rest of the process once the entry point tuned it.

    python benchmarks/heap_bench.py --keys 700000 --records 1000000

These are figures, not tests: the tests pin what the program does, not how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_tui.heap import Sharded
from crm_tui.store import Database
from crm_tui.tuning import gc_paused, tune_batch


def longest_insert(table: Any, keys: int) -> float:
    """Seconds of the slowest single insert: a resize, which keeps the interpreter lock."""
    worst = 0.0
    for n in range(keys):
        started = time.perf_counter()
        table[("k", n)] = n
        worst = max(worst, time.perf_counter() - started)
    return worst


def build(records: int) -> list[tuple[str, list[int]]]:
    return [(f"id{n}", [n]) for n in range(records)]


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def writer_nice() -> tuple[int, int] | None:
    if sys.platform != "linux":
        return None
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "crm.db")
        tid = asyncio.run(db.in_writer(threading.get_native_id))
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        db.close()
    return os.getpriority(os.PRIO_PROCESS, 0), nice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=700_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    plain = longest_insert({}, args.keys)
    sharded = longest_insert(Sharded[tuple[str, int], int](), args.keys)
    print(f"longest insert growing to {args.keys:,} keys")
    print(f"  one dict        {plain * 1000:8.2f} ms")
    print(f"  Sharded         {sharded * 1000:8.2f} ms")
    running = timed(lambda: build(args.records))
    gc.collect()
    tune_batch()  # as the CLI and the app do; before it, gc_paused changes nothing

    def paused() -> None:
        with gc_paused():
            build(args.records)

    print(f"bulk build of {args.records:,} records")
    print(f"  collector on    {running:8.2f} s")
    print(f"  gc_paused       {timed(paused):8.2f} s")
    nice = writer_nice()
    if nice is not None:
        print(f"nice value: process {nice[0]}, database writer {nice[1]}")


if __name__ == "__main__":
    main()
