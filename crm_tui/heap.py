"""Making and letting go of many objects without freezing the event loop.

Dropping the last reference to 300,000 records frees them all in one C loop that holds the
interpreter lock for a tenth of a second or more, whichever thread does it. Handing them to
a thread that deletes them a slice at a time, yielding the lock between slices, spreads it.
Growing one dict to a million keys does the same at each resize (see Sharded).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

CHUNK = 2000
#: How long a thread may keep the interpreter lock while another waits (Python's default
#: is 5 ms). Index builds, duplicate clusters, SQLite staging and background frees run in
#: threads beside the event loop and the searches; with the default, either could wait
#: several turns behind them.
SWITCH_INTERVAL = 0.001


def share_the_lock() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)


def release_gradually(items: list[Any] | dict[Any, Any], after: float = 0.0) -> None:
    """Take ownership of `items` and free them in the background, a slice at a time,
    starting `after` seconds from now (for what a reader may still be walking)."""
    if len(items) <= CHUNK and not after:
        return

    def run() -> None:
        time.sleep(after)
        dismantle(items, pause=True)

    threading.Thread(target=run, name="release", daemon=True).start()


_pauses = 0
_pause_lock = threading.Lock()
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Indexing a million records allocates millions of objects; the collector would walk
    every cached record again and again meanwhile (half the build time). Nothing built
    under it holds a cycle.

    On the way out, what was built is frozen (moved out of the collector's sight, still
    freed by reference counting): otherwise all of it sits in the youngest generation and
    the next allocation anywhere walks it, a third of a second with the lock held.

    Pauses nest and overlap (a sync of two sources, an index build in a thread): the
    collector comes back when the last one ends, and only if it was on before the first."""
    global _pauses, _was_enabled
    with _pause_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0:
                gc.freeze()
                if _was_enabled:
                    gc.enable()


def dismantle(*containers: list[Any] | dict[Any, Any], pause: bool = False) -> None:
    """Empty big lists and dicts a slice at a time, in this thread. Dropping one whole is a
    single C loop that holds the interpreter lock until every item is freed (half a second
    for a million tuples); a Python loop lets the event loop in between slices. `pause`
    hands the lock over after each slice, for a thread doing nothing else."""
    for container in containers:
        while container:
            if isinstance(container, dict):
                for _ in range(min(CHUNK, len(container))):
                    container.popitem()
            else:
                del container[-CHUNK:]
            if pause:
                time.sleep(0.001)  # a real pause: other threads, the event loop first


K = TypeVar("K")
V = TypeVar("V")


class Sharded(Generic[K, V]):
    """A dict that a background thread may grow to a million keys.

    One dict that size grows by resizing, each resize a single C loop that keeps the
    interpreter lock: 23 ms at 700,000 keys on a quiet machine, 50-90 ms while a sync runs,
    and the event loop waits that long. Spread over 64 dicts, a resize takes a fraction of a
    millisecond. Just the operations the duplicate finder needs."""

    __slots__ = ("_shards",)
    SHARDS = 64

    def __init__(self) -> None:
        self._shards: list[dict[K, V]] = [{} for _ in range(self.SHARDS)]

    def __contains__(self, key: K) -> bool:
        return key in self._shards[hash(key) % self.SHARDS]

    def __getitem__(self, key: K) -> V:
        return self._shards[hash(key) % self.SHARDS][key]

    def __setitem__(self, key: K, value: V) -> None:
        self._shards[hash(key) % self.SHARDS][key] = value

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._shards[hash(key) % self.SHARDS].get(key, default)

    def setdefault(self, key: K, value: V) -> V:
        return self._shards[hash(key) % self.SHARDS].setdefault(key, value)

    def __len__(self) -> int:
        return sum(map(len, self._shards))

    def release(self) -> None:
        """Let go of the shards one at a time: freeing all at once is one long C loop too."""
        while self._shards:
            self._shards.pop()
