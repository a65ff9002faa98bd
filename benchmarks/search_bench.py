"""Search latency and index cost at 100,000 and 1,000,000 contacts, on two shapes of data.

    python benchmarks/search_bench.py --sizes 100000 1000000

Per size and per data shape ("ours": benchmarks/_synthetic.py, uniform names over three
sources; "other": benchmarks/_othershape.py, skewed and accented names, multi-word
companies, one city with a sixth of the records, over six unequal sources): index build
time and memory, then per query shape p50, p95 and max of a full search (first 50 results
per source and the exact totals come from the same call), over a spread of terms of that
shape taken from the data (the p95 covers the terms, not one query repeated), and the
median of listing every match ranked ("all ms": Search's "enter: all", Browse's filter).
If `fzf` is on the PATH, `fzf --filter` runs over the same records for comparison.
Targets (issues 5 and 21): search p95 <= 10 ms at 1M for every shape (<= 2 ms at 100k);
build <= 5 s at 1M; index <= 300 bytes per contact.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _othershape
import _synthetic
from _synthetic import held_bytes

from crm_tui.models import Contact
from crm_tui.search.index import CONTACT_FIELDS, SearchIndex, field_text
from crm_tui.store.cache import CacheStore
from crm_tui.text import digits, fold
from crm_tui.tuning import tune_batch

TERMS = 24  # distinct queries per shape, at most
DATA: dict[str, tuple[Callable[[int], Iterable[Contact]], Sequence[str]]] = {
    "ours": (_synthetic.contacts, _synthetic.SOURCES),
    "other": (_othershape.other_contacts, _othershape.SOURCES),
}


def _name_words(records: Sequence[Contact]) -> Counter[str]:
    """How many records hold each word of a name (as typed: folded)."""
    held: Counter[str] = Counter()
    for r in records:
        held.update(set(fold(f"{r.first_name} {r.last_name}").replace("-", " ").split()))
    return held


def _accented(records: Sequence[Contact]) -> list[str]:
    """Name words written with letters beyond ASCII, as typed without them, commonest first."""
    held: Counter[str] = Counter()
    for r in records:
        for word in f"{r.first_name} {r.last_name}".lower().replace("-", " ").split():
            if not word.isascii():
                held[fold(word)] += 1
    return [w for w, _ in held.most_common(TERMS) if len(w) >= 2]


def _bigrams(records: Sequence[Contact]) -> list[str]:
    """Two letters held by the most records (the broadest a query can be)."""
    held: Counter[str] = Counter()
    for r in records:
        line = fold(" ".join(field_text(r, f) for f in CONTACT_FIELDS))
        held.update({line[i : i + 2] for i in range(len(line) - 1)})
    return [b for b, _ in held.most_common(200) if b.isalpha()][:12]


def _big_cities(records: Sequence[Contact]) -> list[str]:
    """The cities held by a tenth of the records or more (or the commonest), and parts of them."""
    held = Counter(fold(r.city or "") for r in records)
    big = [c for c, n in held.most_common() if c and n * 10 >= len(records)] or [
        held.most_common(1)[0][0]
    ]
    return [q for c in big for q in (c, max(c.split(), key=len)[:5], c.split()[-1])]


def _companies(records: Sequence[Contact]) -> list[str]:
    """Multi-word company names, and their first two or three words."""
    held = Counter(fold(r.company) for r in records if r.company and " " in r.company)
    phrases = []
    for company, _ in held.most_common(12):
        words = company.split()
        phrases += [" ".join(words[:2]), " ".join(words[:3])]
    return list(dict.fromkeys(phrases))


def shapes(records: Sequence[Contact], seed: int = 3) -> dict[str, list[str]]:
    """Per query shape, the queries it is measured with: taken from the records themselves
    so each data shape gets its own common words, cities and companies."""
    r = random.Random(seed)
    sample = [records[r.randrange(len(records))] for _ in range(min(len(records), 3000))]
    words = [w for w, _ in _name_words(sample).most_common() if len(w) >= 3]
    common, rare = words[:12], words[-TERMS:]
    statuses = [fold(s) for s, _ in Counter(x.status for x in sample if x.status).most_common(3)]
    cities = _big_cities(sample)
    status = statuses[0].replace(" ", "-")
    picked = [sample[r.randrange(len(sample))] for _ in range(TERMS)]
    mails = [x.email.split("@")[0][: r.randint(5, 8)] for x in picked if x.email]
    phones = [digits(x.phone)[3:9] for x in picked if x.phone and len(digits(x.phone)) >= 9]
    return {
        "common word": common,
        "rare word": rare,
        "3-letter prefix": list(dict.fromkeys(w[:3] for w in words[:40]))[:TERMS],
        "2 characters": _bigrams(sample[:500]),
        "two common words": [f"{a} {b}" for a in common[:6] for b in common[6:10]],
        "word + status:": [f"{w} status:{s.replace(' ', '-')}" for w in common for s in statuses],
        "word + city:": [f"{w} city:{c.split()[0]}" for w in common for c in cities[::3]],
        "2 chars + status:": [f"{b} status:{status}" for b in _bigrams(sample[:500])],
        "big city (100k+ at 1M)": cities,
        "company phrase": _companies(sample) or ["no company"],
        "accented, typed plain": _accented(sample) or ["(none in data)"],
        "e-mail fragment": mails,
        "phone fragment": phones,
        "no hit": ["".join(r.choice("qxzj") for _ in range(6)) for _ in range(12)],
    }


def timed(fn: Callable[[str], object], texts: Sequence[str], runs: int) -> list[float]:
    """Milliseconds per call, `runs` calls cycling over `texts` in a shuffled order."""
    order = [texts[i % len(texts)] for i in range(max(runs, len(texts)))]
    random.Random(5).shuffle(order)
    out = []
    for text in order:
        started = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _index(records: Sequence[Contact], sources: Sequence[str]) -> tuple[SearchIndex, float]:
    store = CacheStore("bench")
    for source in sources:
        store._records["contacts"][source] = {r.id: r for r in records if r.source == source}
    index = SearchIndex()
    started = time.perf_counter()
    index.rebuild_from(store, kinds=("contacts",))
    return index, time.perf_counter() - started


def run(size: int, shape: str, runs: int) -> None:
    make, sources = DATA[shape]
    records = list(make(size))
    gc.collect()
    before = held_bytes()
    index, build = _index(records, sources)
    gc.collect()
    memory = held_bytes() - before
    target = 10.0 if size > 100_000 else 2.0
    print(f"\n== {size:,} contacts, {shape} data ({len(sources)} sources) ==")
    print(f"index build     {build:8.2f} s    (target <= 5 s at 1M)")
    print(
        f"index memory    {index.nbytes / size:8.0f} B per contact   (target <= 300)"
        f"   [what it holds; resident growth {memory / size:.0f} B, allocator state included]"
    )
    print(
        f"{'query shape':<24}{'example':<26}{'hits':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'target':>8}{'max ms':>9}{'all ms':>9}"
    )
    over = 0
    for label, texts in shapes(records).items():
        over += _shape_line(index, label, texts, runs, target)
        _fzf(records, texts[0], index)
    print(f"shapes over the p95 target ({target:g} ms): {over}")


def _shape_line(index: SearchIndex, label: str, texts: list[str], runs: int, target: float) -> int:
    """One shape's line; 1 when its p95 is over the target."""

    def search(text: str) -> object:
        return index.search(text, "contacts", limit=50)

    for text in texts:  # once each first: the first call of a shape builds nothing new
        search(text)
    hits = statistics.median(index.search(t, "contacts").total for t in texts)
    times = sorted(timed(search, texts, runs))
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    # every match, ranked, as Search's "enter: all" and Browse's filter list them
    every = timed(lambda t: index.matching(t, "contacts"), texts[:3], 3)
    late = p95 > target
    print(
        f"{label:<24}{texts[0][:25]:<26}{hits:>9,.0f}{statistics.median(times):>9.2f}"
        f"{p95:>9.2f}{'<= ' + format(target, 'g'):>8}{times[-1]:>9.2f}"
        f"{statistics.median(every):>9.1f}{'  OVER' if late else ''}"
        f"  (load {os.getloadavg()[0]:.1f})"  # other processes' share of the cores
    )
    return int(late)


def _fzf(records: Sequence[Contact], text: str, index: SearchIndex) -> None:
    fzf = shutil.which("fzf")
    if not fzf:
        return
    # every searchable field as shown; fzf folds case itself
    lines = "\n".join(" ".join(field_text(r, f) for f in CONTACT_FIELDS) for r in records)
    ours = statistics.median(timed(lambda t: index.search(t, "contacts"), [text], 5))
    started = time.perf_counter()
    subprocess.run([fzf, "--filter", text], input=lines, text=True, capture_output=True)
    theirs = (time.perf_counter() - started) * 1000
    print(f"{'':<24}fzf --filter {theirs:9.1f} ms  ratio {theirs / ours:6.1f}x")


def main() -> None:
    tune_batch()  # the process-wide settings the CLI runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    # per shape, over its terms: a p95 of 20 would be the worst one
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--data", nargs="+", choices=tuple(DATA), default=list(DATA))
    args = parser.parse_args()
    for size in args.sizes:
        for shape in args.data:
            run(size, shape, args.runs)


if __name__ == "__main__":
    main()
