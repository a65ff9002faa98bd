"""Webhooks the simulators send when their data changes: Follow Up Boss's and HubSpot's
payloads and signatures (crm-apis.md), and a sender that never blocks a server thread.

- Follow Up Boss: `{eventId, eventCreated, event, resourceIds, uri}`, ids only (`uri` null
  for `peopleDeleted`, and, by analogy, for `dealsDeleted`: the record is gone), header
  `FUB-Signature` = hex HMAC-SHA256 of base64(raw body) keyed with the system key. Sent to
  the `--webhook-url` and to every subscription made with `POST /v1/webhooks` for the event.
- HubSpot: a JSON array of `{eventId, subscriptionType, objectId, occurredAt, portalId,
  appId, ...}`, signed v3: `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(client secret,
  method + uri + body + timestamp)), `X-HubSpot-Request-Timestamp` in epoch ms. One
  `propertyChange` event per changed property, as HubSpot sends one per subscribed property.
- Pipedrive: none (its changes are found by incremental reads).

A change is queued by the overlay's listener and posted by one background thread with
httpx; a failure is retried a few times with backoff, then counted and logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from crm_tui.demo.changes import Change

log = logging.getLogger(__name__)

FUB_EVENTS = frozenset(
    {
        "peopleCreated",
        "peopleUpdated",
        "peopleDeleted",
        "peopleStageUpdated",
        "peopleTagsCreated",
        "notesCreated",
        "notesUpdated",
        "notesDeleted",
        "dealsCreated",
        "dealsUpdated",
        "dealsDeleted",
    }
)
MAX_PER_EVENT = 2  # subscriptions per event per system (crm-apis.md)
HUBSPOT_PORTAL_ID = 62515
HUBSPOT_APP_ID = 1160452
RETRY_DELAYS = (0.2, 1.0, 3.0)  # seconds before each retry of a failed delivery
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


# -- signatures ----------------------------------------------------------------------------


def fub_signature(body: bytes, system_key: str) -> str:
    return hmac.new(system_key.encode(), base64.b64encode(body), hashlib.sha256).hexdigest()


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


# -- Follow Up Boss subscriptions ----------------------------------------------------------


@dataclass
class Subscription:
    id: int
    event: str
    url: str
    system: str
    status: str = "Active"

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "system": self.system,
            "status": self.status,
        }


class SubscriptionError(ValueError):
    pass


def check_url(url: object) -> str:
    """The real API takes HTTPS only; the simulator also takes plain http to loopback, so a
    receiver on this machine can be tested without a certificate."""
    if not isinstance(url, str) or not url:
        raise SubscriptionError("url is required")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise SubscriptionError("url must be an https URL")


class Subscriptions:
    """`/v1/webhooks` of the Follow Up Boss simulator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, Subscription] = {}
        self._ids = itertools.count(1)

    def add(self, event: object, url: object, system: str) -> Subscription:
        if event not in FUB_EVENTS:
            raise SubscriptionError(f"unknown event {event!r}")
        checked = check_url(url)
        with self._lock:
            same = [s for s in self._items.values() if s.event == event and s.system == system]
            if len(same) >= MAX_PER_EVENT:
                raise SubscriptionError(
                    f"at most {MAX_PER_EVENT} webhooks per event for one system"
                )
            item = Subscription(next(self._ids), str(event), checked, system)
            self._items[item.id] = item
            return item

    def get(self, ident: int) -> Subscription | None:
        with self._lock:
            return self._items.get(ident)

    def all(self) -> list[Subscription]:
        with self._lock:
            return list(self._items.values())

    def update(self, ident: int, body: Mapping[str, Any]) -> Subscription | None:
        with self._lock:
            item = self._items.get(ident)
            if item is None:
                return None
            if "event" in body and body["event"] not in FUB_EVENTS:
                raise SubscriptionError(f"unknown event {body['event']!r}")
            url = check_url(body["url"]) if "url" in body else item.url
            item.event = str(body.get("event", item.event))
            item.url = url
            item.status = str(body.get("status", item.status))
            return item

    def delete(self, ident: int) -> bool:
        with self._lock:
            return self._items.pop(ident, None) is not None

    def urls(self, event: str) -> list[str]:
        with self._lock:
            return [
                s.url for s in self._items.values() if s.event == event and s.status == "Active"
            ]


