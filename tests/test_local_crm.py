"""The local CRM from the CLI: validation per field, changes seen at once, users apart."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from crm_tui.cli import main
from crm_tui.local_crm import ValidationFailed, validate


@pytest.fixture
def cli(tmp_path):
    def invoke(*args: str, user: str = "alice") -> tuple[int, dict]:
        result = CliRunner().invoke(
            main, ["--data-dir", str(tmp_path / "data"), *args, "--json"], env={"CRM_USER_ID": user}
        )
        return result.exit_code, json.loads(result.stdout)

    return invoke


@pytest.mark.parametrize(
    ("kind", "fields", "errors"),
    [
        ("contacts", {"email": "x@"}, {"email", "first_name"}),
        ("contacts", {"first_name": "A", "phone": "12"}, {"phone"}),
        ("contacts", {"first_name": "A", "email": "no-at-sign"}, {"email"}),
        ("contacts", {"first_name": "A", "colour": "red"}, {"colour"}),
        ("deals", {"amount": "-5"}, {"amount", "name"}),
        ("deals", {"name": "n", "amount": "lots"}, {"amount"}),
        ("deals", {"name": "n", "probability": "101"}, {"probability"}),
        ("deals", {"name": "n", "close_date": "31/02/2026"}, {"close_date"}),  # no such day
        ("deals", {"name": "n", "currency": "dollars"}, {"currency"}),
    ],
)
def test_every_bad_field_is_named(kind, fields, errors):
    with pytest.raises(ValidationFailed) as info:
        validate(kind, fields)
    assert set(info.value.errors) == errors


def test_valid_input_is_normalised():
    contact = validate(
        "contacts",
        {
            "first_name": " Ana\x1b ",
            "phone": "512-555-0101",
            "email": "Ana@Example.COM",
            "tags": ["a", " ", "b"],
        },
    )
    assert contact["first_name"] == "Ana"
    assert contact["phone"] == "512-555-0101" and contact["phone_e164"] == "+15125550101"
    assert contact["email"] == "Ana@example.com"
    assert contact["tags"] == ["a", "b"]
    deal = validate(
        "deals",
        {
            "name": "n",
            "amount": "$1,250,000.50",
            "currency": "eur",
            "probability": "40",
            "close_date": "2026-12-31",
        },
    )
    assert (deal["amount"], deal["currency"], deal["probability"]) == ("1250000.50", "EUR", 40)


def test_invalid_input_saves_nothing(cli):
    code, body = cli("local", "add-contact", "--first-name", "Ana", "--email", "nope")
    assert code == 2 and "email:" in body["details"]
    code, body = cli("contacts", "--source", "local")
    assert body["count"] == 0


def test_create_edit_delete_are_seen_by_search(cli):
    code, body = cli(
        "local",
        "add-contact",
        "--first-name",
        "Zelda",
        "--last-name",
        "Quinn",
        "--phone",
        "(512) 555-0199",
        "--tag",
        "buyer",
    )
    assert code == 0
    record_id = body["record"]["id"]
    assert body["record"]["metadata"]["phone_e164"] == "+15125550199"
    code, found = cli("search", "zelda")
    assert [c["id"] for c in found["results"]["local"]] == [record_id]

    code, body = cli("local", "edit", record_id, "--last-name", "Ramos", "--status", "client")
    assert code == 0 and body["record"]["last_name"] == "Ramos"
    code, found = cli("search", "ramos status:client")
    assert found["total"] == 1
    code, found = cli("search", "quinn")
    assert found["total"] == 0

    code, body = cli("local", "delete", record_id)
    assert code == 0
    code, found = cli("search", "zelda")
    assert found["total"] == 0
    code, body = cli("local", "delete", record_id)
    assert code == 2 and "no local record" in body["details"]


def test_users_see_only_their_own_records(cli, tmp_path):
    cli("local", "add-contact", "--first-name", "Alice-Only", user="alice")
    cli("local", "add-deal", "--name", "Bob Street 1", "--amount", "10", user="bob")
    for user, mine, theirs in (
        ("alice", "alice-only", "bob street"),
        ("bob", "bob street", "alice-only"),
    ):
        kind = "contact" if mine == "alice-only" else "deal"
        other = "deal" if kind == "contact" else "contact"
        assert cli("search", mine, "--type", kind, user=user)[1]["total"] == 1
        assert cli("search", theirs, "--type", other, user=user)[1]["total"] == 0
        cached = cli("cached-data", user=user)[1]["data"]["local"]
        assert len(cached["contacts"]) + len(cached["deals"]) == 1
        status = cli("status", user=user)[1]["status"]["local"]
        assert status["contactCount"] + status["dealCount"] == 1
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path / "data"), "export", "--type", "contact", "--format", "json"],
        env={"CRM_USER_ID": "bob"},
    )
    assert json.loads(result.stdout)["count"] == 0


def test_a_deals_contact_is_taken_as_the_app_shows_it_or_bare():
    from crm_tui.local_crm import validate

    for typed in ("local:12", "12", " local:12 "):
        assert (
            validate("deals", {"name": "Oak", "contact_remote_id": typed})["contact_remote_id"]
            == "12"
        )


async def test_local_writes_and_reads_never_touch_the_database_on_the_event_loop(tmp_path, open_db):
    import threading

    from crm_tui.local_crm import LocalCrm
    from crm_tui.sources.base import SourceContext
    from crm_tui.store import CacheStore
    from tests.helpers.env import make_settings

    settings = make_settings(tmp_path)
    db = open_db()
    called: list[tuple[str, bool]] = []
    loop_thread = threading.current_thread()
    for name in ("local_record", "save_local_record", "delete_local_record"):
        real = getattr(db, name)

        def spy(*args, _real=real, _name=name):
            called.append((_name, threading.current_thread() is loop_thread))
            return _real(*args)

        setattr(db, name, spy)
    local = LocalCrm(CacheStore("alice", db), SourceContext(settings, "alice", db=db))
    try:
        made = await local.add("contacts", {"first_name": "Ana"})
        assert (await local.edit(made.id, {"last_name": "Lee"})).name == "Ana Lee"
        await local.delete(made.id)
        assert local.store.get("contacts", made.id) is None
    finally:
        db.close()
    assert {name for name, _ in called} == {
        "local_record",
        "save_local_record",
        "delete_local_record",
    }
    assert not [name for name, on_loop in called if on_loop]


def test_a_local_record_is_found_by_its_key_not_by_a_walk_through_every_row(backing, open_db):
    from crm_tui.store.local_rows import BY_ID

    db = open_db()
    try:
        if backing.kind == "sqlite":
            plan = db._conn.execute("EXPLAIN QUERY PLAN " + BY_ID, ("alice", "a", "b", 1))
            assert [row[-1] for row in plan.fetchall()] == [
                "SEARCH local_records USING INDEX sqlite_autoindex_local_records_1"
                " (user_id=? AND kind=? AND id=?)"
            ]
        else:  # an empty table is walked whatever the indexes: ask whether the key can serve
            db._conn.execute("SET enable_seqscan = off")
            (plan,) = db._conn.execute("EXPLAIN " + BY_ID, ("alice", "a", "b", 1)).fetchall()[0]
            assert "Index Scan using local_records_pkey" in plan, plan
        ids = db.add_local_records("alice", "deals", [{"name": "Elm St"}], "2026-01-01")
        kind, row = db.local_record("alice", ids[0])
        assert (kind, row["name"]) == ("deals", "Elm St")
        with pytest.raises(KeyError):
            db.local_record("bob", ids[0])
    finally:
        db.close()
