"""Charts for the Pipeline screen: bar charts drawn by plotext (through textual-plotext) and
sync health as rows of Textual's Sparklines.

A chart is described by a plain BarSpec; the widget draws it once per size and theme (not
on every repaint: plotext builds the whole picture in Python). Labels are CRM text, so they
are cleaned of control characters and never parsed as markup: plotext's output is read
with `Text.from_ansi`, which parses ANSI colours and nothing else, and the legend and the
captions are Text objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static
from textual_plotext import PlotextPlot

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
    """A BarSpec drawn by plotext, rebuilt only when the spec, the size or the theme change."""

    DEFAULT_CSS = "BarChart { height: 1fr; width: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spec: BarSpec | None = None
        self._drawn: tuple[object, ...] | None = None
        self._picture: RenderResult = Text("")

    def draw(self, spec: BarSpec | None) -> None:
        if spec != self.spec:
            self.spec = spec
            self.refresh()

    def render(self) -> RenderResult:
        key = (self.spec, self.size, self.app.theme)
        if key == self._drawn:
            return self._picture
        self._drawn = key
        if self.spec is None or self.spec.empty or self.size.width < 10 or self.size.height < 4:
            self._picture = Text("Nothing to draw here yet", style="italic")
            return self._picture
        plt = self.plt
        plt.clear_figure()
        _plot(plt, self.spec)
        self._picture = super().render()
        return self._picture


def _plot(plt: object, spec: BarSpec) -> None:
    """The spec as plotext calls: plotext draws the first label of a horizontal chart at
    the bottom, so those lists are reversed to read top down."""
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
    plt.stacked_bar(positions, data, color=colors, width=0.7)  # type: ignore[attr-defined]
    shown = [p for p in positions if (p - 1) % spec.tick_every == 0]
    plt.xticks(shown, [short_label(spec.labels[p - 1]) for p in shown])  # type: ignore[attr-defined]
    plt.yticks(ticks, names)  # type: ignore[attr-defined]
    if spec.selected is not None and 0 <= spec.selected < count:
        top = totals[spec.selected] + (ticks[-1] or 1) * 0.06
        plt.text("▼", x=spec.selected + 1, y=top, alignment="center")  # type: ignore[attr-defined]


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

    DEFAULT_CSS = """
    ChartPanel { height: 1fr; width: 1fr; border: round $panel; padding: 0 1; }
    ChartPanel.-current { border: round $accent; }
    ChartPanel > .chart-title { height: 1; text-style: bold; }
    ChartPanel > .chart-legend, ChartPanel > .chart-caption { height: 1; }
    """

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


class HealthChart(Vertical):
    """Per source, its last runs' duration, records and failures as three sparklines."""

    DEFAULT_CSS = """
    HealthChart { height: 1fr; }
    HealthChart Horizontal { height: 1; }
    HealthChart .health-name { width: 16; }
    HealthChart .health-head { width: 1fr; color: $text-muted; }
    HealthChart Sparkline { width: 1fr; margin-right: 1; }
    HealthChart .health-note { width: 28; }
    HealthChart .-selected { text-style: bold reverse; }
    HealthChart .failures > .sparkline--max-color { color: $error; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: tuple[HealthRow, ...] | None = None
        self.selected: int | None = None

    def draw(self, rows: Sequence[HealthRow], selected: int | None) -> None:
        if tuple(rows) == self.rows and selected == self.selected:
            return
        self.rows, self.selected = tuple(rows), selected
        self.remove_children()
        self.mount_all([self._header(), *(self._row(n, row) for n, row in enumerate(rows))])

    def _header(self) -> Horizontal:
        heads = [Label("source", classes="health-name")]
        heads += [Label(h, classes="health-head") for h in ("duration", "records", "failures")]
        return Horizontal(*heads, Label("rate left · last run", classes="health-note"))

    def _row(self, n: int, row: HealthRow) -> Horizontal:
        marked = SELECTED if n == self.selected else "  "
        name = Label(Text(marked + short_label(row.name)), classes="health-name")
        if n == self.selected:
            name.add_class("-selected")
        return Horizontal(
            name,
            Sparkline(list(row.seconds) or [0.0]),
            Sparkline(list(row.records) or [0.0]),
            Sparkline(list(row.failures) or [0.0], classes="failures"),
            Label(Text(single_line(row.note)), classes="health-note"),
        )


class HealthPanel(ChartPanel):
    def body(self) -> ComposeResult:
        yield HealthChart()
