"""The Pipedrive API v2 simulator honours the documented contract, over real loopback HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest

from crm_tui.demo import data
from crm_tui.demo.pipedrive import (
    ERROR_INFO,
    MAX_LIMIT,
    PIPEDRIVE,
    pipedrive_app,
    pipedrive_id,
)
from crm_tui.demo.servers import Faults, RunningServer, iter_records, serve
from crm_tui.demo.simulators import SIMULATORS
from tests.helpers.env import DEMO_CONTACTS, run_crm

TOKEN = "demo-pipedrive-token"
HEADERS = {"x-api-token": TOKEN}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UNAUTHORIZED = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": ERROR_INFO,
}


@pytest.fixture
def pipedrive(demo_servers) -> str:
    return demo_servers.servers["pipedrive"].url


def own_server(
    contacts: int, faults: Faults | None = None, rate_limit: int = 10_000
) -> RunningServer:
    app = pipedrive_app(TOKEN, contacts, 11, faults or Faults(), rate_limit=rate_limit)
    return serve("pipedrive-test", app)


@pytest.fixture
def small() -> Iterator[RunningServer]:
    server = own_server(600)
    yield server
    server.stop()


def walk(base: str, stream: str, **params: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Every page of a listing: the items, and each page's next_cursor."""
    items: list[dict[str, Any]] = []
    cursors: list[Any] = []
    query = dict(params)
    while True:
        response = httpx.get(f"{base}/api/v2/{stream}", params=query, headers=HEADERS)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        assert set(body) == {"success", "data", "additional_data"}
        items.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            return items, cursors
        assert len(cursors) < 100, "the cursor never runs out"
        query = {**params, "cursor": cursor}


def test_registered_after_topproducer_with_its_settings(demo_servers):
    assert "pipedrive" in [s.name for s in SIMULATORS]
    env = demo_servers.env()
    assert env["PIPEDRIVE_API_BASE_URL"] == demo_servers.servers["pipedrive"].url + "/api/v2"
    assert env["PIPEDRIVE_API_TOKEN"] == TOKEN
    truth = data.contact_truth(DEMO_CONTACTS)
    pipedrive = [k for k in truth if k.startswith("pipedrive:")]
    assert len(pipedrive) == data.expected_contacts(DEMO_CONTACTS)
    assert f"pipedrive:{pipedrive_id(data.MISSING_ID_INDEX)}" not in truth
    # the same people as the other CRMs: pipedrive starts 45% into the population
    assert truth["pipedrive:2000001"] == int(0.45 * DEMO_CONTACTS)


