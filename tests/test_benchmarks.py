"""Every benchmark runs end to end at a small size: the scripts stay working. Figures are
printed, never asserted (timings on a shared CI machine mean nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("store_bench.py", ["--contacts", "2000"], "load"),
        ("search_bench.py", ["--sizes", "3000", "--runs", "3"], "p95"),
        ("sync_bench.py", ["--contacts", "500"], "ratio"),
        ("tui_bench.py", ["--contacts", "2000", "--sync-contacts", "500"], "first paint"),
        ("dedup_bench.py", ["--sizes", "3000", "--quality", "120"], "precision"),
        ("load_bench.py", ["--contacts", "300", "--syncs", "1", "--idle-seconds", "0.3"], "p95"),
        ("import_bench.py", ["--mb", "0.3"], "peak RSS"),
        ("pipeline_bench.py", ["--deals", "3000", "--runs", "2"], "draw the Pipeline"),
        ("browse_bench.py", ["--contacts", "2000"], "sort by Name"),
        ("remap_bench.py", ["--contacts", "2000"], "worst event-loop stall"),
        ("heap_bench.py", ["--keys", "20000", "--records", "20000"], "gc_paused"),
        ("cli_bench.py", ["--sizes", "300,1000", "--runs", "1"], "ratio"),
        (
            "writeback_bench.py",
            ["--contacts", "500", "--edits", "20", "--latency-edits", "5"],
            "save to confirmed",
        ),
        (
            "incremental_bench.py",
            ["--contacts", "3000", "--webhook-rounds", "3"],
            "webhook to screen",
        ),
        (
            "team_bench.py",
            ["--agents", "2", "--contacts", "400", "--no-baseline"],
            "time for a change to reach every app",
        ),
    ],
)
def test_benchmark_runs_at_a_small_size(script: str, args: list[str], expect: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout
