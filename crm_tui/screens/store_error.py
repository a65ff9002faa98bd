"""The cache could not be read (a damaged database, most often): which file, what is wrong
and what to do, in front of everything, so an empty cache never looks like a healthy one."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from crm_tui.store.errors import StoreError
from crm_tui.widgets.safe import safe_block


def store_error_text(error: StoreError) -> Text:
    """The error and its details (the path, what is wrong, the command), never as markup:
    a path may hold anything, brackets included."""
    text = Text()
    text.append_text(safe_block(error.error, "bold red"))
    text.append("\n\n")
    text.append_text(safe_block(error.details))
    return text


class StoreErrorScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,enter", "dismiss", "Close", id="store_error.close"),
        Binding("q", "app.quit", "Quit", id="store_error.quit"),
    ]

    def __init__(self, error: StoreError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="store-error"):
            yield Static(store_error_text(self.error), id="store-error-text")
            yield Static(
                "q quits (a repair needs the database to itself); escape closes this. Nothing"
                " is synced until the database is repaired.",
                id="store-error-keys",
                markup=False,
            )
