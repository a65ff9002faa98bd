"""Finished clusters saved for one combination of the sources' stamps: a start whose sources
all rest, unchanged, on the same saved rows reads the clusters back instead of linking every
block again.

Saved by column: every cluster's members as one text blob, every link's ends as places in
it, confidences and flags as numpy arrays. Reading back is a few C calls per column and one
tuple per cluster and link, made without Python-level constructors; the strings of a record
are one object wherever it appears. A digest in the metadata catches a damaged file;
anything that does not read back as written is ignored and the clusters are found again.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import rapidfuzz

import crm_tui
from crm_tui.dedup.clusters import Cluster, Link, People, SharedPoint
from crm_tui.dedup.keys import NameAgreement
from crm_tui.heap import CHUNK
from crm_tui.store.stamps import StreamStamp

#: What the clusters are saved as on an ArtifactShelf, and under which "source".
WHAT = "dedup_people"
EVERY_SOURCE = "all"
#: The one stamp they are saved under: the combination is in the format (see `saved_format`).
STAMP = StreamStamp(0, (), 0)
LAYOUT = "dedup-people-2"
_AGREEMENTS = list(NameAgreement)
_AGREEMENT_AT = {a: at for at, a in enumerate(_AGREEMENTS)}
_END = "\x00"  # control characters are stripped from CRM text at ingest: never inside one
_link = partial(tuple.__new__, Link)  # a NamedTuple made without its Python-level __new__
_cluster = partial(tuple.__new__, Cluster)
_A, _B, _KEYS, _NAMES, _SURE = (itemgetter(i) for i in range(5))  # a Link's fields


def saved_format(keys_format: str, stamps: Mapping[str, tuple[StreamStamp, int]]) -> str:
    """The format of the clusters of these sources at these stamps (with their counts of
    records), keyed as `keys_format` says: any other combination is another format, never
    read for this one."""
    rows = sorted((s, t.name, n) for s, (t, n) in stamps.items())
    combination = json.dumps([LAYOUT, _rules(), keys_format, rows])
    return f"{LAYOUT}/{hashlib.blake2b(combination.encode(), digest_size=16).hexdigest()}"


@functools.cache
def _rules() -> str:
    """What decides the clusters besides the keys: the rules in this package's code (a
    threshold or a nickname changed in a new version is other clusters) and the name
    similarity library's version."""
    digest = hashlib.blake2b(digest_size=8)
    try:
        for path in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(path.read_bytes())
    except OSError:  # the code is not on disk as files: its version alone says
        digest.update(crm_tui.__version__.encode())
    return f"{rapidfuzz.__version__}/{digest.hexdigest()}"


