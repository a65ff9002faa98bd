"""Cold CLI calls on a small and a big cache: each command as a fresh process, its median
wall time and peak resident memory, the big size's ratio to the small one.

    python benchmarks/cli_bench.py                       # 10,000 and 1,000,000 contacts
    python benchmarks/cli_bench.py --sizes 2000,20000 --runs 1   # a smoke run
    python benchmarks/cli_bench.py --keep /tmp/caches    # seed once, reuse on later runs

Each cache holds N contacts over three sources plus N/5 deals over four (the issue's shape:
1,000,000 contacts and 200,000 deals). `contacts --source X --json | head` reads the first
64 KB of the output and closes the pipe, as `head -c` does.

Caches are seeded straight into the database, so the first search on each builds and saves
what a sync would have left ready (records and index): that call is printed on its own line,
before the table. Targets (issue 21): a cold call at 1,000,000 within 3x of the same call at
10,000, and a peak under 300 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import contacts, deals

from crm_tui.models import KINDS, Record, RecordKind, SourceStatus, SyncState, utc_now
from crm_tui.store import Database
from crm_tui.store.leases import Lease

USER = "bench"
RUNS = 5
HEAD_BYTES = 65_536
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 300
TIME = Path("/usr/bin/time")  # GNU time: a child's own peak RSS (else wait4's, an upper bound)
#: (label, arguments, read only the first HEAD_BYTES of the output)
COMMANDS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("status --json", ("status", "--json"), False),
    ("contacts --source X --json | head", ("contacts", "--source", "brivity", "--json"), True),
    ("deals --source X --json | head", ("deals", "--source", "followupboss", "--json"), True),
    ('search "jo sm" --json', ("search", "jo sm", "--json"), False),
)
_STAGE_BATCH = 10_000


def write_streams(db: Database, kind: RecordKind, records: Iterable[Record]) -> None:
    """Every source's stream of `records` committed as a full refresh, in one pass over
    them (a million records are never held at once)."""
    generations: dict[str, int] = {}
    waiting: dict[str, list[Record]] = {}
    for record in records:
        if record.source not in generations:
            generations[record.source] = db.new_generation(USER, record.source, kind)
        batch = waiting.setdefault(record.source, [])
        batch.append(record)
        if len(batch) >= _STAGE_BATCH:
            db.stage(kind, generations[record.source], waiting.pop(record.source))
    for source, rest in waiting.items():
        db.stage(kind, generations[source], rest)
    for source, generation in generations.items():
        lease = db.acquire_lease(USER, source, kind, "seed")
        assert isinstance(lease, Lease)
        db.commit_staged(USER, source, kind, generation, lease)
        db.release_lease(lease)


def seed_cache(path: Path, contact_count: int, deal_count: int) -> None:
    """A cache of `contact_count` synthetic contacts and `deal_count` deals at `path`, each
    source synced just now (an app opening it has no stale source to sync first)."""
    db = Database(path)
    try:
        write_streams(db, "contacts", contacts(contact_count, user_id=USER))
        write_streams(db, "deals", deals(deal_count, user_id=USER))
        for source in db.load_statuses(USER).keys() | _sources(db):
            db.save_status(USER, SourceStatus(source, SyncState.IDLE, last_sync=utc_now()))
    finally:
        db.close()


def _sources(db: Database) -> set[str]:
    return {source for kind in KINDS for source in db.stream_counts(USER, kind)}


def seeded(root: Path, count: int) -> Path:
    """The data dir of a cache of `count` contacts under `root`, seeded unless it was."""
    folder = root / f"cache-{count}"
    done = folder / "seeded"
    if not done.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / "crm.sqlite3").unlink(missing_ok=True)
        started = time.perf_counter()
        seed_cache(folder / "crm.sqlite3", count, count // 5)
        done.touch()
        print(f"seeded {count:,} contacts in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # user + system: steadier than wall time on a shared machine
    peak_mb: float
    code: int


def run_once(folder: Path, args: tuple[str, ...], head: bool, env: dict[str, str]) -> Run:
    """One cold call: a fresh interpreter, its wall time, CPU time and peak RSS."""
    argv = [sys.executable, "-m", "crm_tui", "--data-dir", str(folder), *args]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as said:
        if TIME.exists():
            argv = [str(TIME), "-f", "%M", "-o", said.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=folder
        )
        assert proc.stdout is not None
        if head:
            proc.stdout.read(HEAD_BYTES)
        else:
            while proc.stdout.read(1 << 20):
                pass
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        lines = said.read().split()
    # GNU time's %M is its child's own peak. wait4's ru_maxrss would count this process's
    # pages too: Linux keeps the high-water mark across the child's fork and exec.
    peak_kb = int(lines[-1]) if lines and lines[-1].isdigit() else usage.ru_maxrss
    return Run(seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024, code)


def measure(folder: Path, env: dict[str, str], count: int) -> dict[str, Run]:
    """label -> median seconds and CPU, largest peak and worst exit code of `count` calls."""
    figures = {}
    for label, args, head in COMMANDS:
        runs = [run_once(folder, args, head, env) for _ in range(count)]
        figures[label] = Run(
            statistics.median(r.seconds for r in runs),
            statistics.median(r.cpu for r in runs),
            max(r.peak_mb for r in runs),
            max((r.code for r in runs), key=abs),
        )
    return figures


@contextmanager
def caches_root(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def isolated_env(root: Path) -> dict[str, str]:
    """No settings but the user's: no .env, config or mappings of whoever runs this."""
    config = root / "config"
    config.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "FUB_", "BRIVITY_"))}
    env.update(CRM_USER_ID=USER, XDG_CONFIG_HOME=str(config), PYTHONPATH=os.pathsep.join(sys.path))
    return env


