"""One line under the header: the screens, the current one highlighted, each clickable."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

#: (mode, its name, a shorter one for narrow terminals); F1..F7 in this order.
TABS: tuple[tuple[str, str, str], ...] = (
    ("status", "Status", "Stat"),
    ("search", "Search", "Srch"),
    ("browse", "Browse", "Brws"),
    ("audit", "Audit", "Audit"),
    ("connections", "Connections", "Conn"),
    ("people", "People", "Ppl"),
    ("pipeline", "Pipeline", "Pipe"),
)
SEPARATOR = " "


def tab_labels(width: int) -> list[str]:
    """The tabs' labels in `width` cells: full names where they fit, the longest names
    shortened first (at 80 cells: Connections and Pipeline), else all short ones."""
    names = [t[1] for t in TABS]
    by_length = sorted(range(len(TABS)), key=lambda i: -len(TABS[i][1]))
    for shortened in range(len(TABS) + 1):
        for i in by_length[:shortened]:
            names[i] = TABS[i][2]
        labels = [f" F{i} {name} " for i, name in enumerate(names, 1)]
        if sum(map(len, labels)) + len(SEPARATOR) * (len(labels) - 1) <= width:
            return labels
    return [f"F{i} {t[2][:3]}" for i, t in enumerate(TABS, 1)]


class ModeTabs(Widget):
    """The screens as tabs; mounted under each mode screen's header."""

    DEFAULT_CSS = """
    ModeTabs { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self._spans: list[tuple[int, int, str]] = []

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        self._spans = []
        for (mode, _, _), label in zip(TABS, tab_labels(self.size.width), strict=True):
            if text:
                text.append(SEPARATOR)
            start = len(text)
            style = "bold reverse" if mode == self.current else ""
            text.append(label, style=style)
            self._spans.append((start, len(text), mode))
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, mode in self._spans:
            if start <= event.x < end:
                event.stop()
                self.app.switch_mode(mode)
                return
