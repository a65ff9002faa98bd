"""Browse's list over a cache loaded from its snapshot (records mapped, decoded as read):
sorting it by a column, finding the selected record again, and what they hold.

    python benchmarks/browse_bench.py --contacts 1000000

The cache is seeded in a temporary folder, or once under `--root` (kept: a second run
there starts at once). A sort reads
every record once in a thread (`sort_ranks`), while an event loop ticks beside it: its
worst lateness is the stall the screen would see. Targets (issue 21): no event-loop stall
over 50 ms; the list holds no records (its memory: arrays, a few bytes per row).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cli_bench import USER, seeded
from incremental_bench import Watchdog
from tui_bench import rss_anon

from crm_tui.lazyrows import Reordered, StreamRows, find_positions, sort_ranks, sorted_order
from crm_tui.screens.browse import columns
from crm_tui.store import CacheStore, Database
from crm_tui.tuning import tune_interactive

TARGET_STALL = 0.050


async def sort_by(rows: StreamRows, title: str) -> None:
    column = next(c for c in columns("contacts") if c.title == title)
    assert column.sort_key is not None
    gc.collect()
    before = rss_anon()
    watchdog = Watchdog()
    watchdog.start()
    started = time.perf_counter()
    ranks = await asyncio.to_thread(sort_ranks, rows, column.sort_key)
    keyed = time.perf_counter()
    order = await asyncio.to_thread(sorted_order, ranks, False)
    done = time.perf_counter()
    stall = watchdog.stop()
    shown = Reordered(rows, order)
    chosen = shown[len(shown) // 3]
    found_at = time.perf_counter()
    at = await asyncio.to_thread(find_positions, shown, [chosen.id])
    found = time.perf_counter() - found_at
    assert at == {chosen.id: len(shown) // 3}
    gc.collect()
    held = (rss_anon() - before) / len(rows)
    print(
        f"sort by {title:<7} {len(rows):,} rows: {done - started:5.2f} s"
        f" (values read and ranked {keyed - started:.2f} s, ordered {done - keyed:.2f} s);"
        f" selected record found again in {found * 1000:.0f} ms;"
        f" held after {held:.1f} B per row; worst loop stall {stall * 1000:.0f} ms"
        f" (target <= {TARGET_STALL * 1000:.0f} ms)"
    )


async def measure(path: Path) -> None:
    tune_interactive()
    store = CacheStore(USER, Database(path))
    started = time.perf_counter()
    await asyncio.to_thread(store.load_sync)
    print(f"snapshot loaded in {time.perf_counter() - started:.1f} s")
    rows = StreamRows(store.stream("contacts", name) for name in store.sources())
    record = rows[len(rows) // 2]
    started = time.perf_counter()
    at = find_positions(rows, [record.id])
    took = time.perf_counter() - started
    assert at == {record.id: len(rows) // 2}
    print(f"unsorted list: {len(rows):,} rows; a record found by id in {took * 1000:.1f} ms")
    for title in ("Status", "Name"):
        await sort_by(rows, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--root", type=Path, help="Keep the seeded cache here (default: none).")
    args = parser.parse_args()
    if args.root is not None:
        asyncio.run(measure(seeded(args.root, args.contacts) / "crm.sqlite3"))
        return
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(measure(seeded(Path(root), args.contacts) / "crm.sqlite3"))


if __name__ == "__main__":
    main()
