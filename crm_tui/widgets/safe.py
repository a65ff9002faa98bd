"""Rendering untrusted strings: Text objects (never markup), control characters removed."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from crm_tui.text import single_line, strip_controls


def safe(value: object, style: str = "") -> Text:
    """One line of untrusted text, literally."""
    return Text(single_line("" if value is None else str(value)), style=style, no_wrap=True)


def safe_block(value: object, style: str = "") -> Text:
    """Untrusted text that may span lines (notes, JSON payloads)."""
    return Text(strip_controls("" if value is None else str(value)), style=style)


def highlighted(
    value: str, spans: Iterable[tuple[int, int]], style: str = "bold underline yellow"
) -> Text:
    text = safe(value)
    for start, end in spans:
        text.stylize(style, start, end)
    return text
