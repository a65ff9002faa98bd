"""Pipeline (F7): the cache as four charts: deals by stage, closings by month, lead flow and
sync health.

Below 160x40 one chart shows at a time (`tab` / `shift+tab` switch); from 160x40 all four
show in a grid and `tab` moves the cursor between them. Arrows move between bars, `enter`
opens a bar's records in Browse with the matching filter, `t` shows the numbers as a table
(for screen readers and scripts), `y` copies them as CSV and `ctrl+s` writes them to a CSV
file. `/` filters with the Search query language.

The figures are computed off the event loop (crm_tui/insights, in a thread) from what the
store holds, again after the store changes (at most once per REDRAW_GAP): no request to
any CRM. "Now" is the app's clock, which the tests fix.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import DataTable, Footer, Header, Input, Static

from crm_tui.config import DISPLAY_NAMES
from crm_tui.insights import CHARTS, Pipeline, Table, build_pipeline
from crm_tui.insights.deals import DealTable
from crm_tui.insights.periods import today_of
from crm_tui.insights.report import (
    CHART_TITLES,
    Chart,
    ContactFigures,
    check_filter,
    filtered,
)
from crm_tui.insights.table import joined_filter, money
from crm_tui.models import RecordKind
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.export_view import export_path
from crm_tui.screens.pipeline_specs import (
    MEASURES,
    drill_filter,
    health_rows,
    legend_for,
    spec_for,
    title_for,
)
from crm_tui.search.query import QueryError, words_for
from crm_tui.store import StoreChange
from crm_tui.widgets.charts import BarChart, ChartPanel, HealthChart, HealthPanel
from crm_tui.widgets.safe import safe

WIDE = (160, 40)  # from this size the four charts show at once


class PipelineScreen(ModeScreen):
    AUTO_FOCUS = ""  # keys go to the screen (its charts), not to the hidden filter box
    BINDINGS = [
        Binding("tab", "next_chart(1)", "Chart", id="pipeline.next"),
        Binding(
            "shift+tab", "next_chart(-1)", "Previous chart", id="pipeline.previous", show=False
        ),
        Binding("up,left", "move(-1)", "Previous bar", id="pipeline.bar_back", show=False),
        Binding("down,right", "move(1)", "Next bar", id="pipeline.bar_on", show=False),
        Binding("enter", "drill", "Open", id="pipeline.open"),
        Binding("t", "toggle_table", "Numbers", id="pipeline.table"),
        Binding("m", "next_measure", "Measure", id="pipeline.measure"),
        Binding("v", "toggle_view", "Split", id="pipeline.view"),
        Binding("slash", "find", "Filter", id="pipeline.find"),
        Binding("escape", "clear_find", "Clear filter", show=False, id="pipeline.clear"),
        Binding("y", "copy_csv", "Copy", id="pipeline.copy"),
        Binding("ctrl+s", "export_csv", "Export", id="pipeline.export"),
    ]
    #: Seconds between two computations while the store keeps changing (a sync's pages).
    REDRAW_GAP = 0.5
    DEBOUNCE = 0.15  # after a keystroke in the filter box

    def __init__(self) -> None:
        super().__init__()
        self.chart: Chart = "stages"
        self.pipeline: Pipeline | None = None
        self.problem = ""  # why the filter cannot run
        self.filter_text = ""
        self.measures: dict[Chart, str] = {c: MEASURES[c][0] for c in CHARTS}
        self.vendor = False  # stages: each CRM's own instead of the shared vocabulary
        self.split = "source"  # lead flow: by source or by stage
        #: the bar under the cursor per chart; until a key moves it, the current month
        #: (closings), the current week (lead flow), else the first
        self.selected: dict[Chart, int | None] = dict.fromkeys(CHARTS)
        self.table_shown = False
        self._computing = False
        self._changes = 0  # the store changes published since the screen began following
        self._reading: tuple[object, ...] = ()  # `_inputs` of the computation running
        self._drawn: tuple[object, ...] = ()  # and of the last that succeeded
        self._stale = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter: source:x stage:closed amount>500k tag:buyer (esc clears)",
            id="pipeline-find",
            select_on_focus=False,
        )
        yield Static(id="pipeline-summary", markup=False)
        with Grid(id="charts"):
            for chart in CHARTS:
                yield (HealthPanel if chart == "health" else ChartPanel)(id=f"chart-{chart}")
        yield DataTable(id="pipeline-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pipeline-find", Input).display = False
        self.query_one("#pipeline-table", DataTable).display = False
        super().on_mount()
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    @property
    def wide(self) -> bool:
        return self.size.width >= WIDE[0] and self.size.height >= WIDE[1]

    def _layout(self) -> None:
        """Four charts in a grid when they fit, else the current one alone."""
        self.query_one("#charts", Grid).set_class(self.wide, "-wide")
        for chart in CHARTS:
            panel = self.query_one(f"#chart-{chart}", ChartPanel)
            panel.set_class(chart == self.chart, "-current")
            panel.display = not self.table_shown and (self.wide or chart == self.chart)
        self.query_one("#charts", Grid).display = not self.table_shown

    # -- computing -----------------------------------------------------------------------

    def refresh_data(self) -> None:
        """One computation at a time; a change after it read the store makes one more
        after it. (Textual calls each class's on_mount and on_screen_resume: asked three
        times on opening, this computes once.)"""
        if self._computing:
            self._stale = self._stale or self._reading != self._inputs()
            return
        if self._drawn == self._inputs():
            return  # what is drawn is current
        self._computing = True
        self.run_worker(self._compute, group="pipeline", exit_on_error=False, name="pipeline")

    async def _compute(self) -> None:
        try:
            while True:
                self._stale, self._reading = False, ()
                await self._compute_once()
                if not self._stale or not self.is_attached:
                    return
                await asyncio.sleep(self.REDRAW_GAP)
        finally:
            self._computing = False

    async def _compute_once(self) -> None:
        store, text, now = self.crm.store, self.filter_text, self.crm.clock()
        try:
            check_filter(text, self.crm.index.columns)
        except QueryError as exc:
            self.problem = str(exc)
            self._show()
            return
        # the store's dicts change on this thread only: lists of them are taken here; a
        # filter is answered by the index, in the thread
        parts = self._parts(text, "deals")
        contacts = self._parts(text, "contacts")
        statuses = store.statuses()
        self._reading = inputs = self._inputs()
        self.pipeline = await asyncio.to_thread(self._build, text, parts, contacts, statuses, now)
        self._drawn = inputs
        self.problem = ""
        self._show()

    def _inputs(self) -> tuple[object, ...]:
        """What a computation depends on: every change the store published (records, the
        index, statuses and runs), the filter and the day."""
        return (self._changes, self.filter_text, today_of(self.crm.clock()))

    def on_store_change(self, change: StoreChange) -> None:
        self._changes += 1
        super().on_store_change(change)

    def _parts(self, text: str, kind: RecordKind) -> list[Any] | None:
        """What a kind's charts count: with no filter for it, the search index's segments
        (the app keeps their figures warm), else None: the filter's matches, found in the
        thread."""
        return None if words_for(text, kind).strip() else self.crm.index.parts(kind)

    def _build(
        self, text: str, deals: Any, contacts: Any, statuses: Any, now: datetime
    ) -> Pipeline:
        """In a worker thread: the index answers a filter, the warm figures the rest."""
        index, store, crm = self.crm.index, self.crm.store, self.crm
        if contacts is None:
            people: Any = filtered("contacts", text, list, index.matching)
        else:
            with crm.lead_groups.lock:
                flow, count = crm.lead_groups.flow(contacts, now)
            people = ContactFigures(count, flow)
        runs = store.db.recent_runs(store.user_id) if store.db is not None else []
        if deals is None:
            table = DealTable.of(filtered("deals", text, list, index.matching))  # type: ignore[arg-type]
            return build_pipeline(table, people, runs, statuses, now, filter_text=text)
        with crm.deal_tables.lock:
            figures = crm.deal_tables.figures(deals, now)
        return build_pipeline(figures, people, runs, statuses, now, filter_text=text)

    # -- drawing ---------------------------------------------------------------------------

    def _show(self) -> None:
        self.query_one("#pipeline-summary", Static).update(self._summary())
        pipeline = self.pipeline
        if pipeline is None:
            return
        for chart in CHARTS:
            self._draw(chart, pipeline)
        if self.table_shown:
            self._fill_table()

    def _draw(self, chart: Chart, pipeline: Pipeline) -> None:
        panel = self.query_one(f"#chart-{chart}", ChartPanel)
        bars = self._bars(chart)
        at = self.selected[chart] = self._cursor(chart, bars)
        state = self._state(chart)
        if chart == "health":
            panel.query_one(HealthChart).draw(health_rows(pipeline.health), at if bars else None)
        else:
            spec = spec_for(chart, pipeline, state, at if bars else None, self.size.width)
            panel.query_one(BarChart).draw(spec)
        panel.show(
            title_for(chart, pipeline, state),
            legend_for(chart, pipeline, state),
            self._caption(chart, pipeline, at),
        )

    def _cursor(self, chart: Chart, bars: list[Any]) -> int:
        chosen = self.selected[chart]
        if chosen is None and chart == "closings" and self.pipeline is not None:
            chosen = bars.index(self.pipeline.closings.current)
        elif chosen is None:
            chosen = len(bars) - 1 if chart == "leads" else 0
        return min(chosen, max(len(bars) - 1, 0))

    def _state(self, chart: Chart) -> dict[str, Any]:
        return {"measure": self.measures[chart], "vendor": self.vendor, "split": self.split}

    def _bars(self, chart: Chart) -> list[Any]:
        """What the cursor moves over in a chart: stages, months, weeks or sources."""
        pipeline = self.pipeline
        if pipeline is None:
            return []
        if chart == "stages":
            return list((pipeline.vendor_stages if self.vendor else pipeline.stages).stages)
        if chart == "closings":
            return list(pipeline.closings.months)
        if chart == "leads":
            return list(pipeline.leads.weeks)
        return [s.source for s in pipeline.health.sources]

    def _caption(self, chart: Chart, pipeline: Pipeline, at: int) -> Text:
        bars = self._bars(chart)
        if not bars:
            return Text("Nothing in the cache for this chart yet", style="italic")
        bar = bars[at]
        if chart == "stages":
            figures = pipeline.vendor_stages if self.vendor else pipeline.stages
            said = figures.caption(bar)
        elif chart == "closings":
            said = pipeline.closings.caption(bar)
        elif chart == "leads":
            said = pipeline.leads.caption(bar)
        else:
            health = pipeline.health.sources[at]
            said = f"{DISPLAY_NAMES.get(bar, bar)}: {health.failed_runs} of {len(health.runs)}"
            said += " runs failed"
        where = "Audit" if chart == "health" else "Browse"
        return safe(f"▸ {said} · enter: open in {where}")

    def _summary(self) -> str:
        if self.problem:
            return f"Filter: {self.problem}"
        pipeline = self.pipeline
        if pipeline is None:
            return "Counting…" if self.crm.loaded else "Loading the cache…"
        volume = money(sum(pipeline.stages.total(s)[1] for s in pipeline.stages.stages))
        scope = f" matching {pipeline.filter!r}" if pipeline.filter else ""
        return (
            f"{pipeline.deal_count:,} deals ({volume or '$0'}) and {pipeline.contact_count:,}"
            f" contacts{scope}, as of {pipeline.as_of:%b %d %Y}"
        )

    # -- the numbers as a table ----------------------------------------------------------

    def current_table(self) -> Table | None:
        if self.pipeline is None:
            return None
        return self.pipeline.table(self.chart, vendor=self.vendor)

    def _fill_table(self) -> None:
        table = self.query_one("#pipeline-table", DataTable)
        figures = self.current_table()
        row = table.cursor_row
        table.clear(columns=True)
        if figures is None:
            return
        table.add_columns(*figures.headers)
        for values in figures.rows:
            table.add_row(*(_cell(v) for v in values))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def action_toggle_table(self) -> None:
        self.table_shown = not self.table_shown
        table = self.query_one("#pipeline-table", DataTable)
        table.display = self.table_shown
        self._layout()
        if self.table_shown:
            self._fill_table()
            table.focus()
        else:
            self.set_focus(None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        figures = self.current_table()
        if figures is not None:
            self._open(self._kind(), figures.filter_at(event.cursor_row), event.cursor_row)

    # -- keys ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_measure":
            return len(MEASURES[self.chart]) > 1
        if action == "toggle_view":
            return self.chart in ("stages", "leads")
        return True

    def action_next_chart(self, step: int) -> None:
        at = CHARTS.index(self.chart)
        self.chart = CHARTS[(at + step) % len(CHARTS)]
        self._layout()
        if self.table_shown:
            self._fill_table()
        self.refresh_bindings()

    def action_move(self, step: int) -> None:
        bars = self._bars(self.chart)
        if bars and self.pipeline is not None:
            at = self._cursor(self.chart, bars)
            self.selected[self.chart] = (at + step) % len(bars)
            self._draw(self.chart, self.pipeline)

    def action_next_measure(self) -> None:
        options = MEASURES[self.chart]
        self.measures[self.chart] = options[
            (options.index(self.measures[self.chart]) + 1) % len(options)
        ]
        self._show()

    def action_toggle_view(self) -> None:
        if self.chart == "stages":
            self.vendor = not self.vendor
            self.selected["stages"] = None
        elif self.chart == "leads":
            self.split = "stage" if self.split == "source" else "source"
        self._show()

    def action_drill(self) -> None:
        if self.table_shown:
            table = self.query_one("#pipeline-table", DataTable)
            figures = self.current_table()
            if figures is not None and table.row_count:
                self._open(self._kind(), figures.filter_at(table.cursor_row), table.cursor_row)
            return
        bars = self._bars(self.chart)
        if self.pipeline is None or not bars:
            return
        at = self._cursor(self.chart, bars)
        text = drill_filter(self.chart, self.pipeline, bars[at], self._state(self.chart))
        self._open(self._kind(), text, at)

    def _kind(self) -> RecordKind:
        return "contacts" if self.chart == "leads" else "deals"

    def _open(self, kind: RecordKind, bar_filter: str, at: int) -> None:
        """A bar's records in Browse (a source's runs in Audit), with this screen's filter."""
        if self.chart == "health":
            self._open_audit(self._bars("health")[at] if self.pipeline else "")
            return
        mine = words_for(self.filter_text, kind).split()
        if "source:" in bar_filter:  # the bar's source replaces the filter's sources
            mine = [w for w in mine if not w.lower().startswith("source:")]
        text = joined_filter(" ".join(mine), bar_filter)
        if not text and self.chart == "stages":
            self.notify(
                "These deals' stages map to no shared stage: v shows each CRM's own", markup=False
            )
            return

        async def show() -> None:
            from crm_tui.screens.browse import BrowseScreen

            await self.app.switch_mode("browse")
            browse = self.app.screen
            if isinstance(browse, BrowseScreen):
                browse.show_matches(kind, text, None)

        self.app.run_worker(show(), exit_on_error=False)

    def _open_audit(self, source: str) -> None:
        async def show() -> None:
            from crm_tui.screens.audit import AuditScreen

            await self.app.switch_mode("audit")
            audit = self.app.screen
            if isinstance(audit, AuditScreen) and source:
                audit.focus_box().value = DISPLAY_NAMES.get(source, source)

        self.app.run_worker(show(), exit_on_error=False)

    # -- the filter ------------------------------------------------------------------------

    def action_find(self) -> None:
        box = self.query_one("#pipeline-find", Input)
        box.display = True
        box.focus()

    def action_clear_find(self) -> None:
        box = self.query_one("#pipeline-find", Input)
        if not box.display and not self.filter_text:
            return
        box.value, box.display = "", False
        self.set_focus(None)
        self._filter_now("")

    @on(Input.Changed, "#pipeline-find")
    def _find_changed(self, event: Input.Changed) -> None:
        self.set_timer(self.DEBOUNCE, lambda: self._filter_now(event.value, event.value))

    @on(Input.Submitted, "#pipeline-find")
    def _find_done(self) -> None:
        self.set_focus(None)

    def _filter_now(self, text: str, typed: str | None = None) -> None:
        box = self.query_one("#pipeline-find", Input)
        if typed is not None and box.value != typed:
            return  # a later keystroke will ask
        if text != self.filter_text:
            self.filter_text = text
            self.refresh_data()

    # -- copy and export -----------------------------------------------------------------

    def action_copy_csv(self) -> None:
        figures = self.current_table()
        if figures is None:
            return
        self.app.copy_to_clipboard(figures.to_csv())
        self.notify(
            f"Copied {CHART_TITLES[self.chart].lower()} as CSV ({len(figures.rows):,} rows)",
            markup=False,
        )

    def action_export_csv(self) -> None:
        figures = self.current_table()
        if figures is not None:
            self.run_worker(self._write(figures), group="export", exit_on_error=False)

    async def _write(self, figures: Table) -> None:
        folder = self.crm.settings.data_dir / "exports"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = export_path(folder, f"pipeline-{self.chart}", "csv", datetime.now())
            await asyncio.to_thread(path.write_text, figures.to_csv(), "utf-8")
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"Exported {len(figures.rows):,} rows to {path}", markup=False, timeout=10)


def _cell(value: object) -> Text:
    """A table cell: numbers right-aligned with thousands separators, text as it is."""
    if isinstance(value, bool) or value is None:
        return safe("" if value is None else value)
    if isinstance(value, int):
        return Text(f"{value:,}", justify="right")
    if isinstance(value, float):
        return Text(f"{value:,.2f}", justify="right")
    return safe(value)
