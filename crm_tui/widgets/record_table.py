"""A virtualised table: renders only the visible lines, so a million rows scroll freely.

Textual's DataTable measures every cell on the main thread (seconds frozen at 100k rows);
this Line-API view asks for a row only when it is on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from crm_tui.text import single_line


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int
    get: Callable[[Any], object]
    sort_key: Callable[[Any], Any] | None = None


class RecordTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    RecordTable { height: 1fr; }
    RecordTable > .record-table--header { text-style: bold; background: $panel; }
    RecordTable > .record-table--cursor { background: $accent; color: $text; }
    """
    COMPONENT_CLASSES = {"record-table--header", "record-table--cursor"}
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False, id="table.up"),
        Binding("down,j", "move(1)", "Down", show=False, id="table.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.pagedown"),
        Binding("home,g", "jump(0)", "Top", show=False, id="table.home"),
        Binding("end,G", "jump(-1)", "Bottom", show=False, id="table.end"),
        Binding("enter", "select", "Open", id="table.open"),
    ]

    cursor: reactive[int] = reactive(0)

    class Selected(Message):
        def __init__(self, table: RecordTable, row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.rows: Sequence[Any] = ()
        self.sort_column: int | None = None
        self.sort_reverse = False

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: Sequence[Any], keep_cursor: bool = True) -> None:
        self.rows = rows
        width = sum(c.width + 1 for c in self.columns)
        self.virtual_size = Size(width, len(rows) + 1)
        self.cursor = min(self.cursor if keep_cursor else 0, max(len(rows) - 1, 0))
        self.refresh()

    @property
    def current(self) -> Any | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def watch_cursor(self, old: int, new: int) -> None:
        visible = max(self.size.height - 1, 1)
        top = self.scroll_offset.y
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(self.cursor + delta, len(self.rows) - 1))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.size.height - 2, 1))

    def action_jump(self, where: int) -> None:
        if self.rows:
            self.cursor = 0 if where == 0 else len(self.rows) - 1

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.current))

    def _cells(self, values: Sequence[str], style: Style) -> list[Segment]:
        segments = []
        for column, value in zip(self.columns, values, strict=True):
            text = single_line(value)
            if cell_len(text) > column.width:
                text = set_cell_size(text, column.width - 1) + "…"
            segments.append(Segment(set_cell_size(text, column.width) + " ", style))
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("record-table--header")
            titles = []
            for i, column in enumerate(self.columns):
                arrow = ""
                if i == self.sort_column:
                    arrow = " ▼" if self.sort_reverse else " ▲"
                titles.append(column.title + arrow)
            return (
                Strip(self._cells(titles, style))
                .crop(scroll_x, scroll_x + width)
                .extend_cell_length(width, style)
            )
        index = scroll_y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("record-table--cursor")
        values = []
        for column in self.columns:
            value = column.get(row)
            values.append("" if value is None else str(value))
        strip = Strip(self._cells(values, style))
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, style)

    def on_click(self, event: Any) -> None:
        index = self.scroll_offset.y + event.y - 1
        if 0 <= index < len(self.rows):
            self.cursor = index
