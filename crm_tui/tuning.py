"""Process-wide speed settings: the interpreter's switch interval, the garbage collector, and
the CPU priority of background threads.

Each of them changes the whole process, so only an entry point turns them on: the CLI's
`main` and the benchmarks call `tune_batch()`, the app calls `tune_interactive()` when it
mounts. Library code (store, search, dedup, sync) only marks the moments they are for, a
bulk build under `gc_paused()` and a background thread's start with `enter_background()`,
and those marks do nothing until an entry point has asked: a script or a test that imports
the store keeps its interpreter as it found it.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: How long a thread may keep the interpreter lock while another waits (Python's default
#: is 5 ms). Index builds, duplicate clusters, SQLite staging and background frees run in
#: threads beside the event loop and the searches; with the default, either could wait
#: several turns behind them.
SWITCH_INTERVAL = 0.001

#: Added to a background thread's nice value: when the event loop and the database writer
#: both want a core, the loop should win (benchmarks/sync_bench.py shows the difference).
NICENESS = 10


class _Tuned:
    """What the entry point asked for; read by the marks in library code."""

    pause_collector = False
    background_niceness = 0


def tune_batch() -> None:
    """For a process that syncs, imports and indexes in bulk (the CLI, the benchmarks): the
    collector pauses during bulk builds, and background threads yield the CPU."""
    _Tuned.pause_collector = True
    _Tuned.background_niceness = NICENESS


def tune_interactive() -> None:
    """For the app, which must answer keys while it syncs: `tune_batch`, threads hand the
    interpreter lock over sooner, and no automatic full collection walks the cache."""
    tune_batch()
    quiet_collector()
    share_the_lock()


def share_the_lock() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)


def quiet_collector() -> None:
    """Young-generation collections stay; automatic full collections, which walk every
    object a sync has just made while the app waits, do not. Whatever survives is frozen
    after each load or sync (settle_heap)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1_000_000)


def settle_heap() -> None:
    """Cached records are long-lived and acyclic: move them out of the cyclic collector's
    sight, or every full collection walks all of them on the event loop. Reference counting
    still frees them when a sync replaces them."""
    gc.freeze()


_pauses = 0
_pause_lock = threading.Lock()
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Around a bulk build (an index, a stream's records, duplicate clusters), once an entry
    point asked for it: building allocates millions of objects, and the collector would walk
    every cached record again and again meanwhile. Nothing built under it holds a cycle.

    On the way out, what was built is frozen (moved out of the collector's sight, still
    freed by reference counting): otherwise all of it sits in the youngest generation and
    the next allocation anywhere walks it, with the lock held.

    Pauses nest and overlap (a sync of two sources, an index build in a thread): the
    collector comes back when the last one ends, and only if it was on before the first."""
    if not _Tuned.pause_collector:
        yield
        return
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


def enter_background() -> None:
    """Called first thing in a thread that nobody waits on as it works (the database
    writer): once an entry point asked, it asks the scheduler for less CPU than the rest of
    the process. Only the thread itself can do that."""
    if _Tuned.background_niceness:
        lower_thread_priority(_Tuned.background_niceness)


def lower_thread_priority(step: int) -> bool:
    """Lower the calling thread's CPU priority (Linux only: elsewhere a thread id may be a
    process id). Lowering needs no privilege; False if the system said no."""
    if sys.platform != "linux":
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + step)
    except OSError:
        return False
    return True
