"""Arbitrary payloads and bytes: a record, a quarantined one, or a clear import error."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_tui.config import Settings
from crm_tui.models import Contact, Deal
from crm_tui.sources.base import SourceContext
from crm_tui.sources.brivity import TRANSACTION_REPORT
from crm_tui.sources.csv_import import parse_csv
from crm_tui.sources.errors import ImportFileError, InvalidRecord
from crm_tui.sources.mapping import build_record
from crm_tui.sources.registry import CONNECTORS, build_source
from crm_tui.sources.topproducer import CLOSINGS_EXPORT, CONTACTS_EXPORT, CSV_MAPS

CONTROL = set(range(0x00, 0x09)) | set(range(0x0B, 0x20)) | set(range(0x7F, 0xA0))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=50),
    st.text(max_size=5).map(lambda s: s * 1000),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
KEYS = [
    "id",
    "first_name",
    "firstName",
    "lastName",
    "email",
    "email_address",
    "emails",
    "phones",
    "addresses",
    "tags",
    "price",
    "projectedCloseDate",
    "stageName",
    "people",
    "salesPrice",
    "closeDate",
    "propertyAddress",
    "created",
    "updated",
]
payloads = st.one_of(json_values, st.dictionaries(st.sampled_from(KEYS), json_values))

SETTINGS = Settings(
    _env_file=None,
    brivity_api_key="k",
    fub_api_key="k",  # type: ignore[call-arg]
    topproducer_api_base_url="https://tp.example",
    topproducer_client_id="c",
    topproducer_client_secret="s",
)
SOURCES = [build_source(name, SourceContext(SETTINGS, "u")) for name in CONNECTORS]


def assert_clean(record: Contact | Deal) -> None:
    for value in vars_of(record):
        if isinstance(value, str):
            assert not any(ord(c) in CONTROL and c not in "\t\n" for c in value), value
    json.loads(record.raw)  # the payload is always valid JSON


def vars_of(record: Contact | Deal) -> list[object]:
    return [getattr(record, f) for f in type(record).__dataclass_fields__]


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_every_mapper_maps_or_quarantines(payload):
    for source in SOURCES:
        for stream in ("contacts", "deals"):
            try:
                record = source.map_record(stream, payload, "2026-01-01T00:00:00Z")
            except InvalidRecord as exc:
                assert str(exc)  # a reason, always
                continue
            assert record.id == f"{source.name}:{record.remote_id}"
            assert_clean(record)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400),
    st.sampled_from([b"", b"\xef\xbb\xbf"]),
    st.sampled_from([CONTACTS_EXPORT, CLOSINGS_EXPORT, TRANSACTION_REPORT]),
)
def test_any_bytes_parse_or_fail_clearly(data, bom, spec):
    header = b"First Name;Last Name;Email\n" if spec is CONTACTS_EXPORT else b"Address,Status\n"
    for blob in (data, bom + header + data):
        try:
            table = parse_csv(blob, spec)
        except ImportFileError as exc:
            assert exc.error.startswith("Cannot import") and exc.details
            continue
        kind = "contacts" if spec is CONTACTS_EXPORT else "deals"
        field_map = CSV_MAPS[kind]
        for row in table.rows:
            try:
                record = build_record(kind, "topproducer", "u", field_map, row, "x")
            except InvalidRecord:
                continue
            assert_clean(record)
