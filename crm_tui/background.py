"""A thread for work that nobody waits on as it happens: the database writer.

A sync's rows are written beside the event loop, which meanwhile fetches the next page and
draws the screen. The thread marks itself background when it starts (`tuning`): once the
entry point asked for it, it gets less CPU than the rest of the process. SQLite releases the
interpreter lock while it works, so a writer kept waiting for a core rarely keeps the loop
waiting for the lock.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from crm_tui.tuning import enter_background


def background_thread(name: str) -> ThreadPoolExecutor:
    """One background worker: calls run one at a time, in the order submitted."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=enter_background)
