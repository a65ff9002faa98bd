"""The simulators take the writes their vendors document: each write goes through the shared
overlay, so the next read of the record, the listing, incremental reads and webhooks all see
it; each refusal comes in the vendor's own status and shape. Real HTTP over loopback."""

from __future__ import annotations

import base64
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
from crm_tui.demo.changes import Overlay, Target
from crm_tui.demo.followupboss import ACCOUNT_STAGES
from crm_tui.demo.lofty import lofty_id
from crm_tui.demo.pipedrive import pipedrive_deal_id, pipedrive_id
from crm_tui.demo.servers import DemoServers, start_demo_servers

CONTACTS = 60
FUB_AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo-fub-key:").decode()}
HS_AUTH = {"Authorization": "Bearer demo-hubspot-token"}
PD_AUTH = {"x-api-token": "demo-pipedrive-token"}
LOFTY_AUTH = {"Authorization": "token demo-lofty-key"}
BRIVITY_AUTH = {"Authorization": "Token token=demo-brivity-key"}


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def demo() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=CONTACTS, seed=5, fub_rate_limit=10_000)
    try:
        yield servers
    finally:
        servers.stop()


def url(demo: DemoServers, name: str, path: str) -> str:
    return demo.servers[name].url + path


def whole_second() -> float:
    """Now, after waiting for the next whole second: a write then lands in a second no
    generated record and no earlier write of the test shares."""
    time.sleep(1 - time.time() % 1 + 0.01)
    return float(int(time.time()))


# -- Follow Up Boss ------------------------------------------------------------------------


