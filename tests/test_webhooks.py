"""Webhooks: signatures, payloads, the receiver over loopback, the inbox worker, the CLI."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import crm_tui
from crm_tui.models import Outcome, RecordKind, StreamReport
from crm_tui.sources import followupboss, hubspot
from crm_tui.sources.kit import Signed
from crm_tui.store import CacheStore, Database
from crm_tui.webhooks import events
from crm_tui.webhooks.inbox import Claim, WebhookInbox
from crm_tui.webhooks.server import WebhookService
from crm_tui.webhooks.worker import InboxWorker, WorkerOptions
from tests.helpers.env import make_settings
from tests.helpers.webhooks import FUB_KEY, fub_event, fub_sign

HS_SECRET = "hubspot-client-secret-abcdef"
NOW_MS = 1_750_000_000_000


def hs_sign(method: str, uri: str, body: bytes, ts: str, secret: str = HS_SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{method}{uri}".encode() + body + ts.encode(), "sha256")
    return base64.b64encode(digest.digest()).decode()


def check_fub(body: bytes, signature: str | None, key: str) -> str | None:
    headers = {"fub-signature": signature} if signature is not None else {}
    return followupboss.check_signature(Signed("POST", "/", body, headers), key)


def check_hubspot(
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    stamp: str | None,
    secret: str,
    now_ms: int,
) -> str | None:
    headers = {}
    if signature is not None:
        headers["x-hubspot-signature-v3"] = signature
    if stamp is not None:
        headers["x-hubspot-request-timestamp"] = stamp
    return hubspot.check_signature(Signed(method, uri, body, headers), secret, now_ms)


# -- signatures ----------------------------------------------------------------------------


def test_fub_signature_good_bad_missing():
    body = json.dumps(fub_event("peopleUpdated", [1])).encode()
    good = fub_sign(body)
    assert check_fub(body, good, FUB_KEY) is None
    assert check_fub(body, good.upper(), FUB_KEY) is None  # hex digits in either case
    assert check_fub(body, fub_sign(body, "another-key"), FUB_KEY) == "bad_signature"
    assert check_fub(body + b" ", good, FUB_KEY) == "bad_signature"
    assert check_fub(body, None, FUB_KEY) == "unsigned"
    assert check_fub(body, "", FUB_KEY) == "unsigned"
    assert check_fub(body, "é" * 64, FUB_KEY) == "bad_signature"  # non-ASCII: no exception


def test_hubspot_signature_good_bad_missing_stale_future():
    uri, body, ts = "https://hooks.example.com/webhooks/hubspot", b'[{"objectId":1}]', str(NOW_MS)
    good = hs_sign("POST", uri, body, ts)

    def check(signature: str | None, stamp: str | None = ts, now: int = NOW_MS) -> str | None:
        return check_hubspot("POST", uri, body, signature, stamp, HS_SECRET, now)

    assert check(good) is None
    assert check(good, now=NOW_MS + 299_000) is None
    assert check(hs_sign("POST", uri, body, ts, "wrong")) == "bad_signature"
    assert check(hs_sign("POST", uri + "x", body, ts)) == "bad_signature"
    assert check(None) == "unsigned"
    assert check(good, None) == "unsigned"
    assert check(good, str(NOW_MS + 1)) == "bad_signature"  # the timestamp is signed
    assert check(good, now=NOW_MS + 301_000) == "stale"
    assert check(good, now=NOW_MS - 301_000) == "future"
    # a forged signature is refused as such, whatever its timestamp says
    assert check(hs_sign("POST", uri, body, ts, "wrong"), now=NOW_MS + 10**9) == "bad_signature"


def test_hubspot_signs_the_uri_with_its_escapes_decoded():
    assert (
        hubspot.signed_uri("https://h.example/x%3Fa%3Db%2Fc%40d%20e")
        == "https://h.example/x?a%3Db/c@d%20e"
    )
    raw, ts, body = "https://h.example/hook%3aa", str(NOW_MS), b"[]"
    signature = hs_sign("POST", "https://h.example/hook:a", body, ts)
    assert check_hubspot("POST", raw, body, signature, ts, HS_SECRET, NOW_MS) is None


# -- payloads ------------------------------------------------------------------------------


def test_fub_events_become_changes():
    change = events.Change
    assert events.changes("followupboss", fub_event("peopleUpdated", [5, "6"])) == [
        change("followupboss", "contacts", "5", "changed"),
        change("followupboss", "contacts", "6", "changed"),
    ]
    assert events.changes("followupboss", fub_event("peopleDeleted", [7])) == [
        change("followupboss", "contacts", "7", "deleted")
    ]
    assert events.changes("followupboss", fub_event("dealsCreated", [8])) == [
        change("followupboss", "deals", "8", "changed")
    ]
    assert events.changes("followupboss", fub_event("dealsDeleted", [9]))[0].action == "deleted"
    # stored, but nothing to apply: notes, unknown events, relationship ids (not people)
    for name in ("notesCreated", "somethingNew", "peopleRelationshipCreated"):
        assert events.changes("followupboss", fub_event(name, [1])) == []
    # ids that could not be the vendor's never reach a request path
    hostile = fub_event("peopleUpdated", ["../deals/1", True, -1, "1?x=2", 3.5, None, "42"])
    assert [c.remote_id for c in events.changes("followupboss", hostile)] == ["42"]


def test_hubspot_events_become_changes_in_the_order_they_happened():
    batch = [
        {"eventId": 3, "subscriptionType": "contact.deletion", "objectId": 11, "occurredAt": 30},
        {"eventId": 1, "subscriptionType": "contact.creation", "objectId": 10, "occurredAt": 10},
        {"eventId": 2, "subscriptionType": "deal.propertyChange", "objectId": 20, "occurredAt": 20},
        {
            "eventId": 4,
            "subscriptionType": "contact.merge",
            "objectId": 12,
            "mergedObjectIds": [12, 13, 14],
            "occurredAt": 40,
        },
        {"eventId": 5, "subscriptionType": "contact.associationChange", "occurredAt": 50},
        {"eventId": 6, "subscriptionType": "company.creation", "objectId": 1, "occurredAt": 60},
        {"eventId": 7, "subscriptionType": "deal.restore", "objectId": "21", "occurredAt": 70},
    ]
    got = [(c.stream, c.remote_id, c.action) for c in events.changes("hubspot", batch)]
    assert got == [
        ("contacts", "10", "changed"),
        ("deals", "20", "changed"),
        ("contacts", "11", "deleted"),
        ("contacts", "12", "changed"),
        ("contacts", "13", "deleted"),
        ("contacts", "14", "deleted"),
        ("deals", "21", "changed"),
    ]


def test_payload_shapes_and_event_names():
    assert events.payload_problem("followupboss", fub_event("peopleUpdated", [1])) is None
    assert events.payload_problem("followupboss", [1]) is not None
    assert events.payload_problem("followupboss", {"resourceIds": [1]}) is not None
    assert events.payload_problem("hubspot", [{"objectId": 1}]) is None
    assert events.payload_problem("hubspot", {"objectId": 1}) is not None
    assert events.payload_problem("hubspot", [1]) is not None
    hostile = fub_event("people\x1b]52;c;AAAA\x07Updated\u202e", [1])
    assert "\x1b" not in events.event_name("followupboss", hostile)
    assert "\u202e" not in events.event_name("followupboss", hostile)
    kinds = [{"subscriptionType": "contact.creation"}, {"subscriptionType": "contact.creation"}]
    assert events.event_name("hubspot", [*kinds, {"subscriptionType": "deal.deletion"}]) == (
        "contact.creation,deal.deletion"
    )


# -- a fake engine (the real one is used against the simulator below) -----------------------


class FakeEngine:
    def __init__(self, outcome: Outcome = Outcome.SUCCESS, error: str | None = None) -> None:
        self.calls: list[tuple[str, str, list[str], list[str]]] = []
        self.outcome, self.error = outcome, error
        self.raises: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.called = asyncio.Event()

    async def apply_remote_changes(
        self, source: str, stream: RecordKind, changed: Sequence[str], deleted: Sequence[str]
    ) -> StreamReport:
        self.calls.append((source, stream, list(changed), list(deleted)))
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.raises is not None:
            raise self.raises
        return StreamReport(stream, outcome=self.outcome, error=self.error)


FAST = WorkerOptions(poll_seconds=0.05, retry_base_seconds=0)


@pytest.fixture
def db(open_db: Callable[[], Database]) -> Any:
    database = open_db()
    yield database
    database.close()


@pytest.fixture
def inbox(db: Database) -> WebhookInbox:
    return WebhookInbox(db, "alice")


def rows(db: Database) -> list[tuple[Any, ...]]:
    with db._lock:
        return db._conn.execute(
            "SELECT id, source, state, attempts, error FROM webhook_inbox ORDER BY id"
        ).fetchall()


def refusals(db: Database) -> dict[tuple[str, str], int]:
    with db._lock:
        found = db._conn.execute("SELECT source, reason, count FROM webhook_refusals").fetchall()
    return {(s, r): c for s, r, c in found}


# -- the receiver over loopback ------------------------------------------------------------


@pytest.fixture
async def service(
    tmp_path: Path, open_db: Callable[[], Database]
) -> AsyncIterator[tuple[WebhookService, FakeEngine, Database]]:
    settings = make_settings(tmp_path, fub_system_key=FUB_KEY, hubspot_client_secret=HS_SECRET)
    database = open_db()
    engine = FakeEngine()
    engine.gate = asyncio.Event()  # the worker waits: tests see rows as the receiver left them
    svc = WebhookService(
        settings, CacheStore(settings.user_id, database), engine, "127.0.0.1", 0, options=FAST
    )
    await svc.start()
    try:
        yield svc, engine, database
    finally:
        engine.gate.set()
        await svc.close()
        database.close()


async def post_fub(svc: WebhookService, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["FUB-Signature"] = signature
    async with httpx.AsyncClient() as client:
        return await client.post(f"{svc.url}/webhooks/followupboss", content=body, headers=headers)


async def test_a_valid_webhook_is_stored_before_the_answer(service, open_db, caplog):
    svc, _, _ = service
    body = json.dumps(fub_event("peopleUpdated", [5, 6])).encode()
    response = await post_fub(svc, body, fub_sign(body))
    assert response.status_code == 200
    row_id = response.json()["id"]
    # read at once, from another connection: committed before the answer went out
    other = open_db()
    stored = other._conn.execute(
        "SELECT user_id, source, event, payload FROM webhook_inbox WHERE id = ?", (row_id,)
    ).fetchone()
    other.close()
    assert stored == ("alice", "followupboss", "peopleUpdated", body.decode())
    assert FUB_KEY not in caplog.text


async def test_hubspot_webhook_signed_for_the_public_url(tmp_path, open_db):
    settings = make_settings(tmp_path, hubspot_client_secret=HS_SECRET)
    database = open_db()
    store = CacheStore(settings.user_id, database)
    public = "https://hooks.example.com"
    svc = WebhookService(settings, store, FakeEngine(), "127.0.0.1", 0, public, options=FAST)
    await svc.start()
    try:
        body = json.dumps(
            [{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 3}]
        ).encode()
        ts = str(int(time.time() * 1000))
        async with httpx.AsyncClient() as client:

            async def post(uri: str) -> httpx.Response:
                headers = {
                    "X-HubSpot-Signature-v3": hs_sign("POST", uri, body, ts),
                    "X-HubSpot-Request-Timestamp": ts,
                }
                url = f"{svc.url}/webhooks/hubspot?portal=1"
                return await client.post(url, content=body, headers=headers)

            assert (await post(f"{public}/webhooks/hubspot?portal=1")).status_code == 200
            # signed for the URL the receiver saw, not the public one: refused
            assert (await post(f"{svc.url}/webhooks/hubspot?portal=1")).status_code == 401
            # FUB has no secret here: a clear refusal, counted
            refused = await post_fub(svc, b"{}", "x")
            assert refused.status_code == 503
            assert "FUB_SYSTEM_KEY" in refused.json()["error"]
    finally:
        await svc.close()
    assert refusals(database) == {
        ("hubspot", "bad_signature"): 1,
        ("followupboss", "not_configured"): 1,
    }
    database.close()


async def test_each_refusal_has_its_status_and_is_counted(service, caplog):
    svc, _, database = service
    caplog.set_level(logging.INFO)
    body = json.dumps(fub_event("peopleUpdated", [1])).encode()
    assert (await post_fub(svc, body, None)).status_code == 401
    assert (await post_fub(svc, body, fub_sign(body, "nope"))).status_code == 401
    garbage = b'{"event": "peopleUpdated", '
    assert (await post_fub(svc, garbage, fub_sign(garbage))).status_code == 400
    shape = b"[1, 2]"
    assert (await post_fub(svc, shape, fub_sign(shape))).status_code == 400
    ts = str(int(time.time() * 1000) - 10 * 60 * 1000)
    uri = f"{svc.url}/webhooks/hubspot"
    hs_body = b"[]"
    async with httpx.AsyncClient() as client:
        stale = await client.post(
            uri,
            content=hs_body,
            headers={
                "X-HubSpot-Signature-v3": hs_sign("POST", uri, hs_body, ts),
                "X-HubSpot-Request-Timestamp": ts,
            },
        )
        future_ts = str(int(time.time() * 1000) + 10 * 60 * 1000)
        future = await client.post(
            uri,
            content=hs_body,
            headers={
                "X-HubSpot-Signature-v3": hs_sign("POST", uri, hs_body, future_ts),
                "X-HubSpot-Request-Timestamp": future_ts,
            },
        )
        health = await client.get(f"{svc.url}/healthz")
    assert (stale.status_code, future.status_code) == (401, 401)
    assert refusals(database) == {
        ("followupboss", "unsigned"): 1,
        ("followupboss", "bad_signature"): 1,
        ("followupboss", "malformed_json"): 1,
        ("followupboss", "malformed_payload"): 1,
        ("hubspot", "stale"): 1,
        ("hubspot", "future"): 1,
    }
    assert rows(database) == []
    assert health.status_code == 200
    assert health.json()["refused"] == 6
    assert health.json()["verifying"] == ["followupboss", "hubspot"]
    # refusals are logged by reason, without the body or a secret
    assert "unsigned" in caplog.text and "stale" in caplog.text
    assert FUB_KEY not in caplog.text and HS_SECRET not in caplog.text
    assert "peopleUpdated" not in caplog.text


async def test_an_oversized_body_is_refused_without_being_read(service):
    svc, _, database = service
    # Declared too large: refused from the headers, the body never sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(
        b"POST /webhooks/followupboss HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
        b"FUB-Signature: 00\r\n\r\n{"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert b" 413 " in status
    writer.close()
    # Chunked, and never finished: the receiver stops at the cap rather than waiting.
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    writer.write(
        b"POST /webhooks/followupboss HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"FUB-Signature: 00\r\n\r\n"
    )
    chunk = b"x" * 65536
    try:
        for _ in range(20):  # 1.25 MB of a body that never ends
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
    except ConnectionError:  # closed on us with bytes unread: a reset, also a refusal
        status = b""
    writer.close()
    assert status == b"" or b" 413 " in status
    for _ in range(100):
        if refusals(database).get(("followupboss", "too_large")) == 2:
            break
        await asyncio.sleep(0.02)
    assert refusals(database) == {("followupboss", "too_large"): 2}
    assert rows(database) == []


# -- the worker ----------------------------------------------------------------------------


def add_fub(inbox: WebhookInbox, event: str, ids: Sequence[Any], n: int = 1) -> int:
    return inbox.add("followupboss", event, json.dumps(fub_event(event, ids, n)))


async def test_a_burst_is_one_apply_call_per_stream(inbox, db):
    for n in range(50):
        add_fub(inbox, "peopleUpdated", [n % 20 + 1], n)
    add_fub(inbox, "peopleDeleted", [3])  # the last word on person 3
    add_fub(inbox, "dealsUpdated", [7, 8])
    add_fub(inbox, "notesCreated", [99])
    hs = [
        {"eventId": 1, "subscriptionType": "deal.deletion", "objectId": 4, "occurredAt": 1},
        {"eventId": 2, "subscriptionType": "contact.propertyChange", "objectId": 5},
    ]
    inbox.add("hubspot", "deal.deletion", json.dumps(hs))
    engine = FakeEngine()
    handled = await InboxWorker(inbox, engine, options=FAST).drain()
    assert handled == 54
    people = sorted(str(i) for i in range(1, 21) if i != 3)
    calls = [(src, stream, sorted(c), sorted(d)) for src, stream, c, d in engine.calls]
    assert sorted(calls) == sorted(
        [
            ("followupboss", "contacts", people, ["3"]),
            ("followupboss", "deals", ["7", "8"], []),
            ("hubspot", "deals", [], ["4"]),
            ("hubspot", "contacts", ["5"], []),
        ]
    )
    assert {state for _, _, state, _, _ in rows(db)} == {"done"}
    assert await InboxWorker(inbox, engine, options=FAST).drain() == 0


async def test_failures_are_retried_then_given_up(inbox, db):
    add_fub(inbox, "peopleUpdated", [1])
    add_fub(inbox, "notesCreated", [2])  # nothing to apply: done whatever happens
    masker_secret = "sekrit-api-key"
    engine = FakeEngine(Outcome.FAILED, f"HTTP 500 from https://x?key={masker_secret}\x1b[2J")
    from crm_tui.logs import SecretMasker

    worker = InboxWorker(inbox, engine, masker=SecretMasker([masker_secret]), options=FAST)
    await worker.drain_once()
    (_, _, state, attempts, error), second = rows(db)
    assert (state, attempts) == ("failed", 1)
    assert masker_secret not in error and "\x1b" not in error and "HTTP 500" in error
    assert second[2] == "done"
    for _ in range(10):
        await worker.drain_once()
    assert rows(db)[0][2:4] == ("dead", 5)
    assert len(engine.calls) == 5
    # a later success does not resurrect a dead row
    engine.outcome = Outcome.SUCCESS
    assert await worker.drain() == 0


async def test_backoff_waits_before_a_retry(inbox, db):
    add_fub(inbox, "peopleUpdated", [1])
    engine = FakeEngine(Outcome.FAILED, "down")
    worker = InboxWorker(inbox, engine, options=WorkerOptions(retry_base_seconds=60))
    assert await worker.drain_once() == 1
    assert await worker.drain_once() == 0  # not due for a minute
    assert inbox.claim(Claim(), 10, lambda n: 60, now=time.time() + 61)  # due then


async def test_an_engine_that_raises_fails_the_rows(inbox, db):
    add_fub(inbox, "dealsUpdated", [1])
    engine = FakeEngine()
    engine.raises = RuntimeError("boom")
    await InboxWorker(inbox, engine, options=FAST).drain_once()
    assert rows(db)[0][2:] == ("failed", 1, "RuntimeError: boom")


async def test_an_unreadable_payload_is_dead_at_once(inbox, db):
    inbox.add("followupboss", "peopleUpdated", "{not json")
    await InboxWorker(inbox, FakeEngine(), options=FAST).drain()
    assert rows(db)[0][2] == "dead"


async def test_a_stopped_worker_gives_its_rows_back(inbox, db):
    add_fub(inbox, "peopleUpdated", [1])
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    worker = InboxWorker(inbox, engine, options=FAST)
    task = asyncio.create_task(worker.drain_once())
    await engine.called.wait()
    assert rows(db)[0][2] == "working"
    # while it works, another worker finds nothing to claim
    assert await InboxWorker(inbox, FakeEngine(), options=FAST).drain_once() == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rows(db)[0][2:4] == ("new", 0)
    engine.gate = None
    assert await worker.drain() == 1


async def test_two_workers_on_one_data_dir_apply_each_row_once(open_db):
    first, second = open_db(), open_db()
    writer = WebhookInbox(first, "alice")
    for n in range(300):
        add_fub(writer, "peopleUpdated", [n + 1], n)
    engines = [FakeEngine(), FakeEngine()]
    workers = [
        InboxWorker(WebhookInbox(db, "alice"), engine, options=WorkerOptions(batch_rows=7))
        for db, engine in zip((first, second), engines, strict=True)
    ]
    await asyncio.gather(*(w.drain() for w in workers), *(w.drain() for w in workers))
    applied = [i for e in engines for call in e.calls for i in call[2]]
    assert sorted(applied, key=int) == [str(n + 1) for n in range(300)]
    assert {r[2] for r in rows(first)} == {"done"}
    first.close()
    second.close()


CLAIMER = """
import sys, time
from pathlib import Path
from crm_tui.store import Database
from crm_tui.database_url import DatabaseUrl
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.webhooks.inbox import Claim, WebhookInbox
kind, where, data_dir = sys.argv[1:]
if kind == "sqlite":
    db = Database(Path(where))
