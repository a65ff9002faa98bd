"""The Pipeline screen (F7) driven by Pilot over records whose figures are known."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from textual.widgets import DataTable, Input, Static

from crm_tui.app import CrmApp, make_app
from crm_tui.models import Deal
from crm_tui.screens.browse import BrowseScreen
from crm_tui.screens.pipeline import PipelineScreen
from crm_tui.screens.search import SearchScreen
from crm_tui.store import CacheStore, Database
from crm_tui.widgets.charts import BarChart, ChartPanel
from crm_tui.widgets.record_table import RecordTable
from tests.helpers.env import make_settings
from tests.helpers.insights import contact, known_deals
from tests.helpers.tui import busy, idle, until

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
HOSTILE = "[@click=app.quit]Boom[/]"


@pytest.fixture
def pipeline_settings(tmp_path):
    settings = make_settings(tmp_path)
    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)

    async def seed() -> None:
        deals = known_deals()
        deals.append(
            Deal("lofty:8", "lofty", "8", "alice", name="x", amount=Decimal(1), stage=HOSTILE)
        )
        for source in sorted({d.source for d in deals}):
            await store.replace_stream(source, "deals", [d for d in deals if d.source == source])
        contacts = [contact("followupboss", n, "2026-11-23T08:00:00Z") for n in range(3)]
        await store.replace_stream("followupboss", "contacts", contacts)

    asyncio.run(seed())
    db.close()
    return settings


async def on_pipeline(pilot, app: CrmApp) -> PipelineScreen:
    await until(pilot, lambda: app.loaded and not busy(app, "load", "index", "people"))
    await pilot.press("7")
    screen = app.screen
    assert isinstance(screen, PipelineScreen)
    await counted(pilot, screen)
    return screen


async def counted(pilot, screen: PipelineScreen) -> None:
    """Until the figures are counted and drawn."""
    await idle(pilot)
    await until(pilot, lambda: not screen._computing, "the pipeline's figures")
    await idle(pilot)


async def filtered(pilot, screen: PipelineScreen, text: str) -> None:
    """Until the filter box's `text` (typed, then debounced) is counted."""
    await until(pilot, lambda: screen.filter_text == text, f"the filter {text!r}")
    await counted(pilot, screen)


def caption(screen: PipelineScreen) -> str:
    panel = screen.query_one(f"#chart-{screen.chart}", ChartPanel)
    return str(panel.query_one(".chart-caption", Static).render())


async def test_figures_keys_and_drill_down_to_browse(pipeline_settings) -> None:
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await on_pipeline(pilot, app)
        assert screen.pipeline is not None and screen.pipeline.deal_count == 8
        assert "3 deals, $1.2M" in caption(screen)  # under contract, the first stage
        assert "8 deals ($2.5M) and 3 contacts" in str(
            screen.query_one("#pipeline-summary", Static).render()
        )
        spec = screen.query_one("#chart-stages", ChartPanel).query_one(BarChart).spec
        assert spec is not None and spec.labels[0] == "under contract" and not spec.money

        await pilot.press("m")  # volume
        spec = screen.query_one("#chart-stages", ChartPanel).query_one(BarChart).spec
        assert spec.money and sum(s.values[0] for s in spec.series) == 1_200_000

        await pilot.press("enter")  # the bar's deals in Browse
        await idle(pilot)
        browse = app.screen
        assert isinstance(browse, BrowseScreen)
        assert browse.kind == "deals" and browse.text == "stage:under-contract"
        assert {r.id for r in browse.query_one(RecordTable).rows} == {
            "followupboss:1",
            "followupboss:2",
            "hubspot:3",
        }

        await pilot.press("f7", "tab")  # closings: the cursor starts on the current month
        screen = app.screen
        assert "Nov 2026: 1 closing, $500k, GCI $15k" in caption(screen)
        await pilot.press("right")
        assert "Dec 2026: 1 closing, $400k, GCI $12k" in caption(screen)
        await pilot.press("left")
        await pilot.press("enter")
        await idle(pilot)
        assert isinstance(app.screen, BrowseScreen) and app.screen.text == "closing:2026-11"


async def test_a_lead_flow_week_opens_its_contacts_in_browse(pipeline_settings) -> None:
    """The week's bar opens the contacts created that week (3), not the week before's."""
    db = Database(pipeline_settings.database_path)
    older = [contact("hubspot", n, "2026-11-20T08:00:00Z") for n in range(2)]
    await CacheStore(pipeline_settings.user_id, db).replace_stream("hubspot", "contacts", older)
    db.close()
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await on_pipeline(pilot, app)
        await pilot.press("tab", "tab")  # lead flow: the cursor starts on the current week
        assert screen.chart == "leads" and "week of Nov 23 - Nov 29: 3 new" in caption(screen)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BrowseScreen))
        await idle(pilot)
        browse = app.screen
        assert browse.kind == "contacts" and browse.text == "created:2026-11-23..2026-11-29"
        shown = {r.id for r in browse.query_one(RecordTable).rows}
        assert shown == {f"followupboss:{n}" for n in range(3)}


