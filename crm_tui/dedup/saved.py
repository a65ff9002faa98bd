"""Finished clusters saved for one combination of the sources' stamps: a start whose sources
all rest, unchanged, on the same saved rows reads the clusters back instead of linking every
block again.

The saved form is marshal's, of plain tuples, in slices of `CHUNK` rows: each slice is
written and read by one C call, so none holds the interpreter lock for long (one call over
a million objects would freeze the app's loop). A digest in the metadata catches a damaged
file; anything that does not read back as written is ignored and the clusters are found
again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import marshal
from collections.abc import Mapping
from typing import Any

import numpy as np

from crm_tui.dedup.clusters import Cluster, Link, People, SharedPoint
from crm_tui.dedup.keys import NameAgreement
from crm_tui.heap import CHUNK
from crm_tui.store.stamps import StreamStamp

#: What the clusters are saved as on an ArtifactShelf, and under which "source".
WHAT = "dedup_people"
EVERY_SOURCE = "all"
#: The one stamp they are saved under: the combination is in the format (see `saved_format`).
STAMP = StreamStamp(0, (), 0)
LAYOUT = "dedup-people-1"
_AGREEMENT = {a.value: a for a in NameAgreement}
_NAMED = {a: a.value for a in NameAgreement}
_new = tuple.__new__  # a NamedTuple made without its Python-level __new__: a million of them


def saved_format(keys_format: str, stamps: Mapping[str, tuple[StreamStamp, int]]) -> str:
    """The format of the clusters of these sources at these stamps (with their counts of
    records), keyed as `keys_format` says: any other combination is another format, never
    read for this one."""
    rows = sorted((s, t.name, n) for s, (t, n) in stamps.items())
    combination = json.dumps([keys_format, rows])
    return f"{LAYOUT}/{hashlib.blake2b(combination.encode(), digest_size=16).hexdigest()}"


def to_saved(people: People) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata an ArtifactShelf saves."""
    points: list[SharedPoint] = []
    point_at: dict[int, int] = {}  # by identity: one point is held by many records
    for point in itertools.chain(
        itertools.chain.from_iterable(people.shared_by_record.values()),
        (p for c in people.clusters for p in c.shared),
    ):
        if id(point) not in point_at:
            point_at[id(point)] = len(points)
            points.append(point)
    cluster_at = {id(c): at for at, c in enumerate(people.clusters)}
    pieces: list[bytes] = []
    _put(pieces, "point", [(p.kind, p.value, p.groups) for p in points])
    _put(pieces, "cluster", [_row(c, point_at) for c in people.clusters])
    _put(pieces, "possible", [_row(c, point_at) for c in people.possible])
    shared = [(r, tuple(point_at[id(p)] for p in ps)) for r, ps in people.shared_by_record.items()]
    _put(pieces, "shared", shared)
    # by_record in the order it was filled: a cluster at a time, its members in order
    _put(pieces, "order", list(dict.fromkeys(cluster_at[id(c)] for c in people.by_record.values())))
    starts = np.cumsum([0, *map(len, pieces)], dtype=np.int64)
    arrays = {"blob": np.frombuffer(b"".join(pieces), dtype=np.uint8), "starts": starts}
    return arrays, {"digest": _digest(arrays), "clusters": len(people.clusters)}


def from_saved(arrays: Any, meta: Any) -> People | None:
    """The clusters as saved, or None when anything does not add up."""
    try:
        if meta.get("digest") != _digest(arrays):
            return None
        read: dict[str, list[Any]] = {n: [] for n in ("point", "cluster", "possible", "shared")}
        read["order"] = []
        blob, starts = arrays["blob"], arrays["starts"].tolist()
        for start, end in itertools.pairwise(starts):
            tag, rows = marshal.loads(memoryview(blob[start:end]))
            read[tag].extend(rows)
        points = [SharedPoint(str(k), str(v), tuple(map(tuple, g))) for k, v, g in read["point"]]
        clusters = [_cluster(row, points) for row in read["cluster"]]
        if len(clusters) != meta.get("clusters"):
            return None
        by_record = {m: c for c in map(clusters.__getitem__, read["order"]) for m in c.members}
        shared = {r: [points[i] for i in at] for r, at in read["shared"]}
        possible = [_cluster(row, points) for row in read["possible"]]
        return People(clusters, by_record, shared, possible)
    except (KeyError, ValueError, TypeError, EOFError, IndexError, AttributeError):
        return None


def _put(pieces: list[bytes], tag: str, rows: list[Any]) -> None:
    for start in range(0, len(rows), CHUNK):
        pieces.append(marshal.dumps((tag, rows[start : start + CHUNK])))


def _row(cluster: Cluster, point_at: dict[int, int]) -> tuple[Any, ...]:
    links = tuple([(k.a, k.b, k.keys, _NAMED[k.names], k.confidence) for k in cluster.links])
    shared = tuple(point_at[id(p)] for p in cluster.shared)
    c = cluster
    return (c.id, c.members, c.confidence, links, shared, c.latest, c.settled, c.possible)


def _cluster(row: tuple[Any, ...], points: list[SharedPoint]) -> Cluster:
    cid, members, sure, links, shared, latest, settled, possible = row
    made = tuple([_new(Link, (a, b, k, _AGREEMENT[n], s)) for a, b, k, n, s in links])
    if not (isinstance(cid, str) and isinstance(members, tuple) and made):
        raise ValueError("not a cluster")
    points_of = tuple([points[i] for i in shared])
    return _new(Cluster, (cid, members, sure, made, points_of, latest, settled, possible))


def _digest(arrays: Any) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name in ("blob", "starts"):
        digest.update(np.ascontiguousarray(arrays[name]).data)
    return digest.hexdigest()
