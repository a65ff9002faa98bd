"""Two-way sync in the app: the real app (make_app) driven by Pilot against Follow Up Boss
mocked by respx, as in test_writeback.py: the vendor form, a note, the pending mark, the
three-way conflict view, the Outbox on Status and writes in the Audit."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx
from textual.widgets import DataTable, Input, Label, Static, TextArea

from crm_tui.app import CrmApp, _more_drain, make_app
from crm_tui.models import Contact
from crm_tui.screens.audit import AuditScreen
from crm_tui.screens.browse import BrowseScreen
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.screens.local_form import LocalFormScreen
from crm_tui.screens.outbox import ConflictScreen, OutboxScreen, WriteScreen
from crm_tui.screens.status import StatusScreen
from crm_tui.screens.vendor import NoteScreen
from crm_tui.store.outbox import OutboxEntry
from crm_tui.widgets.record_table import RecordTable
from crm_tui.writeback.shown import drain_notices, open_line, record_mark
from tests.helpers.env import make_settings
from tests.helpers.tui import audit_read, idle, loaded, settle, until
from tests.helpers.writeback import FUB, STAGES, person

pytestmark = pytest.mark.usefixtures("no_retry_sleep")
SIZE = (80, 24)
ID = "followupboss:7"
HOSTILE = "[@click=app.quit]x[/]"
#: The worker groups a save, a decision and a send run in.
WRITING = ("form", "outbox", "outbox-decide", "outbox-view", "detail-marks")


@pytest.fixture
def fub_api():
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{FUB}/people").respond(
            json={"_metadata": {"collection": "people", "next": None}, "people": [person(7)]}
        )
        mock.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
        mock.get(f"{FUB}/stages").respond(json=STAGES)
        mock.get(f"{FUB}/notes").respond(json={"_metadata": {}, "notes": []})
        yield mock


@pytest.fixture
def app(tmp_path) -> CrmApp:
    settings = make_settings(tmp_path, fub_api_key="canary-key-123", fub_api_base_url=FUB)
    return make_app(settings, sync_stale=False)


async def synced(pilot, app: CrmApp) -> None:
    """Loaded, Follow Up Boss synced: followupboss:7 (P7 Lee, stage Lead) in the cache."""
    await settle(pilot, app)
    app.sync_source("followupboss")
    await settle(pilot, app)
    assert app.store.get("contacts", ID) is not None


async def quiet(pilot, app: CrmApp, limit: float = 10.0) -> None:
    """Until no save, decision or send is left running, and the screens have repainted."""

    def written() -> bool:
        busy = [w for w in app.workers if w.group in WRITING and not w.is_finished]
        return not busy and not app._draining

    await until(pilot, written, "the app's saves, decisions and sends to end", within=limit)
    await idle(pilot, limit)


def entries(app: CrmApp) -> list[OutboxEntry]:
    return app.store.db.outbox(app.store.user_id)


def notices(app: CrmApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


def text_of(app: CrmApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_detail(pilot, app: CrmApp) -> RecordScreen:
    app.push_screen(RecordScreen(app.store.get("contacts", ID)))
    await quiet(pilot, app)
    assert isinstance(app.screen, RecordScreen)
    return app.screen


async def conflicted(pilot, app: CrmApp, fub_api, theirs: str) -> OutboxEntry:
    """An edit of the stage that meets the vendor's `theirs` when sent."""
    fub_api.get(f"{FUB}/people/7").respond(json=person(7, stage=theirs))
    await app.writeback.edit(app.store.get("contacts", ID), {"stage": "Active Client"})
    app.drain_outbox()
    await quiet(pilot, app)
    [entry] = entries(app)
    assert entry.state == "conflict"
    return entry


# -- the vendor form ----------------------------------------------------------------------------


