"""A thread for work that nobody waits on as it happens: the database writer.

A sync's rows are written beside the event loop, which meanwhile fetches the next page and
draws the screen. When both want a core, the loop should win: on Linux the writer's thread
asks the scheduler for less CPU than the rest of the process. SQLite releases the
interpreter lock while it works, so a writer kept waiting for a core rarely keeps the loop
waiting for the lock.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

#: Added to the writer thread's nice value. A sync against the demo server on two cores went
#: from 19,500 to 20,600 records/s with it (benchmarks/sync_bench.py): the server, the loop
#: and the writer no longer share the cores evenly.
NICENESS = 10


def lower_thread_priority(step: int = NICENESS) -> bool:
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


def background_thread(name: str) -> ThreadPoolExecutor:
    """One worker at lowered priority: calls run one at a time, in the order submitted."""
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=name, initializer=lower_thread_priority
    )
