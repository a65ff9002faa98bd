"""The duplicate finder as it was before its keys became arrays (session 12), kept verbatim
as the reference the array finder must agree with: same clusters, links, order."""

from __future__ import annotations

import itertools
import json
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from crm_tui.dedup.clusters import (
    _CONFIDENCE,
    _KEY_NAMES,
    EMAIL,
    MAX_BLOCK,
    MERGED,
    PHONE,
    POSSIBLE_PREFIX,
    Cluster,
    Link,
    People,
    SharedPoint,
    cluster_id,
    most_valuable_first,
)
from crm_tui.dedup.keys import NameAgreement, PhoneKeys, compare_names, name_key
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.possible import MAX_BLOCK as POSSIBLE_BLOCK
from crm_tui.dedup.possible import POSSIBLE, Cities, street_key
from crm_tui.heap import CHUNK, Sharded, dismantle
from crm_tui.models import Contact
from crm_tui.store.local_rows import LINKS_FIELD


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


def reference_find(contacts: Sequence[Contact], region: str = "US") -> People:
    """What DuplicateFinder.find returned before the keys became arrays."""
    phones = PhoneKeys(region)
    by_source: dict[str, list[Contact]] = {}
    for contact in contacts:
        by_source.setdefault(contact.source, []).append(contact)
    return find_clusters([SourceKeys.build(None, by_source[s], phones) for s in sorted(by_source)])


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


def possible_links(
    names: Sequence[tuple[str, str]],
    streets: Sequence[str | None],
    cities: Sequence[str],
    root: Callable[[int], int],
    rare: int,
) -> list[tuple[int, int, str]]:
    """(a, b, "street" or "city") for records in different clusters (`root`) that agree on
    the full name and on the street (the city too where both have one), or on the city
    alone when at most `rare` records hold the name. `streets` are as the CRMs wrote them:
    only records whose name is held twice are read."""
    # Sharded, not one dict: resizing a dict of a million keys (or freeing it) is one C loop
    # holding the interpreter lock, and the app's loop waits on it while a sync runs.
    counts = Sharded[tuple[str, str], int]()
    for name in names:
        counts[name] = (counts.get(name) or 0) + 1
    blocks = Sharded[tuple[tuple[str, str], str, str], list[int]]()
    ordered: list[tuple[str, list[int]]] = []  # first-seen order: records walked forward

    def add(key: tuple[tuple[str, str], str, str], i: int) -> None:
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = []
            ordered.append((key[1], block))
        block.append(i)

    for i, name in enumerate(names):
        held = counts[name]
        if held < 2 or not (name[0] and name[1]):
            continue
        street, city = street_key(streets[i]), cities[i]
        if street:
            add((name, "street", street), i)
        if city and held <= rare:
            add((name, "city", city), i)
    counts.release()
    blocks.release()
    found: list[tuple[int, int, str]] = []
    for kind, block in ordered:
        if len(block) < 2 or len(block) > POSSIBLE_BLOCK:
            continue
        heads: dict[int, int] = {}
        for i in block:
            heads.setdefault(root(i), i)
        first, *others = heads.values()
        found.extend(
            (first, other, kind)
            for other in others
            if not (cities[first] and cities[other] and cities[first] != cities[other])
        )
    dismantle(ordered)
    return found