def fub(demo: DemoServers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", FUB_AUTH)
    return httpx.request(method, url(demo, "followupboss", path), headers=headers, **kwargs)


def test_fub_put_person_is_read_back_listed_and_found_by_updated_after(demo):
    before = fub(demo, "GET", "/v1/people/5").json()
    since = whole_second()
    body = {
        "firstName": "Ann",
        "lastName": "Lee",
        "stage": "Prospect",
        "contacted": True,
        "price": 410_000,
        "background": "Wants a yard",
        "emails": [{"value": "ann@example.com", "type": "work"}, {"value": "ANN@example.com"}],
        "phones": [{"value": "512-555-0101", "type": "mobile", "isPrimary": 1}],
        "addresses": [{"street": "1 Elm St", "city": "Austin", "state": "TX", "code": "78701"}],
        "tags": ["buyer", "vip", "buyer"],
        "customAnniversary": "2020-05-01",
        "source": "Somewhere else",  # set at creation only: ignored
    }
    answer = fub(demo, "PUT", "/v1/people/5", json=body)
    assert answer.status_code == 200
    person = answer.json()
    assert person["id"] == 5 and person["name"] == "Ann Lee"
    assert (person["firstName"], person["lastName"], person["stage"]) == ("Ann", "Lee", "Prospect")
    assert person["emails"] == [{"value": "ann@example.com", "type": "work", "isPrimary": 1}]
    assert person["phones"] == [{"value": "512-555-0101", "type": "mobile", "isPrimary": 1}]
    assert person["addresses"][0]["city"] == "Austin"
    assert person["tags"] == ["buyer", "vip"]
    assert person["customAnniversary"] == "2020-05-01"
    assert (person["price"], person["contacted"]) == (410_000, True)
    assert person["source"] == before["source"] and person["created"] == before["created"]
    assert person["updated"] >= iso(since) and person["updated"] != before["updated"]
    # custom fields are read back when asked for (`fields=allFields`), as FUB does
    all_fields = {"fields": "allFields"}
    assert fub(demo, "GET", "/v1/people/5", params=all_fields).json() == person
    plain = fub(demo, "GET", "/v1/people/5").json()
    assert plain == {k: v for k, v in person.items() if not k.startswith("custom")}
    listed = fub(demo, "GET", "/v1/people", params={"id": "5", **all_fields}).json()["people"]
    assert listed == [person]
    changed = fub(demo, "GET", "/v1/people", params={"updatedAfter": iso(since), "sort": "updated"})
    assert [p["id"] for p in changed.json()["people"]] == [5]
    assert changed.json()["people"][0]["name"] == "Ann Lee"


def test_fub_put_tags_replace_unless_merge_tags(demo):
    assert fub(demo, "PUT", "/v1/people/3", json={"tags": ["a", "b"]}).json()["tags"] == ["a", "b"]
    merged = fub(demo, "PUT", "/v1/people/3?mergeTags=true", json={"tags": ["c", "a"]})
    assert merged.json()["tags"] == ["a", "b", "c"]
    assert fub(demo, "PUT", "/v1/people/3", json={"tags": ["z"]}).json()["tags"] == ["z"]
    assert fub(demo, "GET", "/v1/people/3").json()["tags"] == ["z"]


def test_fub_put_person_refusals_in_fubs_shape(demo):
    before = fub(demo, "GET", "/v1/people/4").json()
    bad_stage = fub(demo, "PUT", "/v1/people/4", json={"stage": "Hot Potato"})
    assert bad_stage.status_code == 400
    assert bad_stage.json()["errorMessage"].startswith("Invalid stage")
    no_at = fub(demo, "PUT", "/v1/people/4", json={"emails": [{"value": "nobody.example.com"}]})
    assert no_at.status_code == 400 and "nobody.example.com" in no_at.json()["errorMessage"]
    not_object = fub(demo, "PUT", "/v1/people/4", content=b"[1, 2]")
    assert not_object.status_code == 400
    assert not_object.json() == {"errorMessage": "The body must be a JSON object"}
    assert fub(demo, "GET", "/v1/people/4").json() == before  # nothing was written
    unknown = fub(demo, "PUT", "/v1/people/9999", json={"firstName": "X"})
    assert (unknown.status_code, unknown.json()) == (404, {"errorMessage": "Person not found"})
    demo.apply_change("followupboss:people", "delete", 3)
    trashed = fub(demo, "PUT", "/v1/people/4", json={"firstName": "X"})
    assert trashed.status_code == 404
    assert fub(demo, "GET", "/v1/people/4").json()["stage"] == "Trash"


def test_fub_writes_need_the_api_key(demo):
    wrong = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
    for method, path, body in (
        ("PUT", "/v1/people/5", {"firstName": "X"}),
        ("PUT", "/v1/deals/1", {"price": 1}),
        ("POST", "/v1/notes", {"personId": 5, "body": "x"}),
        ("GET", "/v1/notes?personId=5", None),
        ("POST", "/v1/events", {"person": {"firstName": "X"}}),
        ("GET", "/v1/stages", None),
        ("GET", "/v1/pipelines", None),
    ):
        answer = fub(demo, method, path, json=body, headers=wrong)
        assert (answer.status_code, answer.json()) == (401, {"errorMessage": "Invalid API key"})
        assert answer.headers["X-RateLimit-Context"] == "global"
    assert fub(demo, "GET", "/v1/people/5").json()["firstName"] != "X"


def test_fub_stages_and_pipelines_match_the_people_and_deals(demo):
    stages = fub(demo, "GET", "/v1/stages").json()
    assert stages["_metadata"]["collection"] == "stages" and stages["_metadata"]["total"] == 9
    assert [s["name"] for s in stages["stages"]] == list(ACCOUNT_STAGES)
    assert [s["id"] for s in stages["stages"]] == list(range(1, 10))
    people = fub(demo, "GET", "/v1/people", params={"limit": 100, "includeTrash": "true"})
    assert {p["stage"] for p in people.json()["people"]} <= set(ACCOUNT_STAGES)
    pipelines = fub(demo, "GET", "/v1/pipelines").json()
    assert pipelines["_metadata"]["collection"] == "pipelines"
    (pipeline,) = pipelines["pipelines"]
    named = {s["id"]: s["name"] for s in pipeline["stages"]}
    assert named == dict(enumerate(data.FUB_DEAL_STAGES, 1))
    deals = fub(demo, "GET", "/v1/deals", params={"limit": 100}).json()["deals"]
    assert len(deals) == data.deal_count(CONTACTS)
    for deal in deals:
        assert (deal["pipelineId"], deal["pipelineName"]) == (pipeline["id"], pipeline["name"])
        assert named[deal["stageId"]] == deal["stageName"]


def test_fub_put_deal_keeps_stage_name_in_step(demo):
    body = {"stageId": 6, "price": 515_000, "projectedCloseDate": "2026-02-03", "name": "1 Oak"}
    answer = fub(demo, "PUT", "/v1/deals/2", json={**body, "commissionValue": 15_450})
    assert answer.status_code == 200
    deal = answer.json()
    assert (deal["stageId"], deal["stageName"], deal["status"]) == (6, "Lost", "Archived")
    assert (deal["price"], deal["projectedCloseDate"], deal["name"]) == (
        515_000,
        "2026-02-03",
        "1 Oak",
    )
    assert deal["commissionValue"] == 15_450
    assert fub(demo, "GET", "/v1/deals/2").json() == deal
    assert fub(demo, "GET", "/v1/deals", params={"id": "2"}).json()["deals"] == [deal]
    reopened = fub(demo, "PUT", "/v1/deals/2", json={"stageId": 5}).json()
    assert (reopened["stageName"], reopened["status"]) == ("Closed", "Active")
    bad_stage = fub(demo, "PUT", "/v1/deals/2", json={"stageId": 7})
    assert bad_stage.status_code == 400 and "stageId" in bad_stage.json()["errorMessage"]
    bad_date = fub(demo, "PUT", "/v1/deals/2", json={"projectedCloseDate": "03/02/2026"})
    assert bad_date.status_code == 400 and "projectedCloseDate" in bad_date.json()["errorMessage"]
    assert fub(demo, "PUT", "/v1/deals/999", json={"price": 1}).status_code == 404
    demo.apply_change("followupboss:deals", "delete", 1)
    assert fub(demo, "PUT", "/v1/deals/2", json={"price": 1}).status_code == 404


def test_fub_notes_are_kept_newest_first_and_leave_updated_alone(demo):
    before = fub(demo, "GET", "/v1/people/7").json()
    first = fub(demo, "POST", "/v1/notes", json={"personId": 7, "subject": "Call", "body": "Hi"})
    assert first.status_code == 201
    note = first.json()
    assert (note["personId"], note["subject"], note["body"], note["isHtml"]) == (
        7,
        "Call",
        "Hi",
        False,
    )
    assert note["id"] == 1 and note["created"] and note["createdBy"]
    second = fub(
        demo, "POST", "/v1/notes", json={"personId": 7, "body": "<b>x</b>", "isHtml": True}
    )
    fub(demo, "POST", "/v1/notes", json={"personId": 8, "body": "Other person"})
    listed = fub(demo, "GET", "/v1/notes", params={"personId": 7}).json()
    assert listed["_metadata"]["collection"] == "notes" and listed["_metadata"]["total"] == 2
    assert [n["id"] for n in listed["notes"]] == [second.json()["id"], 1]
    assert listed["notes"][0]["isHtml"] is True
    paged = fub(demo, "GET", "/v1/notes", params={"personId": 7, "limit": 1, "offset": 1}).json()
    assert [n["id"] for n in paged["notes"]] == [1] and paged["_metadata"]["offset"] == 1
    assert fub(demo, "GET", "/v1/people/7").json()["updated"] == before["updated"]
    no_body = fub(demo, "POST", "/v1/notes", json={"personId": 7})
    assert (no_body.status_code, no_body.json()) == (400, {"errorMessage": "body is required"})
    no_person = fub(demo, "POST", "/v1/notes", json={"body": "x"})
    assert no_person.json() == {"errorMessage": "personId is required"}
    unknown = fub(demo, "POST", "/v1/notes", json={"personId": 9999, "body": "x"})
    assert (unknown.status_code, unknown.json()) == (404, {"errorMessage": "Person not found"})


def test_fub_events_update_the_person_an_email_or_phone_names(demo):
    known = fub(demo, "GET", "/v1/people/6").json()
    email = known["emails"][0]["value"]
    event = {
        "source": "MyWebsite.com",
        "system": "crm-tui-tests",
        "type": "General Inquiry",
        "message": "Still looking?",
        "person": {
            "emails": [{"value": email.upper()}],
            "phones": [{"value": "(737) 555-0199"}],
            "tags": ["web"],
        },
    }
    answer = fub(demo, "POST", "/v1/events", json=event)
    assert answer.status_code == 200
    person = answer.json()
    assert person["id"] == 6 and person["source"] == known["source"]
    assert person["tags"] == [*known["tags"], "web"]
    assert [p["value"] for p in person["phones"]] == [known["phones"][0]["value"], "(737) 555-0199"]
    assert person["emails"] == known["emails"]  # the same address, merged away
    assert fub(demo, "GET", "/v1/people/6", params={"fields": "allFields"}).json() == person
    by_phone = {"source": "Zillow", "person": {"phones": [{"value": "+1 737.555.0199"}]}}
    assert fub(demo, "POST", "/v1/events", json=by_phone).json()["id"] == 6
    forced = {"person": {"id": 9, "firstName": "Forced"}}
    assert fub(demo, "POST", "/v1/events", json=forced).json()["name"].startswith("Forced")


def test_fub_events_create_a_new_lead_once(demo):
    since = whole_second()
    event = {
        "source": "MyWebsite.com",
        "type": "Registration",
        "person": {
            "firstName": "Nina",
            "lastName": "New",
            "emails": [{"value": "nina.new@example.com"}],
            "phones": [{"value": "512-555-0142"}],
            "tags": ["registered"],
        },
    }
    answer = fub(demo, "POST", "/v1/events", json=event)
    assert answer.status_code == 201
    person = answer.json()
    assert person["id"] == CONTACTS + 1 and person["name"] == "Nina New"
    assert (person["source"], person["stage"], person["tags"]) == (
        "MyWebsite.com",
        "Lead",
        ["registered"],
    )
    assert person["emails"] == [{"value": "nina.new@example.com", "type": "other", "isPrimary": 1}]
    assert person["background"] is None and person["addresses"] == []
    assert person["created"] == person["updated"] and person["created"] >= iso(since)
    listing = fub(demo, "GET", "/v1/people").json()
    assert listing["_metadata"]["total"] == CONTACTS + 1 and listing["people"][0] == person
    fresh = fub(demo, "GET", "/v1/people", params={"updatedAfter": iso(since), "sort": "updated"})
    assert [p["id"] for p in fresh.json()["people"]] == [CONTACTS + 1]
    again = {**event, "person": {"emails": [{"value": "Nina.New@example.com"}], "tags": ["again"]}}
    second = fub(demo, "POST", "/v1/events", json=again)
    assert second.status_code == 200 and second.json()["id"] == CONTACTS + 1
    assert second.json()["tags"] == ["registered", "again"]
    assert fub(demo, "GET", "/v1/people").json()["_metadata"]["total"] == CONTACTS + 1


def test_fub_event_refusals(demo):
    unknown = fub(demo, "POST", "/v1/events", json={"person": {"id": 9999, "firstName": "X"}})
    assert (unknown.status_code, unknown.json()) == (404, {"errorMessage": "Person not found"})
    nameless = fub(demo, "POST", "/v1/events", json={"source": "x", "person": {"tags": ["a"]}})
    assert nameless.status_code == 400
    assert nameless.json() == {"errorMessage": "person needs an e-mail, a phone or a name"}
    no_person = fub(demo, "POST", "/v1/events", json={"source": "x", "type": "Registration"})
    assert no_person.status_code == 400 and "person" in no_person.json()["errorMessage"]
    bad_email = {"person": {"emails": [{"value": "nope"}]}}
    assert fub(demo, "POST", "/v1/events", json=bad_email).status_code == 400
    assert fub(demo, "GET", "/v1/people").json()["_metadata"]["total"] == CONTACTS


def test_apply_change_with_a_patch_changes_chosen_fields_behind_the_products_back(demo):
    demo.apply_change("followupboss:people", "update", 4, patch={"stage": "Lead", "lastName": "Q"})
    person = fub(demo, "GET", "/v1/people/5").json()
    assert person["stage"] == "Lead" and person["name"] == f"{person['firstName']} Q"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(orjson.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_fub_writes_send_webhooks_like_any_change(demo):
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        churn = demo.start_churn(0, webhook_url=f"http://127.0.0.1:{server.server_port}/{{source}}")
        fub(demo, "PUT", "/v1/people/5", json={"stage": "Sphere"})
        fub(demo, "POST", "/v1/events", json={"person": {"firstName": "Web", "lastName": "Hook"}})
        assert churn.sender.drain()
    finally:
        demo.stop_churn()
        server.shutdown()
    fub_events = [(e["event"], e["resourceIds"]) for e in _Receiver.received if "event" in e]
    assert fub_events == [("peopleUpdated", [5]), ("peopleCreated", [CONTACTS + 1])]


# -- HubSpot -------------------------------------------------------------------------------


def hs(demo: DemoServers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", HS_AUTH)
    return httpx.request(method, url(demo, "hubspot", path), headers=headers, **kwargs)


def test_hubspot_patch_is_read_back_and_found_by_search(demo):
    ident = hubspot.hubspot_id(3)
    path = f"/crm/v3/objects/contacts/{ident}"
    before = hs(demo, "GET", path).json()
    since = whole_second()
    written = {
        "firstname": "Ann",
        "lifecyclestage": "customer",
        "phone": "",
        "hs_lead_status": None,
    }
    answer = hs(demo, "PATCH", path, json={"properties": written})
    assert answer.status_code == 200
    contact = answer.json()
    assert contact["id"] == ident and contact["archived"] is False
    values = contact["properties"]
    assert (values["firstname"], values["lifecyclestage"]) == ("Ann", "customer")
    assert values["phone"] is None and values["hs_lead_status"] is None  # cleared
    assert values["lastname"] == before["properties"]["lastname"]
    assert values["lastmodifieddate"] == contact["updatedAt"] != before["updatedAt"]
    assert contact["updatedAt"] >= iso(since).replace("Z", ".000Z")
    assert values["createdate"] == before["properties"]["createdate"]
    names = "firstname,lifecyclestage,phone,hs_lead_status,lastmodifieddate"
    again = hs(demo, "GET", path, params={"properties": names}).json()
    assert again["properties"] == {n: values[n] for n in names.split(",")}
    listing = hs(demo, "GET", "/crm/v3/objects/contacts", params={"limit": 5, "properties": names})
    assert listing.json()["results"][3] == again
    search = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "GTE",
                        "value": str(int(since * 1000)),
                    }
                ]
            }
        ],
        "properties": ["firstname"],
    }
    found = hs(demo, "POST", "/crm/v3/objects/contacts/search", json=search).json()
    assert found["total"] == 1 and found["results"][0]["id"] == ident
    assert found["results"][0]["properties"] == {"firstname": "Ann"}


