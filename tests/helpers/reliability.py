"""What the reliability tests tried and compared, written as one report at the session's end.

`make reliability` runs them at full size (`CRM_TEST_FULL=1`), asks for the report
(`CRM_TEST_REPORT=1`: a plain `pytest` writes nothing) and copies it into the README's
"Reliability" section, so the figures there are always the suite's own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

FULL = os.environ.get("CRM_TEST_FULL") == "1"
REPORT_PATH = Path(__file__).parents[2] / "build" / "reliability.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


@dataclass
class FaultRun:
    scenario: str
    streams_ok: int = 0
    streams_failed: int = 0
    records_compared: int = 0
    quarantined: int = 0
    duplicates: int = 0
    retries: int = 0


@dataclass
class Report:
    contacts: int = 0
    faults: list[FaultRun] = field(default_factory=list)
    crashes: list[tuple[int, float, str]] = field(default_factory=list)  # seed, kill at, state
    canaries: int = 0
    canary_places: int = 0
    umask_files: int = 0
    load_syncs: int = 0
    load_searches: int = 0
    # (what overlapped, processes, records compared)
    overlaps: list[tuple[str, int, int]] = field(default_factory=list)
    # hostile-input category -> the cases that held (test names, in words)
    cases: dict[str, list[str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (
            self.faults
            or self.crashes
            or self.canaries
            or self.load_syncs
            or self.overlaps
            or self.cases
        )

    def markdown(self) -> str:
        mode = "full (`CRM_TEST_FULL=1`)" if FULL else "CI size"
        lines = [
            f"From the suite's own report ({mode}; {self.contacts:,} contacts per demo source, "
            "real loopback sockets, real SQLite files).",
            "",
        ]
        for section in (self._faults, self._overlaps, self._cases, self._notes):
            lines += section()
        return "\n".join(lines) + "\n"

    def _faults(self) -> list[str]:
        if not self.faults:
            return []
        titles = ["Fault", "Streams ok / failed", "Records compared", "Quarantined"]
        rows = [
            [
                r.scenario,
                f"{r.streams_ok} / {r.streams_failed}",
                f"{r.records_compared:,}",
                r.quarantined,
                r.duplicates,
                r.retries,
            ]
            for r in self.faults
        ]
        return _table(
            [*titles, "Duplicates dropped", "Retries"],
            rows,
            "After every run: a stream that succeeded equals the server's dataset record "
            "by record; a stream that failed equals the previous good data exactly (the "
            "faulty servers serve a different dataset, so a leak would show); status and "
            "audit say which and why; every record without an id is in quarantine.",
        )

    def _overlaps(self) -> list[str]:
        if not self.overlaps:
            return []
        return _table(
            ["Processes overlapping on one data dir", "Processes", "Records compared", "Lost"],
            [[what, processes, f"{compared:,}", 0] for what, processes, compared in self.overlaps],
            "After every overlap: each stream equals the server's dataset record by record, "
            "every local contact and imported row is there, each report's counts are those "
            "its commit wrote, and no lease, unfinished generation or hidden row is left.",
        )

    def _cases(self) -> list[str]:
        if not self.cases:
            return []
        held = [(c, self.cases.get(c.title, [])) for c in HOSTILE]
        return _table(
            ["Hostile input", "Cases that held", "For example"],
            [[c.title, len(cases), c.example] for c, cases in held if cases],
            "Each case is a test of its own, over real files, real processes and real "
            "sockets, run in the same session (`tests/test_hostile_records.py`, "
            "`test_import_files.py`, `test_export_safety.py`, `test_invisible_text.py`, "
            "`test_data_dir.py`, `test_hostile_settings.py`, `test_config_files.py`, "
            "`test_cli_contract.py`, `test_doctor.py`).",
        )

    def _notes(self) -> list[str]:
        """One line each for crashes, secrets, file modes and load."""
        lines = []
        if self.crashes:
            states: dict[str, int] = {}
            for _, _, state in self.crashes:
                states[state] = states.get(state, 0) + 1
            spread = "; ".join(f"{state}: {n}" for state, n in sorted(states.items()))
            lines.append(
                f"- Crashes: `crm-tui sync` killed with SIGKILL {len(self.crashes)} times "
                f"(seeded points); every database opened cleanly, each stream held the old or "
                f"the new complete data, never a mix ({spread}), and the next sync completed."
            )
        if self.canaries:
            lines.append(
                f"- Secrets: {self.canaries} canary values (every secret setting, and wrong "
                f"keys) through syncs with auth errors, timeouts and 5xx, `--json --debug`, "
                f"exports and the audit screen: found in none of {self.canary_places} places "
                "(log files, database and WAL bytes, exports, stdout, stderr, the screen)."
            )
        if self.umask_files:
            lines.append(
                f"- Files under umask 000: data dir 0700 and {self.umask_files} files "
                "(database, log, exports) 0600."
            )
        if self.load_syncs:
            lines.append(
                f"- Load: {self.load_syncs} back-to-back syncs of every source while "
                f"{self.load_searches:,} searches ran every 10 ms: no errors "
                "(`benchmarks/load_bench.py` prints the latency figures)."
            )
        return lines


def _table(titles: list[str], rows: list[list[object]], after: str) -> list[str]:
    """A Markdown table, then the paragraph that says what its rows mean."""
    lines = ["| " + " | ".join(titles) + " |", "| " + " | ".join("---" for _ in titles) + " |"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return [*lines, "", after, ""]


@dataclass(frozen=True)
class Category:
    title: str
    modules: tuple[str, ...]
    example: str


#: The tests whose passing cases the report counts, by what they throw at crm-tui.
HOSTILE = (
    Category(
        "Hostile files",
        ("test_hostile_records", "test_import_files", "test_invisible_text"),
        "amounts like 1E+999999999, lone surrogates and 10 MB fields quarantined with the rest"
        " landing; UTF-16/32 by BOM, mixed encodings named by line; an unbalanced quote; "
        "/dev/zero, a FIFO, a growing file; bidi and zero-width characters",
    ),
    Category(
        "Hostile paths",
        ("test_export_safety", "test_data_dir"),
        "formula cells in CSV and XLSX; `export -o` onto a symlink, a device, a FIFO; a 1777 "
        "data dir or a link to one; a database that is a link; a read-only database",
    ),
    Category(
        "Hostile settings",
        ("test_hostile_settings", "test_config_files"),
        "plain http:// to another host; a ./.env pointing a key elsewhere; unknown sources and "
        "binding ids; a non-UTF-8 .env",
    ),
    Category(
        "A corrupt database",
        ("test_doctor",),
        "a destroyed page, a garbage header, a -wal lost after a crash: named, repaired, "
        "local records recovered first",
    ),
    Category(
        "The CLI contract",
        ("test_cli_contract",),
        "usage errors as JSON, a closed pipe, a full disk, impossible dates in a query",
    ),
)


def record_case(module: str, name: str) -> None:
    """A passing test of one of the HOSTILE modules."""
    for category in HOSTILE:
        if module in category.modules:
            REPORT.cases.setdefault(category.title, []).append(name)


REPORT = Report()


def write_report() -> None:
    if REPORT.empty():
        return
    REPORT_PATH.parent.mkdir(exist_ok=True)
    REPORT_PATH.write_text(REPORT.markdown(), encoding="utf-8")


def update_readme(readme: Path) -> None:
    """Replace the README's Reliability section body with the last report."""
    text = readme.read_text(encoding="utf-8")
    body = REPORT_PATH.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(f"{START}\n{body}{END}", text), encoding="utf-8")


if __name__ == "__main__":
    update_readme(Path(__file__).parents[2] / "README.md")
    print(f"README.md: Reliability section replaced from {REPORT_PATH}")
