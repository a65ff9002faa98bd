"""One person, every source: contacts linked by shared keys into clusters, with evidence.

Blocking, never all pairs: records are grouped by e-mail key and by phone key, and only the
members of one group are compared, by name. A candidate link whose names clearly differ is
dropped (a couple on one phone, an office `info@` address) unless the two records share both
an e-mail and a phone; whatever stays apart on one key is reported as a shared contact point.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np

from crm_tui.dedup.blocks import repeated
from crm_tui.dedup.keyarrays import Keyer
from crm_tui.dedup.keys import NameAgreement, compare_names
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.possible import POSSIBLE, possible_links
from crm_tui.dedup.sourcekeys import (
    SourceKeys,
)
from crm_tui.dedup.texts import FIELDS, Texts, split_name
from crm_tui.heap import CHUNK, release_gradually
from crm_tui.models import Contact
from crm_tui.store import decisions
from crm_tui.text import digits

log = logging.getLogger(__name__)

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


_new = tuple.__new__  # a NamedTuple made without its Python-level __new__: a million of them
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
    return _id_of_sorted(sorted(members))


def _id_of_sorted(ids: Sequence[str]) -> str:
    anchor = ids[0]
    if anchor.startswith("local:"):
        anchor = next((m for m in ids if not m.startswith("local:")), anchor)
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


# -- clustering ------------------------------------------------------------------------------


class _Records:
    """The records of every part by global position, read only where a cluster needs
    them: most positions of a million are never read."""

    def __init__(self, parts: Sequence[SourceKeys], keyer: Keyer) -> None:
        self.parts = parts
        self.keyer = keyer
        self.starts = [0, *itertools.accumulate(len(p) for p in parts)]
        self.ids: dict[int, str] = {}
        self.names: dict[int, tuple[str, str]] = {}
        self.updated: dict[int, str] = {}

    def column(self, name: str) -> np.ndarray:
        columns = [p.column(name) for p in self.parts]
        return np.concatenate(columns) if columns else np.zeros(0, dtype=np.uint64)

    def load(self, positions: Iterable[int] | np.ndarray) -> None:
        """Read the records at `positions`, a part at a time, in order."""
        wanted = _distinct(np.fromiter(positions, dtype=np.int64))
        bounds = np.searchsorted(wanted, self.starts).tolist()
        for at, part in enumerate(self.parts):
            start = self.starts[at]
            fresh = [i for i in wanted[bounds[at] : bounds[at + 1]].tolist() if i not in self.ids]
            if part.texts is not None:
                fresh = self._from_texts(part, start, fresh)
            for first in range(0, len(fresh), CHUNK):
                here = fresh[first : first + CHUNK]
                self._keep(here, part.records_at([i - start for i in here]))

    def _from_texts(self, part: SourceKeys, start: int, fresh: list[int]) -> list[int]:
        """The texts of the unchanged positions read as saved; the positions left to read
        from the records (those changed since, or all if the saved texts do not add up)."""
        texts = cast("dict[str, Texts]", part.texts)  # at hand: the caller checked
        kept = [i for i in fresh if i - start not in part.patched]
        at = np.array(kept, dtype=np.int64) - start
        found = {name: texts[name].at(at) for name in FIELDS}
        if any(v is None for v in found.values()):
            log.warning("the saved texts of %s do not add up: read from its records", part.source)
            return fresh
        self.ids.update(zip(kept, found["ids"], strict=True))
        self.updated.update(zip(kept, found["updated"], strict=True))
        self.names.update(zip(kept, map(split_name, found["names"]), strict=True))  # type: ignore[arg-type]
        return [i for i in fresh if i - start in part.patched]

    def _keep(self, positions: list[int], records: list[Contact]) -> None:
        name = self.keyer.name
        self.ids.update(zip(positions, [r.id for r in records], strict=True))
        self.names.update(zip(positions, [name(r) for r in records], strict=True))
        when = [r.remote_updated or r.remote_created or "" for r in records]
        self.updated.update(zip(positions, when, strict=True))

    def key_text(self, kind: str, i: int) -> str:
        at = bisect_right(self.starts, i) - 1
        record = cast("Contact", self.parts[at].record(i - self.starts[at]))
        text = mailbox_key(record.email) if kind == "email" else self.keyer.phones(record.phone)
        return text or ""

    def release(self) -> None:
        _let_go(self.ids, self.names, self.updated)


class _Components:
    """The sets the linked pairs make, found with numpy (a root is its set's lowest
    position): `nodes`, every linked position ascending, and `roots`, each one's root."""

    def __init__(self, pairs: Collection[tuple[int, int]]) -> None:
        ends = np.fromiter(itertools.chain.from_iterable(pairs), np.int64, 2 * len(pairs))
        self.nodes = _distinct(ends)
        a, b = np.searchsorted(self.nodes, ends[0::2]), np.searchsorted(self.nodes, ends[1::2])
        label = np.arange(len(self.nodes))
        while True:  # each end takes the lower label of the two, then labels point past
            low = np.minimum(label[a], label[b])
            moved = label.copy()
            np.minimum.at(moved, a, low)
            np.minimum.at(moved, b, low)
            moved = moved[moved]
            if np.array_equal(moved, label):
                break
            label = moved
        self.roots = self.nodes[label]
        self.pair_roots = self.roots[a]  # each pair's set, in the pairs' order
        # as lists, found by bisection: a few thousand lookups, not a dict of every node
        self._nodes, self._roots = self.nodes.tolist(), self.roots.tolist()

    def root(self, i: int) -> int:
        at = bisect_left(self._nodes, i)
        return self._roots[at] if at < len(self._nodes) and self._nodes[at] == i else i

    def release(self) -> None:
        _let_go(self._nodes, self._roots)

    def sets(
        self, per_pair: np.ndarray
    ) -> tuple[list[int], list[list[int]], list[list[int]], list[float]]:
        """Per set, lowest root first: its root, its positions ascending, the indexes (in
        the pairs' order) of the pairs that made it, and the least of `per_pair` over them."""
        by_set = np.lexsort((self.nodes, self.roots))
        held = self.nodes[by_set].tolist()
        firsts = _run_starts(self.roots[by_set])
        made = np.argsort(self.pair_roots, kind="stable")
        links = made.tolist()
        pair_firsts = _run_starts(self.pair_roots[made])
        least = np.minimum.reduceat(per_pair[made], pair_firsts[:-1]) if len(made) else made
        return (
            self.roots[by_set][firsts[:-1]].tolist(),
            [held[s:e] for s, e in itertools.pairwise(firsts.tolist())],
            [links[s:e] for s, e in itertools.pairwise(pair_firsts.tolist())],
            least.tolist(),
        )


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending; by sorting (numpy's hashing unique is slower here)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))[: len(ordered)]]


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts, and the end."""
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    return np.concatenate(([0], cuts, [len(values)])) if len(values) else np.zeros(1, np.int64)


def find_clusters(parts: Sequence[SourceKeys], keyer: Keyer) -> People:
    view = _Records(parts, keyer)
    email, phone = view.column("email"), view.column("phone")
    by_email, on_email = repeated(email)
    by_phone, on_phone = repeated(phone)
    blocked = np.sort(np.concatenate((on_email, on_phone)))  # load() drops the repeats
    view.load(blocked)
    emails, phones = _codes_at(email, blocked), _codes_at(phone, blocked)
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]] = {}
    crowded: list[tuple[str, list[int]]] = []
    for kind, bit, blocks, other in (
        ("email", EMAIL, by_email, phones),
        ("phone", PHONE, by_phone, emails),
    ):
        for block in blocks:
            if len(block) == 2:  # most blocks: one person in two sources, linked inline
                if _link_two(block, bit, other, view.names, pairs):
                    crowded.append((kind, block))
            elif len(block) > MAX_BLOCK or _link_block(block, bit, other, view.names, pairs):
                crowded.append((kind, block))
    del email, phone, emails, phones
    merges = _merges(parts, view, pairs)
    union = _Components(pairs)
    # as many records as one person held in every CRM; the team's own (local) not counted
    crms = sum(1 for p in parts if len(p) and p.source != "local")
    names, streets, cities = (view.column(n) for n in ("name", "street", "city"))
    proposals = possible_links(names, streets, cities, union.root, rare=max(2, crms))
    del names, streets, cities
    view.load(i for a, b, _ in proposals for i in (a, b))
    people = _assemble(view, union, pairs, crowded, merges, view.starts[1:])
    people.possible = _possible_clusters(view.ids, union.root, people, proposals, view.updated)
    people.by_id.update((c.id, c) for c in people.possible)
    view.release()
    union.release()
    _let_go(proposals, pairs, crowded, merges, by_email, by_phone)
    return people


def _let_go(*containers: list[Any] | dict[Any, Any]) -> None:
    """Freed a slice at a time in the background, not all at once by the return (one C loop
    with the lock held), nor here before the clusters are handed over."""
    for container in containers:
        release_gradually(container)


def _merges(
    parts: Sequence[SourceKeys],
    view: _Records,
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
) -> dict[int, set[int]]:
    """Merged local contacts link to source ids: those looked up, not every record."""
    wanted: dict[str, set[str]] = {}
    for part in parts:
        for _, _, linked in part.merged:
            for target in linked:
                wanted.setdefault(target.split(":", 1)[0], set()).add(target)
    position: dict[str, int] = {}
    for at, part in enumerate(parts):
        if part.source in wanted:
            found = part.find(wanted[part.source])
            position.update((i, view.starts[at] + p) for i, p in found.items())
    view.load(itertools.chain(position.values(), _merged_positions(parts, view.starts)))
    merges: dict[int, set[int]] = {}
    for at, part in enumerate(parts):
        for local, _, linked in part.merged:
            here = view.starts[at] + local
            for target in linked:
                if target in position:
                    a, b = sorted((here, position[target]))
                    pairs[(a, b)] = (MERGED, compare_names(view.names[a], view.names[b]))
                    merges.setdefault(here, set()).add(position[target])
    return merges


def _codes_at(column: np.ndarray, positions: np.ndarray) -> dict[int, int]:
    """position -> code, for the few positions a pass looks at; a slice at a time (a
    million-key dict made in one C call holds the interpreter lock too long)."""
    found: dict[int, int] = {}
    for start in range(0, len(positions), CHUNK):
        part = positions[start : start + CHUNK]
        found.update(zip(part.tolist(), column[part].tolist(), strict=True))
    return found


def _merged_positions(parts: Sequence[SourceKeys], starts: list[int]) -> list[int]:
    return [starts[at] + local for at, part in enumerate(parts) for local, _, _ in part.merged]


def _link_two(
    block: list[int],
    bit: int,
    other: dict[int, int],
    names: dict[int, tuple[str, str]],
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
) -> bool:
    """`_link_block` for a block of two, without its lists of groups."""
    a, b = block
    agreement = compare_names(names[a], names[b])
    same_other = bool(other[a]) and other[a] == other[b]
    if agreement is not NameAgreement.DIFFERENT:
        pairs.setdefault((a, b), (EMAIL | PHONE if same_other else bit, agreement))
        return False
    if same_other:
        pairs.setdefault((a, b), (EMAIL | PHONE, NameAgreement.DIFFERENT))
    return True


def _link_block(
    block: list[int],
    bit: int,
    other: dict[int, int],
    names: dict[int, tuple[str, str]],
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
) -> bool:
    """Link the members of one key's block (`other`: the other key's code of each); True
    when people with different names remain."""
    groups: list[list[int]] = []
    for m in block:
        for group in groups:
            head = group[0]
            agreement = compare_names(names[head], names[m])
            if agreement is not NameAgreement.DIFFERENT:
                same_other = bool(other[m]) and other[m] == other[head]
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
                    if other[a] and other[a] == other[b]:
                        pair = (a, b) if a < b else (b, a)
                        pairs.setdefault(pair, (EMAIL | PHONE, NameAgreement.DIFFERENT))
    return True


def _assemble(
    view: _Records,
    union: _Components,
    pairs: dict[tuple[int, int], tuple[int, NameAgreement]],
    crowded: list[tuple[str, list[int]]],
    merges: dict[int, set[int]],
    bounds: list[int],
) -> People:
    ids, updated = view.ids, view.updated
    made = [
        _new(Link, (ids[a], ids[b], _KEY_NAMES[keys], agreement, _CONFIDENCE[keys, agreement]))
        for (a, b), (keys, agreement) in pairs.items()
    ]
    sure = np.fromiter((link.confidence for link in made), np.float64, len(made))
    roots, members, links, least = union.sets(sure)
    shared_by_root, shared_by_record = _shared(view, union, crowded)
    clusters: list[Cluster] = []
    by_record: dict[str, Cluster] = {}
    for root, indexes, own, lowest in zip(roots, members, links, least, strict=True):
        member_ids = tuple(sorted([ids[i] for i in indexes]))
        cluster = _new(
            Cluster,
            (
                _id_of_sorted(member_ids),
                member_ids,
                lowest,
                tuple([made[j] for j in own]),
                tuple(shared_by_root.get(root, ())),
                max(map(updated.__getitem__, indexes)),
                bool(merges) and _settled(ids, indexes, merges),
                False,
            ),
        )
        clusters.append(cluster)
        for record in member_ids:
            by_record[record] = cluster
    ordered = [clusters[i] for i in most_valuable_first(clusters, roots, _spread(union, bounds))]
    _let_go(made, members, links, clusters)
    return People(ordered, by_record, shared_by_record)


def _spread(union: _Components, bounds: list[int]) -> list[int]:
    """How many sources each set's records are in, sets lowest root first."""
    if not len(union.nodes):
        return []
    sources = np.searchsorted(np.array(bounds), union.nodes, side="right")
    order = np.lexsort((sources, union.roots))
    roots, sources = union.roots[order], sources[order]
    new_root = np.concatenate(([True], roots[1:] != roots[:-1]))
    new_source = new_root | np.concatenate(([True], sources[1:] != sources[:-1]))
    return np.add.reduceat(new_source.astype(np.int64), np.flatnonzero(new_root)).tolist()


