"""One person, every source: contacts linked by shared keys into clusters, with evidence.

Blocking, never all pairs: records are grouped by e-mail key and by phone key, and only the
members of one group are compared, by name. A candidate link whose names clearly differ is
dropped (a couple on one phone, an office `info@` address) unless the two records share both
an e-mail and a phone; whatever stays apart on one key is reported as a shared contact point.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np

from crm_tui.dedup.keys import NameAgreement, PhoneKeys, compare_names, name_key
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.possible import POSSIBLE, Cities, possible_links
from crm_tui.dedup.rekey import REKEY_SHARE, rekeyed
from crm_tui.heap import CHUNK, Sharded, dismantle
from crm_tui.models import Contact
from crm_tui.store import decisions
from crm_tui.store.local_rows import LINKS_FIELD
from crm_tui.store.reading import CachedRecords
from crm_tui.text import digits
from crm_tui.tuning import gc_paused

EMAIL, PHONE, MERGED = 1, 2, 4
#: A key held by more records than this is a placeholder or a switchboard, not a person.
MAX_BLOCK = 50
#: A possible cluster's id starts so; a key-linked cluster's with "p".
POSSIBLE_PREFIX = decisions.POSSIBLE_PREFIX

_BASE = {EMAIL: 0.90, PHONE: 0.85, EMAIL | PHONE: 0.97}
_NAME_BONUS = {
    NameAgreement.SAME: 0.08,
    NameAgreement.SIMILAR: 0.04,
    NameAgreement.UNKNOWN: -0.10,
}


def confidence(keys: int, names: NameAgreement) -> float:
    if keys & MERGED:
        return 1.0
    if names is NameAgreement.DIFFERENT:
        return 0.6  # both keys agree, the names do not: linked, and flagged
    return round(min(0.99, _BASE[keys] + _NAME_BONUS[names]), 2)


_KEY_NAMES = {
    bits: tuple(
        n for bit, n in ((EMAIL, "email"), (PHONE, "phone"), (MERGED, "merged")) if bits & bit
    )
    for bits in range(1, 8)
}
_CONFIDENCE = {
    (bits, names): confidence(bits, names)
    for bits in (EMAIL, PHONE, EMAIL | PHONE, MERGED)
    for names in NameAgreement
}


class Link(NamedTuple):
    """Why two records are one person."""

    a: str
    b: str
    keys: tuple[str, ...]
    names: NameAgreement
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "records": [self.a, self.b],
            "keys": list(self.keys),
            "names": str(self.names),
            "confidence": self.confidence,
        }


class SharedPoint(NamedTuple):
    """One e-mail or phone used by records that are not the same person."""

    kind: str
    value: str
    groups: tuple[tuple[str, ...], ...]

    @property
    def note(self) -> str:
        return f"shared contact point: {self.kind} {self.value} used by {len(self.groups)} people"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "groups": [list(g) for g in self.groups]}


class Cluster(NamedTuple):
    id: str
    members: tuple[str, ...]
    confidence: float
    links: tuple[Link, ...]
    shared: tuple[SharedPoint, ...] = ()
    latest: str = ""  # the most recent change to any member, as the CRMs report it
    settled: bool = False  # merged: one local contact links every other member
    possible: bool = False  # linked by name and place only: a person decides

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.split(":", 1)[0] for m in self.members))

    @property
    def flagged(self) -> bool:
        """Linked although the names disagree: a person should look before merging."""
        return any(link.names is NameAgreement.DIFFERENT for link in self.links)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "size": len(self.members),
            "sources": list(self.sources),
            "confidence": self.confidence,
            "flagged": self.flagged,
            "settled": self.settled,
            "possible": self.possible,
            "latest": self.latest or None,
            "members": list(self.members),
            "evidence": [link.to_json() for link in self.links],
            "shared_contact_points": [s.to_json() for s in self.shared],
        }


def cluster_id(members: Iterable[str]) -> str:
    """Stable while its vendor records stay: a merged-in local record does not rename it."""
    ids = sorted(members)
    anchor = next((m for m in ids if not m.startswith("local:")), ids[0])
    return "p" + hashlib.blake2b(anchor.encode(), digest_size=5).hexdigest()


@dataclass
class People:
    """Clusters linked by e-mail or phone (settled ones included), most sources and most
    recent activity first, and the `possible` ones linked by name and place alone."""

    clusters: list[Cluster]
    by_record: dict[str, Cluster]
    shared_by_record: dict[str, list[SharedPoint]]
    possible: list[Cluster] = field(default_factory=list)
    by_id: dict[str, Cluster] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in (*self.clusters, *self.possible)}

    def select(self, min_confidence: float = 0.0, source: str | None = None) -> list[Cluster]:
        """Key-linked clusters not yet merged, at least this sure, holding `source`."""
        return [
            c
            for c in self.clusters
            if not c.settled
            and c.confidence >= min_confidence
            and (source is None or source in c.sources)
        ]

    def also_in(self, record_id: str) -> list[str]:
        """The other records of this record's person, those after it first (so stepping
        through them from any member visits every one)."""
        cluster = self.by_record.get(record_id)
        if cluster is None:
            return []
        at = cluster.members.index(record_id)
        return [*cluster.members[at + 1 :], *cluster.members[:at]]


EMPTY = People([], {}, {})


@dataclass(slots=True)
class SourceKeys:
    """One source's contacts reduced to match keys; rebuilt only when the source changes."""

    version: object  # the store's stream_version when these keys were made
    ids: list[str]
    emails: list[str | None]
    phones: list[str | None]
    names: list[tuple[str, str]]
    merged: list[tuple[str, tuple[str, ...]]]
    updated: list[str]
    streets: list[str | None]  # as the CRM wrote it (keyed only where a name repeats)
    cities: list[str]  # folded

    @classmethod
    def build(cls, version: object, contacts: Collection[Contact], phones: PhoneKeys) -> SourceKeys:
        folded = Sharded[tuple[str | None, str | None], tuple[str, str]]()
        for c in contacts:
            pair = (c.first_name, c.last_name)
            if pair not in folded:
                folded[pair] = name_key(*pair)
        cities = Cities()
        merged = [
            (c.id, tuple(str(x) for x in json.loads(c.raw).get(LINKS_FIELD) or ()))
            for c in contacts
            if c.source == "local" and LINKS_FIELD in c.raw
        ]
        keys = cls(
            version,
            [c.id for c in contacts],
            [mailbox_key(c.email) for c in contacts],
            [phones(c.phone) for c in contacts],
            [folded[(c.first_name, c.last_name)] for c in contacts],
            merged,
            [c.remote_updated or c.remote_created or "" for c in contacts],
            [c.street for c in contacts],
            [cities(c.city) for c in contacts],
        )
        folded.release()
        return keys


