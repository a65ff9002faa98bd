"""The Lofty simulator honours Lofty's documented contract, over real loopback sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from crm_tui.demo import data
from crm_tui.demo.lofty import LOFTY, lofty_app, lofty_id
from crm_tui.demo.servers import DemoServers, Faults, RunningServer, iter_records, serve
from crm_tui.demo.simulators import SIMULATORS
from tests.helpers.env import DEMO_CONTACTS

KEY = "demo-lofty-key"
TOKEN = {"Authorization": f"token {KEY}"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture
def lofty(demo_servers: DemoServers) -> str:
    return demo_servers.servers["lofty"].url


@contextmanager
def served(app: Any) -> Iterator[RunningServer]:
    server = serve("lofty-test", app)
    try:
        yield server
    finally:
        server.stop()


def walk_leads(url: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every lead by offset, stopping as the metadata says: (leads, each page's metadata)."""
    leads: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = httpx.get(
            f"{url}/v1.0/leads", params={**params, "offset": offset}, headers=TOKEN
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"get_metadata", "leads"}
        meta = body["get_metadata"]
        metas.append(meta)
        leads.extend(body["leads"])
        offset = meta["offset"] + len(body["leads"])
        if not body["leads"] or offset >= meta["total"]:
            return leads, metas


def test_leads_by_offset_every_lead_once_and_the_id_less_one(lofty: str) -> None:
    leads, metas = walk_leads(lofty, limit=100)
    assert [m["offset"] for m in metas] == [0, 100, 200]
    assert all(m["limit"] == 100 and m["total"] == DEMO_CONTACTS for m in metas)
    assert set(metas[0]) == {"collection", "limit", "offset", "total", "scrollId"}
    assert len(leads) == DEMO_CONTACTS
    ids = [lead["leadId"] for lead in leads if "leadId" in lead]
    assert len(ids) == len(set(ids)) == data.expected_contacts(DEMO_CONTACTS)
    assert ids == [lofty_id(i) for i in range(DEMO_CONTACTS) if i != data.MISSING_ID_INDEX]
    assert all(isinstance(i, int) and 2**32 < i < 2**53 for i in ids)  # int64, exact in JSON
    missing = leads[data.MISSING_ID_INDEX]
    assert "leadId" not in missing and "leadUserId" not in missing
    assert all("leadId" not in tag for tag in missing["tags"])
    assert missing["firstName"] and missing["emails"]  # present, just without an id
    # what the registry says a default listing returns is what was served, in order
    assert leads == list(iter_records("lofty:contacts", DEMO_CONTACTS, 11))
    past_the_end = httpx.get(
        f"{lofty}/v1.0/leads", params={"offset": DEMO_CONTACTS}, headers=TOKEN
    ).json()
    assert past_the_end["leads"] == [] and past_the_end["get_metadata"]["total"] == DEMO_CONTACTS