else:
    db = PostgresDatabase(DatabaseUrl(where), Path(data_dir))
inbox = WebhookInbox(db, "alice")
print(len(inbox.claim(Claim(), 100, lambda n: 0)), flush=True)
time.sleep(60)
"""


def test_rows_of_a_killed_worker_are_picked_up_again(inbox, db, backing):
    for n in range(3):
        add_fub(inbox, "peopleUpdated", [n + 1], n)
    engine = FakeEngine()
    worker = InboxWorker(inbox, engine, options=FAST)
    where = str(db.path) if backing.kind == "sqlite" else backing.url
    # this checkout's crm_tui, not whichever one the environment installed
    env = {**os.environ, "PYTHONPATH": str(Path(crm_tui.__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, backing.kind, where, str(backing.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "3"
        assert asyncio.run(worker.drain()) == 0  # a live process holds them
    finally:
        child.kill()
        child.wait()
    assert {r[2] for r in rows(db)} == {"working"}
    assert asyncio.run(worker.drain()) == 3
    assert engine.calls == [("followupboss", "contacts", ["1", "2", "3"], [])]
    assert {r[2:4] for r in rows(db)} == {("done", 0)}


async def test_the_service_applies_what_it_receives(service):
    svc, engine, database = service
    engine.gate.set()
    for n in range(5):
        body = json.dumps(fub_event("peopleUpdated", [n + 1], n)).encode()
        assert (await post_fub(svc, body, fub_sign(body))).status_code == 200
    for _ in range(200):
        if {r[2] for r in rows(database)} == {"done"}:
            break
        await asyncio.sleep(0.02)
    assert {r[2] for r in rows(database)} == {"done"}
    applied = sorted(i for call in engine.calls for i in call[2])
    assert applied == ["1", "2", "3", "4", "5"]
