"""The Pipeline's figures (crm_tui/insights) from records whose answers are known, and
`crm-tui report pipeline` over them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime

from crm_tui.insights import (
    build_pipeline,
    closings_by_month,
    lead_flow,
    pipeline_by_stage,
    sync_health,
)
from crm_tui.insights.periods import months_around, weeks_until
from crm_tui.models import RateReading, SourceStatus
from crm_tui.search.query import words_for
from crm_tui.store import CacheStore, Database
from tests.helpers.env import make_settings, run_crm
from tests.helpers.insights import contact, deal, known_deals

NOW = date(2026, 11, 25)  # a Wednesday


def test_deals_by_stage_count_and_volume_per_source_and_all() -> None:
    figures = pipeline_by_stage(known_deals())
    assert figures.stages == ("under contract", "closed", "other")
    assert figures.total("under contract") == (3, 1_200_000.0)
    assert figures.cells[("under contract", "followupboss")] == (2, 900_000.0)
    assert figures.cells[("under contract", "hubspot")] == (1, 300_000.0)
    assert figures.total("closed") == (3, 1_250_000.0)
    assert figures.total("other") == (1, 0.0)
    assert figures.filter_for("under contract") == "stage:under-contract"
    assert figures.filter_for("closed", "brivity") == "source:brivity stage:closed"
    assert figures.filter_for("other") == ""  # the query language cannot say "no stage"
    rows = figures.table().rows
    assert rows[0] == ("under contract", "all", 3, 1_200_000.0)
    assert ("under contract", "hubspot", 1, 300_000.0) in rows


def test_each_vendors_own_stages() -> None:
    figures = pipeline_by_stage(known_deals(), vendor=True)
    assert figures.total("followupboss: Closed") == (1, 900_000.0)
    assert figures.total("brivity: Closed") == (2, 350_000.0)
    assert figures.filter_for("followupboss: Under Contract") == (
        'source:followupboss stage:"Under Contract"'
    )
    assert ("Under Contract", "followupboss", 1, 400_000.0) in figures.table().rows


def test_closings_by_month_past_12_next_6_with_gci() -> None:
    figures = closings_by_month(known_deals(), NOW)
    assert figures.months[0] == "2025-12" and figures.months[-1] == "2027-05"
    assert len(figures.months) == 18 and figures.current == "2026-11"
    assert figures.total("2025-12") == (1, 250_000.0, 7_500.0)  # 2025-11-30 left out
    assert figures.total("2026-11") == (1, 500_000.0, 15_000.0)  # "15,000" read as money
    assert figures.total("2026-12") == (1, 400_000.0, 12_000.0)
    assert figures.total("2027-05") == (1, 300_000.0, None)  # HubSpot sends no commission
    assert figures.total("2027-04") == (0, 0.0, None)
    assert sum(figures.total(m)[0] for m in figures.months) == 4  # 2027-06-01 left out
    assert figures.gci_sources == ("brivity", "followupboss")
    assert figures.filter_for("2026-12", "followupboss") == "source:followupboss closing:2026-12"


def test_months_and_weeks_around_now() -> None:
    assert months_around(date(2026, 1, 10), past=2, ahead=1) == ("2025-12", "2026-01", "2026-02")
    weeks = weeks_until(NOW, 26)
    assert weeks[-1] == date(2026, 11, 23) and weeks[0] == date(2026, 6, 1)
    assert all(w.weekday() == 0 for w in weeks)
    # an aware "now" is read in local time (the tests run in UTC)
    assert months_around(datetime(2026, 11, 30, 23, tzinfo=UTC), 1, 0) == ("2026-11",)


def test_lead_flow_per_week_by_source_and_stage() -> None:
    contacts = [
        contact("followupboss", 1, "2026-11-23T08:00:00Z"),  # Monday of the current week
        contact("followupboss", 2, "2026-11-22T23:59:59Z"),  # Sunday: the week before
        contact("hubspot", 3, "2026-11-24T10:00:00Z", stage="Hot Prospect"),
        contact("hubspot", 4, "2026-05-31T10:00:00Z"),  # the Sunday before the 26 weeks
        contact("brivity", 5, None),  # Brivity's API gives no creation time
    ]
    flow = lead_flow(contacts, NOW)
    current, before = date(2026, 11, 23), date(2026, 11, 16)
    assert flow.total(current) == 2 and flow.total(before) == 1
    assert flow.by("source")[(current, "hubspot")] == 1
    assert flow.by("stage")[(current, "prospect")] == 1
    assert flow.by("stage")[(current, "lead")] == 1
    assert sum(flow.total(w) for w in flow.weeks) == 3
    assert flow.undated == {"brivity": 1}
    assert flow.filter_for(current, "hubspot", "prospect") == (
        "created:2026-11-23..2026-11-29 source:hubspot status:prospect"
    )
    assert flow.filter_for(before) == "created:2026-11-16..2026-11-22"
    assert (
        flow.table().filters[0] == "created:2026-11-16..2026-11-22 source:followupboss status:lead"
    )


def test_lead_flow_kept_per_index_segment_matches_the_records() -> None:
    """The app's lead flow from index segments equals one counted from the records, leaves
    out what a patch replaced, and counts an unchanged segment once."""
    from crm_tui.insights.leads import SegmentLeads
    from crm_tui.search.index import SearchIndex

    fub = [contact("followupboss", n, f"2026-11-{16 + n % 9:02d}T08:00:00Z") for n in range(40)]
    hub = [contact("hubspot", n, "2026-11-24T10:00:00Z", stage="Hot Prospect") for n in range(5)]
    index = SearchIndex()
    index.rebuild("contacts", "followupboss", fub)
    index.rebuild("contacts", "hubspot", hub)
    leads = SegmentLeads()
    flow, count = leads.flow(index.parts("contacts"), NOW)
    assert count == 45 and flow == lead_flow(fub + hub, NOW)
    kept = dict(leads._groups._kept)

    moved = contact("followupboss", 3, "2026-06-01T08:00:00Z")  # out of the 26 weeks
    current = {c.id: c for c in fub}
    current[moved.id] = moved
    index.patch("contacts", "followupboss", lambda: current, [moved.id])
    flow, count = leads.flow(index.parts("contacts"), NOW)
    assert count == 45 and flow == lead_flow([*current.values(), *hub], NOW)
    hubspot_key = next(k for k, (held, _) in kept.items() if held[0].records[0].source == "hubspot")
    assert leads._groups._kept[hubspot_key][1] is kept[hubspot_key][1]  # not counted again


def run_row(n: int, source: str, seconds: int, outcome: str = "success", failed: int = 0):
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp() + n * 3600
    streams = [{"outcome": "failed"}] * failed + [{"outcome": "success"}]
    return {
        "source": source,
        "started_at": f"{datetime.fromtimestamp(start, UTC):%Y-%m-%dT%H:%M:%SZ}",
        "ended_at": f"{datetime.fromtimestamp(start + seconds, UTC):%Y-%m-%dT%H:%M:%SZ}",
        "outcome": outcome,
        "records_written": 100 + n,
        "streams": streams,
    }


def test_sync_health_last_30_runs_and_rate_budget() -> None:
    runs = [run_row(n, "followupboss", 10 + n % 3) for n in range(35)]
    runs[34] = run_row(34, "followupboss", 60, "partial", failed=1)
    runs.append(run_row(0, "hubspot", 5, "failed"))
    runs.sort(key=lambda r: r["started_at"], reverse=True)  # newest first, as the audit lists
    reading = RateReading(250, 183, 10.0, None, "2026-11-25T00:00:00Z")
    statuses = {"followupboss": SourceStatus("followupboss", rate=reading)}
    health = sync_health(runs, statuses)
    fub = health.get("followupboss")
    assert fub is not None and len(fub.runs) == 30
    assert fub.runs[0].records == 105 and fub.runs[-1].records == 134  # oldest first
    assert fub.runs[-1].seconds == 60.0 and fub.runs[-1].failures == 1
    assert fub.failed_runs == 1 and fub.rate_left == "183 of 250 left per 10 s"
    hub = health.get("hubspot")
    assert hub is not None and hub.runs[0].failures == 1 and hub.rate is None
    assert [s.source for s in health.sources] == ["followupboss", "hubspot"]


def test_csv_keeps_vendor_text_from_becoming_a_formula() -> None:
    evil = deal("followupboss", 9, 1, '=HYPERLINK("http://x","y")', "2026-12-01")
    text = pipeline_by_stage([evil], vendor=True).table().to_csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][0].startswith("'=HYPERLINK")


def test_one_filter_box_for_deals_and_contacts() -> None:
    text = "source:hubspot tag:buyer amount>1m closing:2026-12 city:austin ana"
    assert words_for(text, "deals") == "source:hubspot amount>1m closing:2026-12 ana"
    assert words_for(text, "contacts") == "source:hubspot tag:buyer city:austin ana"


def _seed(settings) -> None:
    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)

    async def seed() -> None:
        deals = known_deals()
        for source in sorted({d.source for d in deals}):
            await store.replace_stream(source, "deals", [d for d in deals if d.source == source])
        await store.replace_stream(
            "followupboss", "contacts", [contact("followupboss", 1, "2026-11-23T08:00:00Z")]
        )

    asyncio.run(seed())
    db.close()


def test_report_pipeline_json_csv_and_errors(tmp_path) -> None:
    settings = make_settings(tmp_path)
    _seed(settings)
    env = {"CRM_DATA_DIR": str(settings.data_dir), "CRM_USER_ID": "alice"}
    done = run_crm("report", "pipeline", "--as-of", "2026-11-25", "--json", env=env)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    contract = next(s for s in payload["stages"]["stages"] if s["stage"] == "under contract")
    assert (contract["count"], contract["volume"]) == (3, 1_200_000.0)
    december = next(m for m in payload["closings"]["months"] if m["month"] == "2026-12")
    assert december["gci"] == 12_000.0
    assert payload["leadFlow"]["weeks"][-1] == {
        "week": "2026-11-23",
        "count": 1,
        "bySource": {"followupboss": 1},
        "byStage": {"lead": 1},
    }

    done = run_crm(
        "report", "pipeline", "--as-of", "2026-11-25", "--chart", "closings", "--csv",
        "--filter", "source:followupboss", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["month", "source", "count", "volume", "gci"]
    assert ["2026-12", "followupboss", "1", "400000.0", "12000.0"] in rows
    assert not any(r[1] in ("brivity", "hubspot") for r in rows[1:])

    bad = run_crm("report", "pipeline", "--filter", "source:nope", "--json", env=env)
    assert bad.returncode == 2 and "unknown source" in json.loads(bad.stdout)["error"]
    both = run_crm("report", "pipeline", "--json", "--csv", env=env)
    assert both.returncode == 2

    human = run_crm("report", "pipeline", "--as-of", "2026-11-25", env=env)
    assert human.returncode == 0 and "Closings by month" in human.stdout
    assert "under contract  all" in human.stdout


def test_build_pipeline_keeps_the_filters_sources_in_sync_health() -> None:
    runs = [run_row(1, "followupboss", 3), run_row(2, "hubspot", 4)]
    pipeline = build_pipeline([], [], runs, {}, NOW, filter_text="source:hubspot")
    assert [s.source for s in pipeline.health.sources] == ["hubspot"]
