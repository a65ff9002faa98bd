"""The CLI of two-way sync: `edit`, `note`, `lead create`, `outbox` and the sync that sends
first, run in-process against Follow Up Boss's documented contract (respx). Every run checks
that neither secret (nor the Basic credentials made of the key) reaches stdout or stderr."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from crm_tui.cli import main
from tests.helpers.writeback import person as fub_person

FUB = "https://fub.example/v1"
KEY = "canary-key-7f3a9c"
SYSTEM_KEY = "canary-system-key-d41d8c"
SECRETS = (KEY, SYSTEM_KEY, base64.b64encode(f"{KEY}:".encode()).decode())
pytestmark = pytest.mark.usefixtures("no_retry_sleep")
Crm = Callable[..., Result]


def person(i: int, **fields: object) -> dict:
    """The two-way sync tests' person, with one phone."""
    return fub_person(i, **{"phones": [ONE_PHONE], **fields})


ONE_PHONE = {"value": "(555) 201-0001", "type": "mobile", "isPrimary": 1}


def people(*records: dict) -> dict:
    return {"_metadata": {"collection": "people", "next": None}, "people": list(records)}


STAGES = {
    "_metadata": {"collection": "stages"},
    "stages": [{"id": 1, "name": "Lead"}, {"id": 2, "name": "Active Client"}],
}


@pytest.fixture
def fub() -> Iterator[respx.Router]:
    """Follow Up Boss with one person, 7; a test adds the routes its writes need."""
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{FUB}/people").respond(json=people(person(7)))
        router.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
        router.get(f"{FUB}/stages").respond(json=STAGES)
        router.get(f"{FUB}/notes").respond(json={"_metadata": {}, "notes": []})
        yield router


@pytest.fixture
def crm(tmp_path: Path, fub: respx.Router) -> Crm:
    """`crm-tui ARGS` in-process over a cache synced from `fub`; `.json` parsed when asked."""
    env = {
        "CRM_USER_ID": "alice",
        "CRM_DATA_DIR": str(tmp_path / "data"),
        "FUB_API_KEY": KEY,
        "FUB_API_BASE_URL": FUB,
        "FUB_SYSTEM": "crm-tui-tests",
        "FUB_SYSTEM_KEY": SYSTEM_KEY,
    }

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        shown = result.stdout + result.stderr
        assert not [s for s in SECRETS if s in shown], shown
        if "--json" in args:
            result.body = json.loads(result.stdout)  # type: ignore[attr-defined]
        return result

    synced = invoke("sync", "followupboss", "--json")
    assert synced.exit_code == 0, synced.stdout
    return invoke


