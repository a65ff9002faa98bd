"""Search latency while syncs run: five back-to-back syncs of every source, searching every 10 ms.

    python benchmarks/load_bench.py --contacts 100000

The simulators run in their own process at `--contacts` per source. First the searches run
alone (idle), then beside five back-to-back syncs of all sources, each followed by the
re-index the app does. Prints p50/p95 for both and their ratio.
Target (issue 9): no errors, and search p95 under load within 2x of idle.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sync_bench import start_simulator

from crm_tui.config import Settings
from crm_tui.models import KINDS
from crm_tui.search.index import SearchIndex
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.tuning import share_the_lock, tune_batch

QUERIES = ("john", "mar", "jo sm", "austin", "555", "gmail", "status:lead an")


class Searcher(threading.Thread):
    """Searches every 10 ms, as fast typing over SSH would, and times each one."""

    def __init__(self, index: SearchIndex) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.times: list[float] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            started = time.perf_counter()
            try:
                self.index.search(query, "contacts")
            except BaseException as exc:  # counted, never hidden
                self.errors.append(exc)
            self.times.append(time.perf_counter() - started)
            self.stop.wait(0.010)


def figures(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[int(len(ms) * 0.95)]


async def run(contacts: int, syncs: int, idle_seconds: float) -> None:
    share_the_lock()  # as the app does
    process, env = start_simulator(contacts)
    try:
        with tempfile.TemporaryDirectory() as folder:
            values = {k.lower(): v for k, v in env.items()}
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                crm_data_dir=Path(folder),
                crm_user_id="bench",
                **values,
            )
            store = CacheStore(settings.user_id, Database(settings.database_path))
            engine = SyncEngine(settings, store)
            index = SearchIndex()
            await engine.sync_all()
            await asyncio.to_thread(index.rebuild_from, store)

            idle = Searcher(index)
            idle.start()
            await asyncio.sleep(idle_seconds)
            idle.stop.set()
            idle.join()

            loaded = Searcher(index)
            loaded.start()
            started = time.perf_counter()
            failed = 0
            for _ in range(syncs):
                reports = await engine.sync_all()
                failed += sum(not r.success for r in reports.values())
                await asyncio.to_thread(index.rebuild_from, store, None, KINDS)
            elapsed = time.perf_counter() - started
            loaded.stop.set()
            loaded.join()
            await engine.aclose()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    idle_p50, idle_p95 = figures(idle.times)
    load_p50, load_p95 = figures(loaded.times)
    ratio = load_p95 / idle_p95
    print(f"{contacts:,} contacts per source, {syncs} back-to-back syncs in {elapsed:.1f} s")
    print(f"search idle     p50 {idle_p50:6.2f} ms  p95 {idle_p95:6.2f} ms  ({len(idle.times):,})")
    print(
        f"search in load  p50 {load_p50:6.2f} ms  p95 {load_p95:6.2f} ms  ({len(loaded.times):,})"
    )
    verdict = "met" if ratio <= 2 and not (failed or loaded.errors) else "MISSED"
    print(
        f"p95 ratio {ratio:.2f} (target <= 2: {verdict}); failed syncs {failed}, "
        f"search errors {len(idle.errors) + len(loaded.errors)}"
    )


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--syncs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(run(args.contacts, args.syncs, args.idle_seconds))


if __name__ == "__main__":
    main()