def test_persons_every_page_once_in_id_order(pipedrive):
    persons, cursors = walk(pipedrive, "persons")
    assert len(cursors) == -(-DEMO_CONTACTS // 100)  # default limit 100
    assert cursors[-1] is None and None not in cursors[:-1]
    assert len(persons) == DEMO_CONTACTS
    assert persons == list(iter_records("pipedrive:contacts", DEMO_CONTACTS, 11))
    ids = [p["id"] for p in persons if "id" in p]
    assert len(ids) == len(set(ids)) == DEMO_CONTACTS - 1
    assert ids == sorted(ids)  # default sort: id ascending
    missing = persons[data.MISSING_ID_INDEX]
    assert "id" not in missing and missing["name"]
    assert persons[0]["first_name"] == "[@click=app.quit]Bob[/]"
    assert persons[data.NO_EMAIL_INDEX]["emails"] == []
    assert len(persons[data.LONG_NOTE_INDEX]["notes"]) == 10_000


def test_person_and_deal_items_have_the_documented_shape(pipedrive):
    person = httpx.get(f"{pipedrive}/api/v2/persons", headers=HEADERS).json()["data"][20]
    assert set(person) == {
        "id", "name", "first_name", "last_name", "owner_id", "org_id", "add_time",
        "update_time", "emails", "phones", "is_deleted", "visible_to", "label_ids",
        "picture_id", "postal_address", "notes", "im", "birthday", "job_title",
        "custom_fields",
    }  # fmt: skip
    assert person["name"] == f"{person['first_name']} {person['last_name']}"
    assert [set(e) for e in person["emails"] + person["phones"]] == [
        {"value", "primary", "label"}
    ] * (len(person["emails"]) + len(person["phones"]))
    assert person["phones"][0]["primary"] is True
    assert RFC3339.match(person["add_time"]) and RFC3339.match(person["update_time"])
    assert person["add_time"] <= person["update_time"]
    assert all(re.fullmatch(r"[0-9a-f]{40}", key) for key in person["custom_fields"])
    deal = httpx.get(f"{pipedrive}/api/v2/deals", headers=HEADERS).json()["data"][0]
    for name in ("id", "owner_id", "person_id", "pipeline_id", "stage_id"):
        assert type(deal[name]) is int, name
    assert isinstance(deal["value"], int | float) and deal["currency"] == "USD"
    assert deal["is_deleted"] is False and deal["is_archived"] is False
    assert deal["expected_close_date"] is None or re.fullmatch(
        r"\d{4}-\d{2}-\d{2}", deal["expected_close_date"]
    )
    assert {"stage", "pipeline", "person", "org"}.isdisjoint(deal)  # v2: ids only


def test_deals_every_page_once_and_pointing_at_persons(pipedrive):
    deals, cursors = walk(pipedrive, "deals", limit=20)
    count = data.deal_count(DEMO_CONTACTS)
    assert len(cursors) == -(-count // 20) and cursors[-1] is None
    assert deals == list(iter_records("pipedrive:deals", DEMO_CONTACTS, 11))
    ids = [d["id"] for d in deals]
    assert len(ids) == len(set(ids)) == count and ids == sorted(ids)
    assert {d["status"] for d in deals} == {"open", "won", "lost"}
    assert not any(d["is_deleted"] for d in deals)
    persons = {p["id"] for p in iter_records("pipedrive:contacts", DEMO_CONTACTS, 11) if "id" in p}
    assert {d["person_id"] for d in deals} <= persons
    for deal in deals:
        assert (deal["won_time"] is not None) == (deal["status"] == "won")
        assert (deal["lost_time"] is not None) == (deal["status"] == "lost")


def test_deleted_deals_appear_only_with_status_deleted(pipedrive):
    default, _ = walk(pipedrive, "deals", limit=MAX_LIMIT)
    deleted, _ = walk(pipedrive, "deals", status="deleted")
    assert len(deleted) >= 3
    assert all(d["status"] == "deleted" and d["is_deleted"] is True for d in deleted)
    assert {d["id"] for d in deleted}.isdisjoint(d["id"] for d in default)
    both, _ = walk(pipedrive, "deals", status="won,deleted")
    assert {d["status"] for d in both} == {"won", "deleted"}
    assert len(both) == len(deleted) + sum(d["status"] == "won" for d in default)
    bad = httpx.get(f"{pipedrive}/api/v2/deals", params={"status": "all"}, headers=HEADERS)
    assert bad.status_code == 400 and bad.json()["success"] is False


def test_limit_defaults_to_100_and_stops_at_500(small):
    base = f"{small.url}/api/v2/persons"
    assert len(httpx.get(base, headers=HEADERS).json()["data"]) == 100
    full = httpx.get(base, params={"limit": MAX_LIMIT}, headers=HEADERS).json()
    assert len(full["data"]) == MAX_LIMIT and full["additional_data"]["next_cursor"]
    rest = httpx.get(
        base,
        params={"limit": MAX_LIMIT, "cursor": full["additional_data"]["next_cursor"]},
        headers=HEADERS,
    ).json()
    assert len(rest["data"]) == 100 and rest["additional_data"]["next_cursor"] is None
    for limit in (MAX_LIMIT + 1, 0, "many"):
        refused = httpx.get(base, params={"limit": limit}, headers=HEADERS)
        assert refused.status_code == 400, limit
        body = refused.json()
        assert body["success"] is False and "limit" in body["error"]
        assert body["error_info"] == ERROR_INFO


def test_updated_since_and_until_split_on_update_time(pipedrive):
    every = list(iter_records("pipedrive:contacts", DEMO_CONTACTS, 11))
    times = sorted(p["update_time"] for p in every)
    middle = times[len(times) // 2]
    since, _ = walk(pipedrive, "persons", updated_since=middle, limit=37)
    until, _ = walk(pipedrive, "persons", updated_until=middle, limit=37)
    assert [p["update_time"] >= middle for p in since] == [True] * len(since)
    assert all(p["update_time"] < middle for p in until)
    assert len(since) == sum(t >= middle for t in times) and 0 < len(until) < len(every)
    assert sorted(map(str, since + until)) == sorted(map(str, every))  # a partition
    # an offset other than Z names the same instant
    shifted = middle.replace("Z", "+00:00")
    assert walk(pipedrive, "persons", updated_since=shifted, limit=37)[0] == since
    naive = httpx.get(
        f"{pipedrive}/api/v2/persons", params={"updated_since": middle[:-1]}, headers=HEADERS
    )
    assert naive.status_code == 400


def test_sorting_by_update_time_both_ways(pipedrive):
    ascending, _ = walk(pipedrive, "deals", sort_by="update_time", limit=7)
    keys = [(d["update_time"], d["id"]) for d in ascending]
    assert keys == sorted(keys) and len(keys) == data.deal_count(DEMO_CONTACTS)
    descending, _ = walk(pipedrive, "deals", sort_by="update_time", sort_direction="desc", limit=7)
    assert descending == ascending[::-1]
    by_id, _ = walk(pipedrive, "persons", sort_direction="desc", limit=90)
    assert [p.get("id") for p in by_id] == [p.get("id") for p in walk(pipedrive, "persons")[0]][
        ::-1
    ]


def test_bad_cursor_is_a_400_in_pipedrives_error_shape(pipedrive):
    base = f"{pipedrive}/api/v2/persons"
    for cursor in ("not-a-cursor", "eyJmb28iOjF9", ""):
        response = httpx.get(base, params={"cursor": cursor}, headers=HEADERS)
        assert response.status_code == 400, cursor
        assert response.json() == {
            "success": False,
            "error": "Invalid cursor",
            "error_info": ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
    # a cursor belongs to the sort it was made for
    first = httpx.get(base, params={"limit": 10}, headers=HEADERS).json()
    cursor = first["additional_data"]["next_cursor"]
    other = httpx.get(base, params={"cursor": cursor, "sort_by": "add_time"}, headers=HEADERS)
    assert other.status_code == 400
    same = httpx.get(base, params={"cursor": cursor, "limit": 10}, headers=HEADERS).json()
    assert same["data"][0]["id"] == first["data"][-1]["id"] + 1


def test_wrong_or_missing_token_is_401_with_pipedrives_body(pipedrive):
    base = f"{pipedrive}/api/v2/persons"
    for headers in (
        {"x-api-token": "wrong"},
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},  # the token, but not as a Bearer token
    ):
        response = httpx.get(base, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == UNAUTHORIZED
    bearer = httpx.get(base, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200 and len(bearer.json()["data"]) == 100
    # x-daily-requests-left is for api_token requests only
    assert "x-daily-requests-left" not in bearer.headers
    token = httpx.get(base, headers=HEADERS)
    assert token.headers["x-daily-requests-left"] == "10000"
    assert httpx.get(f"{pipedrive}/api/v1/persons", headers=HEADERS).status_code == 404


def test_over_the_burst_limit_is_429_with_the_rate_headers():
    server = own_server(20, rate_limit=10)  # 10 per 10 s: 2 per 2-second window
    try:
        url = f"{server.url}/api/v2/persons"
        answers = [httpx.get(url, headers=HEADERS) for _ in range(3)]
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-limit"] for a in answers] == ["2", "2", "2"]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["x-ratelimit-reset"] == "2"
    assert 1 <= int(answers[2].headers["x-ratelimit-reset"]) <= 2
    assert answers[2].json() == {
        "success": False,
        "error": "Request over limit",
        "errorCode": 429,
        "error_info": ERROR_INFO,
    }
    assert "retry-after" not in answers[2].headers  # not in the documented headers


class StatusCounter:
    """An ASGI wrapper that records the status of every response the app sends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, counted)


def test_the_connector_keeps_under_the_burst_limit_from_the_rate_headers(tmp_path):
    # 2 requests per 2-second window; four pages of persons and one of deals
    counter = StatusCounter(pipedrive_app(TOKEN, 1600, 11, Faults(), rate_limit=10))
    server = serve("pipedrive-burst", counter)
    env = {
        "CRM_DATA_DIR": str(tmp_path),
        "PIPEDRIVE_API_BASE_URL": server.url,
        "PIPEDRIVE_API_TOKEN": TOKEN,
    }
    try:
        synced = run_crm("sync", "pipedrive", "--json", env=env)
    finally:
        server.stop()
    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)["results"]["pipedrive"]
    assert result["contacts"]["count"] == data.expected_contacts(1600)
    assert result["deals"]["count"] > 0
    assert len(counter.statuses) >= 5
    # the two streams' first requests race before any header is seen; after that, none
    assert counter.statuses.count(429) <= 1, counter.statuses


def test_faults_still_apply():
    server = own_server(20, Faults(seed=3, error_rate=1.0))
    try:
        statuses = {
            httpx.get(f"{server.url}/api/v2/deals", headers=HEADERS).status_code for _ in range(8)
        }
    finally:
        server.stop()
    assert statuses <= {500, 502, 503} and len(statuses) >= 2


def test_overlap_pages_repeats_the_last_record_of_the_page_before():
    server = own_server(DEMO_CONTACTS, Faults(overlap_pages=True))
    try:
        pages: list[list[Any]] = []
        query: dict[str, Any] = {"limit": 100, "sort_by": "update_time"}
        while True:
            body = httpx.get(f"{server.url}/api/v2/persons", params=query, headers=HEADERS).json()
            pages.append([p.get("id") for p in body["data"]])
            if body["additional_data"]["next_cursor"] is None:
                break
            query["cursor"] = body["additional_data"]["next_cursor"]
    finally:
        server.stop()
    assert len(pages) == 3
    for before, page in pairwise(pages):
        assert page[0] == before[-1]
    assert sum(map(len, pages)) == DEMO_CONTACTS + 2
    assert len({i for page in pages for i in page}) == DEMO_CONTACTS


def test_records_are_deterministic_from_the_seed():
    make = PIPEDRIVE.collections(100, 5)["contacts"][1]
    assert make(42) == make(42)
    assert make(42) != PIPEDRIVE.collections(100, 6)["contacts"][1](42)
