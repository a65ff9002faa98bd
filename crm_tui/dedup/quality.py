"""How good the clusters are against a known truth: pairwise precision and recall."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

from crm_tui.dedup.clusters import People


@dataclass(frozen=True, slots=True)
class Quality:
    true_pairs: int  # record pairs that are one person
    found_pairs: int  # record pairs put in one cluster
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.found_pairs if self.found_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def _pairs(groups: Iterable[Iterable[str]]) -> set[tuple[str, str]]:
    return {pair for group in groups for pair in combinations(sorted(group), 2)}


def score(people: People, truth: Mapping[str, object], present: Iterable[str]) -> Quality:
    """`truth`: record id -> the person it is; only records in `present` are counted."""
    persons: dict[object, list[str]] = {}
    for record in present:
        if record in truth:
            persons.setdefault(truth[record], []).append(record)
    expected = _pairs(persons.values())
    found = _pairs(c.members for c in people.clusters)
    found = {(a, b) for a, b in found if a in truth and b in truth}
    return Quality(len(expected), len(found), len(expected & found))
