"""The demo's calendar: `crm-tui --demo` dates its records up to the day it runs; every other
caller (tests, benchmarks, `crm-tui simulator`) keeps the fixed dates from 2024-01-01."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_tui.demo import data, hubspot, pipedrive
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.servers import DemoServers, iter_records, start_demo_servers

CONTACTS = 300
SEED = 5
DAY = date(2026, 11, 27)
FUB_HEADERS = {"Authorization": "Basic " + base64.b64encode(b"demo-fub-key:").decode()}
PIPEDRIVE_HEADERS = {"x-api-token": "demo-pipedrive-token"}
HUBSPOT_HEADERS = {"Authorization": "Bearer demo-hubspot-token"}


def _running(clock: DemoClock | None) -> Iterator[DemoServers]:
    """The simulators with `clock`, or with none given (as every other caller starts them)."""
    dated = {} if clock is None else {"clock": clock}
    servers = start_demo_servers(contacts=CONTACTS, seed=SEED, fub_rate_limit=10_000, **dated)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def dated() -> Iterator[DemoServers]:
    yield from _running(DemoClock.until(DAY))


@pytest.fixture(scope="module")
def fixed() -> Iterator[DemoServers]:
    yield from _running(None)


def pages(
    url: str, headers: dict[str, str], items: str, following: Callable[[Any], Any], key: str
) -> list[dict[str, Any]]:
    """Every item of a listing, page by page (`following`: the next page's `key`, or None)."""
    found: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 100}
    while True:
        body = httpx.get(url, params=query, headers=headers).json()
        found.extend(body[items])
        after = following(body)
        if after is None:
            return found
        query = {"limit": 100, key: after}


def fub_people(servers: DemoServers, **params: Any) -> list[dict[str, Any]]:
    url = f"{servers.servers['followupboss'].url}/v1/people"
    if params:  # one page is all these tests ask of a filtered listing
        return httpx.get(url, params=params, headers=FUB_HEADERS).json()["people"]
    return pages(url, FUB_HEADERS, "people", lambda b: b["_metadata"]["next"], "next")


def pipedrive_persons(servers: DemoServers) -> list[dict[str, Any]]:
    url = f"{servers.servers['pipedrive'].url}/api/v2/persons"
    cursor = lambda b: b["additional_data"]["next_cursor"]  # noqa: E731
    return pages(url, PIPEDRIVE_HEADERS, "data", cursor, "cursor")


def hubspot_contacts(servers: DemoServers) -> list[dict[str, Any]]:
    url = f"{servers.servers['hubspot'].url}/crm/v3/objects/contacts"
    after = lambda b: b["paging"]["next"]["after"] if "paging" in b else None  # noqa: E731
    return pages(url, HUBSPOT_HEADERS, "results", after, "after")


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def served_times(servers: DemoServers) -> dict[str, list[tuple[datetime, datetime]]]:
    """(created, updated) of every contact each of three simulators serves."""
    return {
        "followupboss": [(moment(p["created"]), moment(p["updated"])) for p in fub_people(servers)],
        "pipedrive": [
            (moment(p["add_time"]), moment(p["update_time"])) for p in pipedrive_persons(servers)
        ],
        "hubspot": [
            (moment(c["createdAt"]), moment(c["updatedAt"])) for c in hubspot_contacts(servers)
        ],
    }


