"""Follow Up Boss v1: people and deals, Basic auth with the key, `_metadata.next` cursors
(read ahead: the server writes `_metadata` first).

People are read incrementally with the documented common filter `updatedAfter`, sorted by
`updated`, trash included: a person moved to the trash (stage "Trash") is a deletion. Deals
have no documented updated time: read in full, and changed by webhooks between."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from crm_tui.models import RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.kit import Basic, Changes, Named, One, Setting, Signed, Webhooks
from crm_tui.sources.mapping import primary
from crm_tui.sources.pagination import CursorInBody, Stream
from crm_tui.sources.writes import (
    At,
    Choices,
    Create,
    Items,
    Note,
    PrimaryItem,
    Tags,
    Update,
    Writes,
)
from crm_tui.vocabulary import ACTIVE
from crm_tui.webhooks.events import CHANGED, DELETED, Action, remote_id
from crm_tui.webhooks.verify import BAD_SIGNATURE, UNSIGNED, hmac_hex, same

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


def _trashed(raw: Any) -> bool:
    return isinstance(raw, Mapping) and raw.get("stage") == "Trash"


def _collection(
    path: str, skip: Callable[[Any], bool] | None = None, params: Mapping[str, str] | None = None
) -> Stream:
    """`limit` pages following `_metadata.next`, with the cursor read ahead."""
    return Stream(
        path,
        CursorInBody("_metadata.next", "next", total_at=("_metadata.total",), peek=peek_cursor),
        records=(path,),
        params=params or {},
        skip=skip,
    )


# People carry their custom fields (top-level `custom*`) only when asked: `fields=allFields`.
# The same parameters go to a single read (`read_one`).
_ALL_FIELDS = {"fields": "allFields"}


# -- webhooks: ids only, signed with the system key -----------------------------------------

# Events whose resourceIds are people or deal ids. Not every `people*` event is:
# peopleRelationship* carry relationship ids, and re-fetching one as a person would read a
# 404 as "that person was deleted". Everything else is stored and produces nothing.
EVENTS: dict[str, tuple[RecordKind, Action]] = {
    "peopleCreated": ("contacts", CHANGED),
    "peopleUpdated": ("contacts", CHANGED),
    "peopleStageUpdated": ("contacts", CHANGED),
    "peopleTagsCreated": ("contacts", CHANGED),
    "peopleDeleted": ("contacts", DELETED),
    "dealsCreated": ("deals", CHANGED),
    "dealsUpdated": ("deals", CHANGED),
    "dealsDeleted": ("deals", DELETED),
}


def signature(body: bytes, system_key: str) -> str:
    """The `FUB-Signature` Follow Up Boss sends: hex HMAC-SHA256 of base64(raw body)."""
    return hmac_hex(system_key, base64.b64encode(body))


def check_signature(request: Signed, system_key: str) -> str | None:
    """No timestamp is signed, so a captured request can be replayed: harmless here, an
    event only makes us re-fetch records from the vendor."""
    given = request.headers.get("fub-signature")
    if not given:
        return UNSIGNED
    return None if same(signature(request.body, system_key), given.lower()) else BAD_SIGNATURE


def _problem(payload: Any) -> str | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return "expected a JSON object with an `event` name"
    return None


def _event(payload: Any) -> str:
    return str(payload.get("event", "")) if isinstance(payload, dict) else ""


def named_records(payload: Any) -> list[Named]:
    """`{eventId, eventCreated, event, resourceIds[], uri}`: the records it names."""
    if not isinstance(payload, dict):
        return []
    known = EVENTS.get(str(payload.get("event")))
    ids = payload.get("resourceIds")
    if known is None or not isinstance(ids, list):
        return []
    stream, action = known
    return [(stream, rid, action) for rid in map(remote_id, ids) if rid is not None]


# -- writes: PUT of partial bodies, new leads through events, notes ---------------------------

WRITES = Writes(
    update={
        "contacts": Update(
            "PUT",
            "people/{id}",
            {
                "first_name": At("firstName"),
                "last_name": At("lastName"),
                "stage": At("stage"),
                # the vendor replaces these lists whole: the current list, primary changed
                "email": PrimaryItem("emails"),
                "phone": PrimaryItem("phones"),
                "tags": Tags(merge_param="mergeTags"),
            },
            choices={"stage": Choices("stages", ("stages",), params={"limit": "100"})},
        ),
        "deals": Update(
            "PUT",
            "deals/{id}",
            {
                "name": At("name"),
                "amount": At("price", "number"),
                "stage": At("stageId", "integer"),
                "close_date": At("projectedCloseDate"),
            },
            # a deal's stage is sent as its id, one of its own pipeline's stages
            choices={
                "stage": Choices(
                    "pipelines",
                    ("pipelines", "stages"),
                    value="id",
                    params={"limit": "100"},
                    within="pipelineId",
                )
            },
        ),
    },
    # the vendor's recommended intake: it de-duplicates by e-mail and phone and runs the
    # account's automations (POST /people runs none)
    create=Create(
        "events",
        {
            "first_name": At("person.firstName"),
            "last_name": At("person.lastName"),
            "email": Items("person.emails"),
            "phone": Items("person.phones"),
            "tags": At("person.tags"),
            "lead_source": At("source"),
            "message": At("message"),
        },
        fixed={"source": "crm-tui", "type": "General Inquiry"},
        deduplicates=True,
        required_any=("email", "phone", "first_name", "last_name"),
    ),
    note=Note(
        "notes",
        person="personId",
        text="body",
        subject="subject",
        fixed={"isHtml": False},
        listing="notes",
        listing_param="personId",
        listing_at=("notes",),
        listing_params={"limit": "100"},
    ),
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
    endpoints = {
        "contacts": _collection("people", _trashed, _ALL_FIELDS),
        "deals": _collection("deals"),
    }
    changes = {
        "contacts": Changes(
            "updatedAfter",
            {"sort": "updated", "includeTrash": "true"},
            deletes_by="the trash (includeTrash) and webhooks",
        )
    }
    single = {"contacts": One("people/{id}"), "deals": One("deals/{id}")}
    webhooks = Webhooks("FUB_SYSTEM_KEY", check_signature, _problem, _event, named_records)
    writes = WRITES
    commission = "commissionValue"  # a deal's GCI
    statuses = {
        "deals": {
            "buyer consultation": ACTIVE,
            "listing consultation": ACTIVE,
            "showing": ACTIVE,
            "offer submitted": ACTIVE,
        }
    }
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
