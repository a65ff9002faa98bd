"""Charts for the Pipeline screen: bar charts drawn by plotext (through textual-plotext) and
sync health as rows of Textual's sparklines.

A chart is described by a plain BarSpec; the widget draws it once per size and theme (not
on every repaint: plotext builds the whole picture in Python). Labels are CRM text, so they
are cleaned of control characters and never parsed as markup: plotext's output is read
with `Text.from_ansi`, which parses ANSI colours and nothing else, and the legend and the
captions are Text objects.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.color import Color as RichColor
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from crm_tui.text import single_line

RGB = tuple[int, int, int]
#: One colour per series, readable on dark and light backgrounds (textual-plotext's).
PALETTE: tuple[RGB, ...] = (
    (0, 130, 200),
    (60, 180, 75),
    (230, 25, 75),
    (245, 130, 48),
    (145, 30, 180),
    (0, 128, 128),
    (170, 110, 40),
    (128, 128, 128),
    (240, 50, 230),
    (128, 0, 0),
)
LABEL_CHARS = 22  # a vendor's stage name past this is cut (the table has it whole)
SELECTED = "▸ "


def color_of(n: int) -> RGB:
    return PALETTE[n % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]
    color: RGB


@dataclass(frozen=True)
class BarSpec:
    """Stacked bars: one label per bar, one series per colour."""

    labels: tuple[str, ...]
    series: tuple[Series, ...]
    horizontal: bool = False
    selected: int | None = None
    money: bool = False  # the value axis in dollars
    tick_every: int = 1  # label every n-th bar only (26 weeks do not fit a label each)

    @property
    def empty(self) -> bool:
        return not any(v for s in self.series for v in s.values)


def short_label(value: str) -> str:
    text = single_line(value).strip()
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def nice_ticks(top: float, count: int = 4, whole: bool = True) -> list[float]:
    """0 and steps of 1, 2 or 5 times a power of ten up to `top` (counts: whole steps)."""
    if top <= 0:
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    return [n * step for n in range(int(top // step) + 1)]


def money_tick(value: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"${value / size:g}{unit}"
    return f"${value:g}"


class BarChart(PlotextPlot):
    """A BarSpec drawn by plotext. plotext builds the whole picture in Python (tens of ms
    for a wide chart), so it is built in a thread, once per spec, size and theme, and the
    widget paints the finished picture."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spec: BarSpec | None = None
        self.drawn: tuple[object, ...] | None = None  # what the picture shows
        self._picture: Text = Text("")
        self._painted: tuple[object, ...] | None = None  # what the last render returned

    def draw(self, spec: BarSpec | None) -> None:
        if spec != self.spec:
            self.spec = spec
            self._rebuild()

    def on_resize(self) -> None:
        self._rebuild()

    def _register_theme(self, app_theme_name: str) -> None:
        super()._register_theme(app_theme_name)
        self._rebuild()

    @property
    def wanted(self) -> tuple[object, ...]:
        return (self.spec, self.size.width, self.size.height, self.app.theme)

    @property
    def ready(self) -> bool:
        """Whether the picture shows the spec at this size and theme."""
        return self.drawn == self.wanted

    def _rebuild(self) -> None:
        if self.is_mounted and not self.ready and self.spec is None:
            self.drawn, self._picture = self.wanted, Text("")  # nothing counted yet
            self.refresh()
        elif self.is_mounted and not self.ready:
            wanted = self.wanted
            theme = self._get_plotext_theme_name(self.app.theme)
            build = functools.partial(self._build, wanted, theme)  # made when it starts
            self.run_worker(
                build, group="chart", exclusive=True, exit_on_error=False, description="chart"
            )

    async def _build(self, wanted: tuple[object, ...], theme: str) -> None:
        spec, width, height, _ = wanted
        picture = await asyncio.to_thread(self._picture_of, spec, width, height, theme)  # type: ignore[arg-type]
        self.drawn, self._picture = wanted, picture
        self.refresh()

    def _picture_of(self, spec: BarSpec | None, width: int, height: int, theme: str) -> Text:
        """In a thread: a plotext figure of its own (a cancelled build may still be running
        in another thread), drawn and read as ANSI text."""
        if spec is None or spec.empty or width < 10 or height < 4:
            return Text("Nothing to draw here yet", style="italic")
        plt = Plot()
        _plot(plt, spec, width)
        plt.plotsize(width, height)
        plt._set_size(width, height)  # textual-plotext does both (its issue #5)
        plt.theme(theme)
        return Text.from_ansi(plt.build())

    @property
    def painted(self) -> bool:
        """Whether the screen shows the spec at this size and theme."""
        return self.ready and self._painted == self.drawn

    def render(self) -> RenderResult:
        self._painted = self.drawn
        return self._picture


