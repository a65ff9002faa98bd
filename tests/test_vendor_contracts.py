"""What each new connector sends and reads, checked against the vendor's documented contract
(../shared/docs/crm-apis.md) with respx, not against our own simulators (which are lenient
where the vendors are not: they accept any of several auth headers, and never list archived
objects unless asked)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from crm_tui.sources.base import SourceContext
from crm_tui.sources.http import RateBudget
from crm_tui.sources.hubspot import HubSpotSource, properties_read
from crm_tui.sources.lofty import LoftySource
from crm_tui.sources.mapping import load_overrides
from crm_tui.sources.pipedrive import PipedriveSource
from tests.helpers.env import make_settings

HUBSPOT = "https://api.hubapi.test"
PIPEDRIVE = "https://acme.pipedrive.test"
LOFTY = "https://api.lofty.test"


def source(kind, tmp_path: Path, overrides: dict | None = None, **values: str):
    settings = make_settings(tmp_path, **values)
    return kind(SourceContext(settings, "alice", overrides=overrides or {}))


async def first_page(connector, stream: str) -> list:
    pages = connector.read(stream)
    try:
        page = await anext(pages)
    finally:
        await pages.aclose()
        await connector.aclose()
    return page.records


def hubspot(tmp_path: Path, overrides: dict | None = None) -> HubSpotSource:
    return source(
        HubSpotSource,
        tmp_path,
        overrides,
        hubspot_access_token="pat-na1-secret",
        hubspot_api_base_url=HUBSPOT,
    )


@respx.mock
async def test_hubspot_asks_for_every_property_its_maps_read_the_users_included(tmp_path):
    mappings = tmp_path / "mappings.toml"
    mappings.write_text('[hubspot.contacts]\ncompany = "properties.employer_name"\n')
    connector = hubspot(tmp_path, load_overrides(mappings))
    route = respx.get(f"{HUBSPOT}/crm/v3/objects/contacts").respond(json={"results": []})
    await first_page(connector, "contacts")
    asked = set(route.calls[0].request.url.params["properties"].split(","))
    for spec in connector.maps["contacts"].values():
        for path in spec if isinstance(spec, tuple) else (spec,):
            if isinstance(path, str) and path.startswith("properties."):
                assert path.removeprefix("properties.") in asked, path
    assert "employer_name" in asked
    request = route.calls[0].request
    assert request.headers["authorization"] == "Bearer pat-na1-secret"
    assert request.url.params["limit"] == "100"


def test_hubspot_deals_ask_for_what_the_status_and_probability_are_read_from(tmp_path):
    deals = properties_read("deals", hubspot(tmp_path).maps["deals"])
    assert {"hs_is_closed", "hs_is_closed_won", "dealstage", "hs_deal_stage_probability"} <= set(
        deals
    )


@respx.mock
async def test_hubspot_archived_objects_are_not_records(tmp_path):
    respx.get(f"{HUBSPOT}/crm/v3/objects/contacts").respond(
        json={
            "results": [
                {"id": "1", "archived": False, "properties": {"firstname": "Ann"}},
                {"id": "2", "archived": True, "properties": {"firstname": "Gone"}},
            ]
        }
    )
    records = await first_page(hubspot(tmp_path), "contacts")
    assert [r["id"] for r in records] == ["1"]


@pytest.mark.parametrize(
    ("kind", "headers", "limit", "window", "remaining"),
    [
        (
            HubSpotSource,
            {
                "X-HubSpot-RateLimit-Max": "190",
                "X-HubSpot-RateLimit-Remaining": "7",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Daily-Remaining": "49000",
            },
            190,
            10.0,
            7,
        ),
        (
            PipedriveSource,
            {"X-RateLimit-Limit": "80", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "2"},
            80,
            2.0,
            3,
        ),
        (
            LoftySource,
            {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "12"},
            500,
            60.0,
            12,
        ),
    ],
)
def test_each_vendors_rate_headers_are_read(kind, headers, limit, window, remaining):
    budget = RateBudget(headers=kind.rate_headers)
    budget.observe(httpx.Headers(headers))
    assert (budget.limit, budget.window, budget._remaining) == (limit, window, remaining)


def test_a_spent_hubspot_day_is_told_from_a_burst():
    budget = RateBudget(headers=HubSpotSource.rate_headers)
    spent = httpx.Headers({"X-HubSpot-RateLimit-Daily-Remaining": "0"})
    assert budget.daily_spent(spent)
    assert not budget.daily_spent(httpx.Headers({"X-HubSpot-RateLimit-Daily-Remaining": "5"}))


@respx.mock
async def test_pipedrive_sends_its_token_header_and_nothing_else(tmp_path):
    connector = source(
        PipedriveSource,
        tmp_path,
        pipedrive_api_token="pd-secret",
        pipedrive_api_base_url=PIPEDRIVE,
    )
    route = respx.get(f"{PIPEDRIVE}/api/v2/persons").respond(
        json={"success": True, "data": [{"id": 1, "name": "Ann Lee"}], "additional_data": {}}
    )
    records = await first_page(connector, "contacts")
    request = route.calls[0].request
    assert request.headers["x-api-token"] == "pd-secret"
    assert "authorization" not in request.headers and "api_token" not in request.url.params
    assert [r["id"] for r in records] == [1]


@respx.mock
async def test_lofty_sends_a_token_scheme_authorization(tmp_path):
    connector = source(
        LoftySource, tmp_path, lofty_api_key="lofty-secret", lofty_api_base_url=LOFTY
    )
    route = respx.get(f"{LOFTY}/v1.0/leads").respond(
        json={"leads": [{"leadId": 5, "firstName": "Ann"}], "_metadata": {"total": 1}}
    )
    await first_page(connector, "contacts")
    assert route.calls[0].request.headers["authorization"] == "token lofty-secret"


def test_a_records_page_in_the_vendors_web_app_where_the_vendor_has_one():
    from crm_tui.models import Contact
    from crm_tui.sources.brivity import BrivitySource
    from crm_tui.sources.followupboss import FollowUpBossSource

    def contact(source: str, raw: str = "{}") -> Contact:
        return Contact(id=f"{source}:42", source=source, remote_id="42", user_id="u", raw=raw)

    assert FollowUpBossSource.web_url(contact("followupboss")) == (
        "https://app.followupboss.com/2/people/view/42"
    )
    assert PipedriveSource.web_url(contact("pipedrive")) == "https://app.pipedrive.com/person/42"
    linked = '{"brivity_contact_detail_url": "https://app.brivity.com/people/42"}'
    assert BrivitySource.web_url(contact("brivity", linked)) == "https://app.brivity.com/people/42"
    hostile = '{"brivity_contact_detail_url": "javascript:alert(1)"}'
    assert BrivitySource.web_url(contact("brivity", hostile)) is None
    for bad in ("https://x.com/\u001b]0;pwned\u0007", "https://x.com/a b", 'https://x.com/"'):
        payload = json.dumps({"brivity_contact_detail_url": bad})
        assert BrivitySource.web_url(contact("brivity", payload)) is None  # never to a screen
    assert HubSpotSource.web_url(contact("hubspot")) is None  # no portal id: no URL


def test_a_source_is_configured_once_its_required_settings_are_set(tmp_path):
    assert not HubSpotSource.is_configured(make_settings(tmp_path))
    assert HubSpotSource.missing(make_settings(tmp_path)) == ("HUBSPOT_ACCESS_TOKEN",)
    assert HubSpotSource.is_configured(make_settings(tmp_path, hubspot_access_token="x"))


@respx.mock
async def test_one_http_client_per_source_for_all_its_streams_closed_once(tmp_path):
    connector = hubspot(tmp_path)
    respx.get(f"{HUBSPOT}/crm/v3/objects/contacts").respond(json={"results": []})
    respx.get(f"{HUBSPOT}/crm/v3/objects/deals").respond(json={"results": []})
    assert connector.client_in_use is None  # built on first use only
    seen = set()
    for stream in ("contacts", "deals"):
        pages = connector.read(stream)
        await anext(pages)
        await pages.aclose()
        assert connector.client_in_use is not None
        seen.add(id(connector.client_in_use))
    assert len(seen) == 1
    await connector.aclose()
    assert connector.client_in_use is None
