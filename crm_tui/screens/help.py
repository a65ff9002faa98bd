"""`?`: crm-tui's own keys, grouped by screen, then the query syntax, in one scrolling page.

Keys are read from the screens' BINDINGS and the user's keymap each time the page opens, so
a key moved in code or in keymap.toml shows as it is now; nothing here lists keys by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from rich.columns import Columns
from rich.console import Group as RichGroup
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from crm_tui.search.query import query_help
from crm_tui.text import single_line
from crm_tui.vocabulary import SHARED_STATUSES, filter_token

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

_OWN = "crm_tui."


def own_bindings(cls: type) -> list[Binding]:
    """The bindings crm-tui's code gives a class (its own and its crm-tui bases', the
    nearest first), not Textual's built-in ones."""
    found: dict[str, Binding] = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith(_OWN):
            continue
        for binding in klass.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding):
                found.setdefault(binding.id or binding.action, binding)
    return list(found.values())


def key_text(app: Any, binding: Binding) -> str:
    """A binding's keys as they are now: the keymap's when it remaps the binding."""
    keymap = getattr(app, "_keymap", {})  # Textual keeps the applied keymap here
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    shown = [app.get_key_display(Binding(k.strip(), binding.action)) for k in keys.split(",")]
    return " ".join(dict.fromkeys(k for k in shown if k))


def screen_title(cls: type) -> str:
    words = re.findall(r"[A-Z][a-z]*", cls.__name__.removesuffix("Screen")) or [cls.__name__]
    return " ".join(words).capitalize()


def _crm_classes(base: type) -> Iterator[type]:
    """Every crm-tui subclass of `base` in the screens and widgets packages."""
    import crm_tui.screens
    import crm_tui.widgets

    for package in (crm_tui.screens, crm_tui.widgets):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    seen: set[type] = set()
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(_OWN):
            yield cls


Group = tuple[str, list[tuple[str, str]]]


def _rows(app: Any, bindings: Iterable[Binding]) -> list[tuple[str, str]]:
    return [(key_text(app, b), b.description or b.action) for b in bindings]


def key_groups(app: CrmApp) -> list[Group]:
    """Everywhere, then each mode screen in the header's order, then every other screen
    and widget with keys of its own."""
    groups: list[Group] = [("Everywhere", _rows(app, own_bindings(type(app))))]
    modes: dict[str, type] = dict(app.MODES)
    done: set[type] = {HelpScreen}
    for number, (mode, cls) in enumerate(modes.items(), 1):
        groups.append((f"{mode.capitalize()} ({number})", _rows(app, own_bindings(cls))))
        done.update(cls.__mro__)  # a mode's mixins (local actions) are shown with it
    others = sorted(
        (c for c in _crm_classes(DOMNode) if c not in done and not issubclass(c, App)),
        key=screen_title,
    )
    for cls in others:
        own = [b for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding)]
        if own:
            groups.append((screen_title(cls), _rows(app, own_bindings(cls))))
    return [(title, rows) for title, rows in groups if rows]


def sections(app: CrmApp) -> list[Group]:
    """The page's sections: the key groups, the query syntax, the shared statuses with
    the vendor values in the cache that mean each (as plain rows of two cells)."""
    held = app.index.vendor_values_by_shared()
    statuses = [
        (
            filter_token(shared),
            ", ".join(single_line(v)[:24] for v in sorted(held.get(shared, ()))[:10])
            or "(none in the cache)",
        )
        for shared in SHARED_STATUSES
    ]
    return [
        *key_groups(app),
        ("Search queries", query_help()),
        ("Shared statuses: status: and stage: find them in every source", statuses),
    ]


def _grid(title: str, rows: list[tuple[str, str]], width: int | None = None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.width = width
    grid.title, grid.title_justify, grid.title_style = title, "left", "bold"
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1)  # the key column keeps its width; the rest goes here
    for key, what in rows:
        grid.add_row(Text(key), Text(what))  # Text: a CRM's values are never markup
    return grid


def help_renderable(app: CrmApp) -> RichGroup:
    """The key groups side by side as the width allows (two at 80 columns), then the
    query syntax and the shared statuses across the page."""
    keys, (syntax, statuses) = key_groups(app), sections(app)[-2:]
    return RichGroup(
        Text("esc or ? closes this page · ctrl+p runs any of these by name", style="dim"),
        Columns([_grid(t, rows, _COLUMN) for t, rows in keys], padding=(1, 2)),
        Text(""),
        _grid(*syntax),
        Text(""),
        _grid(*statuses),
    )


_COLUMN = 36


class HelpScreen(ModalScreen[None]):
    """The whole key map and query syntax; `esc` or `?` closes it."""

    BINDINGS = [
        Binding("escape,question_mark", "dismiss", "Close", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100%; max-width: 160; height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(help_renderable(cast("CrmApp", self.app)), id="help-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body", VerticalScroll).focus()
