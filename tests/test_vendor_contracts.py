"""What each new connector sends and reads, checked against the vendor's documented contract
(../shared/docs/crm-apis.md) with respx, not against our own simulators (which are lenient
where the vendors are not: they accept any of several auth headers, and never list archived
objects unless asked)."""

from __future__ import annotations

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
from tests.conftest import make_settings

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
