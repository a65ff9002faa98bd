"""Working through the duplicate list: what is left to do, in sections, and merges in bulk.

A cluster leaves the work list when it is settled (merged: its local contact links every
other member) or rejected (a person said "not the same person": stored per user, and it
stays rejected while its members are among the rejected ones; a record that joins it later
is new evidence, and brings it back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_tui.dedup.clusters import EMPTY as EMPTY_PEOPLE
from crm_tui.dedup.clusters import POSSIBLE_PREFIX, Cluster, People
from crm_tui.dedup.merge import (
    MergeResult,
    cluster_records,
    merge_cluster,
    merge_new_clusters,
)
from crm_tui.local_crm import LocalCrm, ValidationFailed
from crm_tui.store.decisions import MergeEntry, Rejection
from crm_tui.text import fold

#: Sections in the order the People screen cycles them, with their titles.
SECTIONS: dict[str, str] = {
    "open": "To review",
    "names_differ": "Names differ",
    "possible": "Possible",
    "merged": "Merged",
    "rejected": "Not the same",
}


def rejected_by(cluster: Cluster, rejections: dict[tuple[bool, str], list[frozenset[str]]]) -> bool:
    """`rejections`: (possible?, record id) -> the rejected member sets holding it. A
    possible cluster holds whole key clusters: rejecting it says nothing about them."""
    held = rejections.get((cluster.possible, cluster.members[0]), ())
    return any(set(cluster.members) <= members for members in held)


@dataclass
class Review:
    sections: dict[str, list[Cluster]]
    merges: list[MergeEntry] = field(default_factory=list)  # not undone, newest first
    people: People = field(default_factory=lambda: EMPTY_PEOPLE)
    rejected: frozenset[str] = frozenset()  # ids of the clusters a person kept apart

    @classmethod
    def of(
        cls, people: People, rejections: Iterable[Rejection], merges: Sequence[MergeEntry] = ()
    ) -> Review:
        by_record: dict[tuple[bool, str], list[frozenset[str]]] = {}
        for rejection in rejections:
            possible = rejection.cluster_id.startswith(POSSIBLE_PREFIX)
            for record in rejection.members:
                by_record.setdefault((possible, record), []).append(rejection.members)
        sections: dict[str, list[Cluster]] = {name: [] for name in SECTIONS}
        for cluster in (*people.clusters, *people.possible):
            if cluster.settled:
                section = "merged"
            elif by_record and rejected_by(cluster, by_record):
                section = "rejected"
            elif cluster.possible:
                section = "possible"
            else:
                section = "names_differ" if cluster.flagged else "open"
            sections[section].append(cluster)
        apart = frozenset(c.id for c in sections["rejected"])
        return cls(sections, list(merges), people, apart)

    def counts(self) -> dict[str, int]:
        return {name: len(clusters) for name, clusters in self.sections.items()}

    def person_of(self, record_id: str) -> Cluster | None:
        """The record's person, unless a person said its records are not one."""
        cluster = self.people.by_record.get(record_id)
        return None if cluster is None or cluster.id in self.rejected else cluster

    def also_in(self, record_id: str) -> list[str]:
        return self.people.also_in(record_id) if self.person_of(record_id) else []

    def entry_for(self, cluster: Cluster) -> MergeEntry | None:
        """The newest merge still in force that made or updated this cluster's local contact."""
        members = set(cluster.members)
        return next((e for e in self.merges if e.local_id in members), None)


EMPTY_REVIEW = Review({name: [] for name in SECTIONS})


def select(
    clusters: Iterable[Cluster],
    min_confidence: float = 0.0,
    source: str | None = None,
    text: str = "",
    name_of: Callable[[str], str] | None = None,
) -> list[Cluster]:
    """Clusters at least this sure, holding `source`, and matching `text` by a member's name,
    e-mail (`name_of` gives a record's "name e-mail" text) or source."""
    needle = fold(text).strip()
    return [
        c
        for c in clusters
        if c.confidence >= min_confidence
        and (source is None or source in c.sources)
        and (not needle or _matches(c, needle, name_of))
    ]


def _matches(cluster: Cluster, needle: str, name_of: Callable[[str], str] | None) -> bool:
    if any(needle in source for source in cluster.sources):
        return True
    return name_of is not None and any(needle in fold(name_of(m)) for m in cluster.members)


def bulk_mergeable(clusters: Iterable[Cluster]) -> list[Cluster]:
    """What a merge of many may take: key-linked clusters whose names agree. "Names differ"
    and possible clusters wait for a person, one at a time."""
    return [c for c in clusters if not (c.flagged or c.possible or c.settled)]


@dataclass
class BulkReport:
    dry_run: bool
    people: int = 0  # clusters merged (or to merge)
    records: int = 0  # their records
    merged: list[MergeResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cluster id, why)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "people": self.people,
            "records": self.records,
            "merged": [result.to_json() for result in self.merged],
            "failed": [{"cluster": c, "error": why} for c, why in self.failed],
        }


def plan_bulk(clusters: Sequence[Cluster]) -> BulkReport:
    """What merging these would do, without doing it: the question a person confirms."""
    chosen = bulk_mergeable(clusters)
    return BulkReport(True, len(chosen), sum(len(c.members) for c in chosen))


#: Clusters written together by a bulk merge: one lease, transaction and cache update each.
BATCH = 250


async def merge_all(
    local: LocalCrm,
    clusters: Sequence[Cluster],
    progress: Callable[[int, int], None] | None = None,
) -> BulkReport:
    """Merge each cluster into its own local contact; each one journaled, so each can be
    undone on its own. A cluster the local CRM refuses is reported and the rest go on."""
    chosen = bulk_mergeable(clusters)
    report = BulkReport(False)
    fresh = [c for c in chosen if not any(m.startswith("local:") for m in c.members)]
    again = [c for c in chosen if any(m.startswith("local:") for m in c.members)]
    for start in range(0, len(fresh), BATCH):
        batch = [(c, cluster_records(local.store, c)) for c in fresh[start : start + BATCH]]
        merged, failed = await merge_new_clusters(local, batch)
        report.merged.extend(merged)
        report.failed.extend(failed)
        if progress is not None:
            progress(min(start + BATCH, len(fresh)), len(chosen))
    for cluster in again:  # rare: a merged person a new record joined
        try:
            report.merged.append(
                await merge_cluster(local, cluster, cluster_records(local.store, cluster))
            )
        except (ValidationFailed, KeyError) as exc:
            report.failed.append((cluster.id, str(exc)))
    sizes = {c.id: len(c.members) for c in chosen}
    report.people = len(report.merged)
    report.records = sum(sizes[result.cluster_id] for result in report.merged)
    if progress is not None:
        progress(len(chosen), len(chosen))
    return report