async def test_ctrl_e_edits_a_vendor_contact_shown_pending_at_once_then_sent(app, fub_api):
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        await pilot.press("f3", "ctrl+e")
        await idle(pilot)
        form = app.screen
        assert isinstance(form, LocalFormScreen)
        writable = ("first_name", "last_name", "stage", "email", "phone", "tags")
        assert form.fields == writable  # only what Follow Up Boss lets crm-tui write
        assert {i.id for i in form.query(Input)} == {f"field-{n}" for n in writable}
        assert text_of(app, "#form-title") == f"Edit in Follow Up Boss: contact {ID}"
        await app.workers.wait_for_complete()
        assert form.suggesters["stage"].values == ["Lead", "Active Client"]  # the vendor's

        # the vendor answers only once let: the pending state is seen before the send
        gate = asyncio.Event()

        async def read_later(request: httpx.Request) -> httpx.Response:
            await gate.wait()
            return httpx.Response(200, json=person(7))

        fub_api.get(f"{FUB}/people/7").mock(side_effect=read_later)
        put = fub_api.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
        form.query_one("#field-stage", Input).value = "Active Client"
        await pilot.press("ctrl+s")
        await idle(pilot, besides={"outbox"})  # the send waits for the gate
        assert isinstance(app.screen, BrowseScreen)
        assert app.store.pending(ID) == {"stage": "Active Client"}
        assert app.store.get("contacts", ID).stage == "Active Client"  # visible at once
        table = app.screen.query_one(RecordTable)
        [row] = table.rows
        assert table.columns[1].get(row) == "✎ P7 Lee"  # the list marks it pending
        [entry] = entries(app)
        assert entry.state in ("pending", "sending") and entry.base == {"stage": "Lead"}
        await pilot.press("f2", *"p7")
        await idle(pilot, besides={"outbox"})  # the send waits for the gate
        results = rows(app.screen.query_one("#results", DataTable))
        assert results[1][1] == "✎ P7 Lee"  # Search marks it too
        await pilot.press("f3")

        gate.set()
        await quiet(pilot, app)
        [entry] = entries(app)
        assert entry.state == "done", entry.error
        assert json.loads(put.calls.last.request.content) == {"stage": "Active Client"}
        assert app.store.pending(ID) is None
        assert app.store.get("contacts", ID).stage == "Active Client"  # the vendor's now
        assert table.columns[1].get(table.rows[0]) == "P7 Lee"
        assert any(n.startswith("Sent to Follow Up Boss: stage") for n in notices(app))


async def test_the_form_edits_a_custom_column_the_vendor_writes(tmp_path, fub_api):
    """A Follow Up Boss custom field mapped to a column is a field of the form, under its
    label, and an edit of it is sent as that custom field."""
    from crm_tui.custom_columns import Column
    from crm_tui.sources.mapping_file import mappings_path, save_mapping

    settings = make_settings(tmp_path, fub_api_key="canary-key-123", fub_api_base_url=FUB)
    lender = Column("lender", "Mortgage lender", "text")
    save_mapping(
        mappings_path(), "followupboss", "contacts", "custom.lender", "customLender", lender
    )
    fub_api.get(f"{FUB}/people").respond(
        json={"_metadata": {"next": None}, "people": [person(7, customLender="Hilltop")]}
    )
    fub_api.get(f"{FUB}/people/7").respond(json=person(7, customLender="Hilltop"))
    put = fub_api.put(f"{FUB}/people/7").respond(json=person(7, customLender=HOSTILE))
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        assert app.store.get("contacts", ID).custom == {"lender": "Hilltop"}
        await pilot.press("f3", "ctrl+e")
        await idle(pilot)
        form = app.screen
        assert isinstance(form, LocalFormScreen) and form.fields[-1] == "custom.lender"
        box = form.query_one("#field-custom-lender", Input)
        labels = [str(label.render()) for label in form.query(Label)]
        assert box.value == "Hilltop" and "Mortgage lender" in labels
        box.value = HOSTILE
        await pilot.press("ctrl+s")
        await quiet(pilot, app)
        [entry] = entries(app)
        assert entry.state == "done", entry.error
        assert json.loads(put.calls.last.request.content) == {"customLender": HOSTILE}
        assert app.store.get("contacts", ID).custom == {"lender": HOSTILE}


async def test_a_stage_the_vendor_does_not_list_is_refused_under_the_field(app, fub_api):
    put = fub_api.put(f"{FUB}/people/7").respond(json=person(7))
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        detail = await open_detail(pilot, app)
        shown = {b.binding.id for b in detail.active_bindings.values()}
        assert {"detail.edit", "detail.note"} <= shown and "detail.resolve" not in shown
        await pilot.press("e")
        await idle(pilot)
        form = app.screen
        assert isinstance(form, LocalFormScreen) and form.record.id == ID
        form.query_one("#field-stage", Input).value = "Nope"
        await pilot.press("ctrl+s")
        await quiet(pilot, app)
        assert app.screen is form  # still open, nothing saved
        error = form.query_one("#error-stage", Label)
        assert error.display
        assert str(error.render()) == ("not one of Follow Up Boss's values: Lead, Active Client")
        assert entries(app) == [] and app.store.pending(ID) is None and not put.called


