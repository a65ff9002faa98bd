"""The simulators' live data: a sparse overlay of records created, updated and deleted while
they run, over the deterministic generators (record i is still `make(i)`; the overlay holds
only what changed, so a million-record listing stays as fast as an unchanged one).

One `Overlay` serves every simulator of a demo (Follow Up Boss, HubSpot, Pipedrive, Lofty,
Brivity); each registers its collections as `Target`s. Changes come from the churn thread,
from the simulators' write endpoints (a `patch` of vendor-shaped fields), or from tests
through `Overlay.apply`, which takes an explicit index and moment so a test can script any
sequence (two updates in one second included). Listeners (the webhook sender) hear every
change after the lock is released, so a slow listener never holds up a request.

Times are epoch seconds (floats); each simulator renders them in its vendor's format.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

Kind = Literal["create", "update", "delete"]
KINDS: tuple[Kind, ...] = ("create", "update", "delete")

#: Every generated (base) record's times lie before this moment (2024-01-01 + 1000 days):
#: a query starting later need not look at the base records at all (nor build their index).
#: That is the fixed clock's; a demo dated to its day has its own (`DemoClock.horizon`).
BASE_HORIZON = 1_704_067_200 + 1000 * 86_400
#: Bits for a record index in a packed sort key (16.7 million records, created ones too).
INDEX_BITS = 24


@dataclass(frozen=True, slots=True)
class Entry:
    """What changed about record `index` of a collection: the fields its vendor module
    overrides (`patch`) and when it was created, last changed and deleted."""

    index: int
    updated_at: float
    version: int = 0  # updates applied so far
    created_at: float | None = None  # set for records the overlay created
    deleted_at: float | None = None
    patch: Mapping[str, Any] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class Change:
    """One change as listeners (webhooks) hear of it."""

    serial: int
    collection: str  # "followupboss:people", "hubspot:contacts", ...
    kind: Kind
    index: int
    at: float
    patch: Mapping[str, Any]


#: (index, version, kind, rng) -> the fields a change sets; the vendor module knows which.
Mutator = Callable[[int, int, Kind, random.Random], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Target:
    """A collection that can change: its generated records are indices `0..base-1`, records
    created while running take `first_new, first_new+1, ...` (past any index the generator
    already uses for something else, such as HubSpot's archived records)."""

    name: str
    base: int
    first_new: int
    mutate: Mutator
    changeable: Callable[[int], bool] = lambda i: True  # e.g. not the record without an id


@dataclass
class _State:
    target: Target
    entries: dict[int, Entry] = field(default_factory=dict)
    created: int = 0
    deleted: list[int] = field(default_factory=list)  # sorted indices


class Overlay:
    """Thread-safe: uvicorn serves from one thread, churn changes from another."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._listeners: list[Callable[[Change], None]] = []
        self._serial = 0

    # -- setup ------------------------------------------------------------------------------

    def register(self, target: Target) -> None:
        with self._lock:
            self._states.setdefault(target.name, _State(target))

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def targets(self) -> list[Target]:
        with self._lock:
            return [state.target for state in self._states.values()]

    # -- reading ----------------------------------------------------------------------------

    def get(self, collection: str, index: int) -> Entry | None:
        state = self._states.get(collection)
        return None if state is None else state.entries.get(index)

    def entries(self, collection: str) -> dict[int, Entry]:
        """A snapshot: a request iterates it while churn goes on."""
        with self._lock:
            state = self._states.get(collection)
            return dict(state.entries) if state else {}

    def created(self, collection: str) -> range:
        """The indices of the records created so far, oldest first."""
        state = self._states.get(collection)
        if state is None:
            return range(0)
        return range(state.target.first_new, state.target.first_new + state.created)

    def deleted(self, collection: str) -> list[int]:
        """Deleted indices, ascending (a snapshot)."""
        with self._lock:
            state = self._states.get(collection)
            return list(state.deleted) if state else []

    def positions(self, collection: str) -> Positions:
        """The collection as a listing that pages by position sees it now: generated records,
        then created ones, deleted ones left out."""
        with self._lock:
            state = self._states[collection]
            return Positions(state.target, state.created, tuple(state.deleted))

    def exists(self, collection: str, index: int) -> bool:
        """Whether `index` names a record, deleted or not (generated or created)."""
        state = self._states.get(collection)
        if state is None:
            return False
        return 0 <= index < state.target.base or index in self.created(collection)

    # -- changing ---------------------------------------------------------------------------

    def apply(
        self,
        collection: str,
        kind: Kind,
        index: int | None = None,
        at: float | None = None,
        patch: Mapping[str, Any] | None = None,
    ) -> Change:
        """Create (index: the next new one), update or delete a record at `at` (now when
        None). `patch` overrides the fields the collection's mutator would pick. Raises
        KeyError for an unknown collection or record, ValueError for a deleted one."""
        moment = time.time() if at is None else at
        with self._lock:
            state = self._states[collection]
            entry = self._changed(state, kind, index, moment, patch)
            state.entries[entry.index] = entry
            self._serial += 1
            change = Change(self._serial, collection, kind, entry.index, moment, entry.patch)
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may read the overlay
            listener(change)
        return change

    def _changed(
        self,
        state: _State,
        kind: Kind,
        index: int | None,
        moment: float,
        patch: Mapping[str, Any] | None,
    ) -> Entry:
        target = state.target
        if kind == "create":
            index = target.first_new + state.created
            state.created += 1
            fields = self._fields(target, index, 0, kind, patch)
            return Entry(index, moment, created_at=moment, patch=fields)
        if index is None or not (
            0 <= index < target.base or target.first_new <= index < target.first_new + state.created
        ):
            raise KeyError(f"{target.name}: no record {index}")
        if not target.changeable(index):  # e.g. the record served without an id
            raise KeyError(f"{target.name}: record {index} does not change")
        old = state.entries.get(index) or Entry(index, moment)
        if old.deleted:
            raise ValueError(f"{target.name}: record {index} is deleted")
        if kind == "delete":
            insort(state.deleted, index)
            return replace(old, updated_at=moment, deleted_at=moment)
        version = old.version + 1
        fields = {**old.patch, **self._fields(target, index, version, kind, patch)}
        return replace(old, updated_at=moment, version=version, patch=fields)

    def _fields(
        self,
        target: Target,
        index: int,
        version: int,
        kind: Kind,
        patch: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if patch is not None:
            return dict(patch)
        r = random.Random(f"{self.seed}:churn:{target.name}:{index}:{version}")
        return target.mutate(index, version, kind, r)


@dataclass(frozen=True, slots=True)
class Positions:
    """A snapshot of a collection listed in index order by position (Brivity's and Lofty's
    listings have no cursor): position p is the p-th record not deleted, generated records
    first, then those created while running."""

    target: Target
    created: int
    deleted: tuple[int, ...]  # sorted indices

    @property
    def total(self) -> int:
        return self.target.base + self.created - len(self.deleted)

    def _position(self, index: int) -> int:
        """Where `index` sits among every record, deleted ones included."""
        target = self.target
        return index if index < target.base else target.base + index - target.first_new

    def _index(self, position: int) -> int:
        target = self.target
        return position if position < target.base else target.first_new + position - target.base

    def indices(self, start: int, stop: int) -> list[int]:
        """The indices of the records at positions [start, stop)."""
        gone = [self._position(i) for i in self.deleted]
        end = self.target.base + self.created
        # the least position with `start` live ones before it: a fixed point reached from below
        first = start
        while first != start + bisect_right(gone, first):
            first = start + bisect_right(gone, first)
        found: list[int] = []
        cut = bisect_left(gone, first)
        position = first
        while len(found) < stop - start and position < end:
            if cut < len(gone) and gone[cut] == position:
                cut += 1
            else:
                found.append(self._index(position))
            position += 1
        return found


# -- ordered reads over generated and changed records ---------------------------------------


def pack(value: int, index: int) -> int:
    """A sort key: (time or id, index) as one int that sorts the same way."""
    return value << INDEX_BITS | index


def unpack(key: int) -> tuple[int, int]:
    return key >> INDEX_BITS, key & ((1 << INDEX_BITS) - 1)


class SortIndex:
    """The generated records of a collection in ascending key order, as numpy arrays built
    on first use (in a worker thread by the caller: a million keys take seconds) and kept."""

    def __init__(self, size: int, key: Callable[[int], int]) -> None:
        self.size = size
        self.key = key
        self._keys: np.ndarray | None = None
        self._lock = threading.Lock()

    def keys(self) -> np.ndarray:
        with self._lock:
            if self._keys is None:
                values = np.fromiter((self.key(i) for i in range(self.size)), np.int64, self.size)
                values.sort()
                self._keys = values
            return self._keys


def overlay_keys(entries: Mapping[int, Entry], key: Callable[[int, Entry], int]) -> list[int]:
    """The changed records' current keys, ascending."""
    return sorted(key(index, entry) for index, entry in entries.items())


class IdKeys(Sequence[int]):
    """Packed keys of generated records already in key order (sorted by id, which grows
    with the index): computed on demand, so an id-ordered listing builds nothing."""

    def __init__(self, size: int, ident: Callable[[int], int]) -> None:
        self.size = size
        self.ident = ident

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self.size))]
        if not 0 <= index < self.size:
            raise IndexError(index)
        return pack(self.ident(index), index)