def test_hubspot_deal_stage_moves_the_closed_flags_and_dates_are_normalised(demo):
    ident = hubspot.hubspot_deal_id(2)
    written = {"dealstage": "closedwon", "closedate": "1740787200000", "amount": "1500.00"}
    answer = hs(demo, "PATCH", f"/crm/v3/objects/0-3/{ident}", json={"properties": written})
    assert answer.status_code == 200
    names = "dealstage,closedate,amount,hs_is_closed,hs_is_closed_won"
    deal = hs(demo, "GET", f"/crm/v3/objects/deals/{ident}", params={"properties": names}).json()
    assert deal["properties"] == {
        "dealstage": "closedwon",
        "closedate": "2025-03-01T00:00:00.000Z",
        "amount": "1500.00",
        "hs_is_closed": "true",
        "hs_is_closed_won": "true",
    }
    day_only = {"properties": {"closedate": "2025-04-02"}}
    patched = hs(demo, "PATCH", f"/crm/v3/objects/deals/{ident}", json=day_only).json()
    assert patched["properties"]["closedate"] == "2025-04-02T00:00:00.000Z"


def test_hubspot_patch_refusals_in_hubspots_error_shape(demo):
    ident = hubspot.hubspot_id(4)
    path = f"/crm/v3/objects/contacts/{ident}"
    before = hs(demo, "GET", path).json()
    bad = {"lifecyclestage": "champion", "createdate": "2020-01-01", "favourite_colour": "red"}
    answer = hs(demo, "PATCH", path, json={"properties": {"firstname": "Kept?", **bad}})
    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert body["correlationId"] and body["message"].startswith("Property values were not valid")
    assert [(e["code"], e["context"]["propertyName"]) for e in body["errors"]] == [
        ("INVALID_OPTION", ["lifecyclestage"]),
        ("READ_ONLY_VALUE", ["createdate"]),
        ("PROPERTY_DOESNT_EXIST", ["favourite_colour"]),
    ]
    assert body["errors"][0]["message"].startswith("champion was not one of the allowed options")
    assert body["errors"][2]["message"] == 'Property "favourite_colour" does not exist'
    assert hs(demo, "GET", path).json() == before  # nothing of it was written
    for name in ("hs_object_id", "lastmodifieddate"):
        refused = hs(demo, "PATCH", path, json={"properties": {name: "1"}}).json()
        assert refused["errors"][0]["code"] == "READ_ONLY_VALUE"
    deal = f"/crm/v3/objects/deals/{hubspot.hubspot_deal_id(1)}"
    stage = hs(demo, "PATCH", deal, json={"properties": {"dealstage": "won"}}).json()
    assert stage["errors"][0]["code"] == "INVALID_OPTION"
    empty = hs(demo, "PATCH", path, json={"properties": {}})
    assert empty.status_code == 400
    assert empty.json()["message"] == "No properties found to update, please provide at least one."
    shapeless = hs(demo, "PATCH", path, json={"firstname": "Ann"})
    assert shapeless.status_code == 400 and shapeless.json()["category"] == "VALIDATION_ERROR"
    missing = hs(demo, "PATCH", "/crm/v3/objects/contacts/123", json={"properties": {"city": "X"}})
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    demo.apply_change("hubspot:contacts", "delete", 5)
    gone = hs(
        demo,
        "PATCH",
        f"/crm/v3/objects/contacts/{hubspot.hubspot_id(5)}",
        json={"properties": {"city": "X"}},
    )
    assert gone.status_code == 404


