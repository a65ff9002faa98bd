"""One small vocabulary of statuses shared by every source, beside each vendor's own values.

Follow Up Boss says "Hot Prospect", HubSpot "salesqualifiedlead", Pipedrive "open": a person
filtering `status:prospect` means all of them. Each record keeps its vendor's value; the
shared one is worked out when it is read (per distinct vendor value, cached), never stored,
so a better table or a user's new stage name applies without a re-sync.

Each connector names the values of its own that no word gives away (`Source.statuses`).
A value a source's table does not name is read by its words ("Closed - Won" is closed); a
value whose words say nothing stays unmapped and is shown as the vendor's value only.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from crm_tui.models import Record, RecordKind, kind_of
from crm_tui.text import fold

LEAD = "lead"
PROSPECT = "prospect"
ACTIVE = "active client"
CONTRACT = "under contract"
CLOSED = "closed"
PAST = "past client"
NURTURE = "nurture"
TRASH = "trash"
LOST = "lost"  # deals only: a lost or cancelled deal is neither closed nor trash
#: In a person's order through a deal; the filter hints and the help list them so.
SHARED_STATUSES: tuple[str, ...] = (
    LEAD,
    PROSPECT,
    ACTIVE,
    CONTRACT,
    CLOSED,
    PAST,
    NURTURE,
    TRASH,
    LOST,
)

# Values several vendors use alike (Follow Up Boss's default stages, the CSV exports'
# transaction statuses), folded.
_COMMON: dict[str, str] = {
    "lead": LEAD,
    "new": LEAD,
    "new lead": LEAD,
    "unqualified": LEAD,
    "contacted": LEAD,
    "attempted to contact": LEAD,
    "prospect": PROSPECT,
    "hot prospect": PROSPECT,
    "qualified": PROSPECT,
    "hot": PROSPECT,
    "warm": PROSPECT,
    "active client": ACTIVE,
    "active": ACTIVE,
    "client": ACTIVE,
    "pre-contract": ACTIVE,
    "under contract": CONTRACT,
    "pending": CONTRACT,
    "closed": CLOSED,
    "won": CLOSED,
    "past client": PAST,
    "sphere": NURTURE,
    "nurture": NURTURE,
    "cold": NURTURE,
    "trash": TRASH,
    "lost": LOST,
    "cancelled": LOST,
    "canceled": LOST,
    "terminated": LOST,
}

_DEFAULT_FIELDS = ("stage", "status")


def _connector(source: str) -> Any:
    from crm_tui.sources.registry import CONNECTORS  # the connectors import this module

    return CONNECTORS.get(source)


# The words of an unknown value, tried in this order: "closed lost" is lost before it is
# closed, "past client" is past before it is a client.
_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (TRASH, ("trash", "junk", "spam", "deleted", "do not contact")),
    (LOST, ("lost", "cancel", "terminat", "withdrawn", "expired", "fell through", "dead")),
    (PAST, ("past client", "past customer", "former client", "repeat")),
    (CONTRACT, ("under contract", "in contract", "pending", "escrow", "contract", "accepted")),
    (CLOSED, ("closed", "won", "sold", "settled")),
    (NURTURE, ("nurture", "inactive", "cold", "long term", "drip", "sphere", "bad timing")),
    (ACTIVE, ("active client", "client", "customer", "active", "showing", "offer")),
    (PROSPECT, ("prospect", "hot", "warm", "qualified", "appointment")),
    (LEAD, ("lead", "new", "subscriber", "inquiry", "contacted")),
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def field_order(source: str, kind: RecordKind) -> tuple[str, ...]:
    """The record fields whose values map onto the shared vocabulary, best first."""
    connector = _connector(source)
    fields = connector.status_fields.get(kind) if connector is not None else None
    return fields or _DEFAULT_FIELDS


@functools.lru_cache(maxsize=4096)
def shared_value(source: str, kind: RecordKind, value: str | None) -> str | None:
    """The shared status a vendor value means, or None when nothing says. Cached: a
    million records hold a few dozen distinct values."""
    if not value:
        return None
    folded = fold(value).strip()
    connector = _connector(source)
    table = connector.statuses.get(kind, {}) if connector is not None else {}
    found = table.get(folded) or _COMMON.get(folded)
    if found is not None:
        return found
    if folded.isdigit():  # a stage id (Pipedrive, a custom HubSpot pipeline): no words
        return None
    words = f" {_NOT_WORD.sub(' ', folded).strip()} "
    squeezed = words.replace(" ", "")  # "closedwon", "Closed-Lost": ids without spaces
    for shared, markers in _WORDS:
        for marker in markers:
            if len(marker) <= 3:  # "won", "hot", "new": whole words only
                if f" {marker} " in words:
                    return shared
            elif marker.replace(" ", "") in squeezed:
                return shared
    return None


def record_shared_status(record: Record) -> str | None:
    """Where a record stands in the shared vocabulary, from its best-placed field."""
    kind = kind_of(record)
    for name in field_order(record.source, kind):
        found = shared_value(record.source, kind, getattr(record, name, None))
        if found is not None:
            return found
    return None


def shared_code(value: str | None) -> int:
    """A shared status's place in SHARED_STATUSES, or -1 (compact per-record codes)."""
    return SHARED_STATUSES.index(value) if value in SHARED_STATUSES else -1


def normalize_filter(value: str) -> str:
    """A typed filter value as the vocabulary spells it: `active-client`, `active_client`
    and `"active client"` are one value."""
    return " ".join(re.split(r"[-_\s]+", fold(value).strip()))


def matches_shared(typed: str, shared: str) -> bool:
    """A filter value names a shared status when it starts one of its words:
    `status:past` and `status:client` find past clients."""
    wanted = normalize_filter(typed)
    return bool(wanted) and (shared.startswith(wanted) or f" {wanted}" in shared)


def filter_token(shared: str) -> str:
    """How a person types a shared status in a filter: one word, `active-client`."""
    return shared.replace(" ", "-")