Keys = Sequence[int] | np.ndarray


def _position(keys: Keys, key: int, side: Literal["left", "right"]) -> int:
    if isinstance(keys, np.ndarray):
        return int(np.searchsorted(keys, key, side))
    return (bisect_left if side == "left" else bisect_right)(keys, key)


def index_of(key: int) -> int:
    return key & ((1 << INDEX_BITS) - 1)


def walk(
    base: Keys,
    changed: Sequence[int],
    stale: Mapping[int, object],
    start: int,
    descending: bool = False,
) -> Iterator[int]:
    """Packed keys in order from `start` (inclusive) on: the generated records' keys
    (`base`, ascending) merged with the changed records' (`changed`, ascending), skipping a
    generated key whose record is in `stale` (its place moved with its change)."""
    step = -1 if descending else 1
    if descending:
        b, c = _position(base, start, "right") - 1, bisect_right(changed, start) - 1
    else:
        b, c = _position(base, start, "left"), bisect_left(changed, start)
    while 0 <= b < len(base) or 0 <= c < len(changed):
        take_base = not 0 <= c < len(changed)
        if not take_base and 0 <= b < len(base):
            base_key = int(base[b])
            take_base = base_key > changed[c] if descending else base_key < changed[c]
        if take_base:
            key, b = int(base[b]), b + step
            if index_of(key) in stale:
                continue
        else:
            key, c = changed[c], c + step
        yield key


