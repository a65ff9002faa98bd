"""Making and letting go of many objects without freezing the event loop.

Dropping the last reference to hundreds of thousands of records frees them all in one C loop
that holds the interpreter lock throughout, whichever thread does it. Handing them to a
thread that deletes them a slice at a time, yielding the lock between slices, spreads it.
Growing one dict to a million keys does the same at each resize (see Sharded).

Nothing here changes the process: the collector and the switch interval are `tuning`'s.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Generic, TypeVar

CHUNK = 2000


def release_gradually(items: list[Any] | dict[Any, Any], after: float = 0.0) -> None:
    """Take ownership of `items` and free them in the background, a slice at a time,
    starting `after` seconds from now (for what a reader may still be walking)."""
    if len(items) <= CHUNK and not after:
        return

    def run() -> None:
        time.sleep(after)
        dismantle(items, pause=True)

    threading.Thread(target=run, name="release", daemon=True).start()


def dismantle(*containers: list[Any] | dict[Any, Any], pause: bool = False) -> None:
    """Empty big lists and dicts a slice at a time, in this thread. Dropping one whole is a
    single C loop that holds the interpreter lock until every item is freed; a Python loop
    lets the event loop in between slices. `pause` hands the lock over after each slice,
    for a thread doing nothing else."""
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
    interpreter lock, and the event loop waits that long. Spread over 64 dicts, each resize
    is a 64th of the size (benchmarks/heap_bench.py prints both). Just the operations the
    duplicate finder needs."""

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
