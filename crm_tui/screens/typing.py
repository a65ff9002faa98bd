"""Type-to-filter for screens with a list and a search or filter box (as in fzf and k9s).

A printable key pressed while the list has the focus is typed into the box, unless the
list or its screen binds that key itself: a name typed into a list can never run an action.
Textual offers a key to the focused widget first, then bubbles it up to the screen, and
only then (in App._on_key) checks the non-priority bindings: the screen sees it before any
app binding (`q`, the digits) can act.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input


class TypeToFilter(Screen[None]):
    """Mixed into a screen; it names its box and its lists. Its box takes
    `select_on_focus=False`, or the first key typed after coming back would replace the query."""

    def filter_box(self) -> Input:
        """The box typed keys go to, shown if it was hidden."""
        raise NotImplementedError

    def typing_lists(self) -> tuple[Widget, ...]:
        raise NotImplementedError

    def focus_box(self, typed: str = "") -> Input:
        """The box focused with its text kept and the cursor at its end, `typed` added."""
        box = self.filter_box()
        box.display = True
        box.focus()
        if typed:
            box.value += typed
        box.cursor_position = len(box.value)
        return box

    def _bound_here(self, event: events.Key) -> bool:
        """Whether the list, its screen or a widget between binds this key; the app's own
        bindings count only for a symbol (`?` help), never for a letter, a digit or a
        space, which a name can contain (`q`, the mode digits)."""
        wordy = bool(event.character) and (event.character.isalnum() or event.character == " ")
        for node, bindings in self._modal_binding_chain:
            if node is self.app and wordy:
                continue
            if bindings.key_to_bindings.get(event.key):
                return True
        return False

    def on_key(self, event: events.Key) -> None:
        focused = self.focused
        if focused is None or focused not in self.typing_lists():
            return
        if event.key == "up" and _at_top(focused) and self.filter_box().display:
            event.stop()  # up from the first row: back to the box, as in fzf
            event.prevent_default()
            self.focus_box()
        elif event.is_printable and event.character and not self._bound_here(event):
            event.stop()
            event.prevent_default()
            self.focus_box(event.character)


def _at_top(widget: Widget) -> bool:
    """Whether a list's cursor is on its first row (a DataTable's or a RecordTable's)."""
    row = getattr(widget, "cursor_row", getattr(widget, "cursor", None))
    return row == 0
