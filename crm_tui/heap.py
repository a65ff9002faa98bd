"""Letting go of many objects without freezing the event loop.

Dropping the last reference to 300,000 records frees them all in one C loop that holds the
interpreter lock for a tenth of a second or more, whichever thread does it. Handing them to
a thread that deletes them a slice at a time, yielding the lock between slices, spreads it.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHUNK = 2000


def release_gradually(items: list[Any], after: float = 0.0) -> None:
    """Take ownership of `items` and free them in the background, a slice at a time,
    starting `after` seconds from now (for lists a reader may still be walking)."""
    if len(items) <= CHUNK and not after:
        return

    def run() -> None:
        time.sleep(after)
        while items:
            del items[-CHUNK:]
            time.sleep(0)  # hand the lock back to the event loop between slices

    threading.Thread(target=run, name="release", daemon=True).start()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Indexing a million records allocates millions of objects; the collector would walk
    every cached record again and again meanwhile (half the build time). Nothing built
    under it holds a cycle."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
