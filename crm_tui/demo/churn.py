"""Churn: the simulators' records change while they run, and each change is announced by
webhook (`crm-tui simulator --churn RATE --webhook-url URL`, `DemoServers.start_churn`).

About `rate` changes a second, spread evenly over the Follow Up Boss, HubSpot and
Pipedrive collections, about 70% updates, 20% creates and 10% deletes; which record and
what changes is reproducible from the seed (when it happens is the clock's).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from crm_tui.demo import data, hubspot
from crm_tui.demo.changes import Change, Kind, Overlay, Target
from crm_tui.demo.webhooks import (
    Delivery,
    SenderStats,
    WebhookSender,
    fub_event,
    fub_signature,
    hubspot_events,
    hubspot_signature_v3,
    json_body,
)

if TYPE_CHECKING:
    from crm_tui.demo.servers import DemoServers

log = logging.getLogger(__name__)

CHURNED = ("followupboss:", "hubspot:", "pipedrive:")
MIX: tuple[tuple[Kind, float], ...] = (("update", 0.7), ("create", 0.2), ("delete", 0.1))
_IDS = {
    "followupboss:people": data.fub_id,
    "followupboss:deals": lambda j: j + 1,
    "hubspot:contacts": hubspot.hubspot_id,
    "hubspot:deals": hubspot.hubspot_deal_id,
}


def pick_kind(r: random.Random) -> Kind:
    roll = r.random()
    for kind, share in MIX:
        if roll < share:
            return kind
        roll -= share
    return "update"


def pick_index(r: random.Random, overlay: Overlay, target: Target) -> int | None:
    """A record that exists, is not deleted and may change; None after a few misses."""
    created = overlay.created(target.name)
    for _ in range(20):
        slot = r.randrange(target.base + len(created))
        index = slot if slot < target.base else created[slot - target.base]
        entry = overlay.get(target.name, index)
        if target.changeable(index) and not (entry and entry.deleted):
            return index
    return None


def churn_once(r: random.Random, overlay: Overlay) -> Change | None:
    """One random change to one of the churned collections."""
    targets = [t for t in overlay.targets() if t.name.startswith(CHURNED)]
    if not targets:
        return None
    target = r.choice(targets)
    kind = pick_kind(r)
    if kind == "create":
        return overlay.apply(target.name, "create")
    index = pick_index(r, overlay, target)
    return None if index is None else overlay.apply(target.name, kind, index)


class Announcer:
    """Turns each change into Follow Up Boss and HubSpot webhooks for the sender."""

    def __init__(self, servers: DemoServers, sender: WebhookSender, url: str | None) -> None:
        self.servers = servers
        self.sender = sender
        self.url = url

    def __call__(self, change: Change) -> None:
        ident = _IDS.get(change.collection)
        if ident is None:
            return  # Pipedrive (and the rest) send no webhooks
        if change.collection.startswith("followupboss:"):
            self._fub(change, ident(change.index))
        elif self.url:
            self._hubspot(change, str(ident(change.index)))

    def _fub(self, change: Change, ident: int) -> None:
        fub = self.servers.servers.get("followupboss")
        payload = fub_event(change, fub.url if fub else "", ident)
        if payload is None:
            return
        body = json_body(payload)
        key = self.servers.credentials.fub_system_key
        headers = {"Content-Type": "application/json", "FUB-Signature": fub_signature(body, key)}
        urls = self.servers.subscriptions.urls(payload["event"])
        mine = [self._url("followupboss")] if self.url else []
        for url in dict.fromkeys([*mine, *urls]):
            self.sender.enqueue(Delivery(url, body, headers))

    def _hubspot(self, change: Change, ident: str) -> None:
        events = hubspot_events(change, ident)
        if not events or not self.url:
            return
        secret = self.servers.credentials.hubspot_client_secret

        def sign(delivery: Delivery) -> dict[str, str]:
            # signed at each attempt: receivers reject a timestamp older than 5 minutes
            stamp = str(int(time.time() * 1000))
            signature = hubspot_signature_v3(secret, "POST", delivery.url, delivery.body, stamp)
            return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}

        headers = {"Content-Type": "application/json"}
        self.sender.enqueue(Delivery(self._url("hubspot"), json_body(events), headers, sign))

    def _url(self, source: str) -> str:
        """The receiver's URL for `source`: `{source}` in it names the CRM (one receiver,
        a path per CRM, as `crm-tui webhooks serve` has)."""
        assert self.url is not None
        return self.url.replace("{source}", source)


class Churn:
    """The churn thread and the webhook sender of one demo."""

    def __init__(
        self, servers: DemoServers, rate: float, webhook_url: str | None, seed: int
    ) -> None:
        self.servers = servers
        self.rate = max(rate, 0.0)
        self.random = random.Random(f"churn:{seed}")
        self.sender = WebhookSender()
        self.announcer = Announcer(servers, self.sender, webhook_url)
        self.changes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-churn", daemon=True)

    @property
    def stats(self) -> SenderStats:
        return self.sender.stats

    def start(self) -> None:
        self.servers.overlay.subscribe(self.announcer)
        if self.rate > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.servers.overlay.unsubscribe(self.announcer)
        self.sender.close()

    def _run(self) -> None:
        interval = 1.0 / self.rate
        deadline = time.monotonic()
        while True:
            deadline += interval
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                return
            try:
                if churn_once(self.random, self.servers.overlay) is not None:
                    self.changes += 1
            except Exception:  # a bug in one change must not end the demo's churn
                log.exception("churn: a change failed")
