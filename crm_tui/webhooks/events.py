"""Vendor webhook payloads as changes: which records of which stream to re-fetch or delete.
Each connector reads its own payloads (`Source.webhooks.records`); this module holds what
they share.

Payloads carry ids only; the worker re-fetches changed records through the source's own
client. A payload's `uri` is never followed: it is the sender's text, and following it would
let a forged or mistaken event point our credentials at any host.

Ids must look like the vendors' ids (digits): an id becomes part of a request path, so
`../people` or `1?x=` from a payload must never reach the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from crm_tui.models import RecordKind
from crm_tui.text import single_line

Action = Literal["changed", "deleted"]
CHANGED: Action = "changed"
DELETED: Action = "deleted"

_REMOTE_ID = re.compile(r"[0-9]{1,24}")


@dataclass(frozen=True, slots=True)
class Change:
    """One record to re-fetch (changed) or drop (deleted)."""

    source: str
    stream: RecordKind
    remote_id: str
    action: Action


def remote_id(value: Any) -> str | None:
    """A vendor id as text, or None when it does not look like one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _REMOTE_ID.fullmatch(value):
        return value
    return None


def _declared(source: str) -> Any:
    from crm_tui.sources.registry import CONNECTORS

    connector = CONNECTORS.get(source)
    return connector.webhooks if connector is not None else None


def payload_problem(source: str, payload: Any) -> str | None:
    """Why a decoded body is not a webhook of `source` at all (refused with 400), or None.
    Items we do not understand inside a well-formed body are kept and ignored later."""
    declared = _declared(source)
    return (
        "no webhooks are taken from this source" if declared is None else declared.problem(payload)
    )


def event_name(source: str, payload: Any, limit: int = 200) -> str:
    """The inbox's `event` column: vendor text, so stripped of control characters and cut
    short."""
    declared = _declared(source)
    name = declared.event(payload) if declared is not None else ""
    return single_line(name)[:limit] or "unknown"


def changes(source: str, payload: Any) -> list[Change]:
    declared = _declared(source)
    if declared is None:
        return []
    return [
        Change(source, stream, rid, action) for stream, rid, action in declared.records(payload)
    ]