def _shared(
    view: _Records, union: _Components, crowded: list[tuple[str, list[int]]]
) -> tuple[dict[int, list[SharedPoint]], dict[str, list[SharedPoint]]]:
    """The e-mails and phones that people who are not one person share."""
    shared_by_root: dict[int, list[SharedPoint]] = {}
    shared_by_record: dict[str, list[SharedPoint]] = {}
    for kind, block in crowded:
        groups: dict[int, list[str]] = {}
        for i in block:
            groups.setdefault(union.root(i), []).append(view.ids[i])
        if len(groups) < 2:
            continue
        value = view.key_text(kind, block[0])
        point = SharedPoint(kind, value, tuple(tuple(g) for g in groups.values()))
        for root, group in groups.items():
            shared_by_root.setdefault(root, []).append(point)
            for record in group:
                shared_by_record.setdefault(record, []).append(point)
    return shared_by_root, shared_by_record


def _settled(ids: dict[int, str], indexes: list[int], merges: dict[int, set[int]]) -> bool:
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
    stamps = {when: _stamp(when) for when in {c.latest for c in clusters}}
    recency = np.fromiter((stamps[c.latest] for c in clusters), dtype=np.int64, count=count)
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
    ids: dict[int, str],
    root: Callable[[int], int],
    people: People,
    proposals: list[tuple[int, int, str]],
    updated: dict[int, str],
) -> list[Cluster]:
    """Key clusters and lone records that name and place alone say are one person."""
    best = _best_per_unit_pair(proposals, root)
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