# -- payloads ------------------------------------------------------------------------------

_FUB_RESOURCE = {"followupboss:people": "people", "followupboss:deals": "deals"}
_FUB_VERB = {"create": "Created", "update": "Updated", "delete": "Deleted"}
_HUBSPOT_TYPE = {"hubspot:contacts": "contact", "hubspot:deals": "deal"}
_HUBSPOT_VERB = {"create": "creation", "delete": "deletion"}


def _iso_ms(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def fub_event(change: Change, base_url: str, ident: int) -> dict[str, Any] | None:
    """The Follow Up Boss payload for a change, or None when it is not a FUB change."""
    resource = _FUB_RESOURCE.get(change.collection)
    if resource is None:
        return None
    event = resource + _FUB_VERB[change.kind]
    uri = None if change.kind == "delete" else f"{base_url}/v1/{resource}?id={ident}"
    return {
        "eventId": f"demo-{change.serial:08d}",
        "eventCreated": _iso_ms(change.at),
        "event": event,
        "resourceIds": [ident],
        "uri": uri,
    }


def hubspot_events(change: Change, ident: str) -> list[dict[str, Any]] | None:
    kind = _HUBSPOT_TYPE.get(change.collection)
    if kind is None:
        return None
    common = {
        "objectId": int(ident),
        "occurredAt": int(change.at * 1000),
        "portalId": HUBSPOT_PORTAL_ID,
        "appId": HUBSPOT_APP_ID,
        "attemptNumber": 0,
        "changeSource": "CRM",
    }
    if change.kind in _HUBSPOT_VERB:
        kinds = [(f"{kind}.{_HUBSPOT_VERB[change.kind]}", {})]
    else:
        kinds = [
            (f"{kind}.propertyChange", {"propertyName": name, "propertyValue": value})
            for name, value in change.patch.items()
        ]
    return [
        {"eventId": change.serial * 100 + n, "subscriptionType": sub, **common, **extra}
        for n, (sub, extra) in enumerate(kinds)
    ]


# -- the sender ----------------------------------------------------------------------------


@dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    sign: Callable[[Delivery], dict[str, str]] | None = None  # fresh headers per attempt


@dataclass
class SenderStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0  # deliveries given up after every retry
    retried: int = 0
    errors: list[str] = field(default_factory=list)  # the last few, for a test or a log


class WebhookSender:
    """One daemon thread posts queued deliveries in order; `enqueue` never blocks."""

    def __init__(self, timeout: float = 5.0, delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.stats = SenderStats()
        self.delays = delays
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._client = httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-webhooks", daemon=True)
        self._thread.start()

    def enqueue(self, delivery: Delivery) -> None:
        self.stats.queued += 1
        self._queue.put_nowait(delivery)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was sent or given up (tests)."""
        deadline = time.monotonic() + timeout
        while self.stats.sent + self.stats.failed < self.stats.queued:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self._stop.set()
        self._queue.put_nowait(None)
        self._thread.join(timeout=5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        error = ""
        for attempt in range(len(self.delays) + 1):
            if attempt:
                self.stats.retried += 1
                if self._stop.wait(self.delays[attempt - 1]):
                    break
            headers = {**delivery.headers, **(delivery.sign(delivery) if delivery.sign else {})}
            try:
                response = self._client.post(delivery.url, content=delivery.body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                self.stats.sent += 1
                return
            error = f"HTTP {response.status_code}"
        self.stats.failed += 1
        self.stats.errors = [*self.stats.errors[-9:], f"{delivery.url}: {error}"]
        log.warning("webhook to %s failed after retries: %s", delivery.url, error)


def json_body(payload: Any) -> bytes:
    return orjson.dumps(payload)
