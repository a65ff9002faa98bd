from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from crm_tui.config import Settings
from crm_tui.demo import data
from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS, Contact, Deal
from crm_tui.sources.base import SourceContext
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.followupboss import FollowUpBossSource
from crm_tui.sources.local import LocalSource
from crm_tui.sources.mapping import (
    LAYOUT,
    RecordBuilder,
    build_record,
    get_path,
    load_overrides,
    raw_json,
    to_amount,
    to_date,
    to_timestamp,
)
from crm_tui.sources.registry import CONNECTORS, build_source
from crm_tui.sources.topproducer import API_MAPS

NOW = "2026-11-25T00:00:00Z"


def source(name: str, **values) -> object:
    settings = Settings(
        _env_file=None,
        brivity_api_key="k",
        fub_api_key="k",
        topproducer_api_base_url="https://tp.example",
        topproducer_client_id="c",
        topproducer_client_secret="s",
        **values,
    )
    return build_source(name, SourceContext(settings, "alice"))


def test_brivity_person_maps_every_documented_field():
    raw = data.brivity_person(3, 40, 100)
    record = source("brivity").map_record("contacts", raw, NOW)
    assert isinstance(record, Contact)
    assert record.id == f"brivity:{raw['id']}"
    assert (record.first_name, record.last_name) == (raw["first_name"], raw["last_name"])
    assert record.email == raw["email_address"]
    assert record.phone == raw["phone_number"]
    assert (record.city, record.state, record.postal_code) == (
        raw["city"],
        raw["locality"],
        raw["postal_code"],
    )
    assert record.street == raw["street_address"]
    assert raw["lead_type"] in record.tags
    assert record.metadata == raw  # everything kept, unmapped fields included
    assert record.user_id == "alice" and record.synced_at == NOW


def test_followupboss_picks_the_primary_email_and_phone():
    raw = data.fub_person(3, 40, 100)
    raw["emails"] = [
        {"value": "old@x.com", "type": "work", "status": "Not Valid"},
        {"value": "Main@X.com", "type": "home", "isPrimary": 1},
    ]
    raw["phones"] = [{"value": "555-000-1111", "type": "work"}]
    record = source("followupboss").map_record("contacts", raw, NOW)
    assert record.email == "main@x.com"
    assert record.phone == "555-000-1111"
    assert record.remote_updated == raw["updated"]
    assert record.city == raw["addresses"][0]["city"]


def test_followupboss_deal_mapping():
    raw = data.fub_deal(3, 5, 100)
    record = source("followupboss").map_record("deals", raw, NOW)
    assert isinstance(record, Deal)
    assert record.amount == Decimal(raw["price"])
    assert record.stage == raw["stageName"]
    assert record.close_date == raw["projectedCloseDate"]
    assert record.contact_remote_id == str(raw["people"][0]["id"])


def test_topproducer_api_mapping():
    raw = data.tp_transaction(3, 5, 100)
    record = build_record("deals", "topproducer", "alice", API_MAPS["deals"], raw, NOW)
    assert record.property_address == raw["propertyAddress"]
    assert record.amount == Decimal(raw["salesPrice"])


def test_control_characters_are_stripped_at_ingest_everywhere():
    raw = {
        "id": 1,
        "firstName": "Esc\x1b]0;pwned\x07ape",
        "lastName": "C1\x9bX",
        "background": "note\x1b[2J",
    }
    record = source("followupboss").map_record("contacts", raw, NOW)
    assert record.first_name == "Esc]0;pwnedape"
    assert record.last_name == "C1X"
    assert "\x1b" not in record.raw and "\\u001b" not in record.raw
    assert record.metadata["background"] == "note[2J"


@pytest.mark.parametrize(
    "hostile",
    ["\x01", "\x08", "\x0c", "\x1b[2J", "\x7f", "\x85", "\x9b", "Jos\u00e9\x9b", "\x00"],
)
def test_raw_payload_loses_every_control_character(hostile):
    # one per branch of the fast check: \u00XX, \b, \f, DEL, C1 in ASCII and non-ASCII text
    text = raw_json({"id": 1, "note": f"a{hostile}b", "nested": [{"x": hostile}]})
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
    assert "\\u00" not in text and "\\b" not in text and "\\f" not in text
    clean_ascii = "".join(c for c in hostile if 0x20 <= ord(c) < 0x7F or ord(c) > 0x9F)
    assert f'"note":"a{clean_ascii}b"' in text


