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
from crm_tui.widgets.columns import Want, fit_widths, need


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int  # the narrowest it is shown at
    get: Callable[[Any], object]
    sort_key: Callable[[Any], Any] | None = None
    priority: int = 99  # 0 is shown first when the width runs short; ties by position


#: Rows whose values decide how wide a column grows (a million are never measured).
SAMPLE = 500


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
        self.rows: Sequence[Any] = ()
        self._columns = list(columns)
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.shown: list[tuple[int, int]] = []  # (index into columns, width) on screen

    @property
    def columns(self) -> list[Column]:
        return self._columns

    @columns.setter
    def columns(self, columns: Sequence[Column]) -> None:
        """New columns drop the rows: they were another kind's, which the columns cannot read."""
        self._columns = list(columns)
        self.rows = ()
        self.fit_columns()

    def fit_columns(self) -> None:
        """Choose the columns and their widths for the table's width (on resize, new
        rows or new columns): by priority, widened to what the first rows need."""
        sample = self.rows[:SAMPLE]
        wants = [
            Want(
                str(i),
                c.width,
                need(c.title + " ▲", (c.get(r) for r in sample), c.width),
                c.priority * 1000 + i,
            )
            for i, c in enumerate(self.columns)
        ]
        # The scrollbar's cells always kept: rows may arrive before it shows, and columns
        # fitted to the whole width would lose their last cells once it does.
        width = (self.size.width or 80) - self.styles.scrollbar_size_vertical
        widths = fit_widths(wants, width, gap=1)
        if not widths and self.columns:  # narrower than any column: the first, cut
            widths = {"0": max(width - 1, 1)}
        self.shown = [(i, widths[str(i)]) for i in range(len(self.columns)) if str(i) in widths]
        total = sum(w + 1 for _, w in self.shown)
        self.virtual_size = Size(total, len(self.rows) + 1)
        self.refresh()

    def on_resize(self) -> None:
        self.fit_columns()

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: Sequence[Any], keep_cursor: bool = True) -> None:
        self.rows = rows
        self.fit_columns()
        self.cursor = min(self.cursor if keep_cursor else 0, max(len(rows) - 1, 0))

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
        for (_, width), value in zip(self.shown, values, strict=True):
            text = single_line(value)
            if cell_len(text) > width:
                text = set_cell_size(text, width - 1) + "…"
            segments.append(Segment(set_cell_size(text, width) + " ", style))
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("record-table--header")
            titles = []
            for i, _ in self.shown:
                arrow = ""
                if i == self.sort_column:
                    arrow = " ▼" if self.sort_reverse else " ▲"
                titles.append(self.columns[i].title + arrow)
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
        for i, _ in self.shown:
            value = self.columns[i].get(row)
            values.append("" if value is None else str(value))
        strip = Strip(self._cells(values, style))
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, style)

    def on_click(self, event: Any) -> None:
        index = self.scroll_offset.y + event.y - 1
        if 0 <= index < len(self.rows):
            self.cursor = index
