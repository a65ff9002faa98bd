"""Opening a saved search index instead of building it, at 100,000 or 1,000,000 contacts.

    python benchmarks/index_open_bench.py --size 1000000

Builds the index of `--size` synthetic contacts (three sources), saves each source's
segment on an artifact shelf (search/persist.py), then in a fresh process (records made
again from the same seed, the segment files evicted from the page cache first, as far as
posix_fadvise can) opens them and asks "jo sm". Prints the time to save, to open, to the
first answer after open and a second answer, and the index's resident bytes per contact
(RssAnon growth, and SearchIndex.nbytes) built vs opened.
Targets (issue 21): searchable <= 1 s after start; index + records <= 500 B per contact.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SOURCES, contacts, held_bytes

from crm_tui.search.index import SearchIndex
from crm_tui.search.persist import open_segment, save_segment
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.stamps import StreamStamp
from crm_tui.tuning import tune_batch

STAMP = StreamStamp(1, (), 1)
QUERY = "jo sm"


def rss(field: str = "RssAnon") -> int:
    """Resident memory of one kind: RssAnon is what the process made, RssFile the pages of
    mapped files it has read (the page cache's, shared with other processes)."""
    held_bytes()  # malloc_trim first: freed heap pages go back
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def by_source(size: int) -> dict[str, list]:
    records = list(contacts(size))
    return {source: [r for r in records if r.source == source] for source in SOURCES}


def build_and_save(size: int, root: Path) -> None:
    streams = by_source(size)
    gc.collect()
    before = rss()
    index = SearchIndex()
    started = time.perf_counter()
    for source, records in streams.items():
        index.rebuild("contacts", source, records)
    built = time.perf_counter() - started
    grown = rss() - before
    asked = statistics.median(_timed(index) for _ in range(20))
    shelf = ArtifactShelf(root, "bench")
    started = time.perf_counter()
    for source in streams:
        segment = index.segment_of("contacts", source)
        assert segment is not None
        save_segment(shelf, "contacts", source, STAMP, segment)
    saved = time.perf_counter() - started
    on_disk = sum(p.stat().st_size for p in root.rglob("*.npy"))
    print(f"\n== {size:,} contacts ==")
    print(f"build           {built:8.2f} s")
    print(f"save            {saved:8.2f} s    ({on_disk / size:.0f} B per contact on disk)")
    print(f"built: resident {grown / size:8.0f} B per contact (RssAnon growth)")
    print(f"       held     {index.nbytes / size:8.0f} B per contact (SearchIndex.nbytes)")
    print(f"'{QUERY}' built    {asked * 1000:8.1f} ms (median of 20, for comparison)")


def evict(root: Path) -> None:
    """Drop the saved files' pages from the page cache (clean pages of files this user
    wrote): the open then reads from disk, as at a start after a reboot."""
    for path in root.rglob("*.npy"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            with contextlib.suppress(AttributeError, OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def open_and_ask(size: int, root: Path) -> None:
    streams = by_source(size)
    evict(root)
    gc.collect()
    before, files = rss(), rss("RssFile")
    shelf = ArtifactShelf(root, "bench")
    index = SearchIndex()
    opened = installed = 0.0
    for source, records in streams.items():
        started = time.perf_counter()
        segment = open_segment(shelf, "contacts", source, STAMP, records)
        assert segment is not None, "the saved segment did not open"
        middle = time.perf_counter()
        index.install("contacts", source, segment)
        opened, installed = opened + middle - started, installed + time.perf_counter() - middle
    first = _timed(index)
    grown, mapped = rss() - before, rss("RssFile") - files
    second = _timed(index)
    later = statistics.median(_timed(index) for _ in range(20))
    print(f"open            {opened:8.3f} s    (files evicted from the page cache)")
    print(f"install         {installed:8.3f} s    (id positions over a list of records)")
    print(f"first '{QUERY}'   {first * 1000:8.1f} ms after open (target: searchable <= 1 s)")
    print(f"second '{QUERY}'  {second * 1000:8.1f} ms, then {later * 1000:.1f} ms (median of 20)")
    print(f"opened: resident {grown / size:7.0f} B per contact (RssAnon growth, after a query)")
    print(f"        mapped   {mapped / size:8.0f} B per contact read in (RssFile growth)")
    print(f"        held     {index.nbytes / size:8.0f} B per contact (SearchIndex.nbytes, mapped)")


def _timed(index: SearchIndex) -> float:
    started = time.perf_counter()
    index.search(QUERY, "contacts", limit=50)
    return time.perf_counter() - started


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--open", type=Path, help=argparse.SUPPRESS)  # the fresh process
    args = parser.parse_args()
    if args.open is not None:
        open_and_ask(args.size, args.open)
        return
    with tempfile.TemporaryDirectory() as folder:
        build_and_save(args.size, Path(folder))
        gc.collect()
        command = [sys.executable, __file__, "--size", str(args.size), "--open", folder]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
