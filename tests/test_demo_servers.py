"""Each simulator honours its vendor's contract, over real loopback sockets."""

from __future__ import annotations

import base64
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from crm_tui.demo import data
from crm_tui.demo.servers import Faults, start_demo_servers
from tests.helpers.env import DEMO_CONTACTS


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_the_demo_without_its_extra_says_in_one_line_what_to_install(tmp_path, monkeypatch):
    from crm_tui.cli import main

    monkeypatch.setitem(sys.modules, "httptools", None)  # as in a production install
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "--demo"])
    assert result.exit_code == 3  # a configuration error
    [said] = result.stderr.splitlines()  # nothing starts before it fails
    assert said.startswith("error: ") and "pip install 'crm-tui[demo]'" in said


def test_the_simulators_without_the_extra_say_what_to_install(monkeypatch):
    from crm_tui.cli import main

    monkeypatch.setitem(sys.modules, "httptools", None)
    result = CliRunner().invoke(main, ["simulator", "--contacts", "10"])
    assert result.exit_code == 1
    assert "pip install 'crm-tui[demo]'" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_servers_listen_on_loopback_only(demo_servers):
    for server in demo_servers.servers.values():
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port > 0


def test_brivity_people_is_a_bare_array_behind_the_token(demo_servers):
    url = f"{demo_servers.servers['brivity'].url}/api/people"
    bad = httpx.get(url, headers={"Authorization": "Token token=wrong"})
    assert (bad.status_code, bad.text) == (401, "Bad Credentials")
    assert httpx.get(url).status_code == 401
    ok = httpx.get(url, headers={"Authorization": "Token token=demo-brivity-key"})
    people = ok.json()
    assert isinstance(people, list) and len(people) == DEMO_CONTACTS
    assert "id" not in people[data.MISSING_ID_INDEX]
    assert people[0]["first_name"] == "[@click=app.quit]Bob[/]"
    assert len(people[data.LONG_NOTE_INDEX]["description"]) == 10_000
    limited = httpx.get(
        url, params={"limit": 5}, headers={"Authorization": "Token token=demo-brivity-key"}
    )
    assert len(limited.json()) == 5


def test_fub_pages_to_the_end_with_nothing_lost_or_repeated(demo_servers):
    base = f"{demo_servers.servers['followupboss'].url}/v1/people"
    headers = basic("demo-fub-key")
    seen: list[int] = []
    params: dict[str, object] = {"limit": 500}
    pages = 0
    while True:
        response = httpx.get(base, params=params, headers=headers)
        assert response.status_code == 200
        for name in ("Limit", "Remaining", "Window", "Context"):
            assert f"X-RateLimit-{name}" in response.headers
        body = response.json()
        meta = body["_metadata"]
        assert set(meta) == {"collection", "offset", "limit", "total", "next", "nextLink"}
        assert meta["limit"] == 100  # clamped
        seen.extend(p.get("id", -1) for p in body["people"])
        pages += 1
        if not meta["next"]:
            break
        assert meta["nextLink"].endswith(meta["next"])
        params = {"limit": 500, "next": meta["next"]}
    assert pages == -(-DEMO_CONTACTS // 100)
    ids = [i for i in seen if i != -1]
    assert len(ids) == len(set(ids)) == DEMO_CONTACTS - 1
    assert seen == sorted(seen, reverse=True) or -1 in seen  # id descending
    assert httpx.get(base, headers=basic("wrong")).status_code == 401


def test_fub_answers_429_with_retry_after_past_its_budget():
    servers = start_demo_servers(contacts=20, fub_rate_limit=3)
    try:
        url = f"{servers.servers['followupboss'].url}/v1/deals"
        answers = [httpx.get(url, headers=basic("demo-fub-key")) for _ in range(5)]
    finally:
        servers.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 10


def token(base: str, secret: str = "demo-topproducer-secret") -> httpx.Response:
    return httpx.post(
        f"{base}/auth/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo-topproducer-client",
            "client_secret": secret,
        },
    )


def test_oauth_contract_tokens_and_offset_pages(demo_servers):
    base = demo_servers.servers["topproducer"].url
    assert token(base, "wrong").status_code == 401
    body = token(base).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    headers = {
        "Authorization": f"Bearer {body['access_token']}",
        "X-API-Key": "demo-topproducer-key",
    }
    assert httpx.get(f"{base}/contacts").status_code == 401
    page = httpx.get(f"{base}/contacts", params={"$top": 100, "$skip": 200}, headers=headers).json()
    assert page["@odata.count"] == DEMO_CONTACTS
    assert [c["id"] for c in page["value"][:2]] == ["TP-0000201", "TP-0000202"]
    deals = httpx.get(f"{base}/transactions", headers=headers).json()
    assert deals["@odata.count"] == data.deal_count(DEMO_CONTACTS)


def test_tokens_expire_after_expires_in():
    servers = start_demo_servers(contacts=20, token_expires_in=1)
    try:
        base = servers.servers["topproducer"].url
        value = token(base).json()["access_token"]
        headers = {"Authorization": f"Bearer {value}", "X-API-Key": "demo-topproducer-key"}
        assert httpx.get(f"{base}/contacts", headers=headers).status_code == 200
        time.sleep(1.1)  # the token's configured life: what this test is about
        assert httpx.get(f"{base}/contacts", headers=headers).status_code == 401
    finally:
        servers.stop()


def test_data_is_deterministic_from_the_seed():
    assert data.fub_person(5, 42, 1000) == data.fub_person(5, 42, 1000)
    assert data.fub_person(5, 42, 1000) != data.fub_person(6, 42, 1000)


def test_people_overlap_across_sources_with_different_spellings():
    count = 1000
    brivity = {data.population_index("brivity", i, count) for i in range(count)}
    fub = {data.population_index("followupboss", i, count) for i in range(count)}
    tp = {data.population_index("topproducer", i, count) for i in range(count)}
    assert len(brivity & fub) >= 300 and len(brivity & fub & tp) >= 100
    # the same person's phone is formatted differently in two CRMs
    shared = sorted(brivity & fub)[50]
    b = data.brivity_person(7, shared, count)
    f = data.fub_person(7, shared - int(0.6 * count), count)
    digits = lambda s: "".join(c for c in s if c.isdigit())[-10:]  # noqa: E731
    assert digits(b["phone_number"]) == digits(f["phones"][0]["value"])


def test_faults_parse_and_reject_unknown_names():
    faults = Faults.parse(["error_rate=0.2", "hang-request=3", "retry_after=2"])
    assert (faults.error_rate, faults.hang_request, faults.retry_after) == (0.2, 3, "2")
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.parse(["explode=1"])
    with pytest.raises(ValueError, match="not a float"):
        Faults.parse(["error_rate=lots"])


def test_faults_are_reproducible_from_the_seed():
    def statuses() -> list[int]:
        servers = start_demo_servers(contacts=20, faults=Faults(seed=3, error_rate=0.5))
        try:
            url = f"{servers.servers['followupboss'].url}/v1/people"
            return [httpx.get(url, headers=basic("demo-fub-key")).status_code for _ in range(12)]
        finally:
            servers.stop()

    first = statuses()
    assert first == statuses()
    assert {200} < set(first) <= {200, 500, 502, 503}