def to_saved(people: People) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata an ArtifactShelf saves."""
    every = [*people.clusters, *people.possible]
    members = list(itertools.chain.from_iterable(c.members for c in every))
    place: dict[str, int] = {}
    for start in range(0, len(members), CHUNK):
        place.update(zip(members[start : start + CHUNK], itertools.count(start)))
    links = list(itertools.chain.from_iterable(c.links for c in every))
    cluster_at = {id(c): at for at, c in enumerate(people.clusters)}
    table = list(dict.fromkeys(link.keys for link in links))
    table_at = {keys: at for at, keys in enumerate(table)}
    points, point_at = _points(people)
    shared = people.shared_by_record
    arrays = {
        "members": _blob(members),
        "member_counts": _counts(c.members for c in every),
        "ids": _blob([c.id for c in every]),
        "latest": _blob([c.latest for c in every]),
        "sure": np.array([c.confidence for c in every], dtype=np.float64),
        "flags": np.array([c.settled + 2 * c.possible for c in every], dtype=np.int8),
        "link_counts": _counts(c.links for c in every),
        "link_a": _column(links, _A, place.__getitem__),
        "link_b": _column(links, _B, place.__getitem__),
        "link_keys": _column(links, _KEYS, table_at.__getitem__),
        "link_names": _column(links, _NAMES, _AGREEMENT_AT.__getitem__),
        "link_sure": _column(links, _SURE, dtype=np.float64),
        "point_counts": _counts(c.shared for c in every),
        "point_at": _ints(point_at[id(p)] for c in every for p in c.shared),
        **_serialised(points),
        "shared": _blob(list(shared)),
        "shared_counts": _counts(shared.values()),
        "shared_at": _ints(point_at[id(p)] for ps in shared.values() for p in ps),
        # by_record in the order it was filled: a cluster at a time, its members in order
        "order": _ints(dict.fromkeys(cluster_at[id(c)] for c in people.by_record.values())),
    }
    meta = {"clusters": len(people.clusters), "keys": table, "points": len(points)}
    return arrays, meta


def from_saved(arrays: Mapping[str, np.ndarray], meta: Any) -> People | None:
    """The clusters as saved, or None when anything does not add up."""
    try:
        return _read(arrays, meta)
    except (KeyError, ValueError, TypeError, EOFError, IndexError, AttributeError):
        return None


def _read(arrays: Mapping[str, np.ndarray], meta: Any) -> People:
    sizes = _bounds(arrays["member_counts"])
    members = _texts(arrays["members"], sizes[-1])
    canon: dict[str, str] = {}  # one string per record
    for start in range(0, len(members), CHUNK):
        piece = members[start : start + CHUNK]
        canon.update(zip(piece, piece, strict=True))
    every = len(sizes) - 1
    table = [tuple(map(str, keys)) for keys in meta["keys"]]
    link_bounds = _bounds(arrays["link_counts"], every)
    names = [_AGREEMENTS[i] for i in _index(arrays["link_names"], len(_AGREEMENTS))]
    made = _built(
        _link,
        [members[i] for i in _index(arrays["link_a"], len(members))],
        [members[i] for i in _index(arrays["link_b"], len(members))],
        [table[i] for i in _index(arrays["link_keys"], len(table))],
        names,
        arrays["link_sure"].tolist(),
    )
    points = _read_points(arrays, meta, canon)
    point_bounds = _bounds(arrays["point_counts"], every)
    point_at = [points[i] for i in _index(arrays["point_at"], len(points))]
    flags = arrays["flags"].tolist()
    clusters = _built(
        _cluster,
        _texts(arrays["ids"], every),
        _slices(members, sizes),
        arrays["sure"].tolist(),
        _slices(made, link_bounds),
        _slices(point_at, point_bounds),
        _texts(arrays["latest"], every),
        [bool(f & 1) for f in flags],
        [bool(f & 2) for f in flags],
    )
    if not all(c.links for c in clusters):
        raise ValueError("a cluster without links")
    key_linked = int(meta["clusters"])
    people = clusters[:key_linked]
    if (
        not 0 <= key_linked <= every
        or any(c.possible for c in people)
        or not all(c.possible for c in clusters[key_linked:])
    ):
        raise ValueError("key-linked and possible clusters do not add up")
    firsts = _index(arrays["order"], key_linked)
    by_record = {m: c for c in map(people.__getitem__, firsts) for m in c.members}
    shared_bounds = _bounds(arrays["shared_counts"])
    records = [canon.get(r, r) for r in _texts(arrays["shared"], len(shared_bounds) - 1)]
    held = [points[i] for i in _index(arrays["shared_at"], len(points))]
    shared = dict(zip(records, map(list, _slices(held, shared_bounds)), strict=True))
    return People(people, by_record, shared, clusters[key_linked:])


def _points(people: People) -> tuple[list[tuple[Any, ...]], dict[int, int]]:
    """Every shared point once (as plain tuples), and where each is, by identity: one point
    is held by many records."""
    points: list[tuple[Any, ...]] = []
    point_at: dict[int, int] = {}
    for point in itertools.chain(
        itertools.chain.from_iterable(people.shared_by_record.values()),
        (p for c in (*people.clusters, *people.possible) for p in c.shared),
    ):
        if id(point) not in point_at:
            point_at[id(point)] = len(points)
            points.append((point.kind, point.value, point.groups))
    return points, point_at


def _read_points(
    arrays: Mapping[str, np.ndarray], meta: Any, canon: dict[str, str]
) -> list[SharedPoint]:
    points = []
    blob = arrays["points"]
    for start, end in itertools.pairwise(arrays["point_starts"].tolist()):
        for kind, value, groups in json.loads(blob[start:end].tobytes()):
            held = tuple(tuple(canon.get(r, r) for r in g) for g in groups)
            points.append(SharedPoint(str(kind), str(value), held))
    if len(points) != meta["points"]:
        raise ValueError("points missing")
    return points


def _serialised(rows: list[Any]) -> dict[str, np.ndarray]:
    """`rows` as JSON a slice at a time (one call over all would hold the interpreter lock
    long), and where each slice starts. JSON, not marshal: a file read back must never be
    able to crash the interpreter, whatever it holds."""
    pieces = [json.dumps(rows[s : s + CHUNK]).encode() for s in range(0, len(rows), CHUNK)]
    return {
        "points": np.frombuffer(b"".join(pieces), dtype=np.uint8),
        "point_starts": np.cumsum([0, *map(len, pieces)], dtype=np.int64),
    }


def _blob(values: Sequence[str]) -> np.ndarray:
    """Texts, each ended by _END, as one array of UTF-8 bytes."""
    text = "".join(f"{v}{_END}" for v in values)
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


def _texts(array: np.ndarray, count: int) -> list[str]:
    """The `count` texts `_blob` saved, decoded a slice of them at a time."""
    ends = np.flatnonzero(array == 0)
    if len(ends) != count or (count and ends[-1] != len(array) - 1) or (not count and len(array)):
        raise ValueError("texts do not add up")
    cuts = [0, *(ends[CHUNK - 1 :: CHUNK] + 1).tolist()]
    if cuts[-1] != len(array):
        cuts.append(len(array))
    found: list[str] = []
    for start, end in itertools.pairwise(cuts):
        found.extend(array[start:end].tobytes().decode("utf-8", "surrogatepass").split(_END)[:-1])
    if len(found) != count:
        raise ValueError("texts do not add up")
    return found


def _built(kind: partial[Any], *columns: list[Any]) -> list[Any]:
    """Tuples of `kind` from the columns, a slice at a time: one C loop over a million
    would hold the interpreter lock throughout."""
    made: list[Any] = []
    for start in range(0, len(columns[0]), CHUNK):
        rows = zip(*(column[start : start + CHUNK] for column in columns), strict=True)
        made.extend(map(kind, rows))
    if any(len(column) != len(made) for column in columns):
        raise ValueError("columns do not add up")
    return made


def _column(items: list[Any], *steps: Any, dtype: Any = np.int64) -> np.ndarray:
    """`steps` applied to each item, in order, as an array built a slice at a time."""
    parts = [np.zeros(0, dtype=dtype)]
    for start in range(0, len(items), CHUNK):
        values: Any = items[start : start + CHUNK]
        for step in steps:
            values = map(step, values)
        parts.append(np.fromiter(values, dtype=dtype))
    return np.concatenate(parts)


def _counts(groups: Any) -> np.ndarray:
    return np.fromiter(map(len, groups), dtype=np.int64)


def _ints(values: Any) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


def _bounds(counts: np.ndarray, count: int | None = None) -> list[int]:
    if (count is not None and len(counts) != count) or (counts < 0).any():
        raise ValueError("counts do not add up")
    return [0, *np.cumsum(counts).tolist()]


def _index(values: np.ndarray, size: int) -> list[int]:
    if len(values) and (values.min() < 0 or values.max() >= size):
        raise ValueError("an index out of range")
    return values.tolist()  # type: ignore[no-any-return]


def _slices(items: list[Any], bounds: list[int]) -> list[tuple[Any, ...]]:
    if bounds[-1] != len(items):
        raise ValueError("counts do not add up")
    return [tuple(items[s:e]) for s, e in itertools.pairwise(bounds)]