def test_leads_by_scroll_id_end_on_an_empty_page(lofty: str) -> None:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    pages = 0
    while True:
        response = httpx.get(f"{lofty}/v1.0/leads", params=params, headers=TOKEN)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert body["get_metadata"]["limit"] == 10  # the documented example's page
        assert isinstance(body["get_metadata"]["scrollId"], str)  # never null, even at the end
        if not body["leads"]:
            break
        assert len(body["leads"]) <= 10
        seen.extend(body["leads"])
        params = {"scrollId": body["get_metadata"]["scrollId"]}
        assert pages < 100, "the scroll never ended"
    assert pages == -(-DEMO_CONTACTS // 10) + 1
    assert [lead.get("leadId") for lead in seen] == [
        None if i == data.MISSING_ID_INDEX else lofty_id(i) for i in range(DEMO_CONTACTS)
    ]
    bad = httpx.get(f"{lofty}/v1.0/leads", params={"scrollId": "not-a-scroll"}, headers=TOKEN)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PARAMETER"


def test_leads_look_like_lofty_documents_them(lofty: str) -> None:
    body = httpx.get(f"{lofty}/v1.0/leads", params={"limit": 20}, headers=TOKEN).json()
    leads = body["leads"]
    assert leads[0]["firstName"] == data.HOSTILE_NAMES[0][0]
    assert leads[data.NO_EMAIL_INDEX]["emails"] == []
    assert len(leads[data.LONG_NOTE_INDEX]["leadPropertyList"][0]["note"]) == 10_000
    for lead in leads:
        assert all(isinstance(e, str) for e in lead["emails"] + lead["phones"])
        assert isinstance(lead["stage"], str) and isinstance(lead["stageId"], int)
        assert isinstance(lead["source"], str) and isinstance(lead["leadSource"], int)
        time.strptime(lead["createTime"], "%Y-%m-%dT%H:%M:%SZ")
        assert "updateTime" not in lead  # the docs show none on a lead
        for tag in lead["tags"]:
            assert set(tag) >= {"tagId", "tagName", "createTime", "updateTime"}
    # The same person shows up in other CRMs (the population overlaps by design).
    truth = data.contact_truth(DEMO_CONTACTS)
    people = {who for record, who in truth.items() if record.startswith("lofty:")}
    others = {who for record, who in truth.items() if not record.startswith("lofty:")}
    assert len(people) == data.expected_contacts(DEMO_CONTACTS) and people & others


def test_leads_page_size_is_one_to_a_hundred(lofty: str) -> None:
    full = httpx.get(f"{lofty}/v1.0/leads", params={"limit": 100}, headers=TOKEN)
    assert len(full.json()["leads"]) == 100
    for limit in ("101", "0", "-5", "ten"):
        refused = httpx.get(f"{lofty}/v1.0/leads", params={"limit": limit}, headers=TOKEN)
        assert refused.status_code == 400, limit
        assert refused.json()["code"] == "LIMIT_NOT_VALID"
        assert all(h in refused.headers for h in RATE_HEADERS)
    negative = httpx.get(f"{lofty}/v1.0/leads", params={"offset": -1}, headers=TOKEN)
    assert negative.status_code == 400


def test_transactions_every_one_once_pointing_at_served_leads(lofty: str) -> None:
    url = f"{lofty}/v2.0/transactions"
    default = httpx.get(url, headers=TOKEN).json()
    assert (default["pageNum"], default["pageSize"], len(default["pageData"])) == (0, 20, 20)
    seen: list[dict[str, Any]] = []
    page = 0
    while True:
        body = httpx.get(url, params={"pageSize": 25, "pageNum": page}, headers=TOKEN).json()
        assert set(body) == {"pageNum", "pageSize", "totalCount", "pageData"}
        assert body["pageNum"] == page and body["pageSize"] == 25
        seen.extend(body["pageData"])
        page += 1
        if page * body["pageSize"] >= body["totalCount"]:
            break
    deals = data.deal_count(DEMO_CONTACTS)
    assert page == -(-deals // 25) and len(seen) == deals
    ids = [t["transactionId"] for t in seen]
    assert len(set(ids)) == deals
    assert seen == list(iter_records("lofty:deals", DEMO_CONTACTS, 11))
    lead_ids = {lofty_id(i) for i in range(DEMO_CONTACTS) if i != data.MISSING_ID_INDEX}
    assert {t["leadId"] for t in seen} <= lead_ids
    for t in seen:
        assert isinstance(t["created"], int) and t["created"] > 1_700_000_000_000  # epoch ms
        assert t["updated"] >= t["created"]
        assert (t["closeDate"] is not None) == (t["transactionStatus"] == "Closed")
        assert t["gci"] == round(t["homePrice"] * t["commissionRate"] / 100, 2)
    past = httpx.get(url, params={"pageSize": 25, "pageNum": page}, headers=TOKEN).json()
    assert past["pageData"] == [] and past["totalCount"] == deals


def test_transactions_page_size_and_number_are_checked(lofty: str) -> None:
    url = f"{lofty}/v2.0/transactions"
    assert len(httpx.get(url, params={"pageSize": 100}, headers=TOKEN).json()["pageData"]) == (
        data.deal_count(DEMO_CONTACTS)
    )
    for params in ({"pageSize": 101}, {"pageSize": 0}, {"pageNum": -1}, {"pageNum": "x"}):
        refused = httpx.get(url, params=params, headers=TOKEN)
        assert refused.status_code == 400, params
        assert refused.json()["code"] == "INVALID_PARAMETER"


def test_a_wrong_or_missing_key_is_401_with_the_documented_body(lofty: str) -> None:
    for path in ("/v1.0/leads", "/v2.0/transactions"):
        for headers in (
            {},
            {"Authorization": "token wrong"},
            {"Authorization": KEY},
            {"Authorization": f"Basic {KEY}"},
        ):
            refused = httpx.get(f"{lofty}{path}", headers=headers)
            assert refused.status_code == 401, (path, headers)
            assert refused.json() == {
                "code": "BAD_CREDENTIALS",
                "message": "Invalid API key or access token.",
            }
            assert all(h in refused.headers for h in RATE_HEADERS)
        bearer = httpx.get(f"{lofty}{path}", headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200


def test_past_the_budget_429_with_the_rate_headers_and_no_retry_after() -> None:
    with served(lofty_app(KEY, 30, 3, Faults(), rate_limit=3)) as server:
        started = time.time()
        answers = [httpx.get(f"{server.url}/v1.0/leads", headers=TOKEN) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0", "0"]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"3"}
    for answer in answers:
        reset = int(answer.headers["X-RateLimit-Reset"])
        assert started + 58 <= reset <= time.time() + 61  # UTC epoch seconds, a minute out
    assert answers[3].json() == {"message": "Too Many Requests"}
    assert "Retry-After" not in answers[3].headers


def test_the_registry_serves_lofty_with_the_shared_budget(demo_servers: DemoServers) -> None:
    assert "lofty" in [s.name for s in SIMULATORS]
    env = demo_servers.env()
    assert env["LOFTY_API_BASE_URL"] == demo_servers.servers["lofty"].url
    assert env["LOFTY_API_KEY"] == KEY
    answer = httpx.get(f"{env['LOFTY_API_BASE_URL']}/v1.0/leads", headers=TOKEN)
    assert answer.headers["X-RateLimit-Limit"] == str(10_000 * 6)  # conftest's rate, per minute
    count, _ = LOFTY.collections(DEMO_CONTACTS, 11)["deals"]
    assert count == data.deal_count(DEMO_CONTACTS)


def test_faults_still_apply() -> None:
    with served(lofty_app(KEY, 30, 3, Faults(error_rate=1.0))) as server:
        answers = [httpx.get(f"{server.url}/v1.0/leads", headers=TOKEN) for _ in range(4)]
        answers.append(httpx.get(f"{server.url}/v2.0/transactions", headers=TOKEN))
    assert all(a.status_code in (500, 502, 503) for a in answers)


def test_overlap_pages_repeats_the_last_record_of_the_page_before() -> None:
    with served(lofty_app(KEY, 30, 3, Faults(overlap_pages=True))) as server:
        first = httpx.get(f"{server.url}/v1.0/leads", params={"limit": 10}, headers=TOKEN).json()
        scroll = first["get_metadata"]["scrollId"]
        second = httpx.get(
            f"{server.url}/v1.0/leads", params={"limit": 10, "scrollId": scroll}, headers=TOKEN
        ).json()
        url = f"{server.url}/v2.0/transactions"
        deals = [
            httpx.get(url, params={"pageSize": 2, "pageNum": n}, headers=TOKEN).json()
            for n in (0, 1)
        ]
    assert len(second["leads"]) == 11
    assert second["leads"][0] == first["leads"][-1]
    assert second["leads"][1]["leadId"] == lofty_id(10)
    assert deals[1]["pageData"][0] == deals[0]["pageData"][-1]
    assert len(deals[1]["pageData"]) == 3
