"""The cost of folding a name, the step every search line and duplicate key goes through.

    python benchmarks/fold_bench.py --names 200000

Per kind of name (ASCII, accented, letters NFKD leaves alone, other scripts): microseconds
per name (best of 5 passes) for crm_tui.text.fold and, when the dev extra's anyascii is
installed, for transliterating with it at run time, for comparison (it is not used so: it
transliterates every script, CJK to pinyin and emoji to `:name:`, which search must not).
No target of its own: the index build's (search_bench.py) includes it.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from crm_tui.text import FOLD_VERSION, fold

KINDS = {
    "ascii": ["John Smith", "Maria Garcia", "Wei Chen", "Olivia Brown", "Ahmed Khan"],
    "accented": ["José Núñez", "Zoë Brontë", "Renée Dubois", "Çelik Öztürk", "Ana Muñoz"],
    "nfkd-left": ["Lech Wałęsa", "Søren Kierkegaard", "Æsa Þórsdóttir", "Đorđe Ħamrun"],
    "other scripts": ["김민준 Kim", "東京 Tanaka", "Мария Иванова", "Ωμέγα 😀"],
}


def per_name_us(fn: Callable[[str], str], names: list[str], repeats: int = 5) -> float:
    """The best of a few passes: the machine's other work only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for name in names:
            fn(name)
        best = min(best, time.perf_counter() - started)
    return best / len(names) * 1e6


def runtime_library() -> Callable[[str], str] | None:
    try:
        from anyascii import anyascii
    except ImportError:
        return None
    return lambda text: anyascii(text).casefold()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(1)
    library = runtime_library()
    print(f"fold version {FOLD_VERSION}; {args.names:,} names per kind")
    print(f"{'kind':<16}{'fold us':>9}{'anyascii us':>13}  example")
    for kind, pool in KINDS.items():
        # distinct strings, so no cache anywhere helps
        names = [f"{rng.choice(pool)} {n}" for n in range(args.names)]
        ours = per_name_us(fold, names)
        theirs = f"{per_name_us(library, names):13.2f}" if library else f"{'-':>13}"
        print(f"{kind:<16}{ours:9.2f}{theirs}  {pool[0]!r} -> {fold(pool[0])!r}")


if __name__ == "__main__":
    main()
