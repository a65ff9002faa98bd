"""Search latency and index cost at 100,000 and 1,000,000 contacts.

    python benchmarks/search_bench.py --sizes 100000 1000000

Per size: index build time and memory, then per query the median and p95 of a full search
(first 50 results per source and the exact total come from the same call), and the
median of listing every match ranked ("all ms": Search's "enter: all", Browse's filter).
If `fzf` is on the PATH, `fzf --filter` runs over the same records and queries for comparison.
Targets (issue 5): first results p95 <= 2 ms at 100k and <= 10 ms at 1M; exact total
<= 50 ms at 1M; build <= 5 s at 1M; index <= 300 bytes per contact.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SOURCES, contacts, held_bytes

from crm_tui.search.index import CONTACT_FIELDS, SearchIndex, field_text
from crm_tui.store.cache import CacheStore
from crm_tui.tuning import tune_batch


def queries(sample) -> list[tuple[str, str]]:
    return [
        ("common word", "john"),
        ("3-letter prefix", "mar"),
        ("two words", "jo sm"),
        ("e-mail fragment", sample.email.split("@")[0][:8]),
        ("phone fragment", "".join(c for c in sample.phone if c.isdigit())[3:9]),
        ("rare string", sample.email.split("@")[0]),
        ("no hit", "zzqqxx"),
        ("2 characters", "an"),
        ("a city (many hits, no name)", "austin"),
        ("with a filter", "smith city:austin"),
        ("2 characters and a filter", "an status:lead"),
    ]


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(size: int, runs: int) -> None:
    records = list(contacts(size))
    store = CacheStore("bench")
    for source in SOURCES:
        store._records["contacts"][source] = {r.id: r for r in records if r.source == source}
    gc.collect()
    before = held_bytes()
    index = SearchIndex()
    started = time.perf_counter()
    index.rebuild_from(store, kinds=("contacts",))
    build = time.perf_counter() - started
    gc.collect()
    memory = held_bytes() - before
    print(f"\n== {size:,} contacts ==")
    print(f"index build     {build:8.2f} s    (target <= 5 s at 1M)")
    print(
        f"index memory    {index.nbytes / size:8.0f} B per contact   (target <= 300)"
        f"   [what it holds; resident growth {memory / size:.0f} B, allocator state included]"
    )
    print(f"{'query':<18}{'text':<22}{'hits':>9}{'median ms':>11}{'p95 ms':>9}{'all ms':>9}")
    fzf = shutil.which("fzf")
    # every searchable field as shown; fzf folds case itself
    lines = (
        "\n".join(" ".join(field_text(r, f) for f in CONTACT_FIELDS) for r in records)
        if fzf
        else ""
    )
    for label, text in queries(records[size // 2]):
        result = index.search(text, "contacts", limit=50)
        times = sorted(timed(lambda t=text: index.search(t, "contacts", limit=50), runs))
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        # every match, ranked, as Search's "enter: all" and Browse's filter list them
        every = timed(lambda t=text: index.matching(t, "contacts"), max(3, runs // 20))
        print(
            f"{label:<18}{text:<22}{result.total:>9,}{statistics.median(times):>11.2f}{p95:>9.2f}"
            f"{statistics.median(every):>9.1f}"
        )
        if fzf:
            started = time.perf_counter()
            subprocess.run(
                [fzf, "--filter", text], input=lines, text=True, capture_output=True, check=False
            )
            ours = statistics.median(times) / 1000
            theirs = time.perf_counter() - started
            print(f"{'':<18}fzf --filter {theirs * 1000:9.1f} ms  ratio {theirs / ours:6.1f}x")


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--runs", type=int, default=100)  # a p95 of 20 would be the worst one
    args = parser.parse_args()
    for size in args.sizes:
        run(size, args.runs)


if __name__ == "__main__":
    main()
