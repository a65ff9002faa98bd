"""Time and peak memory of `crm-tui import` on a large, awkward TopProducer contacts export.

    python benchmarks/import_bench.py --mb 50

The file is shaped unlike the demo's exports: odd column spellings, quoted notes running
over several lines, non-ASCII names, unmapped columns, repeated people and rows that cannot
become a record. Each run is its own `python -m crm_tui` process, and its peak resident
memory is that process's own (os.wait4 from a small parent).
Target (issue 16): a 50 MB import peaks under 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

COLUMNS = (
    "Record  ID",
    "FIRST name",
    "Surname",
    "E-Mail Address",
    "Cell",
    "Organization",
    "Lead Status",
    "Groups",
    "Street Address",
    "Town",
    "Province",
    "Postcode",
    "Date Created",
    "Notes",
    "Favourite Colour",
)
FIRST = ("José", "Zoë", "Ana", "Björn", "Siobhán", "Łukasz", "Nguyễn", "李", "Amélie", "Bob")
LAST = ("Núñez", "O'Brien", "Müller", "Lee", "Søndergaard", "Çelik", "Smith", "王", "Dupré")
CITIES = ("Austin", "São Paulo", "Zürich", "Montréal", "Kraków", "Reykjavík", "Denver")
COLOURS = ("teal", "ochre", "vermilion", "", "grey")


def row(r: random.Random, i: int) -> list[str]:
    """One contact; every 97th has no id, no name, no e-mail and no phone (invalid), and
    every 53rd repeats an earlier id (a duplicate)."""
    first, last = r.choice(FIRST), r.choice(LAST)
    ident = f"TP-{i}" if i % 53 else f"TP-{max(i - 7, 1)}"
    notes = (
        f'Called {r.randint(1, 30)} times.\nPrefers e-mail, not calls; "urgent"\n- agent {i % 17}'
    )
    values = [
        ident,
        first,
        last,
        f"{first}.{last}.{i}@example.com".lower(),
        f"+1 ({r.randint(201, 989)}) 555-{r.randint(0, 9999):04d}",
        r.choice(("Acme Realty", "Núñez & Sons, LLC", "")),
        r.choice(("Lead", "Client", "Past Client")),
        ", ".join(r.sample(("buyer", "seller", "vip", "investor"), r.randint(0, 2))),
        f"{r.randint(1, 9999)} {r.choice(LAST)} Street",
        r.choice(CITIES),
        "TX",
        f"{r.randint(10000, 99999)}",
        f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/2025",
        notes,
        r.choice(COLOURS),
    ]
    if i % 97 == 0:
        values[0:5] = ["", "", "", "", ""]
    return values


def write_file(path: Path, megabytes: float, seed: int = 7) -> int:
    r = random.Random(seed)
    limit = int(megabytes * 1_000_000)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        while handle.tell() < limit:
            rows += 1
            writer.writerow(row(r, rows))
    return rows


# A child's peak memory starts at its parent's size when it forks: each run is forked from
# a small go-between, so the figure is crm-tui's own whatever runs this script.
_MEASURE = """
import os, sys, time
out = int(sys.argv.pop(1))
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(out, 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - started
print(elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def run(args: list[str], data_dir: Path) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in bytes, exit code, stdout) of one crm-tui process."""
    env = {**os.environ, "CRM_USER_ID": "bench"}
    command = ["-m", "crm_tui", "--data-dir", str(data_dir), *args]
    with tempfile.TemporaryFile() as out:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(out.fileno()), *command],
            env=env,
            pass_fds=(out.fileno(),),
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed, peak, code = done.stderr.split()[-3:]
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return float(elapsed), int(peak), int(code), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of the generated file")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        rows = write_file(path, options.mb)
        size = path.stat().st_size
        print(f"file                {size / 1e6:>10,.1f} MB, {rows:,} rows")
        for label, extra in (("dry run", ["--dry-run"]), ("import", [])):
            args = ["import", "topproducer", str(path), "--json", *extra]
            seconds, peak, code, out = run(args, Path(folder) / "data")
            summary = "exit code " + str(code)
            if code == 0:
                plan = json.loads(out)["plans"][0]
                invalid = plan.get("invalidCount", len(plan["invalid"]))
                summary = f"{plan['valid']:,} valid, {invalid:,} invalid"
            print(f"{label:<20}{seconds:>10.2f} s   peak RSS {peak / 1e6:>8,.0f} MB  ({summary})")


if __name__ == "__main__":
    main()