def made_ready(folder: Path, env: dict[str, str], count: int) -> None:
    """A cache seeded here has none of what `crm-tui sync` and the app leave beside the
    database (the records and the index, saved): the first search builds and saves them,
    once. It is shown on its own line, not as a cold call of the table."""
    ready = folder / "ready"
    if ready.exists():
        return
    first = run_once(folder, COMMANDS[-1][1], False, env)
    print(
        f"first search on a cache no sync has left ready, {count:,} contacts (builds and"
        f" saves the records and the index): {first.seconds:.1f} s, peak {first.peak_mb:.0f} MB"
    )
    ready.touch()


def report(sizes: list[int], figures: dict[int, dict[str, Run]], count: int) -> None:
    small, big = sizes[0], sizes[-1]
    print(f"\ncold calls, median of {count} (peak: largest of the {count})")
    print(f"{'command':<38}{'size':>11}{'wall s':>9}{'cpu s':>8}{'peak MB':>9}  exit")
    for label, _, _ in COMMANDS:
        for size in sizes:
            run = figures[size][label]
            mark = "" if run.peak_mb <= TARGET_PEAK_MB else "  (over the peak target)"
            print(
                f"{label:<38}{size:>11,}{run.seconds:>9.2f}{run.cpu:>8.2f}"
                f"{run.peak_mb:>9.0f}  {run.code}{mark}"
            )
        ratio = figures[big][label].seconds / figures[small][label].seconds
        cpu = figures[big][label].cpu / figures[small][label].cpu
        verdict = "ok" if ratio <= TARGET_RATIO else "over"
        print(
            f"{'':<38}{'ratio':>11}{ratio:>8.1f}x{cpu:>7.1f}x"
            f"  (wall target <= {TARGET_RATIO:.0f}x: {verdict})"
        )
    print(f"target peak: <= {TARGET_PEAK_MB} MB at every size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="Contacts, comma-separated.")
    parser.add_argument("--keep", type=Path, help="Seed caches here and reuse them.")
    parser.add_argument("--runs", type=int, default=RUNS, help="Calls per command and size.")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with caches_root(args.keep) as root:
        env = isolated_env(root)
        folders = {size: seeded(root, size) for size in sizes}
        for size in sizes:
            made_ready(folders[size], env, size)
        figures = {size: measure(folders[size], env, args.runs) for size in sizes}
    report(sizes, figures, args.runs)


if __name__ == "__main__":
    main()
