"""The app with a big cached snapshot: when each kind of readiness comes after start, the
memory it holds per contact once idle, and the longest event-loop stall while a sync runs
against the demo server.

    python benchmarks/tui_bench.py --contacts 1000000 --sync-contacts 100000

The cache holds `--contacts` contacts over three sources and `--deals` deals (default: a
fifth as many; the issue's shape is 1,000,000 and 200,000), seeded in a child process so
this one's memory is the app's. Each readiness is probed on its own, every few
milliseconds, whatever order the app reaches them in:

- searchable: the app's search index answers "example" (every synthetic e-mail holds it)
  with a group for every source and exact totals, per source and overall;
- browsable: the store counts every seeded contact and deal (what the Browse screen shows
  and scrolls), and the Browse table holds as many rows if it is the screen shown;
- clusters: `app.people` is a result of the duplicate finder run on the complete data, and
  no run of it is left;
- idle: no worker of any group running, no one-shot timer pending, no sync running, for
  two probes in a row.

Targets (issue 21): first paint <= 0.2 s; searchable <= 1 s; browsable <= 1 s; clusters
<= 5 s; idle <= 10 s; <= 500 B per contact resident once idle; stall <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SOURCES
from cli_bench import USER, seed_cache
from sync_bench import start_simulator

from crm_tui.config import Settings
from crm_tui.tuning import tune_batch

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

PROBE_QUERY = "example"  # in every synthetic contact's e-mail
TICK = 0.01  # seconds between probes of the cheap kinds
SEARCH_EVERY = 0.05  # a search of every record costs more: probed less often
GIVE_UP = 180.0  # seconds: a readiness not reached by then is printed as such
TARGETS = {"first paint": 0.2, "searchable": 1.0, "browsable": 1.0, "clusters": 5.0, "idle": 10.0}
TARGET_BYTES_PER_CONTACT = 500


@dataclass(frozen=True)
class Seeded:
    contacts: int
    deals: int

    @functools.cached_property
    def per_source(self) -> dict[str, int]:
        """Contacts per source, as `_synthetic.contacts` spreads them: counted once, not at
        every probe (a million-step count would hold the app's loop, and the GIL, itself)."""
        return dict(Counter(SOURCES[i % len(SOURCES)] for i in range(self.contacts)))


def rss_anon() -> int:
    """Anonymous resident memory of this process (Linux): the heap, not mapped files."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def seed(path: Path, seeded: Seeded) -> None:
    """In a child process: the parent's heap stays the app's alone."""
    child = multiprocessing.get_context("fork").Process(
        target=seed_cache, args=(path, seeded.contacts, seeded.deals)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"seeding failed ({child.exitcode})")


@dataclass
class Readiness:
    """When each readiness was first seen, in seconds after start."""

    started: float
    seen: dict[str, float] = field(default_factory=dict)
    quiet_since: float | None = None
    last_busy: str = ""

    def mark(self, name: str, ready: bool) -> None:
        if ready and name not in self.seen:
            self.seen[name] = time.perf_counter() - self.started


def searchable(app: CrmApp, seeded: Seeded) -> bool:
    try:
        result = app.index.search(PROBE_QUERY, "contacts", limit=1)
    except Exception:  # an index not built yet may refuse: not ready
        return False
    expected = seeded.per_source
    return result.counts == expected and all(result.groups.get(s) for s in expected)


def browsable(app: CrmApp, seeded: Seeded) -> bool:
    store = app.store
    if store.count("contacts") != seeded.contacts or store.count("deals") != seeded.deals:
        return False
    table = _browse_rows(app)
    return table is None or table == seeded.contacts


def _browse_rows(app: CrmApp) -> int | None:
    """The Browse table's row count when Browse shows every contact, else None."""
    from crm_tui.screens.browse import BrowseScreen
    from crm_tui.widgets.record_table import RecordTable

    screen = app.screen
    if not isinstance(screen, BrowseScreen) or screen.kind != "contacts" or screen.source:
        return None
    if screen.filter_box().value:
        return None
    return len(screen.query_one(RecordTable).rows)


def busy(app: CrmApp) -> str:
    """What background work is left ("" when none): a worker, a one-shot timer, a sync."""
    running = [f"{w.group}/{w.name}" for w in app.workers if not w.is_finished]
    if running:
        return ", ".join(running)
    timers = [t for node in (app, *app.screen_stack) for t in list(node._timers)]
    # set_timer's repeat is 0 (once), set_interval's None (for ever): only the once count
    pending = [t.name for t in timers if t._repeat == 0 and t._task and not t._task.done()]
    if pending:
        return "timer " + ", ".join(pending)
    return "sync " + ", ".join(app.engine.running()) if app.engine.running() else ""


async def watch_readiness(app: CrmApp, seeded: Seeded, ready: Readiness) -> None:
    """Probe every readiness until all are seen (or GIVE_UP), none assumed to come first."""
    initial_people = app.people
    next_search = 0.0
    while time.perf_counter() - ready.started < GIVE_UP and len(ready.seen) < len(TARGETS):
        now = time.perf_counter()
        if "searchable" not in ready.seen and now >= next_search:
            ready.mark("searchable", searchable(app, seeded))
            next_search = now + SEARCH_EVERY
        ready.mark("browsable", browsable(app, seeded))
        finder_running = any(w.group == "people" and not w.is_finished for w in app.workers)
        ready.mark(
            "clusters",
            app.people is not initial_people and not finder_running and browsable(app, seeded),
        )
        _probe_idle(app, ready)
        await asyncio.sleep(TICK)


def _probe_idle(app: CrmApp, ready: Readiness) -> None:
    left = busy(app)
    if left:
        ready.last_busy, ready.quiet_since = left, None
    elif ready.quiet_since is None:
        ready.quiet_since = time.perf_counter() - ready.started
    else:  # two probes in a row: not the gap between one worker and the next it starts
        ready.seen.setdefault("idle", ready.quiet_since)


def start_in_child(settings: Settings, seeded: Seeded, with_sync: bool) -> None:
    """One start of the app in a fresh process (its memory and page faults its own)."""
    child = multiprocessing.get_context("spawn").Process(
        target=_start, args=(settings, seeded, with_sync)
    )
    child.start()
    child.join()


def _start(settings: Settings, seeded: Seeded, with_sync: bool) -> None:
    tune_batch()
    asyncio.run(measure(settings, seeded, with_sync))


async def measure(settings: Settings, seeded: Seeded, with_sync: bool) -> None:
    from crm_tui.app import make_app

    before = rss_anon()
    started = time.perf_counter()
    app = make_app(settings)
    ready = Readiness(started)
    async with app.run_test(size=(120, 40)) as pilot:
        ready.seen["first paint"] = time.perf_counter() - started  # after the first screen
        await watch_readiness(app, seeded, ready)
        per_contact = (rss_anon() - before) / max(seeded.contacts, 1)
        if with_sync:
            stalls, took, synced = await sync_stalls(app, pilot)
    print_readiness(seeded, ready, per_contact)
    if not with_sync:
        return
    print(f"sync of {synced:,} contacts took {took:.1f} s")
    print(f"longest loop stall     {max(stalls) * 1000:>12.0f} ms  (target <= 50 ms)")
    stalls.sort()
    print(f"p99 loop stall         {stalls[int(len(stalls) * 0.99)] * 1000:>12.0f} ms")


async def sync_stalls(app: CrmApp, pilot: Any) -> tuple[list[float], float, int]:
    """The loop's stalls while a sync of followupboss runs, and the re-index and duplicate
    clusters it sets off: (stalls, seconds the sync took, contacts it left)."""
    stalls: list[float] = []

    async def watchdog() -> None:
        expected = time.perf_counter() + TICK
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            stalls.append(now - expected)
            expected = now + TICK

    dog = asyncio.create_task(watchdog())
    sync_started = time.perf_counter()
    app.sync_source("followupboss")
    await pilot.pause(0.1)
    while app.engine.running() or any(
        not w.is_finished for w in app.workers if w.group in ("index", "people")
    ):
        await pilot.pause(0.05)
    took = time.perf_counter() - sync_started
    dog.cancel()
    return stalls, took, app.store.count("contacts", "followupboss")


def print_readiness(seeded: Seeded, ready: Readiness, per_contact: float) -> None:
    print(f"cached contacts        {seeded.contacts:>12,}   deals {seeded.deals:,}")
    for name, target in TARGETS.items():
        at = ready.seen.get(name)
        shown = f"{at:>12.2f} s" if at is not None else f"{'not by':>8} {GIVE_UP:.0f} s"
        verdict = "" if at is None else ("ok" if at <= target else "over")
        print(f"{name:<22} {shown}   (target <= {target:g} s) {verdict}")
    if "idle" not in ready.seen:
        print(f"still busy with        {ready.last_busy}")
    elif ready.last_busy:
        print(f"last work before idle  {ready.last_busy}")
    print(
        f"resident / contact     {per_contact:>12,.0f} B   (RssAnon once idle minus before start;"
        f" target <= {TARGET_BYTES_PER_CONTACT} B)"
    )


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deals", type=int, help="Deals (default: contacts / 5).")
    parser.add_argument("--sync-contacts", type=int, default=20_000)
    args = parser.parse_args()
    seeded = Seeded(args.contacts, args.contacts // 5 if args.deals is None else args.deals)
    # The CRM server runs in its own process, as a remote one would: its work must not be
    # counted as the app's stalls.
    process, env = start_simulator(args.sync_contacts)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder)
            seed(path / "crm.sqlite3", seeded)
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                crm_data_dir=path,
                crm_user_id=USER,
                fub_api_key="demo-fub-key",
                fub_api_base_url=env["FUB_API_BASE_URL"],
                crm_cache_ttl_minutes=10**6,
            )
            # The first start after an upgrade (or after an older version's sync) builds and
            # saves what it maps in at every later start: both are shown.
            print("first start: nothing saved yet (records, segments, keys built and saved)")
            start_in_child(settings, seeded, with_sync=False)
            print("\nnext start: everything saved mapped in (every later start)")
            start_in_child(settings, seeded, with_sync=True)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
