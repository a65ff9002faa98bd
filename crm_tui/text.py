"""Cleaning of untrusted strings: every CRM, CSV and user string passes through here."""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL and the C1 range: ESC sequences, OSC 52 and
# friends would otherwise reach the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_KEEP_NOTHING = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def strip_controls(value: str) -> str:
    """Remove control characters, keeping tabs and newlines (notes have them)."""
    return _CONTROL.sub("", value)


def single_line(value: str) -> str:
    """A value for a table cell: every control character, newlines included, becomes a space."""
    return _CONTROL_KEEP_NOTHING.sub(" ", value)


def clean(value: object) -> str | None:
    """An optional field's text: None stays None, everything else is str, stripped of controls."""
    if value is None:
        return None
    if type(value) is str:
        if value.isprintable():  # no control character at all: the common case, at C speed
            return value.strip() or None
        text = value
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        return None
    text = strip_controls(text).strip()
    return text or None
