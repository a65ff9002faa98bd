"""Follow Up Boss webhook subscriptions: register, list, remove (`/v1/webhooks`).

Follow Up Boss takes webhook requests only from a registered system (the `X-System` header,
sent from FUB_SYSTEM), at most two subscriptions per event per system, and only to HTTPS
URLs. HubSpot's subscriptions are set in its app settings, not over this API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from crm_tui.config import ConfigError, Settings, is_loopback_host
from crm_tui.sources.errors import SourceError
from crm_tui.sources.followupboss import EVENTS
from crm_tui.sources.http import HttpClient
from crm_tui.text import single_line

DEFAULT_EVENTS = tuple(EVENTS)  # every event the connector applies
#: The events Follow Up Boss documents; a typo is caught here rather than by a 400.
KNOWN_EVENTS = (
    *DEFAULT_EVENTS,
    "notesCreated",
    "notesUpdated",
    "notesDeleted",
)
_PAGE = 100
_MAX_PAGES = 50


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int | None
    event: str
    url: str
    status: str

    @classmethod
    def from_json(cls, item: Any) -> Subscription:
        """A vendor object: every string cleaned, since it is shown and printed."""
        item = item if isinstance(item, dict) else {}
        raw_id = item.get("id")
        ident = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        text = {k: single_line(str(item.get(k) or "")) for k in ("event", "url", "status")}
        return cls(ident, text["event"], text["url"], text["status"])

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "url": self.url, "status": self.status}


@dataclass(slots=True)
class Outcome:
    """What a register or remove did, event by event."""

    done: list[Subscription] = field(default_factory=list)
    existing: list[Subscription] = field(default_factory=list)
    failed: list[tuple[str, SourceError]] = field(default_factory=list)

    def failures_json(self) -> list[dict[str, str]]:
        return [{"item": what, "error": e.error, "details": e.details} for what, e in self.failed]


def require_system(settings: Settings) -> None:
    if not getattr(settings, "fub_system", None):
        raise ConfigError(
            "FUB_SYSTEM is not set: Follow Up Boss manages webhooks only for a registered"
            " system; set FUB_SYSTEM (and FUB_SYSTEM_KEY, which verifies what it sends)"
        )


def check_callback_url(url: str) -> str:
    """The URL Follow Up Boss will call: https, or http to this machine (a local test)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"--url must be an https:// URL, not {single_line(url)!r}")
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname):
        raise ValueError(
            "--url must use https:// (Follow Up Boss calls HTTPS URLs only; plain http:// is"
            " accepted only for a loopback address such as 127.0.0.1)"
        )
    return url


def parse_events(text: str) -> tuple[str, ...]:
    events = tuple(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    unknown = [e for e in events if e not in KNOWN_EVENTS]
    if not events or unknown:
        named = ", ".join(single_line(e) for e in unknown) or "none"
        raise ValueError(f"unknown events: {named}; known: {', '.join(KNOWN_EVENTS)}")
    return events


async def list_webhooks(client: HttpClient) -> list[Subscription]:
    """Every subscription of this system (`GET /v1/webhooks`, a page at a time)."""
    found: list[Subscription] = []
    for page in range(_MAX_PAGES):
        params = {"limit": _PAGE, "offset": page * _PAGE}
        body, _ = await client.send_json("GET", "webhooks", params=params, what="webhooks")
        items = body.get("webhooks") if isinstance(body, dict) else None
        if not isinstance(items, list):
            break
        found.extend(Subscription.from_json(item) for item in items)
        total = (body.get("_metadata") or {}).get("total")
        if len(items) < _PAGE or (isinstance(total, int) and len(found) >= total):
            break
    return found


async def register(client: HttpClient, url: str, events: Sequence[str]) -> Outcome:
    """Subscribe `url` to each event (`POST /v1/webhooks {event, url}`), skipping those it
    already has: registering twice would use up the vendor's two per event. One failed
    event does not stop the others."""
    outcome = Outcome()
    current = {(s.event, s.url): s for s in await list_webhooks(client)}
    for event in events:
        if (event, url) in current:
            outcome.existing.append(current[(event, url)])
            continue
        try:
            body, _ = await client.send_json(
                "POST", "webhooks", body={"event": event, "url": url}, what="webhooks"
            )
        except SourceError as exc:
            outcome.failed.append((event, exc))
            continue
        made = Subscription.from_json(body)
        outcome.done.append(made if made.event else Subscription(made.id, event, url, ""))
    return outcome


async def remove(client: HttpClient, ids: Sequence[int]) -> Outcome:
    """Delete subscriptions by id (`DELETE /v1/webhooks/{id}`); ids are integers, so no
    text of ours or theirs ever becomes part of the path."""
    outcome = Outcome()
    for ident in ids:
        try:
            await client.send_json("DELETE", f"webhooks/{int(ident)}", what="webhooks")
        except SourceError as exc:
            outcome.failed.append((str(ident), exc))
            continue
        outcome.done.append(Subscription(int(ident), "", "", "removed"))
    return outcome
