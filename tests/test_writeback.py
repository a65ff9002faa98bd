"""Two-way sync's core against Follow Up Boss's documented contract (respx): what an edit
sends, the conflict check before it, the read-back after a lost answer, the outbox states."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
import respx

from crm_tui.local_crm import ValidationFailed
from crm_tui.models import Contact
from crm_tui.sources.brivity import BrivitySource
from crm_tui.sources.hubspot import HubSpotSource
from crm_tui.sources.lofty import LoftySource
from crm_tui.sources.pipedrive import PipedriveSource
from crm_tui.sources.writes import create_draft, update_draft
from crm_tui.store import CacheStore
from crm_tui.sync.engine import SyncEngine
from crm_tui.writeback.service import NothingToSend, WriteBack
from crm_tui.writeback.values import conflicts, differing, same
from tests.helpers.env import make_settings
from tests.helpers.writeback import FUB, STAGES, person

pytestmark = pytest.mark.usefixtures("no_retry_sleep")


@pytest.fixture
async def fub(tmp_path, open_db):
    """On each back end: the engine writes through the store it is given."""
    settings = make_settings(tmp_path, fub_api_key="canary-key-123", fub_api_base_url=FUB)
    db = open_db()
    store = CacheStore(settings.user_id, db)
    store.load_sync()
    engine = SyncEngine(settings, store)
    with respx.mock:
        respx.get(f"{FUB}/people").respond(
            json={"_metadata": {"collection": "people", "next": None}, "people": [person(7)]}
        )
        respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": []})
        respx.get(f"{FUB}/stages").respond(json=STAGES)
        await engine.sync_source("followupboss")
        yield engine
    await engine.aclose()
    db.close()


async def test_an_edit_waits_pending_then_sends_only_what_changed(fub: SyncEngine):
    store, wb = fub.store, WriteBack(fub)
    record = store.get("contacts", "followupboss:7")
    assert record is not None and wb.writable(record)[:2] == ("first_name", "last_name")
    entry = await wb.edit(
        record, {"stage": "Active Client", "phone": "(555) 201-9999", "tags": ["buyer", "seller"]}
    )
    assert entry.state == "pending" and entry.base["stage"] == "Lead"
    shown = store.get("contacts", "followupboss:7")
    assert shown.stage == "Active Client" and store.pending(record.id)["stage"] == "Active Client"

    respx.get(f"{FUB}/people/7").respond(json=person(7))
    put = respx.put(f"{FUB}/people/7").respond(
        json=person(7, stage="Active Client", tags=["buyer", "seller"], phones=[])
    )
    [sent] = await wb.drain()
    assert sent.state == "done", sent.error
    request = put.calls.last.request
    body = json.loads(request.content)
    assert body["stage"] == "Active Client"
    assert body["tags"] == ["seller"] and request.url.params["mergeTags"] == "true"
    # the whole phone list goes back, the primary one changed, the other kept
    assert body["phones"][0]["value"] == "(555) 201-0000"
    assert body["phones"][1]["value"] == "(555) 201-9999"
    assert "firstName" not in body  # untouched fields are not sent
    assert store.pending(record.id) is None
    assert store.get("contacts", "followupboss:7").tags == ("buyer", "seller")


async def test_a_change_at_the_vendor_stops_the_edit_as_a_conflict(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    entry = await wb.edit(record, {"stage": "Active Client"})
    respx.get(f"{FUB}/people/7").respond(json=person(7, stage="Closed"))
    put = respx.put(f"{FUB}/people/7").respond(json=person(7))
    [done] = await wb.drain()
    assert done.state == "conflict" and done.theirs == {"stage": "Closed"}
    assert not put.called  # never overwritten blindly
    settled = await wb.settle(entry.id, {"stage": "mine"})
    assert settled.state == "pending" and settled.base == {"stage": "Closed"}
    respx.get(f"{FUB}/people/7").respond(json=person(7, stage="Closed"))
    [again] = await wb.drain()
    assert again.state == "done" and json.loads(put.calls.last.request.content) == {
        "stage": "Active Client"
    }


async def test_validation_refuses_in_the_form_not_at_the_vendor(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    with pytest.raises(ValidationFailed) as failed:
        await wb.edit(record, {"email": "not-an-email", "stage": "Nope", "company": "X"})
    assert set(failed.value.errors) == {"email", "stage", "company"}
    assert "Active Client" in failed.value.errors["stage"]
    with pytest.raises(NothingToSend):
        await wb.edit(record, {"stage": "Lead"})
    assert fub.store.db.outbox(fub.settings.user_id) == []


async def test_a_vendor_refusal_fails_the_edit_with_its_reason(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    await wb.edit(record, {"last_name": "Ng"})
    respx.get(f"{FUB}/people/7").respond(json=person(7))
    respx.put(f"{FUB}/people/7").respond(400, json={"errorMessage": "Invalid lastName"})
    [failed] = await wb.drain()
    assert failed.state == "failed" and "Invalid lastName" in failed.error
    assert fub.store.get("contacts", "followupboss:7").last_name == "Lee"  # not shown as done


async def test_an_unreachable_vendor_keeps_the_edit_for_the_next_run(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    await wb.edit(record, {"last_name": "Ng"})
    respx.get(f"{FUB}/people/7").mock(side_effect=httpx.ConnectError("refused"))
    [waiting] = await wb.drain()
    assert waiting.state == "pending" and waiting.error
    assert fub.store.get("contacts", "followupboss:7").last_name == "Ng"  # still shown pending
    respx.get(f"{FUB}/people/7").respond(json=person(7))
    respx.put(f"{FUB}/people/7").respond(json=person(7, lastName="Ng"))
    [sent] = await wb.drain()
    assert sent.state == "done" and sent.attempts == 2


async def test_a_note_whose_answer_was_lost_is_looked_for_before_sending_again(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    text = "Called, wants a showing Sat"
    await wb.note(record, text)
    older = {"id": 1, "personId": 7, "body": text}  # the same words, noted last week
    listing = respx.get(f"{FUB}/notes").mock(
        side_effect=[
            httpx.Response(200, json={"_metadata": {}, "notes": [older]}),
            httpx.Response(200, json={"_metadata": {}, "notes": [older]}),
            httpx.Response(200, json={"_metadata": {}, "notes": [{**older, "id": 3}, older]}),
        ]
    )
    notes = respx.post(f"{FUB}/notes").mock(side_effect=httpx.ReadTimeout("lost"))
    [unsure] = await wb.drain()
    assert unsure.state == "unsure" and notes.call_count == 1  # a note is never re-posted blindly
    assert unsure.base == {"notes_before": ["1"]}
    # the read-back finds only last week's note: this one never arrived, it is sent again
    notes.mock(return_value=httpx.Response(201, json={"id": 3, "personId": 7, "body": text}))
    [done] = await wb.drain()
    assert done.state == "done" and notes.call_count == 2
    assert listing.calls.last.request.url.params["personId"] == "7"


async def test_a_note_found_after_a_lost_answer_is_not_sent_again(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    await wb.note(record, "Left a voicemail")
    respx.get(f"{FUB}/notes").mock(
        side_effect=[
            httpx.Response(200, json={"_metadata": {}, "notes": []}),
            httpx.Response(
                200, json={"_metadata": {}, "notes": [{"id": 9, "body": "Left a voicemail"}]}
            ),
        ]
    )
    notes = respx.post(f"{FUB}/notes").respond(524)  # a proxy's timeout: perhaps done
    [unsure] = await wb.drain()
    assert unsure.state == "unsure" and notes.call_count == 1
    [done] = await wb.drain()
    assert done.state == "done" and "arrived" in done.answer and notes.call_count == 1


async def test_a_dry_run_shows_the_request_with_no_secret(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    respx.get(f"{FUB}/people/7").respond(json=person(7))
    preview = await wb.preview_edit(record, {"stage": "Active Client"})
    shown = json.dumps(preview.to_json())
    assert preview.draft.method == "PUT" and preview.url == f"{FUB}/people/7"
    assert "canary-key-123" not in shown and '"Authorization": "***"' in shown
    assert fub.store.db.outbox(fub.settings.user_id) == []


# -- each vendor's declaration makes the body its documentation describes ------------------


def _draft(source_cls, stream, changes, current):
    spec = source_cls.writes.update[stream]
    return update_draft(spec, "42", changes, current, {})


def test_pipedrive_sends_a_whole_name_and_the_primary_email_in_its_list():
    current = {
        "first_name": "Ann",
        "last_name": "Lee",
        "emails": [
            {"value": "a@old.example", "primary": False},
            {"value": "b@x.example", "primary": True},
        ],
    }
    draft = _draft(
        PipedriveSource, "contacts", {"last_name": "Ng", "email": "c@x.example"}, current
    )
    assert (draft.method, draft.path) == ("PATCH", "persons/42")
    assert draft.body["name"] == "Ann Ng"
    assert [e["value"] for e in draft.body["emails"]] == ["a@old.example", "c@x.example"]
    deal = _draft(PipedriveSource, "deals", {"amount": "250000.50", "stage": "3"}, {})
    assert deal.body == {"value": 250000.5, "stage_id": 3}


def test_hubspot_sends_properties_as_strings_and_clears_with_an_empty_one():
    draft = _draft(HubSpotSource, "contacts", {"stage": "lead", "company": None}, {})
    assert (draft.method, draft.path) == ("PATCH", "crm/v3/objects/contacts/42")
    assert draft.body == {"properties": {"lifecyclestage": "lead", "company": ""}}


def test_lofty_replaces_the_first_of_its_plain_string_lists():
    draft = _draft(
        LoftySource, "contacts", {"phone": "555-0102"}, {"phones": ["555-0101", "555-0199"]}
    )
    assert (draft.method, draft.body) == ("PUT", {"phones": ["555-0102", "555-0199"]})


def test_brivity_creates_leads_with_its_documented_fields():
    draft = create_draft(
        BrivitySource.writes.create, {"first_name": "Ann", "email": "a@x.example", "message": "Hi"}
    )
    assert draft.path == "api/v2/leads"
    assert draft.body == {
        "lead_type": "Buyer",
        "status": "New",
        "source": "crm-tui",
        "first_name": "Ann",
        "email": "a@x.example",
        "description": "Hi",
    }
    assert BrivitySource.writes.update == {}  # no update endpoint is known


def test_a_hubspot_stage_typed_as_its_label_is_sent_and_kept_as_its_internal_value():
    options = {"options": [{"label": "Sales Qualified Lead", "value": "salesqualifiedlead"}]}
    choices = HubSpotSource.writes.update["contacts"].choices["stage"]
    listed = choices.options(choices.read(options), None)
    assert choices.stored_form(listed, "sales qualified lead") == "salesqualifiedlead"
    assert choices.stored_form(listed, "customer") is None


PIPELINES = {
    "_metadata": {"collection": "pipelines"},
    "pipelines": [
        {"id": 1, "name": "Buyers", "stages": [{"id": 11, "name": "Closed"}]},
        {
            "id": 2,
            "name": "Sellers",
            "stages": [{"id": 21, "name": "Listed"}, {"id": 22, "name": "Closed"}],
        },
    ],
}


async def test_a_deal_stage_is_sent_as_the_id_of_its_own_pipelines_stage(fub: SyncEngine):
    deal = {"id": 5, "name": "12 Elm St", "price": 400000, "stageId": 21, "stageName": "Listed",
            "pipelineId": 2, "people": [{"id": 7}]}  # fmt: skip
    respx.get(f"{FUB}/deals").respond(json={"_metadata": {}, "deals": [deal]})
    respx.get(f"{FUB}/pipelines").respond(json=PIPELINES)
    await fub.sync_source("followupboss")
    wb = WriteBack(fub)
    record = fub.store.get("deals", "followupboss:5")
    entry = await wb.edit(record, {"stage": "closed"})  # a name, typed as a person would
    assert entry.wanted == {"stage": "Closed"}
    respx.get(f"{FUB}/deals/5").respond(json=deal)
    put = respx.put(f"{FUB}/deals/5").respond(json={**deal, "stageId": 22, "stageName": "Closed"})
    [done] = await wb.drain()
    assert done.state == "done" and json.loads(put.calls.last.request.content) == {"stageId": 22}


async def test_a_merge_offers_its_values_to_each_vendor_record_through_the_outbox(fub: SyncEngine):
    from crm_tui.models import Contact

    wb = WriteBack(fub)
    vendor = fub.store.get("contacts", "followupboss:7")
    merged = Contact(
        "local:1", "local", "1", "alice", first_name="P7", last_name="Lee-Ng", company="Acme"
    )
    saved, skipped = await wb.write_merged(merged, [vendor, merged])
    assert [(e.record_id, e.wanted) for e in saved] == [("followupboss:7", {"last_name": "Lee-Ng"})]
    assert skipped == {"local:1": "local lets crm-tui change none of its fields"}
    assert fub.store.get("contacts", "followupboss:7").last_name == "Lee-Ng"  # pending, shown


async def test_a_cancelled_send_gives_its_claim_back(fub: SyncEngine):
    import asyncio

    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    entry = await wb.edit(record, {"last_name": "Ng"})
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    respx.get(f"{FUB}/people/7").mock(side_effect=hang)
    task = asyncio.create_task(wb.drain())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    back = fub.store.db.outbox_entry(fub.settings.user_id, entry.id)
    assert back.state == "pending" and back.sent_at is None  # never sent: plain pending
    assert fub.store.pending(record.id) == {"last_name": "Ng"}


async def test_tags_changed_at_the_vendor_meanwhile_are_kept_beside_the_persons_own(
    fub: SyncEngine,
):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    await wb.edit(record, {"tags": ["seller"]})  # "buyer" removed, "seller" added
    respx.get(f"{FUB}/people/7").respond(json=person(7, tags=["buyer", "vip"]))
    put = respx.put(f"{FUB}/people/7").respond(json=person(7, tags=["vip", "seller"]))
    [done] = await wb.drain()
    assert done.state == "done"  # not a conflict: the vendor's "vip" stays
    assert json.loads(put.calls.last.request.content) == {"tags": ["vip", "seller"]}
    assert "mergeTags" not in put.calls.last.request.url.params  # a removal: the whole list


async def test_a_phone_the_vendor_formats_its_own_way_is_the_same_phone(fub: SyncEngine):
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    entry = await wb.edit(record, {"phone": "555-201-9999"})
    assert entry.wanted == {"phone": "555-201-9999"}
    now = [{"value": "(555) 201-9999", "isPrimary": 1}]
    respx.get(f"{FUB}/people/7").respond(json=person(7, phones=now))
    put = respx.put(f"{FUB}/people/7")
    [done] = await wb.drain()
    assert done.state == "done" and "already has" in done.answer and not put.called


async def test_an_answer_without_the_custom_fields_is_not_cached_as_the_record(fub: SyncEngine):
    """Follow Up Boss sends custom fields when asked (`fields=allFields`): a PUT answer
    without them is the default fields only, so the record is read again, not cached bare."""
    wb = WriteBack(fub)
    record = fub.store.get("contacts", "followupboss:7")
    await wb.edit(record, {"stage": "Active Client"})
    full = person(7, stage="Active Client", customLender="Hilltop")
    read = respx.get(f"{FUB}/people/7").mock(
        side_effect=[
            httpx.Response(200, json=person(7, customLender="Hilltop")),
            httpx.Response(200, json=full),
        ]
    )
    respx.put(f"{FUB}/people/7").respond(json=person(7, stage="Active Client"))
    [sent] = await wb.drain()
    assert sent.state == "done", sent.error
    assert read.call_count == 2
    assert all(c.request.url.params["fields"] == "allFields" for c in read.calls)
    cached = fub.store.get("contacts", "followupboss:7")
    assert cached.stage == "Active Client" and cached.metadata["customLender"] == "Hilltop"


@pytest.mark.parametrize(
    ("a", "b"),
    [("1,2", "12"), ("$5", "5"), ("USD 5", "5"), ("1 000", "1000"), ("€1.000,50", "1.00050")],
)
def test_custom_text_that_only_looks_like_an_amount_is_compared_as_written(a, b):
    """A text column holding "1,2" changed to "12" is a change to send, and a vendor's
    "12" -> "1,2" meanwhile is a conflict: separators are not read away as in typed input."""
    record = replace(_contact(), custom={"lot": a})
    assert not same("custom.lot", a, b)
    assert differing(record, {"custom.lot": b})[1] == {"custom.lot": b}
    assert conflicts({"custom.lot": b}, {"custom.lot": "99"}, {"custom.lot": a}) == ["custom.lot"]
    assert same("custom.lot", "550000", "550000.00")  # numbers still compare as numbers


def _contact() -> Contact:
    return Contact(id="followupboss:1", source="followupboss", remote_id="1", user_id="alice")
