"""The HubSpot simulator honours HubSpot's documented CRM v3 list contract, over real sockets."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crm_tui.demo import data, hubspot
from crm_tui.demo.servers import Faults, RunningServer, iter_records, serve, start_demo_servers
from tests.helpers.env import DEMO_CONTACTS

TOKEN = "hs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED = 11
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def start(contacts: int = DEMO_CONTACTS, **options: Any) -> RunningServer:
    faults = options.pop("faults", Faults())
    rate_limit = options.pop("rate_limit", 10_000)
    app = hubspot.hubspot_app(TOKEN, contacts, SEED, faults, rate_limit=rate_limit)
    return serve("hubspot", app)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start()
    yield running
    running.stop()


def walk(
    url: str, params: dict[str, Any] | list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record of a listing, and every page's body, following `paging.next.after`."""
    records: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = list(params.items()) if isinstance(params, dict) else list(params)
        response = httpx.get(
            url, params=query + ([("after", after)] if after else []), headers=AUTH
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        records.extend(body["results"])
        if "paging" not in body:
            return records, pages
        after = body["paging"]["next"]["after"]
        assert len(pages) < 1000, "paging never ends"


def test_contacts_page_to_the_end_each_once_in_pages_of_at_most_100(server):
    url = f"{server.url}/crm/v3/objects/contacts"
    records, pages = walk(url, {"limit": 250})
    assert [len(p["results"]) for p in pages] == [100, 100, DEMO_CONTACTS - 200]
    assert "paging" not in pages[-1]
    for page in pages[:-1]:
        after = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].startswith(url + "?")
        assert page["paging"]["next"]["link"].endswith(f"after={after}")
    ids = [r["id"] for r in records if "id" in r]
    assert len(records) == DEMO_CONTACTS
    assert len(ids) == len(set(ids)) == DEMO_CONTACTS - 1
    assert "id" not in records[data.MISSING_ID_INDEX]
    assert records[data.MISSING_ID_INDEX]["properties"]["hs_object_id"] is None
    assert ids == sorted(ids, key=int)  # HubSpot lists by id
    assert set(ids) == {data.hubspot_id(i) for i in range(DEMO_CONTACTS)} - {
        data.hubspot_id(data.MISSING_ID_INDEX)
    }
    assert all(r["archived"] is False and "archivedAt" not in r for r in records)
    assert all(STAMP.match(r["createdAt"]) and STAMP.match(r["updatedAt"]) for r in records)
    # no properties= asked: only the documented default handful
    assert {tuple(r["properties"]) for r in records} == {hubspot.DEFAULT_CONTACT_PROPERTIES}
    assert records[0]["properties"]["firstname"] == data.HOSTILE_NAMES[0][0]
    assert records[data.NO_EMAIL_INDEX]["properties"]["email"] is None
    first = httpx.get(url, headers=AUTH).json()
    assert len(first["results"]) == 10  # the default limit


def test_properties_returns_exactly_those_asked_null_where_empty(server):
    url = f"{server.url}/crm/v3/objects/0-1"  # the spec's name for contacts
    asked = ["email", "message", "phone", "hs_lead_status", "no_such_property"]
    # the comma list and the spec's repeated form, mixed
    params = [("limit", "100"), ("properties", ",".join(asked[:3])), ("properties", asked[3])]
    params.append(("properties", asked[4]))
    records, _ = walk(url, params)
    assert len(records) == DEMO_CONTACTS
    for record in records:
        assert list(record["properties"]) == asked[:4]
        assert all(v is None or isinstance(v, str) for v in record["properties"].values())
    assert len(records[data.LONG_NOTE_INDEX]["properties"]["message"]) == 10_000
    assert records[data.NO_EMAIL_INDEX]["properties"]["email"] is None
    assert sum(r["properties"]["message"] is None for r in records) == DEMO_CONTACTS - 1
    assert any(r["properties"]["hs_lead_status"] is None for r in records)
    # asked for every property, the listing is what the registry says it serves
    every = [("limit", "100"), ("properties", ",".join(hubspot.CONTACT_PROPERTIES))]
    assert walk(url, every)[0] == list(iter_records("hubspot:contacts", DEMO_CONTACTS, SEED))