def test_hubspot_property_definitions_and_auth(demo):
    stage = hs(demo, "GET", "/crm/v3/properties/contacts/lifecyclestage").json()
    assert (stage["name"], stage["type"], stage["fieldType"]) == (
        "lifecyclestage",
        "enumeration",
        "radio",
    )
    assert [o["value"] for o in stage["options"]] == list(hubspot.LIFECYCLE_STAGES)
    assert stage["options"][1] == {
        "label": "Lead",
        "value": "lead",
        "displayOrder": 1,
        "hidden": False,
    }
    status = hs(demo, "GET", "/crm/v3/properties/0-1/hs_lead_status").json()
    assert [o["value"] for o in status["options"]] == list(hubspot.LEAD_STATUSES)
    deal_stage = hs(demo, "GET", "/crm/v3/properties/deals/dealstage").json()
    assert [o["value"] for o in deal_stage["options"]] == list(hubspot.DEAL_STAGES)
    created = hs(demo, "GET", "/crm/v3/properties/contacts/createdate").json()
    assert created["modificationMetadata"]["readOnlyValue"] is True and created["options"] == []
    unknown = hs(demo, "GET", "/crm/v3/properties/contacts/dealstage")
    assert unknown.status_code == 404 and unknown.json()["category"] == "OBJECT_NOT_FOUND"
    path = f"/crm/v3/objects/contacts/{hubspot.hubspot_id(3)}"
    for method, target in (("PATCH", path), ("GET", "/crm/v3/properties/contacts/lifecyclestage")):
        refused = hs(demo, method, target, json={"properties": {"city": "X"}}, headers={})
        assert refused.status_code == 401
        assert refused.json()["category"] == "INVALID_AUTHENTICATION"


