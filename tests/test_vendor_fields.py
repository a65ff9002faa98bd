"""Vendor field metadata (`Source.vendor_fields`): each connector's reading of its vendor's
documented answer (respx), malformed answers refused with a clear error, and the demo
simulators read over real loopback HTTP, merged into discovery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from crm_tui.config import Settings
from crm_tui.demo.pipedrive import BUDGET_FIELD, LEAD_SOURCE_FIELD, LENDER_FIELD, MLS_FIELD
from crm_tui.fields.service import connector, discover_stream
from crm_tui.sources.errors import RemoteError, SourceError
from crm_tui.sources.kit import VendorField
from crm_tui.sources.mapping import Mappings
from crm_tui.store import Database
from tests.helpers.env import make_settings

FUB = "https://api.followupboss.com/v1"
HUBSPOT = "https://api.hubapi.com"
PIPEDRIVE = "https://api.pipedrive.com"
SECRET = "sekrit-key-123"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        fub_api_key=SECRET,
        hubspot_access_token=SECRET,
        pipedrive_api_token=SECRET,
    )


@pytest.fixture
def router() -> Iterator[respx.Router]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def fields_of(settings: Settings, source: str, stream: str) -> list[VendorField]:
    async def run() -> list[VendorField]:
        src = connector(settings, source, Mappings())
        try:
            return await src.vendor_fields(stream)  # type: ignore[arg-type]
        finally:
            await src.aclose()

    return asyncio.run(run())


# -- Follow Up Boss: GET /v1/customFields ----------------------------------------------------


def test_fub_custom_fields_are_read_by_name_with_labels_over_pages(settings, router):
    first = {
        "_metadata": {"collection": "customfields", "total": 3, "next": "abc"},
        "customfields": [
            {"id": 1, "name": "customLender", "label": "Lender", "type": "text", "choices": []},
            {"id": 2, "name": "customClosingDate", "label": "Closing\x1b[2J Date", "type": "date"},
        ],
    }
    second = {
        "_metadata": {"collection": "customfields", "total": 3, "next": None},
        "customfields": [{"id": 3, "name": "custom Bad", "label": "Spaces", "type": "text"}],
    }
    route = router.get(f"{FUB}/customFields").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
    )
    found = fields_of(settings, "followupboss", "contacts")
    assert found == [
        VendorField("customLender", "Lender", "text"),
        VendorField("customClosingDate", "Closing[2J Date", "date"),  # ESC stripped
    ]  # a name that cannot be a field-map path step is not listed
    assert route.calls[1].request.url.params["next"] == "abc"
    assert fields_of(settings, "followupboss", "deals") == []  # not read: no request


def test_fub_malformed_custom_fields_are_a_clear_error(settings, router):
    body = {"_metadata": {"next": None}, "customfields": [{"id": 1, "label": "No name"}]}
    router.get(f"{FUB}/customFields").respond(200, json=body)
    with pytest.raises(RemoteError) as caught:
        fields_of(settings, "followupboss", "contacts")
    message = str(caught.value)
    assert "contacts field metadata" in message and "item 1" in message
    assert "no name string" in message and "nothing was used" in message
    assert SECRET not in message

    router.get(f"{FUB}/customFields").respond(200, json={"customfields": "nope"})
    with pytest.raises(RemoteError, match="no list of records"):
        fields_of(settings, "followupboss", "contacts")


def test_a_refused_key_is_an_auth_error_without_the_key(settings, router):
    router.get(f"{FUB}/customFields").respond(401, json={"errorMessage": "Bad key"})
    with pytest.raises(SourceError) as caught:
        fields_of(settings, "followupboss", "contacts")
    assert SECRET not in str(caught.value)


# -- HubSpot: GET /crm/v3/properties/{objectType} --------------------------------------------


def test_hubspot_properties_become_properties_paths(settings, router):
    body = {
        "results": [
            {"name": "email", "label": "Email", "type": "string", "hubspotDefined": True},
            {"name": "lender", "label": "Lender", "type": "string", "hubspotDefined": False},
            {"name": "old", "label": "Old", "type": "string", "archived": True},
            {"name": "price_range", "label": "[b]Price[/b]", "type": "number"},
        ]
    }
    router.get(f"{HUBSPOT}/crm/v3/properties/contacts").respond(200, json=body)
    assert fields_of(settings, "hubspot", "contacts") == [
        VendorField("properties.email", "Email", "string"),
        VendorField("properties.lender", "Lender", "string"),
        VendorField("properties.price_range", "[b]Price[/b]", "number"),  # markup literal
    ]


def test_hubspot_malformed_properties_are_a_clear_error(settings, router):
    router.get(f"{HUBSPOT}/crm/v3/properties/deals").respond(200, json={"results": [1, 2]})
    with pytest.raises(RemoteError, match=r"item 1 of the list .*not a JSON object"):
        fields_of(settings, "hubspot", "deals")


# -- Pipedrive: personFields / dealFields (v2, else v1) ----------------------------------------


HASH = "a" * 40


def test_pipedrive_custom_fields_are_read_by_hash_from_the_v2_fields_api(settings, router):
    body = {
        "success": True,
        "data": [
            {"field_code": "name", "field_name": "Name", "field_type": "varchar",
             "is_custom_field": False},
            {"field_code": HASH, "field_name": "Lender", "field_type": "varchar",
             "is_custom_field": True},
        ],
        "additional_data": {"next_cursor": None},
    }  # fmt: skip
    router.get(f"{PIPEDRIVE}/api/v2/personFields").respond(200, json=body)
    assert fields_of(settings, "pipedrive", "contacts") == [
        VendorField(f"custom_fields.{HASH}", "Lender", "varchar")
    ]


def test_pipedrive_falls_back_to_the_v1_fields_api(settings, router):
    router.get(f"{PIPEDRIVE}/api/v2/dealFields").respond(404, json={"success": False})
    body = {
        "success": True,
        "data": [
            {"id": 1, "key": "title", "name": "Title", "field_type": "varchar"},
            {"id": 2, "key": HASH, "name": "MLS number", "field_type": "varchar"},
        ],
        "additional_data": {"pagination": {"more_items_in_collection": False}},
    }
    v1 = router.get(f"{PIPEDRIVE}/api/v1/dealFields").respond(200, json=body)
    assert fields_of(settings, "pipedrive", "deals") == [
        VendorField(f"custom_fields.{HASH}", "MLS number", "varchar")
    ]
    assert v1.called and v1.calls[0].request.headers["x-api-token"] == SECRET


def test_pipedrive_malformed_fields_are_a_clear_error(settings, router):
    body = {"success": True, "data": [{"field_type": "varchar"}], "additional_data": {}}
    router.get(f"{PIPEDRIVE}/api/v2/personFields").respond(200, json=body)
    with pytest.raises(RemoteError, match="no field_code or key string"):
        fields_of(settings, "pipedrive", "contacts")


# -- the demo simulators over loopback -------------------------------------------------------


def test_the_simulators_serve_their_field_metadata(demo_settings):
    fub = {f.path: f for f in fields_of(demo_settings, "followupboss", "contacts")}
    assert fub["customLender"] == VendorField("customLender", "Lender", "text")
    assert fub["customPriceRange"].type == "number"
    assert fub["customClosingDate"].type == "date"

    hubspot = {f.path: f for f in fields_of(demo_settings, "hubspot", "contacts")}
    assert hubspot["properties.lender"].label == "Lender"
    assert hubspot["properties.price_range"].type == "number"
    assert hubspot["properties.firstname"].label == "First Name"
    assert "properties.dealname" in {f.path for f in fields_of(demo_settings, "hubspot", "deals")}

    pipedrive = {f.path: f.label for f in fields_of(demo_settings, "pipedrive", "contacts")}
    assert pipedrive == {
        f"custom_fields.{LEAD_SOURCE_FIELD}": "Lead source",
        f"custom_fields.{BUDGET_FIELD}": "Budget",
        f"custom_fields.{LENDER_FIELD}": "Lender",
    }
    deals = {f.path for f in fields_of(demo_settings, "pipedrive", "deals")}
    assert f"custom_fields.{MLS_FIELD}" in deals
    assert fields_of(demo_settings, "lofty", "contacts") == []  # Lofty documents no such list


def test_discovery_merges_the_vendor_labels_with_the_cached_payloads(demo_settings):
    from crm_tui.cli import main  # noqa: F401  (the CLI registers its commands)
    from tests.helpers.field_mapping import cache, fub_people

    db = Database(demo_settings.database_path)
    try:
        people = fub_people()
        cache(db, demo_settings, "followupboss", "contacts", people)
        vendor = fields_of(demo_settings, "followupboss", "contacts")
        found = discover_stream(db, demo_settings, "followupboss", "contacts", vendor=vendor)
    finally:
        db.close()
    lender = next(f for f in found.fields if f.path == "customLender")
    assert lender.vendor_label == "Lender"
    assert lender.filled == sum("customLender" in p for p in people)


async def test_a_hubspot_property_mapped_to_a_column_is_asked_for_at_the_next_sync(
    demo_settings, demo_servers
):
    """HubSpot sends only the properties named in `properties=`: once `custom.lender` reads
    `properties.lender`, the next sync asks for it and the column fills."""
    from crm_tui.custom_columns import Column
    from crm_tui.demo import data
    from crm_tui.demo.hubspot import hubspot_contact
    from crm_tui.fields.service import save
    from crm_tui.store import CacheStore
    from crm_tui.sync.engine import SyncEngine

    db = Database(demo_settings.database_path)
    store = CacheStore(demo_settings.user_id, db)
    engine = SyncEngine(demo_settings, store)
    try:
        await engine.sync_source("hubspot")
        before = store.records("contacts", "hubspot")
        assert before and all("lender" not in r.custom for r in before)
        assert all("lender" not in r.metadata.get("properties", {}) for r in before[:50])

        column = Column("lender", "Lender", "text")
        await asyncio.to_thread(
            save, db, demo_settings, "hubspot", "contacts", "custom.lender",
            "properties.lender", column,
        )  # fmt: skip
        await engine.reload_mappings()
        await engine.sync_source("hubspot", full=True)
        got = {r.remote_id: r.custom.get("lender") for r in store.records("contacts", "hubspot")}
    finally:
        await engine.aclose()
        db.close()
    n, seed = demo_servers.contacts, demo_servers.seed
    want = {}
    for i in range(n):
        raw = hubspot_contact(seed, i, n)
        if "id" in raw:
            want[raw["id"]] = raw["properties"]["lender"]
    assert got == want
    assert sum(v is not None for v in got.values()) > n // 3  # a good share filled
    assert data.HOSTILE_LENDER in got.values()  # markup kept as text, shown literally


def test_the_fields_command_merges_the_vendor_list_when_asked(demo_settings, demo_servers):
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        **demo_servers.env(),
        "CRM_DATA_DIR": str(demo_settings.data_dir),
        "CRM_USER_ID": demo_settings.user_id,
    }

    def crm(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "crm_tui", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    plain = json.loads(crm("fields", "pipedrive", "--json").stdout)
    assert all(f["vendorLabel"] is None for f in plain["fields"])  # no request made
    listed = crm("fields", "pipedrive", "--vendor", "--json")
    assert listed.returncode == 0, listed.stderr
    labels = {f["path"]: f["vendorLabel"] for f in json.loads(listed.stdout)["fields"]}
    assert labels[f"custom_fields.{LENDER_FIELD}"] == "Lender"
    human = crm("fields", "followupboss", "--vendor")
    assert human.returncode == 0, human.stderr
    assert human.stdout.split()[:3] == ["PATH", "LABEL", "TYPES"]
    assert any(line.split()[:2] == ["customLender", "Lender"] for line in human.stdout.splitlines())
    env["HUBSPOT_ACCESS_TOKEN"] = "wrong-token-4711"  # one the portal refuses
    refused = crm("fields", "hubspot", "--vendor", "--json")
    assert refused.returncode == 3, refused.stdout
    assert json.loads(refused.stdout)["success"] is False
    assert "wrong-token-4711" not in refused.stdout + refused.stderr
