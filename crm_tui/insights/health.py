"""Sync health: per source, its last 30 sync runs (duration, records written, failed
streams) from the audit rows, and the rate budget its vendor's headers reported last. A
re-map of the cache (also an audit row) is no sync: it is left out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from crm_tui.insights.groups import source_order
from crm_tui.insights.table import Table
from crm_tui.models import Outcome, RateReading, SourceStatus
from crm_tui.timefmt import parse_utc

RUNS = 30
#: How a re-map's audit row names its stream (store/remap.py).
REMAP_PREFIX = "remap:"
#: Outcomes that are not a failure of the run: it did its work, or was asked not to.
_FINE = {str(Outcome.SUCCESS), str(Outcome.CANCELLED), str(Outcome.SKIPPED)}


@dataclass(frozen=True, slots=True)
class RunPoint:
    started_at: str
    seconds: float | None  # None while it runs
    records: int
    failures: int  # streams that failed (1 for a run that failed before any stream)
    outcome: str

    def to_json(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at,
            "seconds": self.seconds,
            "records": self.records,
            "failures": self.failures,
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class SourceHealth:
    source: str
    runs: tuple[RunPoint, ...]  # oldest first
    rate: RateReading | None

    @property
    def failed_runs(self) -> int:
        return sum(1 for run in self.runs if run.failures)

    @property
    def median_seconds(self) -> float | None:
        done = [run.seconds for run in self.runs if run.seconds is not None]
        return round(median(done), 3) if done else None

    @property
    def rate_left(self) -> str:
        """ "183 of 250 left per 10 s", or "" where no header said."""
        return self.rate.describe() if self.rate is not None else ""

    def series(self, name: str) -> list[float]:
        """One measure of every run, oldest first: "seconds", "records" or "failures"."""
        return [float(getattr(run, name) or 0) for run in self.runs]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "runs": [run.to_json() for run in self.runs],
            "failedRuns": self.failed_runs,
            "medianSeconds": self.median_seconds,
            "rateBudget": self.rate.to_json() if self.rate is not None else None,
        }


@dataclass(frozen=True)
class SyncHealth:
    sources: tuple[SourceHealth, ...]

    def get(self, source: str) -> SourceHealth | None:
        return next((s for s in self.sources if s.source == source), None)

    def filter_for(self, source: str) -> str:
        return f"source:{source}"

    def table(self) -> Table:
        rows = [
            (s.source, len(s.runs), s.failed_runs, s.median_seconds, _last(s), s.rate_left)
            for s in self.sources
        ]
        headers = ("source", "runs", "failed", "median_seconds", "last_outcome", "rate_left")
        filters = tuple(self.filter_for(s.source) for s in self.sources)
        return Table(headers, tuple(rows), filters)

    def to_json(self) -> dict[str, Any]:
        return {"sources": [s.to_json() for s in self.sources]}


def _last(health: SourceHealth) -> str:
    return health.runs[-1].outcome if health.runs else ""


def run_point(row: Mapping[str, Any]) -> RunPoint:
    """One audit row (a run, with its streams under "streams") as a point of the charts."""
    started, ended = parse_utc(row.get("started_at")), parse_utc(row.get("ended_at"))
    seconds = (ended - started).total_seconds() if started and ended else None
    outcome = str(row.get("outcome") or "running")
    streams = row.get("streams") or []
    failures = sum(1 for s in streams if (s.get("outcome") or "running") not in _FINE)
    if not failures and row.get("ended_at") and outcome not in _FINE:
        failures = 1
    return RunPoint(
        started_at=str(row.get("started_at") or ""),
        seconds=None if seconds is None else round(max(seconds, 0.0), 3),
        records=int(row.get("records_written") or 0),
        failures=failures,
        outcome=outcome,
    )


def is_remap(row: Mapping[str, Any]) -> bool:
    """A re-map's audit row (stream `remap:<stream>`, mode `remap`): it read nothing from
    the vendor, so it is no point of a source's sync health."""
    return str(row.get("stream") or "").startswith(REMAP_PREFIX) or row.get("mode") == "remap"


def sync_health(
    runs: Iterable[Mapping[str, Any]],
    statuses: Mapping[str, SourceStatus],
    *,
    sources: Sequence[str] | None = None,
    last: int = RUNS,
) -> SyncHealth:
    """Per source (those given, else every source with a run or a rate reading), its last
    `last` runs oldest first and its rate budget."""
    by_source: dict[str, list[RunPoint]] = {}
    for row in runs:  # newest first, as the audit lists them
        if is_remap(row):
            continue
        points = by_source.setdefault(str(row["source"]), [])
        if len(points) < last:
            points.append(run_point(row))
    rated = [name for name, status in statuses.items() if status.rate is not None]
    names = source_order([*by_source, *rated]) if sources is None else tuple(sources)
    return SyncHealth(
        tuple(
            SourceHealth(
                name,
                tuple(reversed(by_source.get(name, []))),
                statuses[name].rate if name in statuses else None,
            )
            for name in names
        )
    )
