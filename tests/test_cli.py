"""Every command's JSON shape and exit code, over a seeded store and against the demo."""

from __future__ import annotations

import csv
import io
import json
import stat
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crm_tui.cli import main
from crm_tui.demo import data
from crm_tui.demo.csvfiles import write_demo_csvs
from tests.helpers.env import DEMO_CONTACTS

#: The `cli` fixture: (exit code, parsed JSON or text, stderr).
Cli = Callable[..., tuple[int, Any, str]]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run crm-tui with a private data dir; returns (exit code, parsed JSON or text)."""
    monkeypatch.setenv("CRM_USER_ID", "alice")

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, object, str]:
        result = CliRunner().invoke(
            main, ["--data-dir", str(tmp_path / "data"), *args], env=env, catch_exceptions=False
        )
        out = result.stdout
        parsed: object = out
        if "--json" in args:
            parsed = json.loads(out)
        return result.exit_code, parsed, result.stderr

    return invoke


@pytest.fixture
def demo_env(demo_servers) -> dict[str, str]:
    return dict(demo_servers.env())


def test_version_and_help():
    runner = CliRunner()
    assert "crm-tui, version" in runner.invoke(main, ["--version"]).output
    commands = (
        "sync",
        "search",
        "status",
        "export",
        "import",
        "cached-data",
        "contacts",
        "deals",
        "clear-cache",
        "test-connection",
        "paths",
        "simulator",
    )
    for command in commands:
        assert "Example" in runner.invoke(main, [command, "--help"]).output, command
    for sub_command in ("topproducer", "brivity-transactions"):
        assert "Example" in runner.invoke(main, ["import", sub_command, "--help"]).output


def test_paths(cli, tmp_path):
    code, body, _ = cli("paths", "--json")
    assert code == 0
    assert body["data_dir"] == str(tmp_path / "data")
    assert body["database"].endswith("crm.sqlite3")
    assert "topproducer_import_dir" not in body  # a source's file settings, once set
    folder = tmp_path / "exports"
    code, body, _ = cli("paths", "--json", env={"TOPPRODUCER_IMPORT_DIR": str(folder)})
    assert body["topproducer_import_dir"] == str(folder)


def test_status_on_an_empty_cache(cli):
    code, body, _ = cli("status", "--json")
    assert code == 0
    assert set(body) == {"success", "timestamp", "status", "rateBudgets"}
    assert body["rateBudgets"] == {}  # nothing asked of any vendor yet
    assert body["status"]["brivity"] == {
        "status": "disabled",
        "lastSync": None,
        "contactCount": 0,
        "dealCount": 0,
        "lastError": None,
    }
    assert body["status"]["local"]["status"] == "idle"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("j", "Query must be at least 2 characters"),
        ("   x  ", "Query must be at least 2 characters"),
        ("foo:bar", "unknown filter 'foo'"),
    ],
)
def test_bad_queries_exit_2_with_the_guide_error(cli, query, message):
    code, body, _ = cli("search", query, "--json")
    assert code == 2
    assert body["success"] is False and message in body["error"]


def test_bad_query_without_json_is_one_line_on_stderr(cli):
    code, out, err = cli("search", "j")
    assert code == 2
    assert out == ""
    assert err.strip() == "error: Query must be at least 2 characters"


def test_configuration_errors_exit_3_and_name_the_variable(cli):
    code, body, _ = cli("status", "--json", env={"FUB_API_BASE_URL": "ftp://x"})
    assert code == 3
    assert "FUB_API_BASE_URL" in body["details"]


def test_sync_search_export_end_to_end(cli, demo_env, tmp_path):
    """One sync, then steps that each read what it cached: they share the sync rather than
    each paying for its own, so they run in this order in one test."""
    expected = data.expected_contacts(DEMO_CONTACTS)
    sync_reports_every_stream(cli, demo_env, expected)
    status_counts_the_synced_contacts(cli, demo_env, expected)
    search_for_bob_hits_only_bob(cli, demo_env)
    deals_lists_every_deal(cli, demo_env)
    csv_export_matches_the_cache(cli, demo_env, tmp_path / "contacts.csv", expected)
    xlsx_export_keeps_numbers_and_dates(cli, demo_env, tmp_path / "deals.xlsx")
    vcf_export_has_a_card_per_contact(cli, demo_env, tmp_path / "team.vcf", expected)


def sync_reports_every_stream(cli: Cli, env: dict[str, str], expected: int) -> None:
    code, body, _ = cli("sync", "--json", env=env)
    assert code == 0, body
    assert body["success"] is True
    assert body["message"] == "Sync initiated for all enabled CRM sources"
    assert body["results"]["followupboss"] == {
        "contacts": {"success": True, "count": expected},
        "deals": {"success": True, "count": data.deal_count(DEMO_CONTACTS)},
    }
    assert "synced_at" in body


def status_counts_the_synced_contacts(cli: Cli, env: dict[str, str], expected: int) -> None:
    _, status, _ = cli("status", "--json", env=env)
    assert status["status"]["brivity"]["contactCount"] == expected
    assert status["status"]["brivity"]["status"] == "idle"


def search_for_bob_hits_only_bob(cli: Cli, env: dict[str, str]) -> None:
    code, found, _ = cli("search", "bob", "--json", env=env)
    assert code == 0
    assert found["type"] == "contact" and found["query"] == "bob"
    assert found["total"] == sum(len(v) for v in found["results"].values())
    assert all(
        c["first_name"] == "[@click=app.quit]Bob[/]" or "bob" in json.dumps(c).lower()
        for hits in found["results"].values()
        for c in hits
    )


def deals_lists_every_deal(cli: Cli, env: dict[str, str]) -> None:
    _, deals, _ = cli("deals", "--source", "followupboss", "--json", env=env)
    assert deals["count"] == data.deal_count(DEMO_CONTACTS) == len(deals["deals"])


def csv_export_matches_the_cache(cli: Cli, env: dict[str, str], out: Path, expected: int) -> None:
    code, _, err = cli(
        "export",
        "--type",
        "contact",
        "--source",
        "brivity",
        "--format",
        "csv",
        "-o",
        str(out),
        env=env,
    )
    assert code == 0 and f"wrote {expected} contacts" in err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == expected
    _, cached, _ = cli("contacts", "--source", "brivity", "--json", env=env)
    by_id = {c["id"]: c for c in cached["contacts"]}
    for row in rows:
        original = by_id[row["id"]]
        assert row["email"] == (original["email"] or "")
        assert row["first_name"] == (original["first_name"] or "")


def xlsx_export_keeps_numbers_and_dates(cli: Cli, env: dict[str, str], xlsx: Path) -> None:
    code, _, _ = cli("export", "--type", "deal", "--format", "xlsx", "-o", str(xlsx), env=env)
    assert code == 0
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).active
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    first = dict(
        zip(header, [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))], strict=True)
    )
    _, all_deals, _ = cli("deals", "--json", env=env)
    original = next(d for d in all_deals["deals"] if d["id"] == first["id"])
    assert isinstance(first["amount"], int | float)  # a number cell, not text
    assert Decimal(str(first["amount"])) == Decimal(original["amount"])
    assert first["close_date"].date().isoformat() == original["close_date"]


def vcf_export_has_a_card_per_contact(
    cli: Cli, env: dict[str, str], vcf: Path, expected: int
) -> None:
    cli(
        "export",
        "--type",
        "contact",
        "--query",
        "source:followupboss",
        "--format",
        "vcf",
        "-o",
        str(vcf),
        env=env,
    )
    import vobject

    cards = list(vobject.readComponents(vcf.read_text(encoding="utf-8")))
    assert len(cards) == expected
    names = {card.fn.value for card in cards}
    assert "[@click=app.quit]Bob[/] Markup" in names
    assert all(card.version.value == "4.0" for card in cards)


def test_piped_output_has_no_ansi_and_no_progress(cli, demo_env):
    code, out, err = cli("sync", "followupboss", env=demo_env)
    assert code == 0
    assert "\x1b" not in out and "\x1b" not in err and "\r" not in err
    assert "Follow Up Boss" in out and "success" in out


def test_wrong_key_exits_3_and_keeps_secrets_out(cli, demo_env):
    env = {**demo_env, "FUB_API_KEY": "canary-wrong-key-999"}
    code, body, err = cli("sync", "followupboss", "--json", env=env)
    assert code == 3
    assert body["success"] is False
    assert "the API key was refused: check FUB_API_KEY in the environment" in json.dumps(body)
    assert "canary-wrong-key-999" not in json.dumps(body) + err


@pytest.mark.usefixtures("no_retry_sleep")
def test_unreachable_server_exits_4(cli, demo_env):
    env = {**demo_env, "FUB_API_BASE_URL": "http://127.0.0.1:9/v1", "CRM_HTTP_TIMEOUT_SECONDS": "1"}
    code, body, _ = cli("sync", "followupboss", "--json", env=env)
    assert code == 4
    error = body["results"]["followupboss"]["contacts"]["error"]
    assert error == "cannot connect to 127.0.0.1:9 (connection refused)"


def test_cached_data_clear_cache_and_test_connection(cli, demo_env):
    cli("sync", "brivity", "--json", env=demo_env)
    code, body, _ = cli("cached-data", "--source", "brivity", "--json", env=demo_env)
    assert code == 0
    assert set(body["data"]) == {"brivity"}
    assert body["data"]["brivity"]["syncStatus"] == "idle"
    assert len(body["data"]["brivity"]["contacts"]) == data.expected_contacts(DEMO_CONTACTS)

    code, body, _ = cli("clear-cache", "--source", "brivity", "--json", env=demo_env)
    assert body == {"success": True, "message": "Cache cleared for brivity"}
    code, body, _ = cli("cached-data", "--source", "brivity", "--json", env=demo_env)
    assert body["data"]["brivity"]["contacts"] == []

    code, body, _ = cli("test-connection", "followupboss", "--json", env=demo_env)
    assert code == 0
    assert body["results"]["followupboss"]["ok"] is True
    code, body, _ = cli(
        "test-connection", "brivity", "--json", env={**demo_env, "BRIVITY_API_KEY": "nope"}
    )
    assert code == 3
    assert "Bad Credentials" in body["results"]["brivity"]["message"]


def test_import_plan_then_apply(cli, tmp_path):
    files = write_demo_csvs(tmp_path / "exports", 50, 3)
    contacts_csv = files["topproducer_contacts"]
    with contacts_csv.open("a", encoding="utf-8") as handle:
        handle.write(",,no-name@x.co,,,,,,,,,\n")  # a row with no name and no id
    code, plan, _ = cli(
        "import",
        "topproducer",
        str(contacts_csv),
        str(files["topproducer_closings"]),
        "--dry-run",
        "--json",
    )
    assert code == 0
    contacts_plan, closings_plan = plan["plans"]
    assert (contacts_plan["type"], closings_plan["type"]) == ("contacts", "deals")
    assert contacts_plan["columnsMapped"]["first_name"] == "First Name"
    assert contacts_plan["rows"] == 51 and contacts_plan["valid"] == 51
    assert plan["applied"] == []
    code, body, _ = cli("contacts", "--source", "topproducer", "--json")
    assert body["count"] == 0  # dry run wrote nothing

    code, plan, _ = cli("import", "topproducer", str(contacts_csv), "--json")
    assert plan["applied"][0]["written"] == 51
    code, body, _ = cli("contacts", "--source", "topproducer", "--json")
    assert body["count"] == 51


def test_import_of_the_wrong_file_is_a_clear_error(cli, tmp_path):
    bad = tmp_path / "contacts.csv"
    bad.write_text("Email,Phone\na@b.c,1\n")
    code, body, _ = cli("import", "topproducer", str(bad), "--json")
    assert code == 2
    assert "missing required column(s): First Name or Last Name" in body["details"]


def test_json_export_to_stdout(cli, demo_env):
    cli("sync", "brivity", "--json", env=demo_env)
    result = CliRunner().invoke(
        main,
        ["export", "--type", "contact", "--format", "json"],
        env={**demo_env, "CRM_DATA_DIR": str(Path.cwd() / "d2")},
    )
    assert result.exit_code == 0
    assert json.load(io.StringIO(result.stdout))["count"] == 0


def test_duplicates_and_merge(cli, demo_env):
    assert cli("sync", "--json", env=demo_env)[0] == 0
    code, body, _ = cli("duplicates", "--json")
    assert code == 0 and body["total"] == len(body["clusters"]) > 0
    assert body["settled"] == body["rejected"] == [] and body["possible"]
    assert all(c["possible"] and c["confidence"] < 0.6 for c in body["possible"])
    spread = [len(c["sources"]) for c in body["clusters"] if not c["flagged"]]
    assert spread == sorted(spread, reverse=True)  # records in the most sources first
    first = body["clusters"][0]
    assert set(first) >= {"id", "members", "sources", "confidence", "evidence"}
    assert all(set(link["keys"]) & {"email", "phone"} for link in first["evidence"])

    sure = cli("duplicates", "--json", "--min-confidence", "0.95")[1]["clusters"]
    assert sure and all(c["confidence"] >= 0.95 for c in sure) and len(sure) < body["total"]
    only = cli("duplicates", "--json", "--source", "topproducer")[1]["clusters"]
    assert only and all("topproducer" in c["sources"] for c in only)

    code, merged, _ = cli("merge", first["id"], "--prefer", "followupboss", "--json")
    assert code == 0 and merged["created"] is True
    record = merged["record"]
    assert record["source"] == "local"
    assert record["metadata"]["linked_records"] == first["members"]
    fub = next(m for m in first["members"] if m.startswith("followupboss:"))
    fub_json = cli("contacts", "--source", "followupboss", "--limit", "10000", "--json")[1]
    fub_record = next(c for c in fub_json["contacts"] if c["id"] == fub)
    assert record["first_name"] == fub_record["first_name"]

    after = cli("duplicates", "--json")[1]
    assert after["total"] == body["total"] - 1  # the merged person left the list
    assert [c["id"] for c in after["settled"]] == [first["id"]]
    assert record["id"] in after["settled"][0]["members"]

    again = cli("merge", first["id"], "--json")[1]
    assert again["created"] is False and again["record"]["id"] == record["id"]
    code, body, _ = cli("merge", "p-nope", "--json")
    assert code == 2 and body["error"] == "Unknown cluster"
    code, body, _ = cli("merge", "--json")
    assert code == 2 and body["error"] == "Say what to merge"


def test_reject_and_merge_all_for_scripts(cli, demo_env):
    assert cli("sync", "--json", env=demo_env)[0] == 0
    before = cli("duplicates", "--json")[1]
    rejected = before["clusters"][1]
    code, body, _ = cli("reject", rejected["id"], "--json")
    assert code == 0 and body["state"] == "rejected"
    listed = cli("duplicates", "--json")[1]
    assert [c["id"] for c in listed["rejected"]] == [rejected["id"]]
    assert rejected["id"] not in {c["id"] for c in listed["clusters"]}
    assert listed["total"] == before["total"] - 1

    sure = [c for c in listed["clusters"] if c["confidence"] >= 0.95 and not c["flagged"]]
    code, plan, _ = cli("merge", "--all", "--min-confidence", "0.95", "--dry-run", "--json")
    assert code == 0 and plan["dry_run"] is True and plan["merged"] == []
    assert plan["people"] == len(sure) > 0
    assert {c["id"] for c in plan["clusters"]} == {c["id"] for c in sure}
    assert plan["records"] == sum(c["size"] for c in sure)
    assert cli("duplicates", "--json")[1]["total"] == listed["total"]  # nothing merged

    code, done, _ = cli("merge", "--all", "--min-confidence", "0.95", "--json")
    assert code == 0 and done["people"] == plan["people"] and done["records"] == plan["records"]
    assert {m["cluster"] for m in done["merged"]} == {c["id"] for c in sure}
    left = cli("duplicates", "--json")[1]
    assert left["total"] == listed["total"] - len(sure)
    assert len(left["settled"]) == len(sure)

    settled = {c["id"]: c["merge_id"] for c in left["settled"]}
    assert settled == {m["cluster"]: m["merge_id"] for m in done["merged"]}
    code, body, _ = cli("reject", done["merged"][1]["cluster"], "--json")
    assert code == 2 and body["error"] == "Merged already"

    undone = done["merged"][0]
    code, body, _ = cli("merge", "--undo", str(undone["merge_id"]), "--json")
    assert code == 0 and body["action"] == "removed"
    back = cli("duplicates", "--json")[1]
    assert undone["cluster"] in {c["id"] for c in back["clusters"]}
    assert len(back["settled"]) == len(sure) - 1
    code, body, _ = cli("merge", "--undo", str(undone["merge_id"]), "--json")
    assert code == 2 and body["error"] == "Already undone"

    code, body, _ = cli("reject", rejected["id"], "--undo", "--json")
    assert code == 0 and body["changed"] is True
    assert rejected["id"] in {c["id"] for c in cli("duplicates", "--json")[1]["clusters"]}
    code, body, _ = cli("reject", rejected["id"], "--undo", "--json")
    assert code == 0 and body["changed"] is False  # it was not marked: said so

    flagged = next(c for c in left["clusters"] if c["flagged"])
    code, body, _ = cli("merge", flagged["id"], "--json")
    assert code == 2 and body["error"] == "Check before merging"
    assert "names differ" in body["details"] and "--force" in body["details"]
    code, body, _ = cli("merge", flagged["id"], "--force", "--json")
    assert code == 0 and body["created"] is True


def test_sync_leaves_the_records_artifacts_ready_for_the_next_start(
    cli, demo_env, tmp_path, monkeypatch
):
    from crm_tui.store import CacheStore, Database

    code, body, _ = cli("sync", "brivity", "--json", env=demo_env)
    assert code == 0
    assert body["artifacts"]["settled"] == ["brivity contacts"]  # Brivity has no deals
    assert body["artifacts"]["seconds"] >= 0

    def refused(*args, **kwargs):
        raise AssertionError("an artifact built at start")

    monkeypatch.setattr(Database, "read_stream_lines", refused)
    monkeypatch.setattr(Database, "read_streams_lines", refused)
    (path,) = (tmp_path / "data").rglob("*.sqlite3")
    store = CacheStore("alice", Database(path))
    store.load_sync()  # every stream's artifact opened, none built
    assert store.count("contacts", "brivity") == data.expected_contacts(DEMO_CONTACTS)
    # the search segment and the duplicate keys were saved too: mapped in, none built
    from crm_tui.dedup import DuplicateFinder
    from crm_tui.dedup.sourcekeys import SourceKeys
    from crm_tui.search.segment import Segment
    from crm_tui.search.stored import store_index

    built: list[int] = []
    real_build = Segment.build
    monkeypatch.setattr(
        Segment, "build", lambda records: built.append(len(records)) or real_build(records)
    )
    monkeypatch.setattr(SourceKeys, "build", refused)
    index = store_index(store, store.shelf, {}, kinds=("contacts",))
    assert [n for n in built if n] == []
    segment = index.segment_of("contacts", "brivity")
    assert segment is not None and len(segment.records) == store.count("contacts", "brivity")
    assert DuplicateFinder("US", store.shelf).save_keys(store, ["brivity"]) is None
    store.db.close()