def test_a_demo_dated_to_a_day_serves_contacts_created_in_the_weeks_before_it(dated):
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    for source, times in served_times(dated).items():
        assert len(times) == CONTACTS, source
        newest = max(created for created, _ in times)
        assert start - timedelta(weeks=3) <= newest < start, source
        # (a Follow Up Boss person changed the day it came is stamped 09:30, created 15:04)
        assert all(created.date() <= updated.date() for created, updated in times), source
        assert all(updated < start for _, updated in times), source
        # the lead flow's 26 weeks: most of them have someone new
        weeks = {(start - created).days // 7 for created, _ in times}
        assert len(weeks & set(range(26))) >= 20, source


def test_a_dated_demo_moves_every_date_by_whole_days_and_keeps_the_rest(dated, fixed):
    moved = fub_people(dated)
    before = fub_people(fixed)
    assert [p.get("id") for p in moved] == [p.get("id") for p in before]
    shift = DemoClock.until(DAY).shift
    for now, then in zip(moved, before, strict=True):
        assert moment(now["created"]) - moment(then["created"]) == timedelta(days=shift)
        gone = {"created", "updated", "customClosingDate"}
        assert {k: v for k, v in now.items() if k not in gone} == {
            k: v for k, v in then.items() if k not in gone
        }


def test_an_incremental_read_of_a_dated_demo_finds_its_newest_changes(dated):
    # the servers skip the generated records for a query past every one of their changes:
    # that moment moves with the dates, so yesterday's changes are still listed
    people = fub_people(dated)
    newest = max(p["updated"] for p in people)
    since = fub_people(dated, sort="updated", updatedAfter=newest)
    assert since and {p["updated"] for p in since} == {newest}
    assert datetime.fromtimestamp(DemoClock.until(DAY).horizon, UTC).date() == DAY


def test_without_a_clock_the_simulators_serve_the_fixed_dates(fixed):
    people = fub_people(fixed)
    by_id = {p["id"]: p for p in people if "id" in p}
    assert by_id[data.fub_id(0)]["created"] == "2024-04-13T15:04:05Z"
    assert by_id[data.fub_id(0)]["updated"] == "2024-04-26T09:30:00Z"
    assert by_id[data.fub_id(1)]["created"] == "2024-09-13T15:04:05Z"
    generated = iter_records("followupboss:contacts", CONTACTS, SEED)
    expected = {p["id"]: (p["created"], p["updated"]) for p in generated if "id" in p}
    assert {i: (p["created"], p["updated"]) for i, p in by_id.items()} == expected
    persons = pipedrive_persons(fixed)
    assert persons[0]["add_time"] == "2026-03-05T06:03:41Z"
    assert persons == list(iter_records("pipedrive:contacts", CONTACTS, SEED))
    contacts = {c["id"]: c for c in hubspot_contacts(fixed) if "id" in c}
    assert contacts[hubspot.hubspot_id(2)]["createdAt"] == "2024-06-14T21:47:08.239Z"
    newest = max(created for created, _ in served_times(fixed)["followupboss"])
    assert newest < datetime(2026, 6, 20, tzinfo=UTC)  # the fixed window, not today's


def test_the_generators_default_to_the_fixed_clock():
    for i in range(20):
        assert data.fub_person(SEED, i, CONTACTS) == data.fub_person(SEED, i, CONTACTS, FIXED)
        assert pipedrive.pipedrive_person(SEED, i, CONTACTS) == pipedrive.pipedrive_person(
            SEED, i, CONTACTS, DemoClock()
        )
    assert FIXED.horizon == 1_704_067_200 + 1000 * 86_400


DATED = DemoClock.until(date(2026, 11, 27))  # the last day a thing may have happened: the 26th
THE_27TH = datetime(2026, 11, 27, tzinfo=UTC)


def _moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_dated_demo_closes_no_closed_deal_in_the_future():
    """Expected closings may lie ahead; a closing that happened may not."""
    ahead = []
    for j in range(400):
        deal = hubspot.hubspot_deal(7, j, 1000, DATED)["properties"]
        if deal["dealstage"] in hubspot.CLOSED_STAGES and _moment(deal["closedate"]) >= THE_27TH:
            ahead.append(("hubspot", j, deal["closedate"]))
        row = data.brivity_transaction_row(7, j, DATED)
        for column in ("Contract Date", "Close Date" if row["Status"] == "Closed" else ""):
            if column and datetime.strptime(row[column], "%m/%d/%Y").date() >= THE_27TH.date():
                ahead.append(("brivity", j, column, row[column]))
        tp = data.tp_transaction(7, j, 1000, DATED)
        if tp["status"] == "Closed" and date.fromisoformat(tp["closeDate"]) >= THE_27TH.date():
            ahead.append(("topproducer", j, tp["closeDate"]))
    assert not ahead, ahead[:4]


def test_pulling_dates_back_to_the_last_day_keeps_their_order():
    swapped = []
    for j in range(2000):
        added, stage_changed, updated, _ = pipedrive._deal_times(7, j, DATED)
        if not added <= stage_changed <= updated < THE_27TH.timestamp():
            swapped.append((j, added, stage_changed, updated))
    assert not swapped, swapped[:3]
    moments = [THE_27TH - timedelta(hours=30) + timedelta(hours=h) for h in range(0, 2000, 7)]
    settled = [DATED.settled(m) for m in moments]
    assert settled == sorted(settled) and max(settled) < THE_27TH
    assert DATED.settled(moments[0]) == moments[0]  # before the last day: as it was