def sent_body(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


def outbox(crm: Crm) -> list[dict]:
    return crm("outbox", "--json").body["outbox"]


def contact(crm: Crm) -> dict:
    [record] = crm("contacts", "--json").body["contacts"]
    return record


# -- edit ---------------------------------------------------------------------------------------


def test_an_edit_is_sent_and_reports_done(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    put = fub.put(f"{FUB}/people/7").respond(
        json=person(7, stage="Active Client", tags=["buyer", "seller"])
    )
    result = crm(
        "edit", "followupboss:7", "--stage", "Active Client", "--add-tag", "seller", "--json"
    )
    assert result.exit_code == 0, result.stdout
    body = result.body
    assert body["success"] is True and body["state"] == "done"
    assert body["entry"]["before"] == {"stage": "Lead", "tags": ["buyer"]}
    assert body["entry"]["after"] == {"stage": "Active Client", "tags": ["buyer", "seller"]}
    assert body["entry"]["action"] == "update" and body["entry"]["record_id"] == "followupboss:7"
    assert [e["id"] for e in body["outbox"]] == [body["entry"]["id"]]
    assert body["record"]["stage"] == "Active Client" and "pending" not in body["record"]
    assert sent_body(put) == {"stage": "Active Client", "tags": ["seller"]}
    assert put.calls.last.request.url.params["mergeTags"] == "true"
    assert contact(crm)["tags"] == ["buyer", "seller"]


def test_an_edit_without_json_says_what_happened_in_one_line(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    fub.put(f"{FUB}/people/7").respond(json=person(7, lastName="Ng"))
    result = crm("edit", "followupboss:7", "--last-name", "Ng")
    assert result.exit_code == 0
    assert result.stdout.startswith("followupboss:7: done (outbox 1): Follow Up Boss has it")
    assert result.stderr == ""


def test_a_field_the_source_does_not_take_exits_2_per_field_and_saves_nothing(crm, fub):
    result = crm(
        "edit", "followupboss:7", "--company", "Acme", "--stage", "Nope", "--email", "x@", "--json"
    )
    assert result.exit_code == 2
    body = result.body
    assert body["success"] is False and body["error"] == "Invalid input"
    assert set(body["fields"]) == {"company", "stage", "email"}
    assert body["fields"]["company"] == "this source does not let crm-tui change it"
    assert "Active Client" in body["fields"]["stage"]  # the vendor's own list of stages
    assert body["details"].endswith("(nothing was saved)")
    human = crm("edit", "followupboss:7", "--company", "Acme")
    assert human.exit_code == 2
    assert human.stderr.strip() == (
        "error: Invalid input: company: this source does not let crm-tui change it"
        " (nothing was saved)"
    )
    assert outbox(crm) == []
    assert not fub.put(f"{FUB}/people/7").called


def test_a_dry_run_prints_the_exact_request_and_saves_nothing(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    put = fub.put(f"{FUB}/people/7")
    result = crm(
        "edit", "followupboss:7", "--stage", "Active Client", "--add-tag", "vip", "--dry-run"
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "dry run: nothing saved, nothing sent",
        f"PUT {FUB}/people/7?mergeTags=true",
        "Authorization: ***",
        "X-System: ***",
        "X-System-Key: ***",
        "",
        "{",
        '  "stage": "Active Client",',
        '  "tags": [',
        '    "vip"',
        "  ]",
        "}",
    ]
    body = crm("edit", "followupboss:7", "--phone", "(555) 201-9999", "--dry-run", "--json").body
    request = body["request"]
    assert body["dryRun"] is True and request["method"] == "PUT"
    assert request["url"] == f"{FUB}/people/7" and request["params"] == {}
    assert request["headers"] == {"Authorization": "***", "X-System": "***", "X-System-Key": "***"}
    assert request["body"] == {
        "phones": [{"value": "(555) 201-9999", "type": "mobile", "isPrimary": 1}]
    }
    assert not put.called and outbox(crm) == []
    assert contact(crm)["stage"] == "Lead" and "pending" not in contact(crm)


def test_a_queued_edit_shows_pending_in_every_list_until_dropped(crm, fub):
    put = fub.put(f"{FUB}/people/7")
    queued = crm("edit", "followupboss:7", "--stage", "Active Client", "--queue", "--json").body
    assert queued["state"] == "pending" and queued["success"] is True
    assert "goes out on the next crm-tui sync or crm-tui outbox send" in queued["message"]
    entry_id = queued["entry"]["id"]
    assert queued["record"]["pending"] == {"stage": "Active Client"}

    shown = contact(crm)
    assert shown["stage"] == "Active Client"
    assert shown["pending"] == {"stage": "Active Client"}
    assert shown["outbox"] == {"id": entry_id, "state": "pending", "action": "update"}
    [hit] = crm("search", "P7", "--json").body["results"]["followupboss"]
    assert hit["pending"] == {"stage": "Active Client"}
    table = crm("contacts").stdout.splitlines()
    assert table[0].endswith("OUTBOX") and table[1].endswith("pending")
    assert crm("search", "P7").stdout.splitlines()[1].endswith("[followupboss:7]  (pending)")

    dropped = crm("outbox", "drop", str(entry_id), "--json")
    assert dropped.exit_code == 0 and dropped.body["state"] == "dropped"
    assert dropped.body["message"] == "dropped; the record shows Follow Up Boss's values again"
    assert dropped.body["record"]["stage"] == "Lead" and "pending" not in dropped.body["record"]
    shown = contact(crm)
    assert shown["stage"] == "Lead" and "pending" not in shown and "outbox" not in shown
    assert "OUTBOX" not in crm("contacts").stdout
    assert not put.called


def test_an_edit_that_changes_nothing_exits_0_with_no_entry(crm):
    result = crm("edit", "followupboss:7", "--stage", "Lead", "--json")
    assert result.exit_code == 0
    assert result.body["state"] == "unchanged" and result.body["entry"] is None
    assert outbox(crm) == []


@pytest.mark.parametrize(
    ("args", "error", "details"),
    [
        (("local:1", "--stage", "x"), "A local record", "change local:1 with crm-tui local edit"),
        (("7", "--stage", "x"), "Not a record id", "'7': give SOURCE:ID, e.g. followupboss:123"),
        (("followupboss:999", "--stage", "x"), "Unknown record", "no record followupboss:999"),
        (("followupboss:7",), "Say what to change", "give a field option"),
    ],
)
def test_what_edit_cannot_act_on_exits_2(crm, args, error, details):
    result = crm("edit", *args, "--json")
    assert result.exit_code == 2
    assert result.body["error"] == error and result.body["details"].startswith(details)


# -- what the vendor says -----------------------------------------------------------------------


def test_an_unreachable_vendor_keeps_the_edit_and_the_next_sync_sends_it_first(crm, fub):
    fub.get(f"{FUB}/people/7").mock(side_effect=httpx.ConnectError("refused"))
    result = crm("edit", "followupboss:7", "--stage", "Active Client", "--json")
    assert result.exit_code == 0
    assert result.body["state"] == "pending" and result.body["success"] is True
    assert "Follow Up Boss could not be reached" in result.body["message"]
    assert "goes out on the next crm-tui sync" in result.body["message"]
    assert contact(crm)["pending"] == {"stage": "Active Client"}

    fub.get(f"{FUB}/people/7").respond(json=person(7))
    put = fub.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    listing = fub.get(f"{FUB}/people").respond(json=people(person(7, stage="Active Client")))
    synced = crm("sync", "followupboss", "--json")
    assert synced.exit_code == 0
    [sent] = synced.body["outbox"]
    assert sent["state"] == "done" and sent["attempts"] == 2
    calls = [call.request for call in fub.calls]
    assert calls.index(put.calls.last.request) < calls.index(listing.calls.last.request)
    shown = contact(crm)
    assert shown["stage"] == "Active Client" and "pending" not in shown


def test_a_sync_says_what_it_sent_in_a_line(crm, fub):
    crm("edit", "followupboss:7", "--stage", "Active Client", "--queue")
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    fub.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    result = crm("sync", "followupboss")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "outbox: 1 done"
    assert crm("sync", "followupboss", "--json").body["outbox"] == []  # nothing waits now


def test_a_vendor_refusal_exits_4_with_its_reason_and_can_be_retried(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    put = fub.put(f"{FUB}/people/7").respond(400, json={"errorMessage": "Invalid lastName"})
    result = crm("edit", "followupboss:7", "--last-name", "Ng", "--json")
    assert result.exit_code == 4
    body = result.body
    assert body["success"] is False and body["state"] == "failed"
    assert body["error"] == "Refused by the vendor"
    assert "Invalid lastName" in body["entry"]["error"] and "Invalid lastName" in body["details"]
    entry_id = body["entry"]["id"]
    assert f"crm-tui outbox retry {entry_id}" in body["details"]
    assert contact(crm)["last_name"] == "Lee"  # not shown as if it went through
    assert contact(crm)["outbox"] == {"id": entry_id, "state": "failed", "action": "update"}

    put.respond(json=person(7, lastName="Ng"))
    retried = crm("outbox", "retry", str(entry_id), "--json")
    assert retried.exit_code == 0 and retried.body["state"] == "done"
    assert contact(crm)["last_name"] == "Ng"


def test_a_refusal_without_json_names_the_fix_on_stderr(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    fub.put(f"{FUB}/people/7").respond(400, json={"errorMessage": "Invalid lastName"})
    result = crm("edit", "followupboss:7", "--last-name", "Ng")
    assert result.exit_code == 4
    assert result.stdout.startswith("followupboss:7: failed (outbox 1): Follow Up Boss refused it")
    assert result.stderr.strip() == (
        "error: Refused by the vendor: fix the cause, then crm-tui outbox retry 1;"
        " or crm-tui outbox drop 1"
    )


def test_a_conflict_exits_6_with_the_three_versions_and_is_settled(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7, stage="Closed"))
    put = fub.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    result = crm("edit", "followupboss:7", "--stage", "Active Client", "--last-name", "Ng")
    assert result.exit_code == 6
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "followupboss:7: conflict (outbox 1): changed at Follow Up Boss since it was read;"
        " nothing was sent"
    )
    assert lines[1].split() == ["FIELD", "BEFORE", "THEIRS", "MINE"]
    assert lines[2].split() == ["last_name", "Lee", "Lee", "Ng"]
    assert lines[3].split("  ")[0:1] == ["stage"] and lines[3].endswith("changed at the vendor")
    assert "crm-tui outbox settle 1 --mine FIELD" in result.stderr
    assert not put.called  # never written over the vendor's change

    [entry] = crm("outbox", "--state", "conflict", "--json").body["outbox"]
    assert entry["theirs"] == {"last_name": "Lee", "stage": "Closed"}
    bad = crm("outbox", "settle", "1", "--mine", "phone", "--json")
    assert bad.exit_code == 2 and bad.body["details"].startswith("not fields of this edit: phone")
    settled = crm("outbox", "settle", "1", "--theirs", "stage", "--json")
    assert settled.exit_code == 0 and settled.body["state"] == "done"
    assert sent_body(put) == {"lastName": "Ng"}


def test_a_conflict_in_json_lists_each_field(crm, fub):
    fub.get(f"{FUB}/people/7").respond(json=person(7, stage="Closed"))
    body = crm("edit", "followupboss:7", "--stage", "Active Client", "--json").body
    assert body["success"] is False and body["error"] == "Conflict"
    assert body["conflict"] == [
        {
            "field": "stage",
            "before": "Lead",
            "theirs": "Closed",
            "mine": "Active Client",
            "conflict": True,
        }
    ]


# -- notes and leads ----------------------------------------------------------------------------


def test_a_note_is_sent_and_its_dry_run_is_checked_like_it(crm, fub):
    notes = fub.post(f"{FUB}/notes").respond(json={"id": 3, "personId": 7})
    dry = crm("note", "followupboss:7", "Called, wants a showing Sat", "--dry-run", "--json")
    assert dry.body["request"]["url"] == f"{FUB}/notes" and not notes.called
    assert dry.body["request"]["body"] == {
        "isHtml": False,
        "personId": 7,
        "body": "Called, wants a showing Sat",
    }
    empty = crm("note", "followupboss:7", "  ", "--dry-run", "--json")
    assert empty.exit_code == 2 and empty.body["fields"] == {"note": "a note needs some text"}
    result = crm("note", "followupboss:7", "Called, wants a showing Sat", "--subject", "Call")
    assert result.exit_code == 0 and "done (outbox 1)" in result.stdout
    assert sent_body(notes)["subject"] == "Call"


def test_a_lead_is_created_through_the_vendors_intake(crm, fub):
    events = fub.post(f"{FUB}/events").respond(
        json=person(99, firstName="Ana", emails=[{"value": "ana@x.example", "isPrimary": 1}])
    )
    args = ("lead", "create", "followupboss", "--first-name", "Ana", "--email", "ana@x.example")
    dry = crm(*args, "--source", "Open house", "--tag", "buyer", "--dry-run", "--json")
    assert dry.body["request"]["body"] == {
        "source": "Open house",
        "type": "General Inquiry",
        "person": {"firstName": "Ana", "emails": [{"value": "ana@x.example"}], "tags": ["buyer"]},
    }
    assert not events.called and outbox(crm) == []
    bad = crm("lead", "create", "followupboss", "--email", "ana@", "--dry-run", "--json")
    assert bad.exit_code == 2 and set(bad.body["fields"]) == {"email"}

    result = crm(*args, "--source", "Open house", "--json")
    assert result.exit_code == 0 and result.body["state"] == "done"
    assert result.body["entry"]["record_id"] == "followupboss:99"
    assert sent_body(events)["source"] == "Open house"
    ids = [c["id"] for c in crm("contacts", "--json").body["contacts"]]
    assert "followupboss:99" in ids


# -- the outbox ---------------------------------------------------------------------------------


def test_the_outbox_lists_sends_and_refuses_unknown_ids(crm, fub):
    crm("edit", "followupboss:7", "--stage", "Active Client", "--queue")
    listed = crm("outbox").stdout.splitlines()
    assert listed[0].split() == [
        "ID",
        "SOURCE",
        "RECORD",
        "ACTION",
        "STATE",
        "FIELDS",
        "ATTEMPTS",
        "UPDATED",
        "ERROR",
    ]
    assert listed[1].split()[:7] == [
        "1",
        "followupboss",
        "followupboss:7",
        "update",
        "pending",
        "stage",
        "0",
    ]
    assert crm("outbox", "--state", "done", "--json").body == {
        "success": True,
        "outbox": [],
        "count": 0,
    }

    fub.get(f"{FUB}/people/7").respond(json=person(7))
    fub.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    sent = crm("outbox", "send", "--json")
    assert sent.exit_code == 0 and [e["state"] for e in sent.body["outbox"]] == ["done"]

    for args in (("retry", "999"), ("drop", "999"), ("settle", "999", "--mine", "stage")):
        result = crm("outbox", *args, "--json")
        assert result.exit_code == 2, args
        assert result.body["error"] == "Unknown outbox entry"
        assert result.body["details"] == "no entry 999; see crm-tui outbox"
    done = crm("outbox", "drop", "1", "--json")
    assert done.exit_code == 2 and done.body["details"].startswith("outbox 1 is done")


def test_every_write_command_has_an_example():
    runner = CliRunner()
    for command in (
        ["edit"],
        ["note"],
        ["lead", "create"],
        ["outbox"],
        ["outbox", "retry"],
        ["outbox", "drop"],
        ["outbox", "settle"],
        ["outbox", "send"],
    ):
        assert "Example" in runner.invoke(main, [*command, "--help"]).output, command


async def test_a_scheduled_run_sends_the_outbox_before_it_syncs():
    """`sync --watch`: each run sends what waits first, so it reads the new values back."""
    from crm_tui.sync.scheduler import Scheduler

    order: list[str] = []

    class Engine:
        async def sync_all(self, names: object) -> dict:
            order.append("sync")
            return {}

    async def send() -> None:
        order.append("send")

    scheduler = Scheduler(Engine(), 1, before_run=send)  # type: ignore[arg-type]
    await scheduler.run_once()
    await scheduler.run_once()
    assert order == ["send", "sync", "send", "sync"]


async def test_a_scheduled_run_readies_the_next_start_after_it_syncs():
    """`sync --watch`: after each run its streams' artifacts are made; a failure there is
    logged and the next run still comes."""
    from crm_tui.models import SyncReport
    from crm_tui.sync.scheduler import Scheduler

    order: list[object] = []
    report = SyncReport(source="brivity")

    class Engine:
        async def sync_all(self, names: object) -> dict:
            order.append("sync")
            return {"brivity": report}

    async def after(reports: dict) -> None:
        order.append(reports)
        raise OSError("disk full")

    scheduler = Scheduler(Engine(), 1, after_run=after)  # type: ignore[arg-type]
    await scheduler.run_once()
    await scheduler.run_once()
    assert order == ["sync", {"brivity": report}, "sync", {"brivity": report}]


def test_a_merge_can_write_its_values_back_to_the_vendor_record(crm, fub):
    added = crm(
        "local", "add-contact", "--first-name", "P7", "--last-name", "Lee",
        "--email", "p7@x.example", "--phone", "(555) 201-0009", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.stdout
    [cluster] = crm("duplicates", "--json").body["clusters"]
    fub.get(f"{FUB}/people/7").respond(json=person(7))
    put = fub.put(f"{FUB}/people/7").respond(
        json=person(7, phones=[{"value": "(555) 201-0009", "isPrimary": 1}])
    )
    merged = crm("merge", cluster["id"], "--prefer", "local", "--write-back", "--json")
    assert merged.exit_code == 0, merged.stdout
    [entry] = merged.body["write_back"]["entries"]
    assert entry["state"] == "done" and entry["after"] == {"phone": "(555) 201-0009"}
    assert [p["value"] for p in sent_body(put)["phones"]] == ["(555) 201-0009"]
    assert put.call_count == 1
