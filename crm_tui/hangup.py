"""Leaving when the terminal goes away without a SIGHUP (an SSH session that died, a tmux
server killed under a `make demo`).

Textual's input thread then spins on a dead terminal at 100% CPU (Textualize/textual#6690)
and its writer blocks the event loop for good, so nothing inside the app can notice. A
thread of our own polls the terminal for a hangup and ends the process at once, as a SIGHUP
would (status 129). Every write to SQLite is a transaction, so nothing is half-written.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

POLL_SECONDS = 1.0


def hung_up(fd: int) -> bool:
    """True once the other end of the terminal (or pipe) behind `fd` has closed."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    return any(event & (select.POLLHUP | select.POLLERR) for _, event in poller.poll(0))


def watch_for_hangup(fd: int | None = None, interval: float = POLL_SECONDS) -> threading.Thread:
    """Start the watcher; on a hangup it ends the process. No cleanup: the event loop may
    be blocked for good, and there is no terminal left to restore."""
    if fd is None:
        fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else 0

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if hung_up(fd):
                os._exit(128 + signal.SIGHUP)

    thread = threading.Thread(target=watch, name="hangup-watch", daemon=True)
    thread.start()
    return thread
