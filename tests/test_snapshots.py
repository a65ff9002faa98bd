"""Screens as pictures: every mode at 80x24 and 200x50, in a dark and a light theme, and
the compare view at both sizes, over fixed data (the Pipeline over the demo's records, with
"now" fixed, so that every chart has shape).

Update with `pytest tests/test_snapshots.py --snapshot-update` only after looking at the new
pictures (the report pytest-textual-snapshot writes on failure shows both).
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.helpers.tui import idle, loaded

SCREENS = {
    "status": ("f1",),
    "search": ("f2", *"an"),
    "browse": ("f3",),
    "audit": ("f4",),
    "connections": ("f5",),
    "people": ("f6",),
    "pipeline": ("f7",),
}
SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
THEMES = ("textual-dark", "textual-light")


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_every_screen(snap_compare, snapshot_app, screen, size, theme):
    async def shown(pilot) -> None:
        await loaded(pilot)
        await pilot.press(*SCREENS[screen])
        await idle(pilot, within=30)  # the typed query answered, the pipeline counted
        for box in pilot.app.screen.query(Input):  # the picture must not depend on a blink
            box.cursor_blink = False
        await pilot.pause()

    app = snapshot_app(theme=theme, pipeline=screen == "pipeline")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=shown)


@pytest.mark.parametrize("size", SIZES)
def test_cluster_side_by_side(snap_compare, snapshot_app, size):
    async def cluster(pilot) -> None:
        await loaded(pilot)
        await pilot.press("f6", "enter")
        await idle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZES[size], run_before=cluster)