def _plot(plt: object, spec: BarSpec, width: int) -> None:
    """The spec as plotext calls: plotext draws the first label of a horizontal chart at
    the bottom, so those lists are reversed to read top down. Below the bars, only labels
    that fit are given (plotext would drop colliding ones, in no fixed order)."""
    count = len(spec.labels)
    colors = [s.color for s in spec.series]
    data = [list(s.values) for s in spec.series]
    totals = [sum(s.values[i] for s in spec.series) for i in range(count)]
    ticks = nice_ticks(max(totals), whole=not spec.money)
    names = [tick_text(t, spec.money) for t in ticks]
    if spec.horizontal:
        labels = [
            (SELECTED if i == spec.selected else "") + short_label(label)
            for i, label in enumerate(spec.labels)
        ]
        plt.stacked_bar(  # type: ignore[attr-defined]
            labels[::-1], [d[::-1] for d in data], orientation="h", color=colors, width=0.6
        )
        plt.xticks(ticks, names)  # type: ignore[attr-defined]
        return
    positions = list(range(1, count + 1))
    plt.stacked_bar(positions, data, color=colors, width=_bar_width(count, width))  # type: ignore[attr-defined]
    every = max(spec.tick_every, _label_step(spec.labels, width))
    shown = [p for p in positions if (p - 1) % every == 0]
    plt.xticks(shown, [short_label(spec.labels[p - 1]) for p in shown])  # type: ignore[attr-defined]
    plt.yticks(ticks, names)  # type: ignore[attr-defined]
    if spec.selected is not None and 0 <= spec.selected < count:
        top = totals[spec.selected] + (ticks[-1] or 1) * 0.06
        plt.text("▼", x=spec.selected + 1, y=top, alignment="center")  # type: ignore[attr-defined]


def _bar_width(count: int, width: int) -> float:
    """The share of its slot a bar fills: where slots are narrow, rounding to whole
    columns would close the gaps between bars at 0.7, and 18 months read as one block."""
    room = max(width - 10, 1) / max(count, 1)
    return 0.7 if room >= 6 else 0.5


def _label_step(labels: Sequence[str], width: int) -> int:
    """Label every n-th bar, so that labels (and a space) fit beside each other."""
    longest = max((len(short_label(label)) for label in labels), default=1)
    room = max(width - 10, 1) / max(len(labels), 1)  # columns per bar, less the y axis
    return max(1, math.ceil((longest + 1) / room))


def tick_text(value: float, money: bool) -> str:
    return money_tick(value) if money else f"{value:,.0f}"


def legend(names: Sequence[tuple[str, RGB]]) -> Text:
    """ "■ Follow Up Boss  ■ HubSpot": each name in its series' colour, as plain text."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for name, (r, g, b) in names:
        if text:
            text.append("  ")
        text.append("■ ", style=f"rgb({r},{g},{b})")
        text.append(short_label(name))
    return text


class ChartPanel(Vertical):
    """A chart with its title above and its legend and selection below."""

    def compose(self) -> ComposeResult:
        yield Static(classes="chart-title", markup=False)
        yield from self.body()
        yield Static(classes="chart-legend", markup=False)
        yield Static(classes="chart-caption", markup=False)

    def body(self) -> ComposeResult:
        yield BarChart()

    def show(self, title: Text, legend_text: Text, caption: Text) -> None:
        self.query_one(".chart-title", Static).update(title)
        self.query_one(".chart-legend", Static).update(legend_text)
        self.query_one(".chart-caption", Static).update(caption)


@dataclass(frozen=True)
class HealthRow:
    name: str
    seconds: tuple[float, ...]
    records: tuple[float, ...]
    failures: tuple[float, ...]
    note: str  # rate budget and last outcome


class HealthChart(Widget):
    """Per source, its last runs' duration, records and failed streams as three sparklines
    (Textual's Sparkline renderable) and its rate budget: one widget drawing a table, so a
    redraw mounts nothing."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"health--low", "health--high", "health--failed"}
    HEADINGS = ("source", "duration", "records", "failures", "rate left · last run")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: tuple[HealthRow, ...] = ()
        self.selected: int | None = None

    def draw(self, rows: Sequence[HealthRow], selected: int | None) -> None:
        if tuple(rows) != self.rows or selected != self.selected:
            self.rows, self.selected = tuple(rows), selected
            self.refresh()

    def _color(self, name: str) -> RichColor:
        _, base = self.background_colors
        return (base + self.get_component_styles(name).color).rich_color

    def render(self) -> RenderResult:
        low, high = self._color("health--low"), self._color("health--high")
        failed = self._color("health--failed")
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=16, no_wrap=True)
        for _ in range(3):
            table.add_column(ratio=1, no_wrap=True)
        table.add_column(width=28, no_wrap=True, overflow="ellipsis")
        table.add_row(*(Text(h, style="dim") for h in self.HEADINGS))
        for n, row in enumerate(self.rows):
            mark = SELECTED if n == self.selected else "  "
            name = Text(mark + short_label(row.name), style="bold reverse" * (n == self.selected))
            table.add_row(
                name,
                SparklineRenderable(list(row.seconds), width=None, min_color=low, max_color=high),
                SparklineRenderable(list(row.records), width=None, min_color=low, max_color=high),
                SparklineRenderable(
                    list(row.failures), width=None, min_color=low, max_color=failed
                ),
                Text(single_line(row.note)),
            )
        return table


class HealthPanel(ChartPanel):
    def body(self) -> ComposeResult:
        yield HealthChart()