def test_raw_payload_without_controls_is_kept_byte_for_byte():
    raw = {"id": 1, "note": "back\\slash \\b not a control, tab\tand José"}
    assert raw_json(raw) == '{"id":1,"note":"back\\\\slash \\\\b not a control, tab\\tand José"}'


def test_markup_is_kept_as_text():
    raw = {"id": 1, "firstName": "[@click=app.quit]Bob[/]", "lastName": "[/oops]"}
    record = source("followupboss").map_record("contacts", raw, NOW)
    assert record.name == "[@click=app.quit]Bob[/] [/oops]"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"firstName": "No id"}, "missing id"),
        ({"id": None}, "missing id"),
        ({"id": "   "}, "missing id"),
        ({"id": {"nested": 1}}, "wrong type"),
        ({"id": True}, "missing id"),
        ([1, 2], "not an object"),
        ("text", "not an object"),
    ],
)
def test_invalid_contacts_say_why(raw, reason):
    with pytest.raises(InvalidRecord, match=reason):
        source("followupboss").map_record("contacts", raw, NOW)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"id": 1, "price": "a lot"}, "amount: not a number"),
        ({"id": 1, "price": [1]}, "amount: not a number"),
        ({"id": 1, "projectedCloseDate": "someday"}, "close_date: not a date"),
        ({"id": 1, "projectedCloseDate": 20261201}, "close_date: not a date"),
    ],
)
def test_uncoercible_deal_fields_are_invalid(raw, reason):
    with pytest.raises(InvalidRecord, match=reason):
        source("followupboss").map_record("deals", raw, NOW)


def test_numbers_as_strings_are_coerced():
    assert to_amount("$1,250,000.50") == Decimal("1250000.50")
    assert to_amount(650000) == Decimal(650000)
    assert to_amount(1.1) == Decimal("1.1")
    assert to_amount("") is None
    assert to_date("12/31/2026") == "2026-12-31"
    assert to_date("2026-12-31T10:00:00Z") == "2026-12-31"
    assert to_timestamp("2026-01-02T03:04:05+02:00") == "2026-01-02T01:04:05Z"
    assert to_timestamp("yesterday") is None


def test_deep_nesting_is_invalid_not_a_crash():
    nested: object = "x"
    for _ in range(5000):
        nested = {"a": nested}
    with pytest.raises(InvalidRecord, match="nested"):
        source("followupboss").map_record("contacts", {"id": 1, "deep": nested}, NOW)


def test_get_path():
    raw = {"a": [{"b": 1}, {"b": 2}], "c": None}
    assert get_path(raw, "a[1].b") == 2
    assert get_path(raw, "a[5].b") is None
    assert get_path(raw, "c.d") is None
    assert get_path(raw, "a.b") is None


def test_user_overrides_add_custom_fields(tmp_path):
    path = tmp_path / "mappings.toml"
    path.write_text('[followupboss.contacts]\ncompany = "customCompanyName"\n')
    overrides = load_overrides(path)
    settings = Settings(_env_file=None, fub_api_key="k")
    fub = FollowUpBossSource(SourceContext(settings, "alice", overrides=overrides))
    record = fub.map_record("contacts", {"id": 1, "customCompanyName": "Acme"}, NOW)
    assert record.company == "Acme"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[followupboss.contacts]\nnot_a_field = "x"\n', "unknown field"),
        ('[followupboss.leads]\nname = "x"\n', "contacts or deals"),
        ("[broken\n", "mappings.toml"),
    ],
)
def test_bad_overrides_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "mappings.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_overrides(path)


