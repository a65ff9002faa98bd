"""Driving the app with Pilot: wait for the state a test needs, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Collection

from textual.pilot import Pilot
from textual.widgets import DataTable

from crm_tui.app import CrmApp

SIZE = (120, 40)
STEP = 0.02  # seconds between two looks at the app: short, but lets timers and threads run


async def until(
    pilot: Pilot, holds: Callable[[], object], what: str | None = None, within: float = 30.0
) -> None:
    """Let the app run until `holds()` is true; fail naming `what` (by default, the line that
    asked) if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not holds():
        if loop.time() > deadline:
            raise AssertionError(f"still waiting after {within:g} s for {what or _source(holds)}")
        await pilot.pause(STEP)


def _source(function: Callable[[], object]) -> str:
    try:
        return " ".join(inspect.getsource(function).split())
    except (OSError, TypeError):
        return repr(function)


#: Workers that run as long as the app does: never waited for.
LASTING = frozenset({"webhooks", "notices"})


def busy(app: CrmApp, *groups: str) -> bool:
    """Whether a worker of one of `groups` (a prefix each) is still running."""
    return any(w.group.startswith(groups) and not w.is_finished for w in app.workers)


def working(app: CrmApp, besides: Collection[str] = ()) -> list[str]:
    """What the app is still doing: its running workers (but those of `besides`), and a
    repaint it has put off."""
    doing = [
        w.name or w.group
        for w in app.workers
        if w.group not in LASTING and w.group not in besides and not w.is_finished
    ]
    if getattr(app.screen, "_refresh_pending", False):
        doing.append("the screen's throttled repaint")
    return doing


async def idle(pilot: Pilot, within: float = 10.0, besides: Collection[str] = ()) -> None:
    """Until what the last keys started is done: no worker running (but those of the groups
    `besides`, which a test holds back), no repaint put off, and the messages their ends
    posted handled (then once more, for what those started)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await pilot.pause()
        doing = working(pilot.app, besides)
        if not doing:
            await pilot.pause()
            if not working(pilot.app, besides):
                return
        elif loop.time() > deadline:
            raise AssertionError(f"still waiting after {within:g} s for: {', '.join(doing)}")
        else:
            await pilot.pause(STEP)


async def settle(pilot: Pilot, app: CrmApp, limit: float = 20.0) -> None:
    """Until the snapshot is loaded, no sync or index worker is left running and the screen
    shows the result."""

    def synced() -> bool:
        groups = ("sync-", "index", "load", "people", "local", "review")
        return app.loaded and not busy(app, *groups) and not app.engine.running()

    await pilot.pause()  # what the last key started is running
    await until(pilot, synced, "the app to load and finish its syncs and indexing", limit)
    await idle(pilot, limit)


async def loaded(pilot: Pilot) -> None:
    """Until the snapshot is loaded and indexed, and the screen shows it."""
    app = pilot.app

    def ready() -> bool:
        return app.loaded and not any(
            not w.is_finished for w in app.workers if w.group in ("load", "index", "people")
        )

    await until(pilot, ready, "the snapshot to load and be indexed", within=60.0)
    await idle(pilot)


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


async def audit_read(pilot: Pilot) -> None:
    """Until the Audit screen has read the runs and writes (off the event loop) and shown
    them, or said why it could not."""
    await until(pilot, lambda: getattr(pilot.app.screen, "loaded", False), "the audit's read")
    await idle(pilot)