def count(
    base: Keys,
    changed: Sequence[int],
    stale_base_keys: Sequence[int],
    low: int,
    high: int,
) -> int:
    """How many keys `walk` yields in [low, high): the generated ones in range less those
    whose record changed, plus the changed ones in range."""
    generated = _position(base, high, "left") - _position(base, low, "left")
    moved = sum(1 for key in stale_base_keys if low <= key < high)
    return generated - moved + bisect_left(changed, high) - bisect_left(changed, low)


# -- finding records by a value --------------------------------------------------------------


def _digest(value: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(value.encode(), digest_size=8).digest(), "big", signed=True
    )


class LookupIndex:
    """Which generated records hold a value (a normalised e-mail or phone): a 64-bit hash of
    each value with its record's index, sorted in numpy arrays (16 bytes a value, so a
    million people stay small), built on first use (in a worker thread by the caller: a
    million records take tens of seconds) and kept. A hash only names candidates: the caller
    checks each against the record as it is now, since a change may have replaced the value
    (records changed or created while running are the caller's to scan; they are few)."""

    def __init__(self, size: int, values: Callable[[int], Iterable[str]]) -> None:
        self.size = size
        self.values = values
        self._built: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def candidates(self, value: str) -> list[int]:
        hashes, owners = self._arrays()
        key = _digest(value)
        low = int(np.searchsorted(hashes, key, "left"))
        high = int(np.searchsorted(hashes, key, "right"))
        return sorted(int(i) for i in owners[low:high])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._built is None:
                pairs = [(_digest(v), i) for i in range(self.size) for v in self.values(i)]
                hashes = np.fromiter((h for h, _ in pairs), np.int64, len(pairs))
                owners = np.fromiter((i for _, i in pairs), np.int64, len(pairs))
                order = np.argsort(hashes, kind="stable")
                self._built = (hashes[order], owners[order])
            return self._built