async def test_a_read_only_source_says_where_to_edit_and_hides_e(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    brivity = Contact("brivity:1", "brivity", "1", "alice", "Ana")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.push_screen(RecordScreen(brivity))
        await idle(pilot)
        assert "detail.edit" not in {b.binding.id for b in app.screen.active_bindings.values()}
        assert "read-only: edit in Brivity" in str(app.screen.query_one("#record-title").render())
        await pilot.press("e")
        await idle(pilot)
        assert isinstance(app.screen, RecordScreen)


async def test_e_in_the_detail_edits_a_local_record_and_the_detail_follows(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        nora = await app.local.add("contacts", {"first_name": "Nora"})
        app.push_screen(RecordScreen(nora))
        await idle(pilot)
        assert "e edit" not in str(app.screen.query_one("#record-title").render())
        await pilot.press("e")
        await idle(pilot)
        form = app.screen
        assert isinstance(form, LocalFormScreen) and form.target.title.startswith("Edit local")
        form.query_one("#field-first_name", Input).value = "Nell"
        await pilot.press("ctrl+s")
        await quiet(pilot, app)
        assert isinstance(app.screen, RecordScreen)
        table = app.screen.query_one("#fields", DataTable)
        assert ["First name", "Nell"] in rows(table)  # shown as saved, no reopening


# -- a note -------------------------------------------------------------------------------------


async def test_N_adds_a_note_sent_to_follow_up_boss(app, fub_api):
    notes = fub_api.post(f"{FUB}/notes").respond(json={"id": 31, "personId": 7})
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        await open_detail(pilot, app)
        await pilot.press("N")
        await idle(pilot)
        note = app.screen
        assert isinstance(note, NoteScreen)
        await pilot.press("ctrl+s")  # empty: refused, said under the text
        await quiet(pilot, app)
        assert app.screen is note and note.query_one("#note-error", Label).display
        note.query_one("#note-subject", Input).value = "Showing"
        note.query_one("#note-text", TextArea).text = f"Wants a showing Sat {HOSTILE}"
        await pilot.press("ctrl+s")
        await quiet(pilot, app)
        assert isinstance(app.screen, RecordScreen)
        [entry] = entries(app)
        assert entry.action == "note" and entry.state == "done"
        body = json.loads(notes.calls.last.request.content)
        assert body["body"] == f"Wants a showing Sat {HOSTILE}" and body["subject"] == "Showing"
        assert body["personId"] == 7
        assert any(n.startswith("Sent to Follow Up Boss: note:") for n in notices(app))


# -- a conflict ---------------------------------------------------------------------------------


async def test_a_conflict_shows_three_versions_literally_and_mine_is_sent(app, fub_api):
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        entry = await conflicted(pilot, app, fub_api, theirs=HOSTILE)
        assert any("Changed at Follow Up Boss meanwhile" in n for n in notices(app))
        detail = await open_detail(pilot, app)
        mark = text_of(app, "#outbox-mark")
        assert mark.startswith("Conflict: changed at Follow Up Boss — press c to resolve")
        assert "detail.resolve" in {b.binding.id for b in detail.active_bindings.values()}

        await pilot.press("c")
        await idle(pilot)
        conflict = app.screen
        assert isinstance(conflict, ConflictScreen)
        table = conflict.query_one("#versions", DataTable)
        assert [str(c.label) for c in table.ordered_columns] == [
            "Field",
            "You saw",
            "Now at Follow…",
            "Yours",
            "Keep",
        ]
        # literally, cut to its column; in full under the table
        assert rows(table) == [["Stage", "Lead", "[@click=app.qu…", "Active Client", "yours"]]
        assert f"Now at Follow Up Boss: {HOSTILE}" in text_of(app, "#conflict-field-text")
        region = table.region
        assert region.right <= SIZE[0] and region.bottom < SIZE[1]  # fits 80x24

        await pilot.press("t")
        assert rows(table)[0][-1] == "theirs"
        await pilot.press("m")
        assert rows(table)[0][-1] == "yours"
        fub_api.get(f"{FUB}/people/7").respond(json=person(7, stage=HOSTILE))
        put = fub_api.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
        await pilot.press("ctrl+s")
        await quiet(pilot, app)
        assert app.is_running  # the vendor's value ran nothing
        [sent] = entries(app)
        assert sent.id == entry.id and sent.state == "done", sent.error
        assert json.loads(put.calls.last.request.content) == {"stage": "Active Client"}
        assert isinstance(app.screen, RecordScreen)
        assert not app.screen.query_one("#outbox-mark").display  # nothing open any more


async def test_taking_theirs_drops_the_edit(app, fub_api):
    put = fub_api.put(f"{FUB}/people/7").respond(json=person(7))
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        await conflicted(pilot, app, fub_api, theirs="Closed")
        assert "1 changed at the CRM meanwhile" in text_of(app, "#outbox-line")
        await pilot.press("o")
        await quiet(pilot, app)
        await pilot.press("c")  # from the Outbox too
        await idle(pilot)
        assert isinstance(app.screen, ConflictScreen)
        await pilot.press("T", "ctrl+s")
        await quiet(pilot, app)
        assert isinstance(app.screen, OutboxScreen) and app.screen.entries == []
        [dropped] = entries(app)
        assert dropped.state == "dropped" and not put.called
        assert any("Kept Follow Up Boss's values" in n for n in notices(app))


# -- the outbox on Status -----------------------------------------------------------------------


async def test_the_outbox_lists_a_refused_edit_and_drop_removes_it(app, fub_api):
    fub_api.get(f"{FUB}/people/7").respond(json=person(7))
    fub_api.put(f"{FUB}/people/7").respond(400, json={"errorMessage": "Invalid lastName"})
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        assert not app.screen.query_one("#outbox-line").display  # nothing open: no line
        await app.writeback.edit(app.store.get("contacts", ID), {"last_name": "Ng"})
        app.drain_outbox()
        await quiet(pilot, app)
        assert any("Follow Up Boss refused the edit: " in n for n in notices(app))
        assert isinstance(app.screen, StatusScreen)
        assert text_of(app, "#outbox-line") == "Outbox: 1 refused · o opens it"
        assert app.store.get("contacts", ID).last_name == "Lee"

        await pilot.press("o")
        await quiet(pilot, app)
        outbox = app.screen
        assert isinstance(outbox, OutboxScreen)
        table = outbox.query_one("#outbox-list", DataTable)
        [row] = rows(table)  # at 80 columns the error is under the list, in full
        assert row == ["failed", "Follow Up Boss", "P7 Lee", "last name → Ng", "1"]
        detail = text_of(app, "#outbox-detail-text")
        assert "Error: the server answered HTTP 400 Invalid lastName" in detail
        assert outbox.query_one("#outbox-list").region.bottom < SIZE[1]  # fits 80x24

        await pilot.press("d")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await quiet(pilot, app)
        assert app.screen is outbox and table.row_count == 0
        [entry] = entries(app)
        assert entry.state == "dropped"
        assert app.store.get("contacts", ID).last_name == "Lee"  # the vendor's, as it was
        await pilot.press("escape")
        await quiet(pilot, app)
        assert not app.screen.query_one("#outbox-line").display


async def test_an_unreachable_vendor_keeps_the_edit_pending_on_the_record(app, fub_api):
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        fub_api.get(f"{FUB}/people/7").mock(side_effect=httpx.ConnectError("refused"))
        await app.writeback.edit(app.store.get("contacts", ID), {"last_name": "Ng"})
        app.drain_outbox()
        await quiet(pilot, app)
        assert app.store.get("contacts", ID).last_name == "Ng"  # still shown, pending
        assert any("Follow Up Boss cannot be reached" in n for n in notices(app))
        await open_detail(pilot, app)
        assert text_of(app, "#outbox-mark").startswith("Pending: last name → Ng (waiting to send: ")
        app.pop_screen()
        await pilot.press("f1", "o")
        await quiet(pilot, app)
        await pilot.press("d", "y")
        await quiet(pilot, app)
        assert app.store.get("contacts", ID).last_name == "Lee"  # the vendor's value again
        assert app.store.pending(ID) is None


# -- the audit ----------------------------------------------------------------------------------


async def test_the_audit_shows_writes_beside_syncs(app, fub_api):
    fub_api.get(f"{FUB}/people/7").respond(json=person(7))
    fub_api.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    async with app.run_test(size=SIZE) as pilot:
        await synced(pilot, app)
        await app.writeback.edit(app.store.get("contacts", ID), {"stage": "Active Client"})
        app.drain_outbox()
        await quiet(pilot, app)
        await pilot.press("f4")
        await audit_read(pilot)
        assert isinstance(app.screen, AuditScreen)
        table = app.screen.query_one("#runs", DataTable)
        titles = [str(c.label) for c in table.ordered_columns]
        assert titles == ["Started", "What", "Source", "Outcome", "Details"]
        write, sync = rows(table)  # newest first
        assert write[1:4] == ["edit", "Follow Up Boss", "done"]
        assert write[4].startswith("P7 Lee: stage Lead → Active Client · by alice")
        assert sync[1:4] == ["sync", "Follow Up Boss", "success"]
        await pilot.press("enter")
        await idle(pilot)
        assert isinstance(app.screen, WriteScreen)
        details = text_of(app, "#write-text")
        assert "Edit 1 of P7 Lee in Follow Up Boss: done" in details
        assert "Stage: Lead → Active Client" in details and "By alice" in details
        assert "Follow Up Boss answered: accepted: id 7" in details


# -- the pieces ---------------------------------------------------------------------------------


def entry(state: str, action: str = "update", **values: object) -> OutboxEntry:
    base = dict(
        id=1,
        user_id="alice",
        source="followupboss",
        stream="contacts",
        action=action,
        record_id=ID,
        remote_id="7",
        base={"stage": "Lead"},
        wanted={"stage": "Active Client"},
        theirs=None,
        state=state,
        attempts=1,
        error=None,
        answer=None,
        author="alice",
        created_at="2026-11-25T10:00:00Z",
        updated_at="2026-11-25T10:00:00Z",
        sent_at=None,
        done_at=None,
    )
    return OutboxEntry(**{**base, **values})  # type: ignore[arg-type]


def test_the_lines_a_record_and_status_show():
    assert record_mark(entry("pending")) == (
        "Pending: stage → Active Client (waiting to send)",
        "pending",
    )
    failed = record_mark(entry("failed", error="Invalid stage"))
    assert failed[0].startswith("Failed: Invalid stage") and failed[1] == "failed"
    assert record_mark(entry("conflict"))[0].startswith(
        "Conflict: changed at Follow Up Boss — press c to resolve"
    )
    assert open_line({}) == ""
    assert open_line({"pending": 2, "unsure": 1, "conflict": 1}) == (
        "Outbox: 3 waiting to send, 1 changed at the CRM meanwhile (to resolve) · o opens it"
    )


def test_many_sent_at_once_make_one_notice_and_a_quiet_drain_says_nothing_of_waiting():
    sent = [entry("done", id=i) for i in range(3)]
    waiting = [entry("pending", id=9, error="refused"), entry("pending", id=10, error="x")]
    assert drain_notices([*sent, *waiting]) == [
        ("Sent 3 changes to Follow Up Boss", "information"),
        ("Follow Up Boss cannot be reached: the edit waits (refused)", "warning"),
    ]
    assert drain_notices(waiting, quiet=True) == []


def test_drains_asked_for_meanwhile_fold_into_one():
    assert _more_drain(None, {"a"}, True) == ({"a"}, True)
    assert _more_drain(({"a"}, True), {"b"}, True) == ({"a", "b"}, True)
    assert _more_drain(({"a"}, True), None, False) == (None, False)


# -- pictures at 80x24 ---------------------------------------------------------------------------


def seed_outbox(app: CrmApp) -> None:
    """A conflict (the vendor's stage a hostile string) and a refusal, at fixed times."""
    db, user = app.store.db, app.store.user_id

    def ended(record: str, base: dict, wanted: dict, state: str, **how: object) -> None:
        db.add_edit(user, "followupboss", "contacts", "update", record, "1", base, wanted, user)
        claimed = db.claim_edit(user, "followupboss")
        db.finish_edit(claimed.id, state, **how)

    ended(
        "followupboss:1",
        {"stage": None},
        {"stage": "Active Client"},
        "conflict",
        error="changed at Follow Up Boss since it was edited",
        theirs={"stage": HOSTILE},
    )
    ended(
        "followupboss:4",
        {"last_name": "Ruiz"},
        {"last_name": "Ng"},
        "failed",
        error="Follow Up Boss refused it: Invalid lastName",
    )
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET created_at = '2026-11-25T10:05:00Z'")


@pytest.mark.parametrize(
    "keys", [("f1",), ("f1", "o"), ("f1", "o", "down", "c")], ids=["status", "outbox", "conflict"]
)
def test_outbox_pictures(snap_compare, snapshot_app, keys):
    app = snapshot_app()
    seed_outbox(app)

    async def shown(pilot) -> None:
        await loaded(pilot)
        await pilot.press(*keys)
        await idle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)