class DuplicateFinder:
    """Keeps each source's keys between runs: after a sync only that source is re-read."""

    def __init__(self, region: str = "US") -> None:
        self.phones = PhoneKeys(region)
        self._keys: dict[str, SourceKeys] = {}
        self._lock = threading.Lock()  # two refreshes from worker threads run one at a time

    def refresh(self, store: CachedRecords) -> People:
        """Re-keys the sources whose contacts changed since the last refresh."""
        with self._lock:
            return self._refresh(store)

    def _refresh(self, store: CachedRecords) -> People:
        present = {}
        for source in store.sources():
            version = store.stream_version("contacts", source)  # before the records
            stream = cast("Mapping[str, Contact]", store.stream("contacts", source))
            if not stream:
                continue
            cached = self._keys.get(source)
            if cached is None or cached.version != version:
                # young lists of a million keys: a collection walking them would hold the
                # interpreter lock (and stall the app's loop); frozen on the way out
                with gc_paused():
                    cached = self._keys_now(store, source, version, stream, cached)
            present[source] = cached
        stale = [keys for name, keys in self._keys.items() if present.get(name) is not keys]
        self._keys = present
        for keys in stale:  # a third of a million strings, let go of a slice at a time
            dismantle(keys.ids, keys.emails, keys.phones, keys.names, keys.updated, keys.streets)
        with gc_paused():
            return find_clusters([present[s] for s in sorted(present)])

    def _keys_now(
        self,
        store: CachedRecords,
        source: str,
        version: tuple[int, int],
        stream: Mapping[str, Contact],
        cached: SourceKeys | None,
    ) -> SourceKeys:
        """A few contacts changed since `cached` was made: re-key those; else all."""
        if cached is not None:
            changed = store.changed_since("contacts", source, cached.version)
            if changed is not None and len(changed) <= max(1000, REKEY_SHARE * len(cached.ids)):
                return rekeyed(cached, version, stream, changed, self.phones, LINKS_FIELD)
        # the view, not a list of it: one C loop over a third of a million records
        return SourceKeys.build(version, stream.values(), self.phones)

    def find(self, contacts: Sequence[Contact]) -> People:
        """Clusters of a plain list of contacts (tests, the CLI without a store)."""
        by_source: dict[str, list[Contact]] = {}
        for contact in contacts:
            by_source.setdefault(contact.source, []).append(contact)
        with gc_paused():
            return find_clusters(
                [SourceKeys.build(None, by_source[s], self.phones) for s in sorted(by_source)]
            )