def test_every_connector_is_registered_and_declares_capabilities():
    assert set(CONNECTORS) == {
        "brivity",
        "topproducer",
        "followupboss",
        "hubspot",
        "pipedrive",
        "lofty",
        "local",
    }
    for name in CONNECTORS:
        src = source(name)
        assert src.streams(), name
        assert src.capabilities.contacts
    assert LocalSource.field_maps["contacts"]["remote_id"] == "id"


@pytest.mark.parametrize("kind", ["contacts", "deals"])
def test_every_mapped_field_lands_in_its_own_attribute(kind):
    """Records are built positionally: a field out of place would go unnoticed elsewhere."""
    special = {
        "remote_id": 7,
        "tags": ["a", "b"],
        "amount": "12.50",
        "currency": "eur",
        "probability": 40,
        "close_date": "2026-01-02",
        "remote_created": "2026-01-02T03:04:05Z",
        "remote_updated": "2026-02-03T04:05:06Z",
        "deleted": True,
    }
    targets = CONTACT_FIELDS if kind == "contacts" else DEAL_FIELDS
    skipped = ("id", "source", "user_id", "synced_at", "raw", "custom")
    mapped = [t for t in targets if t not in skipped]
    raw = {f"f_{t}": special.get(t, f"v-{t}") for t in mapped} | {"f_extra": "v-extra"}
    field_map = {t: f"f_{t}" for t in mapped} | {"custom.extra": "f_extra"}
    record = RecordBuilder(kind, field_map)("src", "u", raw, NOW)
    expected = {t: f"v-{t}" for t in mapped} | {
        "custom": {"extra": "v-extra"},
        "id": "src:7",
        "source": "src",
        "user_id": "u",
        "synced_at": NOW,
        "remote_id": "7",
        "remote_created": "2026-01-02T03:04:05Z",
        "remote_updated": "2026-02-03T04:05:06Z",
        "deleted": True,
    }
    if kind == "contacts":
        expected |= {"tags": ("a", "b"), "email": "v-email"}
    else:
        expected |= {
            "amount": Decimal("12.50"),
            "currency": "EUR",
            "probability": 40,
            "close_date": "2026-01-02",
        }
    assert {t: getattr(record, t) for t in expected} == expected
    assert record.metadata == raw


@pytest.mark.parametrize("kind, record_class", [("contacts", Contact), ("deals", Deal)])
def test_record_builder_layout_is_the_dataclass_field_order(kind, record_class):
    """RecordBuilder passes a record's fields positionally, in LAYOUT's order: a field added
    to Contact or Deal, or moved, must be placed there too."""
    assert LAYOUT[kind] == tuple(f.name for f in dataclasses.fields(record_class))


@pytest.mark.parametrize(
    ("properties", "status"),
    [
        # a custom pipeline: stage ids are numbers, the calculated flags say what happened
        ({"dealstage": "1056342", "hs_is_closed": "true", "hs_is_closed_won": "true"}, "won"),
        ({"dealstage": "1056343", "hs_is_closed": "true", "hs_is_closed_won": "false"}, "lost"),
        ({"dealstage": "1056341", "hs_is_closed": "false", "hs_is_closed_won": "false"}, "open"),
        # flags absent (an older portal, a mapping that dropped them): the default stage ids
        ({"dealstage": "closedwon"}, "won"),
        ({"dealstage": "closedlost"}, "lost"),
        ({"dealstage": "contractsent"}, "open"),
        ({"dealstage": None}, None),
    ],
)
def test_hubspot_deal_status_in_any_pipeline(properties, status):
    raw = {"id": "9", "properties": {"dealname": "12 Elm St", **properties}}
    record = source("hubspot").map_record("deals", raw, NOW)
    assert record.status == status
    assert record.stage == properties["dealstage"]


@pytest.mark.parametrize(
    "created",
    [1700000000000, "1700000000000", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.000+00:00"],
)
def test_lofty_lead_times_as_epoch_milliseconds_or_iso_text(created):
    raw = {"leadId": 5, "firstName": "Ann", "createTime": created}
    record = source("lofty").map_record("contacts", raw, NOW)
    assert record.remote_created == "2023-11-14T22:13:20Z"
    assert record.remote_updated == "2023-11-14T22:13:20Z"  # no updateTime: created
