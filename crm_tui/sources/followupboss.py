"""Follow Up Boss v1: people and deals, Basic auth with the key, `_metadata.next` cursors
(read ahead: the server writes `_metadata` first)."""

from __future__ import annotations

import re

import orjson

from crm_tui.sources.base import Source
from crm_tui.sources.kit import Basic, Setting
from crm_tui.sources.mapping import primary
from crm_tui.sources.pagination import CursorInBody, Stream

# `{"_metadata": {...flat...}` at the start of a body: Follow Up Boss writes it first.
_LEADING_METADATA = re.compile(rb'\s*\{\s*"_metadata"\s*:\s*(\{[^{}]*\})')
_PEEK_BYTES = 4096


def peek_cursor(content: bytes) -> str | None:
    """`_metadata.next` read off the head of a body, without decoding its records; None
    when the body does not start with a flat `_metadata` object. A guess: the decoded page
    has the last word (see pagination's read-ahead)."""
    match = _LEADING_METADATA.match(content[:_PEEK_BYTES])
    if match is None:
        return None
    try:
        meta = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return None
    cursor = meta.get("next") if isinstance(meta, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


def _collection(path: str) -> Stream:
    """`limit` pages following `_metadata.next`, with the cursor read ahead."""
    return Stream(
        path,
        CursorInBody("_metadata.next", "next", total_at=("_metadata.total",), peek=peek_cursor),
        records=(path,),
    )


class FollowUpBossSource(Source):
    name = "followupboss"
    display_name = "Follow Up Boss"
    short_name = "FUB"
    settings = (
        Setting(
            "FUB_API_KEY",
            "Follow Up Boss API key (HTTP Basic user name); enables Follow Up Boss.",
            secret=True,
            required=True,
        ),
        Setting(
            "FUB_API_BASE_URL",
            "Follow Up Boss API base URL.",
            default="https://api.followupboss.com/v1",
            kind="url",
        ),
        Setting("FUB_SYSTEM", "Registered system name, sent as X-System."),
        Setting("FUB_SYSTEM_KEY", "Registered system key, sent as X-System-Key.", secret=True),
    )
    record_url = "https://app.followupboss.com/2/people/view/{remote_id}"
    base_url_setting = "FUB_API_BASE_URL"
    auth = Basic("FUB_API_KEY")
    extra_headers = {"X-System": "FUB_SYSTEM", "X-System-Key": "FUB_SYSTEM_KEY"}
    endpoints = {"contacts": _collection("people"), "deals": _collection("deals")}
    field_maps = {
        "contacts": {
            "remote_id": "id",
            "first_name": "firstName",
            "last_name": "lastName",
            "email": primary("emails"),
            "phone": primary("phones"),
            "stage": "stage",
            "tags": "tags",
            "street": "addresses[0].street",
            "city": "addresses[0].city",
            "state": "addresses[0].state",
            "postal_code": "addresses[0].code",
            "remote_created": "created",
            "remote_updated": "updated",
        },
        "deals": {
            "remote_id": "id",
            "name": "name",
            "amount": "price",
            "stage": "stageName",
            "status": "status",
            "close_date": "projectedCloseDate",
            "contact_remote_id": "people[0].id",
            "remote_created": "createdAt",
            "remote_updated": "updatedAt",
        },
    }