# -- clustering ------------------------------------------------------------------------------


def _blocks(keys: list[str | None]) -> list[tuple[str, list[int]]]:
    """Positions sharing a key, for every key held more than once, in order of first repeat
    (the order keeps the later passes walking the records' lists forward, cache-friendly)."""
    first = Sharded[str, int]()
    groups = Sharded[str, list[int]]()
    repeated: list[tuple[str, list[int]]] = []
    for i, key in enumerate(keys):
        if key is None:
            continue
        j = first.setdefault(key, i)
        if j != i:
            group = groups.get(key)
            if group is None:
                group = groups[key] = [j, i]
                repeated.append((key, group))
            else:
                group.append(i)
    first.release()
    groups.release()
    return repeated


class _Union:
    def __init__(self, size: int) -> None:
        self.parent: list[int] = []
        for start in range(0, size, CHUNK):  # not one C loop making a million ints
            self.parent.extend(range(start, min(start + CHUNK, size)))

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def find_clusters(parts: Sequence[SourceKeys]) -> People:
    ids = [i for p in parts for i in p.ids]
    emails = [e for p in parts for e in p.emails]
    phones = [x for p in parts for x in p.phones]
    names = [n for p in parts for n in p.names]
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]] = {}
    crowded: list[tuple[str, str, list[int]]] = []
    for kind, bit, keys, other in (
        ("email", EMAIL, emails, phones),
        ("phone", PHONE, phones, emails),
    ):
        blocks = _blocks(keys)
        for value, block in blocks:
            if len(block) > MAX_BLOCK:
                crowded.append((kind, value, block))
                continue
            if _link_block(block, bit, other, names, pairs):
                crowded.append((kind, value, block))
        dismantle(blocks)
    # Merged local contacts link to source ids: look up only those, not every record.
    wanted = {r for p in parts for local_id, linked in p.merged for r in (local_id, *linked)}
    position = {record: i for i, record in enumerate(ids) if record in wanted} if wanted else {}
    merges: dict[int, set[int]] = {}
    for part in parts:
        for local_id, linked in part.merged:
            for target in linked:
                if target in position:
                    a, b = sorted((position[local_id], position[target]))
                    pairs[(a, b)] = (MERGED, compare_names(names[a], names[b]))
                    merges.setdefault(position[local_id], set()).add(position[target])
    updated = [u for p in parts for u in p.updated]
    union = _Union(len(ids))
    for a, b in pairs:
        union.join(a, b)
    streets = [x for p in parts for x in p.streets]
    cities = [x for p in parts for x in p.cities]
    # as many records as one person held in every CRM; the team's own (local) not counted
    crms = sum(1 for p in parts if p.ids and not p.ids[0].startswith("local:"))
    proposals = possible_links(names, streets, cities, union.root, rare=max(2, crms))
    bounds = list(itertools.accumulate(len(p.ids) for p in parts))  # where each source ends
    people = _assemble(ids, union, pairs, crowded, updated, merges, bounds)
    people.possible = _possible_clusters(ids, union, people, proposals, updated)
    people.by_id.update((c.id, c) for c in people.possible)
    # freed here a slice at a time, not all at once by the return (one C loop, lock held)
    dismantle(union.parent, ids, emails, phones, names, streets, cities, updated, proposals)
    dismantle(pairs, crowded, position, merges)
    return people


