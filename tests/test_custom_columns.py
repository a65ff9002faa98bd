"""Custom columns: declared in mappings.toml, coerced per type at ingest (a bad value is None,
never a failed record), kept in SQLite exactly, printed by to_json."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest

from crm_tui.custom_columns import NO_CUSTOM, Column, custom_text, custom_values
from crm_tui.local_crm import LocalCrm
from crm_tui.models import Contact, Deal
from crm_tui.sources.base import SourceContext
from crm_tui.sources.followupboss import FollowUpBossSource
from crm_tui.sources.mapping import RecordBuilder, load_mappings
from crm_tui.store import CacheStore, Database
from crm_tui.store.db import MIGRATIONS, _statements

NOW = "2026-11-25T00:00:00Z"
COLUMNS = {
    "lender": Column("lender", "Lender", "text"),
    "budget": Column("budget", "Budget", "money"),
    "rooms": Column("rooms", "Rooms", "number"),
    "moving": Column("moving", "Moving date", "date"),
    "areas": Column("areas", "Areas", "list"),
}
MAP = {"remote_id": "id", **{f"custom.{name}": f"c_{name}" for name in COLUMNS}}


def mapped(**payload: object) -> Contact:
    record = RecordBuilder("contacts", MAP, COLUMNS)("fub", "alice", {"id": 1, **payload}, NOW)
    assert isinstance(record, Contact)
    return record


@pytest.mark.parametrize(
    ("column", "given", "expected"),
    [
        ("lender", "  Quicken\x1b[31m Loans ", "Quicken[31m Loans"),
        ("lender", 42, "42"),
        ("lender", True, "true"),
        ("lender", {"name": "x"}, None),  # an object is not text
        ("lender", ["a"], None),
        ("budget", "$1,250,000.50", Decimal("1250000.50")),
        ("budget", 450000, Decimal(450000)),
        ("budget", 0.1, Decimal("0.1")),
        ("budget", "lots", None),
        ("budget", "1E+999999999", None),  # out of range: never handed to arithmetic
        ("budget", float("nan"), None),
        ("budget", True, None),
        ("rooms", "3", Decimal(3)),
        ("rooms", "three", None),
        ("moving", "12/15/2026", "2026-12-15"),
        ("moving", "2026-12-15T10:00:00Z", "2026-12-15"),
        ("moving", "2026-02-30", None),
        ("moving", 1765800000000, None),  # a number is not a date
        ("areas", "Austin, Round Rock,Austin", ("Austin", "Round Rock")),
        ("areas", ["North", " ", "South\x07"], ("North", "South")),
        ("areas", 78701, ("78701",)),
        ("areas", {"a": 1}, None),
    ],
)
def test_each_type_coerces_and_a_bad_value_is_none(column, given, expected):
    record = mapped(**{f"c_{column}": given})
    assert record.custom == {column: expected}
    assert record.id == "fub:1"  # the record itself never fails on a custom value


@pytest.mark.parametrize("empty", [None, "", "   ", [], {}])
def test_a_column_without_a_value_is_absent(empty):
    record = mapped(c_lender=empty, c_areas=empty)
    assert record.custom == {}
    assert record.custom is NO_CUSTOM  # one shared empty dict, whatever the count


def test_the_shared_empty_custom_cannot_be_filled():
    record = Contact("fub:1", "fub", "1", "alice")
    with pytest.raises(TypeError):
        record.custom["x"] = 1
    with pytest.raises(TypeError):
        record.custom.update(x=1)
    assert Contact("fub:2", "fub", "2", "alice").custom == {}


def test_an_undeclared_column_is_text():
    record = RecordBuilder("deals", {"remote_id": "id", "custom.mls": "mls"})(
        "fub", "alice", {"id": 5, "mls": 12345}, NOW
    )
    assert isinstance(record, Deal)
    assert record.custom == {"mls": "12345"}


def test_mappings_toml_declares_columns_and_maps_them(tmp_path):
    path = tmp_path / "mappings.toml"
    path.write_text(
        "[followupboss.contacts]\n"
        'company = "customCompanyName"\n'
        '"custom.lender" = "customLender"\n'
        'custom.budget = "customBudget"\n'  # unquoted: a dotted key, read the same
        'custom.mls = "mls"\n'
        "[columns.lender]\n"
        'label = "Lender"\n'
        'type = "text"\n'
        'note = "kept for later versions"\n'
        "[columns.budget]\n"
        'label = "Budget"\n'
        'type = "money"\n'
    )
    mappings = load_mappings(path)
    assert mappings.overrides["followupboss"]["contacts"] == {
        "company": "customCompanyName",
        "custom.lender": "customLender",
        "custom.budget": "customBudget",
        "custom.mls": "mls",
    }
    assert mappings.columns == {
        "lender": Column("lender", "Lender", "text"),
        "budget": Column("budget", "Budget", "money"),
        "mls": Column("mls", "Mls", "text"),  # mapped only: text, labelled from its name
    }
    from crm_tui.config import Settings

    settings = Settings(_env_file=None, fub_api_key="k")
    ctx = SourceContext(settings, "alice", overrides=mappings.overrides, columns=mappings.columns)
    raw = {"id": 1, "customLender": "Hilltop", "customBudget": "$650k?", "mls": 77}
    record = FollowUpBossSource(ctx).map_record("contacts", raw, NOW)
    assert record.custom == {"lender": "Hilltop", "budget": None, "mls": "77"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[followupboss.contacts]\n"custom.9lives" = "x"\n', "custom.9lives: a custom column"),
        ('[followupboss.contacts]\n"custom.a-b" = "x"\n', "custom.a-b: a custom column"),
        ('[followupboss.contacts]\ncustom = "x"\n', "custom: unknown field"),
        ('[followupboss.contacts]\ncompany = "a..b"\n', "company: not a path"),
        ('[followupboss.contacts]\ncompany = "a[x]"\n', "company: not a path"),
        ('[columns.lender]\ntype = "currency"\n', "type: 'currency' is not one of text"),
        ('[columns.lender]\nlabel = ""\n', "label: not a name"),
        ('[columns."my col"]\nlabel = "x"\n', "a custom column's name is"),
        ('columns = "lender"\n', "[columns] must hold one table per custom column"),
    ],
)
def test_bad_declarations_name_the_line_and_reason(tmp_path, text, reason):
    path = tmp_path / "mappings.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="line") as caught:
        load_mappings(path)
    assert reason in str(caught.value)


def test_stored_text_says_each_values_type():
    values = {"budget": Decimal("1250000.50"), "areas": ("a", "b"), "lender": "Q", "bad": None}
    text = custom_text(values)
    assert text == '{"budget":1250000.50,"areas":["a","b"],"lender":"Q","bad":null}'
    assert custom_values(text) == values
    assert custom_text({}) is None
    assert custom_values(None) is NO_CUSTOM
    assert custom_values("{not json") is NO_CUSTOM  # one damaged cell loads as no values


def test_custom_values_survive_the_database_exactly(open_db):
    db = open_db()
    record = mapped(c_budget="1,250,000.505", c_areas=["N", "S"], c_moving="2026-12-15")
    plain = mapped()
    db.replace_stream("alice", "fub", "contacts", [record])
    db.upsert_records("contacts", [Contact("fub:2", "fub", "2", "alice")])
    loaded = {r.id: r for r in db.load_records("alice", "contacts")}
    assert loaded["fub:1"].custom == {
        "budget": Decimal("1250000.505"),
        "areas": ("N", "S"),
        "moving": "2026-12-15",
    }
    assert loaded["fub:1"] == record
    assert loaded["fub:2"].custom is NO_CUSTOM and plain.custom is NO_CUSTOM
    stored = db._conn.execute("SELECT custom FROM contacts WHERE id = 'fub:2'").fetchone()
    assert stored == (None,)  # no values: NULL, as every empty value is stored
    db.close()


def test_to_json_adds_custom_and_keeps_every_other_key(tmp_path):
    record = mapped(c_budget="12.50", c_areas="a,b", c_lender="Q")
    data = record.to_json()
    assert data["custom"] == {"lender": "Q", "budget": "12.50", "areas": ["a", "b"]}
    assert json.loads(json.dumps(data))["custom"]["budget"] == "12.50"
    without = Contact("fub:2", "fub", "2", "alice").to_json()
    assert without["custom"] == {}
    assert set(data) == set(without)
    assert set(without) - {"custom"} == {
        *(f for f in Contact.__dataclass_fields__ if f not in ("raw", "custom")),
        "metadata",
        "name",
    }


def test_a_version_8_database_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v8.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:8]):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.execute(
        "INSERT INTO contacts (id, source, remote_id, user_id, first_name, tags, deleted, raw)"
        " VALUES ('brivity:1', 'brivity', '1', 'alice', 'Ann', '', 0, '{}')"
    )
    conn.close()
    db = Database(path)
    assert db.schema_version == 9
    (ann,) = db.load_records("alice", "contacts")
    assert ann.first_name == "Ann" and ann.custom is NO_CUSTOM
    db.close()


async def test_the_local_crm_keeps_custom_values(settings, open_db):
    db = open_db()
    store = CacheStore(settings.user_id, db)
    columns = {"budget": Column("budget", "Budget", "money")}
    crm = LocalCrm(store, SourceContext(settings, settings.user_id, db=db, columns=columns))
    added = await crm.add(
        "contacts", {"first_name": "Ana", "custom": {"budget": "450000", "notes": " hi\x1b "}}
    )
    assert added.custom == {"budget": Decimal(450000), "notes": "hi"}
    edited = await crm.edit(added.id, {"last_name": "Lee"})
    assert edited.custom == added.custom  # an edit of another field keeps them
    assert store.get("contacts", added.id).custom == added.custom
    with pytest.raises(ValueError, match="custom"):
        await crm.edit(added.id, {"custom": {"not a name": 1}})
    db.close()
