"""Snapshot save and load times and resident memory per cached contact.

    python benchmarks/store_bench.py --contacts 1000000

Targets (issue 2): load 1M from the snapshot in <= 3 s; <= 1 KB resident per contact.
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

from _synthetic import SOURCES, contacts, rss_bytes

from crm_tui.store import CacheStore, Database
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

        before = rss_bytes()
        reader = CacheStore("bench", Database(path))
        started = time.perf_counter()
        await reader.load()
        load = time.perf_counter() - started
        gc.collect()
        per_contact = (rss_bytes() - before) / max(reader.count("contacts"), 1)
        assert reader.count("contacts") == count
        size = path.stat().st_size
        print(f"contacts            {count:>12,}")
        print(f"snapshot save       {save:>12.2f} s")
        print(f"snapshot load       {load:>12.2f} s   (target <= 3 s at 1,000,000)")
        print(f"resident / contact  {per_contact:>12,.0f} B   (target <= 1,024 B)")
        print(f"database file       {size / 1e6:>12,.1f} MB")


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().contacts))


if __name__ == "__main__":
    main()