def _link_block(
    block: list[int],
    bit: int,
    other: list[str | None],
    names: list[tuple[str, str]],
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
) -> bool:
    """Link the members of one key's block; True when people with different names remain."""
    groups: list[list[int]] = []
    for m in block:
        for group in groups:
            head = group[0]
            agreement = compare_names(names[head], names[m])
            if agreement is not NameAgreement.DIFFERENT:
                same_other = other[m] is not None and other[m] == other[head]
                pairs.setdefault((head, m), (EMAIL | PHONE if same_other else bit, agreement))
                group.append(m)
                break
        else:
            groups.append([m])
    if len(groups) == 1:
        return False
    for gi, first in enumerate(groups):
        for second in groups[gi + 1 :]:
            for a in first:
                for b in second:
                    if other[a] is not None and other[a] == other[b]:
                        pair = (a, b) if a < b else (b, a)
                        pairs.setdefault(pair, (EMAIL | PHONE, NameAgreement.DIFFERENT))
    return True


def _assemble(
    ids: list[str],
    union: _Union,
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
    crowded: list[tuple[str, str, list[int]]],
    updated: list[str],
    merges: dict[int, set[int]],
    bounds: list[int],
) -> People:
    members: dict[int, list[int]] = {}
    links: dict[int, list[Link]] = {}
    for (a, b), (keys, agreement) in pairs.items():
        root = union.root(a)
        links.setdefault(root, []).append(
            Link(ids[a], ids[b], _KEY_NAMES[keys], agreement, _CONFIDENCE[keys, agreement])
        )
    for root in links:
        members[root] = []
    for i in range(len(ids)):
        if union.parent[i] != i or i in members:
            root = union.root(i)
            members[root].append(i)
    shared_by_root: dict[int, list[SharedPoint]] = {}
    shared_by_record: dict[str, list[SharedPoint]] = {}
    for kind, value, block in crowded:
        groups: dict[int, list[str]] = {}
        for i in block:
            groups.setdefault(union.root(i), []).append(ids[i])
        if len(groups) < 2:
            continue
        point = SharedPoint(kind, value, tuple(tuple(g) for g in groups.values()))
        for root, group in groups.items():
            shared_by_root.setdefault(root, []).append(point)
            for record in group:
                shared_by_record.setdefault(record, []).append(point)
    clusters: list[Cluster] = []
    by_record: dict[str, Cluster] = {}
    for root, indexes in members.items():
        member_ids = tuple(sorted(ids[i] for i in indexes))
        own = links[root]
        cluster = Cluster(
            cluster_id(member_ids),
            member_ids,
            min(link.confidence for link in own),
            tuple(own),
            tuple(shared_by_root.get(root, ())),
            max(map(updated.__getitem__, indexes)),
            bool(merges) and _settled(ids, indexes, merges),
        )
        clusters.append(cluster)
        for record in member_ids:
            by_record[record] = cluster
    spread = [len({bisect_right(bounds, i) for i in indexes}) for indexes in members.values()]
    ordered = [clusters[i] for i in most_valuable_first(clusters, list(members), spread)]
    dismantle(pairs, members, links, clusters)
    return People(ordered, by_record, shared_by_record)