# -- Pipedrive -----------------------------------------------------------------------------


def pd(demo: DemoServers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", PD_AUTH)
    return httpx.request(method, url(demo, "pipedrive", path), headers=headers, **kwargs)


def test_pipedrive_patch_person_is_read_back_listed_and_spends_the_daily_budget(demo):
    ident = pipedrive_id(4)
    path = f"/api/v2/persons/{ident}"
    daily = int(pd(demo, "GET", path).headers["x-daily-requests-left"])
    since = whole_second()
    body = {
        "name": "Ann  Marie Lee",
        "emails": [{"value": "ann@example.com", "label": "work", "primary": True}],
        "phones": [{"value": "512-555-0101", "label": "mobile"}],
        "label_ids": [2, 1],
        "visible_to": 3,
        "update_time": "2001-01-01 00:00:00",  # the server keeps its own
    }
    answer = pd(demo, "PATCH", path, json=body)
    assert answer.status_code == 200 and answer.json()["success"] is True
    assert int(answer.headers["x-daily-requests-left"]) == daily - 1
    person = answer.json()["data"]
    assert (person["name"], person["first_name"], person["last_name"]) == (
        "Ann Marie Lee",
        "Ann",
        "Marie Lee",
    )
    assert person["emails"] == [{"value": "ann@example.com", "primary": True, "label": "work"}]
    assert person["phones"] == [{"value": "512-555-0101", "primary": True, "label": "mobile"}]
    assert person["label_ids"] == [1, 2] and person["update_time"] >= iso(since)
    read = pd(demo, "GET", path)
    assert read.json()["data"] == person
    assert int(read.headers["x-daily-requests-left"]) == daily - 1  # reads spend none
    params = {"updated_since": iso(since), "sort_by": "update_time"}
    listed = pd(demo, "GET", "/api/v2/persons", params=params).json()["data"]
    assert listed == [person]


def test_pipedrive_person_refusals(demo):
    path = f"/api/v2/persons/{pipedrive_id(4)}"
    before = pd(demo, "GET", path).json()["data"]
    for body in (
        {"first_name": "Ann"},  # not in the SDK's UpdatePersonRequest
        {"owner_id": 1},
        {"emails": [{"value": "a@b.co", "label": "pager"}]},
        {"visible_to": 2},
        {"custom_fields": {"f" * 40: 1}},
    ):
        answer = pd(demo, "PATCH", path, json=body)
        assert answer.status_code == 400, body
        assert answer.json()["success"] is False and answer.json()["error"]
    assert "first_name" in pd(demo, "PATCH", path, json={"first_name": "A"}).json()["error"]
    assert pd(demo, "GET", path).json()["data"] == before
    unknown = pd(demo, "PATCH", "/api/v2/persons/9999999", json={"name": "X"})
    assert (unknown.status_code, unknown.json()["success"]) == (404, False)
    demo.apply_change("pipedrive:persons", "delete", 6)
    assert (
        pd(demo, "PATCH", f"/api/v2/persons/{pipedrive_id(6)}", json={"name": "X"}).status_code
        == 404
    )
    refused = pd(demo, "PATCH", path, json={"name": "X"}, headers={"x-api-token": "nope"})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized access"


def test_pipedrive_patch_deal_status_stage_and_deletion(demo):
    path = f"/api/v2/deals/{pipedrive_deal_id(0)}"
    since = whole_second()
    won = pd(demo, "PATCH", path, json={"status": "won", "stage_id": 8, "value": 600_000})
    assert won.status_code == 200
    deal = won.json()["data"]
    assert (deal["status"], deal["stage_id"], deal["pipeline_id"], deal["value"]) == (
        "won",
        8,
        2,
        600_000,
    )
    assert deal["won_time"] == deal["close_time"] == deal["update_time"] >= iso(since)
    assert deal["lost_time"] is None and deal["stage_change_time"] == deal["update_time"]
    assert pd(demo, "GET", path).json()["data"] == deal
    params = {"updated_since": iso(since), "sort_by": "update_time", "status": "won"}
    assert pd(demo, "GET", "/api/v2/deals", params=params).json()["data"] == [deal]
    lost = pd(demo, "PATCH", path, json={"status": "lost", "lost_reason": "Price"}).json()["data"]
    assert (lost["lost_reason"], lost["won_time"]) == ("Price", None) and lost["lost_time"]
    moved = pd(demo, "PATCH", path, json={"pipeline_id": 1}).json()["data"]
    assert (moved["pipeline_id"], moved["stage_id"]) == (1, 1)  # the pipeline's first stage
    for body, word in (
        ({"status": "closed"}, "status"),
        ({"stage_id": 99}, "stage_id"),
        ({"status": "open", "lost_reason": "x"}, "lost_reason"),
        ({"currency": "dollars"}, "currency"),
        ({"expected_close_date": "tomorrow"}, "expected_close_date"),
        ({"person_id": pipedrive_id(data.MISSING_ID_INDEX)}, "person_id"),
    ):
        refused = pd(demo, "PATCH", path, json=body)
        assert refused.status_code == 400 and word in refused.json()["error"], body
    deleted = pd(demo, "PATCH", path, json={"is_deleted": True}).json()["data"]
    assert (deleted["status"], deleted["is_deleted"]) == ("deleted", True)
    listed = pd(
        demo, "GET", "/api/v2/deals", params={"status": "deleted", "updated_since": iso(since)}
    )
    assert [d["id"] for d in listed.json()["data"]] == [pipedrive_deal_id(0)]
    assert pd(demo, "PATCH", path, json={"title": "again"}).status_code == 404
    assert pd(demo, "PATCH", "/api/v2/deals/1", json={"title": "x"}).status_code == 404


# -- Lofty ---------------------------------------------------------------------------------


def lofty(demo: DemoServers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", LOFTY_AUTH)
    return httpx.request(method, url(demo, "lofty", path), headers=headers, **kwargs)


def test_lofty_put_lead_is_read_back_and_listed(demo):
    path = f"/v1.0/leads/{lofty_id(3)}"
    before = lofty(demo, "GET", path).json()
    assert before["leadId"] == lofty_id(3)
    body = {
        "firstName": "Ann",
        "emails": ["ann@example.com", "ann.work@example.com"],
        "stage": "Qualified",
        "source": "Open House",
        "assignedUserId": 10_000_000_514,
        "tagsAdd": ["Hot Lead", {"tagName": "Pre-Approved"}],
        "city": "Round Rock",
        "groups": ["VIP Clients"],  # documented, not simulated: ignored
    }
    answer = lofty(demo, "PUT", path, json=body)
    assert answer.status_code == 200
    lead = answer.json()
    assert (lead["firstName"], lead["lastName"]) == ("Ann", before["lastName"])
    assert lead["emails"] == ["ann@example.com", "ann.work@example.com"]
    assert (lead["stage"], lead["stageId"]) == ("Qualified", 30_003)
    assert (lead["source"], lead["leadSource"]) == ("Open House", 4)
    assert (lead["assignedUserId"], lead["assignedUser"]) == (10_000_000_514, "Amy Agent")
    assert [t["tagName"] for t in lead["tags"]] == [
        *(t["tagName"] for t in before["tags"]),
        "Hot Lead",
        "Pre-Approved",
    ]
    assert lead["tags"][: len(before["tags"])] == before["tags"]
    assert lead["city"] == "Round Rock" and "groups" not in lead
    assert lofty(demo, "GET", path).json() == lead
    page = lofty(demo, "GET", "/v1.0/leads", params={"limit": 5}).json()
    assert page["leads"][3] == lead
    replaced = lofty(demo, "PUT", path, json={"tags": ["Only"]}).json()
    assert [t["tagName"] for t in replaced["tags"]] == ["Only"]


def test_lofty_refusals_in_loftys_shape(demo):
    path = f"/v1.0/leads/{lofty_id(3)}"
    before = lofty(demo, "GET", path).json()
    for body, code in (
        ({"firstName": "A" * 31}, "PARAMETER_TOO_LONG"),
        ({"stage": "Pending"}, "INVALID_PARAMETER"),  # not one of this team's stages
        ({"emails": ["not-an-address"]}, "INVALID_PARAMETER"),
        ({"favouriteColour": "red"}, "INVALID_PARAMETER"),
        ({"assignedUserId": 1}, "INVALID_PARAMETER"),
    ):
        answer = lofty(demo, "PUT", path, json=body)
        assert answer.status_code == 400, body
        assert answer.json()["code"] == code and answer.json()["message"]
    assert lofty(demo, "PUT", path, content=b"nope").json()["code"] == "INVALID_PARAMETER"
    assert lofty(demo, "GET", path).json() == before
    for method in ("GET", "PUT"):
        missing = lofty(demo, method, f"/v1.0/leads/{lofty_id(3) + 1}", json={})
        assert missing.status_code == 404 and missing.json()["code"] == "LEAD_NOT_EXIST"
    idless = lofty(demo, "GET", f"/v1.0/leads/{lofty_id(data.MISSING_ID_INDEX)}")
    assert idless.status_code == 404
    refused = lofty(demo, "PUT", path, json={"firstName": "X"}, headers={})
    assert (refused.status_code, refused.json()["code"]) == (401, "BAD_CREDENTIALS")


def test_lofty_changes_behind_the_back_reach_both_listings(demo):
    demo.apply_change("lofty:leads", "delete", 1)
    page = lofty(demo, "GET", "/v1.0/leads", params={"limit": 3}).json()
    assert page["get_metadata"]["total"] == CONTACTS - 1
    assert [lead["leadId"] for lead in page["leads"]] == [lofty_id(0), lofty_id(2), lofty_id(3)]
    assert lofty(demo, "GET", f"/v1.0/leads/{lofty_id(1)}").status_code == 404
    moment = whole_second()
    demo.apply_change("lofty:transactions", "update", 0, patch={"transactionStatus": "Closed"})
    first = lofty(demo, "GET", "/v2.0/transactions", params={"pageSize": 1}).json()["pageData"][0]
    assert first["transactionStatus"] == "Closed" and first["updated"] >= int(moment) * 1000


# -- Brivity -------------------------------------------------------------------------------


def brivity(demo: DemoServers, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", BRIVITY_AUTH)
    return httpx.request(method, url(demo, "brivity", path), headers=headers, **kwargs)


def test_brivity_lead_becomes_a_listed_person(demo):
    lead = {
        "lead_type": "seller",
        "status": "hot",
        "source": "Open House",
        "first_name": "Sam",
        "last_name": "Seller",
        "email": "sam@example.com",
        "phone": "512-555-0177",
        "description": "Wants to list in spring",
        "unknown_field": "dropped",
    }
    answer = brivity(demo, "POST", "/api/v2/leads", json=lead)
    assert answer.status_code == 201
    person = answer.json()
    assert person["id"] == data.brivity_id(CONTACTS)
    assert (person["first_name"], person["last_name"]) == ("Sam", "Seller")
    assert (person["email_address"], person["phone_number"]) == ("sam@example.com", "512-555-0177")
    assert (person["lead_type"], person["status"], person["source"]) == (
        "seller",
        "hot",
        "Open House",
    )
    assert person["description"] == "Wants to list in spring" and person["tags"] == []
    assert person["city"] is None and "unknown_field" not in person
    people = brivity(demo, "GET", "/api/people").json()
    assert len(people) == CONTACTS + 1 and people[-1] == person
    assert len(brivity(demo, "GET", "/api/people", params={"limit": 10}).json()) == 10
    minimal = brivity(demo, "POST", "/api/v2/leads", json={"phone": "512-555-0100"}).json()
    assert (minimal["status"], minimal["first_name"]) == ("new", None)
    assert brivity(demo, "GET", "/api/people").json()[-1]["id"] == data.brivity_id(CONTACTS + 1)


def test_brivity_refusals_and_no_update_endpoint(demo):
    for body, field in (
        ({"first_name": "A", "email": "nope"}, "email"),
        ({"first_name": "A", "status": "scorching"}, "status"),
        ({"first_name": "A", "lead_type": "alien"}, "lead_type"),
        ({"source": "Web"}, "base"),
    ):
        answer = brivity(demo, "POST", "/api/v2/leads", json=body)
        assert answer.status_code == 422, body
        assert list(answer.json()["errors"]) == [field]
    assert brivity(demo, "POST", "/api/v2/leads", content=b"[]").status_code == 400
    refused = brivity(demo, "POST", "/api/v2/leads", json={"first_name": "A"}, headers={})
    assert (refused.status_code, refused.text) == (401, "Bad Credentials")
    assert brivity(demo, "PUT", "/api/v2/leads", json={"first_name": "A"}).status_code == 405
    assert brivity(demo, "PATCH", f"/api/people/{data.brivity_id(2)}", json={}).status_code == 404
    assert len(brivity(demo, "GET", "/api/people").json()) == CONTACTS
    demo.apply_change("brivity:people", "delete", 2)
    demo.apply_change("brivity:people", "update", 3, patch={"status": "cold"})
    people = brivity(demo, "GET", "/api/people", params={"limit": 3}).json()
    assert [p["id"] for p in people] == [data.brivity_id(i) for i in (0, 1, 3)]
    assert people[2]["status"] == "cold"


# -- the shared pieces ---------------------------------------------------------------------


def test_positions_skip_deleted_records_and_append_created_ones():
    overlay = Overlay()
    overlay.register(Target("t", 6, 10, lambda *a: {}))
    for _ in range(3):
        overlay.apply("t", "create")
    for index in (0, 3, 11):
        overlay.apply("t", "delete", index)
    positions = overlay.positions("t")
    assert positions.total == 6
    assert positions.indices(0, 100) == [1, 2, 4, 5, 10, 12]
    assert positions.indices(2, 5) == [4, 5, 10]
    assert positions.indices(5, 9) == [12] and positions.indices(6, 9) == []
