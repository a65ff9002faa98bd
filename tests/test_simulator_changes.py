"""The simulators change while running: incremental queries, trash/archive/deleted
listings, reads by id, FUB webhook subscriptions, and signed webhooks from churn. Real HTTP
over loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from crm_tui.demo import data, hubspot
from crm_tui.demo.servers import DemoServers, start_demo_servers

FUB_AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo-fub-key:").decode()}
HS_AUTH = {"Authorization": "Bearer demo-hubspot-token"}
PD_AUTH = {"x-api-token": "demo-pipedrive-token"}
T0 = float(int(time.time()))  # a whole second: the scripted changes share it


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def demo() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=60, seed=5, fub_rate_limit=10_000)
    try:
        yield servers
    finally:
        servers.stop()


def url(demo: DemoServers, name: str, path: str) -> str:
    return demo.servers[name].url + path


def fub_walk(demo: DemoServers, params: dict[str, Any]) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    response = httpx.get(url(demo, "followupboss", "/v1/people"), params=params, headers=FUB_AUTH)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        people += body["people"]
        if not body["_metadata"]["nextLink"]:
            return people
        response = httpx.get(body["_metadata"]["nextLink"], headers=FUB_AUTH)


# -- Follow Up Boss ------------------------------------------------------------------------


def test_fub_updated_after_sorted_returns_exactly_the_changed_people(demo):
    for index in (9, 4):  # two updates in the same second: ties go by id
        demo.apply_change("followupboss:people", "update", index, at=T0)
    demo.apply_change("followupboss:people", "update", 30, at=T0 + 1)
    created = demo.apply_change("followupboss:people", "create", at=T0 + 2)
    query = {"updatedAfter": iso(T0), "sort": "updated", "limit": 1, "includeTrash": "true"}
    people = fub_walk(demo, query)
    assert [p["id"] for p in people] == [5, 10, 31, created.index + 1]
    assert [p["updated"] for p in people] == [iso(T0), iso(T0), iso(T0 + 1), iso(T0 + 2)]
    assert people[-1]["created"] == iso(T0 + 2)
    later = fub_walk(demo, {**query, "updatedAfter": iso(T0 + 1), "sort": "-updated"})
    assert [p["id"] for p in later] == [created.index + 1, 31]  # inclusive, newest first
    listing = httpx.get(url(demo, "followupboss", "/v1/people"), headers=FUB_AUTH).json()
    assert listing["_metadata"]["total"] == 61 and listing["people"][0]["id"] == 61


def test_fub_full_sort_by_updated_merges_generated_and_changed(demo):
    demo.apply_change("followupboss:people", "update", 0, at=T0)
    people = fub_walk(demo, {"sort": "updated", "limit": 100})
    keys = [(p["updated"], p.get("id", 0)) for p in people]
    assert len(people) == 60 and keys == sorted(keys)
    assert people[-1]["id"] == 1


def test_fub_trash_is_listed_only_with_include_trash(demo):
    demo.apply_change("followupboss:people", "delete", 17, at=T0)
    with pytest.raises(KeyError):  # the record without an id never changes
        demo.apply_change("followupboss:people", "update", data.MISSING_ID_INDEX)
    plain = fub_walk(demo, {"limit": 100})
    assert 18 not in {p.get("id") for p in plain} and len(plain) == 59
    trashed = fub_walk(demo, {"updatedAfter": iso(T0), "includeTrash": "true"})
    assert [(p["id"], p["stage"]) for p in trashed] == [(18, "Trash")]
    assert fub_walk(demo, {"updatedAfter": iso(T0)}) == []
    one = httpx.get(url(demo, "followupboss", "/v1/people/18"), headers=FUB_AUTH)
    assert one.status_code == 200 and one.json()["stage"] == "Trash"
    by_id = httpx.get(
        url(demo, "followupboss", "/v1/people"), params={"id": "18,19"}, headers=FUB_AUTH
    )
    assert [p["id"] for p in by_id.json()["people"]] == [19]


def test_fub_get_by_id_and_deleted_deals(demo):
    get = lambda path: httpx.get(url(demo, "followupboss", path), headers=FUB_AUTH)  # noqa: E731
    assert get("/v1/people/3").json()["id"] == 3
    assert get("/v1/people/99999").status_code == 404
    assert get("/v1/deals/2").json()["id"] == 2
    change = demo.apply_change("followupboss:deals", "update", 1)
    assert {k: get("/v1/deals/2").json()[k] for k in change.patch} == dict(change.patch)
    demo.apply_change("followupboss:deals", "delete", 1)
    assert get("/v1/deals/2").status_code == 404
    deals = get("/v1/deals?limit=100").json()["deals"]
    assert 2 not in {d["id"] for d in deals} and len(deals) == 11
    assert get("/v1/deals?sort=updated").status_code == 400
    assert (
        get(
            "/v1/people",
        ).headers["X-RateLimit-Context"]
        == "global"
    )


def test_fub_webhook_subscriptions(demo):
    base = url(demo, "followupboss", "/v1/webhooks")
    body = {"event": "peopleUpdated", "url": "https://example.com/hook"}
    assert httpx.post(base, json=body, headers=FUB_AUTH).status_code == 400  # no X-System
    system = {**FUB_AUTH, "X-System": "crm-tui-demo"}
    assert httpx.post(base, json=body, headers={"X-System": "x"}).status_code == 401
    first = httpx.post(base, json=body, headers=system)
    assert first.status_code == 201
    ident = first.json()["id"]
    local = {"event": "peopleUpdated", "url": "http://127.0.0.1:9/hook"}
    assert httpx.post(base, json=local, headers=system).status_code == 201
    assert httpx.post(base, json=body, headers=system).status_code == 400  # a third
    plain = {"event": "peopleCreated", "url": "http://example.com/hook"}
    assert httpx.post(base, json=plain, headers=system).status_code == 400  # not https
    assert len(httpx.get(base, headers=FUB_AUTH).json()["webhooks"]) == 2
    changed = httpx.put(f"{base}/{ident}", json={"event": "dealsUpdated"}, headers=FUB_AUTH)
    assert changed.json()["event"] == "dealsUpdated"
    assert httpx.get(f"{base}/{ident}", headers=FUB_AUTH).json()["event"] == "dealsUpdated"
    assert httpx.delete(f"{base}/{ident}", headers=FUB_AUTH).status_code == 204
    assert httpx.get(f"{base}/{ident}", headers=FUB_AUTH).status_code == 404


# -- HubSpot -------------------------------------------------------------------------------


def search(demo: DemoServers, kind: str, body: dict[str, Any]) -> httpx.Response:
    path = f"/crm/v3/objects/{kind}/search"
    return httpx.post(url(demo, "hubspot", path), json=body, headers=HS_AUTH)


def gte(prop: str, moment: float, **extra: Any) -> dict[str, Any]:
    value = str(int(moment * 1000))
    return {
        "filterGroups": [{"filters": [{"propertyName": prop, "operator": "GTE", "value": value}]}],
        "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
        **extra,
    }


def test_hubspot_search_returns_changes_ascending_with_consistent_times(demo):
    demo.apply_change("hubspot:contacts", "update", 20, at=T0 + 0.5)
    demo.apply_change("hubspot:contacts", "update", 3, at=T0 + 0.2)
    made = demo.apply_change("hubspot:contacts", "create", at=T0 + 0.9)
    body = gte("lastmodifieddate", T0, limit=2, properties=["lastname", "lastmodifieddate"])
    first = search(demo, "contacts", body).json()
    assert first["total"] == 3 and len(first["results"]) == 2
    after = first["paging"]["next"]["after"]
    rest = search(demo, "contacts", {**body, "after": after}).json()
    assert "paging" not in rest
    ids = [r["id"] for r in first["results"] + rest["results"]]
    assert ids == [hubspot.hubspot_id(3), hubspot.hubspot_id(20), hubspot.hubspot_id(made.index)]
    for record in first["results"] + rest["results"]:
        assert record["properties"]["lastmodifieddate"] == record["updatedAt"]
    assert set(first["results"][0]["properties"]) == {"lastname", "lastmodifieddate"}
    demo.apply_change("hubspot:deals", "update", 2, at=T0)
    deals = search(demo, "deals", gte("hs_lastmodifieddate", T0)).json()
    assert [d["id"] for d in deals["results"]] == [hubspot.hubspot_deal_id(2)]


def test_hubspot_search_caps_at_ten_thousand_and_validates(demo):
    assert search(demo, "contacts", gte("lastmodifieddate", 0, after="10000")).status_code == 400
    assert search(demo, "contacts", gte("lastmodifieddate", 0, limit=201)).status_code == 400
    whole = search(demo, "contacts", gte("lastmodifieddate", 0, limit=200)).json()
    assert whole["total"] == 60 and len(whole["results"]) == 60
    modified = [r["properties"]["lastmodifieddate"] for r in whole["results"]]
    assert modified == sorted(modified)
    wrong = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ"}]}]}
    assert search(demo, "contacts", wrong).status_code == 400


def test_hubspot_archived_listing_and_get_by_id(demo):
    get = lambda path: httpx.get(url(demo, "hubspot", path), headers=HS_AUTH)  # noqa: E731
    contact = hubspot.hubspot_id(11)
    assert get(f"/crm/v3/objects/contacts/{contact}").json()["id"] == contact
    demo.apply_change("hubspot:contacts", "delete", 11, at=T0)
    assert get(f"/crm/v3/objects/contacts/{contact}").status_code == 404
    assert get("/crm/v3/objects/contacts/123").status_code == 404
    archived = get("/crm/v3/objects/contacts?archived=true&limit=100").json()["results"]
    assert len(archived) == hubspot.ARCHIVED_CONTACTS + 1
    last = archived[-1]
    assert last["id"] == contact and last["archived"] is True
    assert last["archivedAt"] == last["updatedAt"] == hubspot.stamp_epoch(T0)
    live = get("/crm/v3/objects/contacts?limit=100").json()["results"]
    assert contact not in {r.get("id") for r in live} and len(live) == 59
    deal = hubspot.hubspot_deal_id(0)
    answer = get(f"/crm/v3/objects/deals/{deal}?associations=contacts&properties=dealname")
    assert set(answer.json()["properties"]) == {"dealname"}


# -- Pipedrive -----------------------------------------------------------------------------


def pd_get(demo: DemoServers, path: str, **params: Any) -> httpx.Response:
    return httpx.get(url(demo, "pipedrive", path), params=params, headers=PD_AUTH)


def test_pipedrive_updated_since_deleted_deals_and_get_by_id(demo):
    demo.apply_change("pipedrive:persons", "update", 8, at=T0 + 1)
    demo.apply_change("pipedrive:persons", "update", 2, at=T0 + 1)
    demo.apply_change("pipedrive:persons", "delete", 5, at=T0)
    since = {"updated_since": iso(T0), "sort_by": "update_time", "sort_direction": "asc"}
    persons = pd_get(demo, "/api/v2/persons", **since).json()["data"]
    assert [p["id"] for p in persons] == [2_000_003, 2_000_009]
    assert pd_get(demo, "/api/v2/persons/2000006").status_code == 404
    assert pd_get(demo, "/api/v2/persons/2000003").json()["data"]["update_time"] == iso(T0 + 1)
    demo.apply_change("pipedrive:deals", "delete", 0, at=T0)
    deleted = pd_get(demo, "/api/v2/deals", status="deleted", updated_since=iso(T0)).json()
    assert [(d["id"], d["status"]) for d in deleted["data"]] == [(3_000_001, "deleted")]
    assert pd_get(demo, "/api/v2/deals/3000001").json()["data"]["is_deleted"] is True
    assert pd_get(demo, "/api/v2/deals/9999999").status_code == 404
    made = demo.apply_change("pipedrive:deals", "create", at=T0 + 2)
    new = pd_get(demo, "/api/v2/deals", **{**since, "updated_since": iso(T0 + 2)}).json()
    assert [(d["id"], d["status"]) for d in new["data"]] == [(3_000_001 + made.index, "open")]


# -- churn and webhooks --------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", _Receiver.received
    server.shutdown()
    server.server_close()


def check_fub(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    expected = hmac.new(b"demo-fub-system-key", base64.b64encode(body), hashlib.sha256)
    assert headers["FUB-Signature"] == expected.hexdigest()
    return orjson.loads(body)


def check_hubspot(target: str, headers: dict[str, str], body: bytes) -> list[dict[str, Any]]:
    stamp = headers["X-HubSpot-Request-Timestamp"]
    message = b"POST" + target.encode() + body + stamp.encode()
    digest = hmac.new(b"demo-hubspot-client-secret", message, hashlib.sha256).digest()
    assert headers["X-HubSpot-Signature-v3"] == base64.b64encode(digest).decode()
    assert abs(int(stamp) - time.time() * 1000) < 300_000
    return orjson.loads(body)


def test_churn_sends_signed_fub_and_hubspot_webhooks(demo, receiver):
    target, received = receiver
    churn = demo.start_churn(40, webhook_url=target)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and churn.changes < 30:
        time.sleep(0.05)
    demo.stop_churn()
    assert churn.changes >= 30 and churn.stats.failed == 0
    fub = [check_fub(h, b) for _, h, b in received if "FUB-Signature" in h]
    hub = [check_hubspot(target, h, b) for _, h, b in received if "X-HubSpot-Signature-v3" in h]
    assert fub and hub
    for event in fub:
        assert event["event"].startswith(("people", "deals")) and event["resourceIds"]
        assert (event["uri"] is None) == event["event"].endswith("Deleted")
        if event["uri"]:
            assert httpx.get(event["uri"], headers=FUB_AUTH).status_code == 200
    for events in hub:
        for event in events:
            assert event["subscriptionType"].split(".")[0] in ("contact", "deal")
            assert {"eventId", "objectId", "occurredAt", "portalId", "appId"} <= set(event)


def test_scripted_changes_reach_registered_subscriptions(demo, receiver):
    target, received = receiver
    churn = demo.start_churn(0)  # no churn: webhooks only, for scripted changes
    system = {**FUB_AUTH, "X-System": "crm-tui-demo"}
    hook = {"event": "peopleDeleted", "url": target}
    assert httpx.post(url(demo, "followupboss", "/v1/webhooks"), json=hook, headers=system)
    demo.apply_change("followupboss:people", "delete", 3)
    demo.apply_change("followupboss:people", "update", 4)  # nobody subscribed to updates
    assert churn.sender.drain()
    events = [check_fub(h, b) for _, h, b in received]
    assert [(e["event"], e["resourceIds"], e["uri"]) for e in events] == [
        ("peopleDeleted", [4], None)
    ]
    demo.stop_churn()