def _settled(ids: list[str], indexes: list[int], merges: dict[int, set[int]]) -> bool:
    """One local contact of the cluster was merged from every source record in it (other
    local contacts in it are the team's own: a merge never links one local to another)."""
    merged = [i for i in indexes if i in merges]
    if not merged:
        return False
    vendors = {i for i in indexes if not ids[i].startswith("local:")}
    return any(merges[i] >= vendors for i in merged)


def most_valuable_first(
    clusters: Sequence[Cluster], first: Iterable[int], spread: Iterable[int] | None = None
) -> list[int]:
    """The order to work through: records in the most sources (`spread`, when the caller
    counted them already), then the most recent activity, then the largest and surest; ties
    by the first member's place. numpy sorts without holding the interpreter lock, where
    list.sort over 300,000 tuples would freeze the app's loop."""
    count = len(clusters)
    counted = spread if spread is not None else (len(c.sources) for c in clusters)
    sources = np.fromiter(counted, dtype=np.int32, count=count)
    # as a number (20260326143005): a numpy string array of 300,000 would be built, and
    # sorted, in long C calls that hold the interpreter lock
    recency = np.fromiter((_stamp(c.latest) for c in clusters), dtype=np.int64, count=count)
    sizes = np.fromiter((len(c.members) for c in clusters), dtype=np.int32, count=count)
    sure = np.fromiter((c.confidence for c in clusters), dtype=np.float64, count=count)
    place = np.fromiter(first, dtype=np.int64, count=count)
    return np.lexsort((place, -sure, -sizes, -recency, -sources)).tolist()


def _stamp(when: str) -> int:
    """An ISO time's digits as one number, to the second; 0 when there is none."""
    number = digits(when)[:14]
    return int(number.ljust(14, "0")) if number else 0


def _best_per_unit_pair(
    proposals: list[tuple[int, int, str]], root: Callable[[int], int]
) -> dict[tuple[int, int], tuple[int, int, str]]:
    """One proposal per pair of clusters (by root): the strongest evidence."""
    best: dict[tuple[int, int], tuple[int, int, str]] = {}
    for a, b, kind in proposals:
        ra, rb = root(a), root(b)
        units = (ra, rb) if ra < rb else (rb, ra)
        known = best.get(units)
        if known is None or POSSIBLE[kind] > POSSIBLE[known[2]]:
            best[units] = (a, b, kind)
    return best


def _possible_clusters(
    ids: list[str],
    union: _Union,
    people: People,
    proposals: list[tuple[int, int, str]],
    updated: list[str],
) -> list[Cluster]:
    """Key clusters and lone records that name and place alone say are one person."""
    best = _best_per_unit_pair(proposals, union.root)
    joined: dict[int, int] = {}  # a small union-find over the roots involved

    def top(unit: int) -> int:
        while joined.get(unit, unit) != unit:
            unit = joined[unit]
        return unit

    for ra, rb in best:
        a, b = top(ra), top(rb)
        if a != b:
            joined[max(a, b)] = min(a, b)
    groups: dict[int, list[tuple[int, int, str]]] = {}
    for (ra, _), proposal in best.items():
        groups.setdefault(top(ra), []).append(proposal)
    found: list[Cluster] = []
    for group in groups.values():
        records: set[str] = set()
        latest = ""
        for i in {i for a, b, _ in group for i in (a, b)}:
            cluster = people.by_record.get(ids[i])
            records.update(cluster.members if cluster is not None else (ids[i],))
            latest = max(latest, cluster.latest if cluster is not None else updated[i])
        members = tuple(sorted(records))
        links = tuple(
            Link(ids[a], ids[b], ("name", kind), NameAgreement.SAME, POSSIBLE[kind])
            for a, b, kind in group
        )
        sure = min(link.confidence for link in links)
        found.append(
            Cluster(
                POSSIBLE_PREFIX + cluster_id(members)[1:],
                members,
                sure,
                links,
                (),
                latest,
                False,
                True,
            )
        )
    return [found[i] for i in most_valuable_first(found, range(len(found)))]