def test_deals_carry_their_contact_under_associations_when_asked(server):
    url = f"{server.url}/crm/v3/objects/deals"
    deals, _ = walk(url, {"limit": 100, "associations": "contacts"})
    assert len(deals) == data.deal_count(DEMO_CONTACTS)
    assert len({d["id"] for d in deals}) == len(deals)
    contact_ids = {data.hubspot_id(i) for i in range(DEMO_CONTACTS)} - {
        data.hubspot_id(data.MISSING_ID_INDEX)
    }
    for deal in deals:
        (link,) = deal["associations"]["contacts"]["results"]
        assert link["type"] == "deal_to_contact"
        assert link["id"] in contact_ids
        assert list(deal["properties"]) == list(hubspot.DEFAULT_DEAL_PROPERTIES)
        values = deal["properties"]
        assert values["amount"] is None or re.fullmatch(r"\d+\.\d\d", values["amount"])
        assert values["dealstage"] in hubspot.DEAL_STAGES and values["pipeline"] == "default"
        assert STAMP.match(values["closedate"]) and values["hs_object_id"] == deal["id"]
    assert any(d["properties"]["amount"] is None for d in deals)
    plain = httpx.get(f"{server.url}/crm/v3/objects/0-3", params={"limit": 5}, headers=AUTH)
    assert [d["id"] for d in plain.json()["results"]] == [d["id"] for d in deals[:5]]
    assert all("associations" not in d for d in plain.json()["results"])
    # and the other way round: each listed deal under its contact
    contacts, _ = walk(
        f"{server.url}/crm/v3/objects/contacts", {"limit": 100, "associations": "deals"}
    )
    back = {
        (link["id"], c["id"])
        for c in contacts
        for link in c.get("associations", {}).get("deals", {}).get("results", [])
    }
    assert back == {(d["id"], d["associations"]["contacts"]["results"][0]["id"]) for d in deals}


def test_archived_true_lists_only_the_archived(server):
    for name, count, listed in (
        ("contacts", hubspot.ARCHIVED_CONTACTS, DEMO_CONTACTS),
        ("deals", hubspot.ARCHIVED_DEALS, data.deal_count(DEMO_CONTACTS)),
    ):
        url = f"{server.url}/crm/v3/objects/{name}"
        archived, _ = walk(url, {"archived": "true", "limit": 2})
        assert len(archived) == count
        assert all(r["archived"] is True and STAMP.match(r["archivedAt"]) for r in archived)
        current, _ = walk(url, {"archived": "false", "limit": 100})
        assert len(current) == listed
        assert not {r["id"] for r in archived} & {r.get("id") for r in current}


def test_a_wrong_or_missing_token_gets_hubspots_401(server):
    url = f"{server.url}/crm/v3/objects/contacts"
    for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": TOKEN}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert set(body) == {"status", "message", "correlationId", "category"}
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"] == hubspot.AUTH_MESSAGE
        uuid.UUID(body["correlationId"])


def test_a_cursor_it_never_issued_or_a_bad_parameter_is_a_400(server):
    url = f"{server.url}/crm/v3/objects/contacts"
    for params in ({"after": "not-a-cursor"}, {"after": ""}, {"limit": "ten"}, {"archived": "x"}):
        response = httpx.get(url, params=params, headers=AUTH)
        assert response.status_code == 400, params
        body = response.json()
        assert body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
        assert "X-HubSpot-RateLimit-Remaining" in response.headers


def test_past_the_ten_second_budget_a_429_without_retry_after():
    running = start(contacts=20, rate_limit=3)
    try:
        url = f"{running.url}/crm/v3/objects/deals"
        answers = [httpx.get(url, headers=AUTH) for _ in range(5)]
        unauthorized = httpx.get(url)  # no app: no budget spent, none reported
    finally:
        running.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == [
        "2",
        "1",
        "0",
        "0",
        "0",
    ]
    for answer in answers:
        assert answer.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert answer.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert int(answer.headers["X-HubSpot-RateLimit-Daily"]) > 0
    daily = [int(a.headers["X-HubSpot-RateLimit-Daily-Remaining"]) for a in answers]
    assert daily[1] == daily[0] - 1 and daily[3] == daily[2]  # a refused call costs nothing
    refused = answers[3]
    assert "Retry-After" not in refused.headers
    body = refused.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert unauthorized.status_code == 401
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in unauthorized.headers)


def test_faults_apply_errors_and_overlapping_pages():
    failing = start(contacts=20, faults=Faults(error_rate=1.0))
    try:
        codes = {
            httpx.get(f"{failing.url}/crm/v3/objects/contacts", headers=AUTH).status_code
            for _ in range(6)
        }
    finally:
        failing.stop()
    assert codes and codes <= {500, 502, 503}
    overlapping = start(contacts=30, faults=Faults(overlap_pages=True))
    try:
        records, pages = walk(f"{overlapping.url}/crm/v3/objects/contacts", {"limit": 10})
    finally:
        overlapping.stop()
    assert [len(p["results"]) for p in pages] == [10, 11, 11]
    for before, page in itertools.pairwise(pages):
        assert page["results"][0] == before["results"][-1]
    assert len({r.get("id") for r in records}) == 30  # the id-less one counts once, as None


def test_registered_with_the_demo_and_counted_in_the_ground_truth():
    demo = start_demo_servers(contacts=20, seed=SEED)
    try:
        env = demo.env()
        url = env["HUBSPOT_API_BASE_URL"]
        token = env["HUBSPOT_ACCESS_TOKEN"]
        response = httpx.get(
            f"{url}/crm/v3/objects/contacts",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        demo.stop()
    assert url == demo.servers["hubspot"].url and token == "demo-hubspot-token"
    assert len(response.json()["results"]) == 20
    truth = data.contact_truth(20)
    mine = {k for k in truth if k.startswith("hubspot:")}
    assert mine == {f"hubspot:{r['id']}" for r in response.json()["results"] if "id" in r}
