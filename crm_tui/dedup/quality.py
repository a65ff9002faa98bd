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


def _expected_and_found(
    people: People, truth: Mapping[str, object], present: Iterable[str]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    persons: dict[object, list[str]] = {}
    for record in present:
        if record in truth:
            persons.setdefault(truth[record], []).append(record)
    found = _pairs(c.members for c in people.clusters)
    return _pairs(persons.values()), {(a, b) for a, b in found if a in truth and b in truth}


def score(people: People, truth: Mapping[str, object], present: Iterable[str]) -> Quality:
    """`truth`: record id -> the person it is; only records in `present` are counted."""
    expected, found = _expected_and_found(people, truth, present)
    return Quality(len(expected), len(found), len(expected & found))


def score_by_kind(
    people: People,
    truth: Mapping[str, object],
    kinds: Mapping[str, Iterable[str]],
    present: Iterable[str],
) -> dict[str, Quality]:
    """The same figures over the pairs that hold a record spelled each way (`kinds`:
    record id -> the ways its spelling differs)."""
    expected, found = _expected_and_found(people, truth, present)
    out: dict[str, Quality] = {}
    for kind in sorted({k for ks in kinds.values() for k in ks}):
        marked = {record for record, ks in kinds.items() if kind in ks}
        want = {pair for pair in expected if pair[0] in marked or pair[1] in marked}
        got = {pair for pair in found if pair[0] in marked or pair[1] in marked}
        out[kind] = Quality(len(want), len(got), len(want & got))
    return out