async def test_numbers_table_copy_and_export(pipeline_settings) -> None:
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_pipeline(pilot, app)
        await pilot.press("t")
        table = screen.query_one("#pipeline-table", DataTable)
        assert table.display and table.row_count == len(screen.current_table().rows)
        first = [str(c) for c in table.get_row_at(0)]
        assert first == ["under contract", "all", "3", "1,200,000.00"]
        await pilot.press("y")
        assert app.clipboard.splitlines()[:2] == [
            "stage,source,count,volume",
            "under contract,all,3,1200000.0",
        ]
        await pilot.press("ctrl+s")
        await idle(pilot)
        exports = list((pipeline_settings.data_dir / "exports").glob("pipeline-stages-*.csv"))
        assert len(exports) == 1 and oct(os.stat(exports[0]).st_mode & 0o777) == "0o600"
        assert exports[0].read_text().startswith("stage,source,count,volume\n")
        await pilot.press("down", "enter")  # the table's second row: one source's deals
        await idle(pilot)
        assert isinstance(app.screen, BrowseScreen)
        assert app.screen.text == "source:followupboss stage:under-contract"


async def test_filter_store_changes_and_hostile_stages(pipeline_settings) -> None:
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_pipeline(pilot, app)
        await pilot.press("slash", *"source:hubspot", "enter")
        await filtered(pilot, screen, "source:hubspot")
        assert screen.pipeline.deal_count == 1 and screen.pipeline.contact_count == 0
        await pilot.press("escape")
        await filtered(pilot, screen, "")
        assert screen.pipeline.deal_count == 8

        await pilot.press("slash", *"source:nope", "enter")
        await filtered(pilot, screen, "source:nope")
        summary = str(screen.query_one("#pipeline-summary", Static).render())
        assert summary.startswith("Filter: unknown source 'nope'")
        await pilot.press("escape")
        await idle(pilot)

        # the store changes (a sync, a webhook): the charts follow without a key
        more = Deal(
            "hubspot:10", "hubspot", "10", "alice", amount=Decimal(100), stage="contractsent"
        )
        await app.store.upsert("deals", [more])
        await until(pilot, lambda: screen.pipeline.stages.total("under contract")[0] == 4)
        assert screen.pipeline.stages.total("under contract") == (4, 1_200_100.0)

        await pilot.press("v")  # each CRM's own stages: a hostile one is text, not markup
        spec = screen.query_one("#chart-stages", ChartPanel).query_one(BarChart).spec
        assert any(HOSTILE in label for label in spec.labels)
        await idle(pilot)
        assert app.is_running and isinstance(app.screen, PipelineScreen)


async def test_f7_from_a_box_and_all_four_charts_when_wide(pipeline_settings) -> None:
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("2", "7")  # a digit typed into Search's box stays there
        assert isinstance(app.screen, SearchScreen)
        assert app.screen.query_one("#query", Input).value == "7"
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, PipelineScreen)
        await counted(pilot, screen)
        shown = [p.id for p in screen.query(ChartPanel) if p.display]
        assert shown == ["chart-stages", "chart-closings", "chart-leads", "chart-health"]


async def test_the_health_chart_follows_a_run_the_sweep_marks_interrupted(pipeline_settings):
    """A cron sync that died mid-run: the app's sweep marks its run interrupted (a status
    change, no record changed) and the chart follows."""
    from crm_tui.models import utc_now
    from crm_tui.store.owners import _machine

    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await on_pipeline(pilot, app)
        other = Database(pipeline_settings.database_path)
        run = other.start_run("alice", "hubspot", utc_now())
        other._conn.execute(
            "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at)"
            " VALUES ('dead', 'h', ?, 999999, '1', 0)",
            (_machine(),),
        )
        other._conn.execute("UPDATE sync_runs SET owner = 'dead' WHERE id = ?", (run,))
        other._conn.commit()
        await app._reload_if_changed()
        await counted(pilot, screen)
        assert screen.pipeline.health.get("hubspot").runs[-1].outcome == "running"
        await app._swept(app.store.db)
        await counted(pilot, screen)
        assert screen.pipeline.health.get("hubspot").runs[-1].outcome == "interrupted"
        other.close()


async def test_a_computation_that_failed_is_made_again(pipeline_settings, monkeypatch):
    """The audit read fails once (a locked database): coming back to the screen counts
    again instead of keeping nothing drawn."""
    from crm_tui.store.errors import StoreError

    calls: list[int] = []
    real = Database.recent_runs

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("database is locked", "try again")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Database, "recent_runs", flaky)
    app = make_app(pipeline_settings, sync_stale=False, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await on_pipeline(pilot, app)
        await pilot.press("1", "7")
        await counted(pilot, screen)
        assert len(calls) >= 2 and screen.pipeline is not None
        assert screen.pipeline.deal_count == 8
