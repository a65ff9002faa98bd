"""The unified schema: Contact, Deal, SourceStatus and the sync report.

Records are slotted dataclasses rather than pydantic models: a million of them must fit in
about a kilobyte each and load from the snapshot in seconds. Validation happens once, at
ingest, in `sources/mapping.py`. The source's original payload is kept as compact JSON text
(`raw`) and parsed only when someone asks for `metadata`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from crm_tui.custom_columns import NO_CUSTOM, custom_json
from crm_tui.timefmt import UTC_STAMP

RecordKind = Literal["contacts", "deals"]
KINDS: tuple[RecordKind, ...] = ("contacts", "deals")


def utc_now() -> str:
    return datetime.now(UTC).strftime(UTC_STAMP)


def record_id(source: str, remote_id: str) -> str:
    return f"{source}:{remote_id}"


@dataclass(slots=True)
class Contact:
    id: str
    source: str
    remote_id: str
    user_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    status: str | None = None
    rating: str | None = None
    stage: str | None = None
    tags: tuple[str, ...] = ()
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    remote_created: str | None = None
    remote_updated: str | None = None
    synced_at: str | None = None
    deleted: bool = False
    raw: str = "{}"
    #: custom column name -> typed value (see custom_columns.py); last, so that positional
    #: construction of the fields above stays as it was
    custom: dict[str, Any] = NO_CUSTOM

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.raw)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(slots=True)
class Deal:
    id: str
    source: str
    remote_id: str
    user_id: str
    name: str | None = None
    amount: Decimal | None = None
    currency: str = "USD"
    stage: str | None = None
    probability: int | None = None
    close_date: str | None = None
    property_address: str | None = None
    status: str | None = None
    contact_remote_id: str | None = None
    remote_created: str | None = None
    remote_updated: str | None = None
    synced_at: str | None = None
    deleted: bool = False
    raw: str = "{}"
    custom: dict[str, Any] = NO_CUSTOM

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.raw)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


Record = Contact | Deal


def kind_of(record: Record) -> RecordKind:
    return "contacts" if isinstance(record, Contact) else "deals"


CONTACT_FIELDS = tuple(f.name for f in fields(Contact))
DEAL_FIELDS = tuple(f.name for f in fields(Deal))
#: Set by the sync itself, never by a person or a field map of values.
SYSTEM_FIELDS = frozenset(
    {
        "id",
        "source",
        "remote_id",
        "user_id",
        "remote_created",
        "remote_updated",
        "synced_at",
        "deleted",
        "raw",
    }
)
#: The custom columns' values: mapped like a field, but a dict of columns, not one value.
CUSTOM_FIELD = "custom"
CONTACT_EDITABLE = tuple(f for f in CONTACT_FIELDS if f not in SYSTEM_FIELDS | {CUSTOM_FIELD})
DEAL_EDITABLE = tuple(f for f in DEAL_FIELDS if f not in SYSTEM_FIELDS | {CUSTOM_FIELD})


def _to_json(record: Record) -> dict[str, Any]:
    data = asdict(record)
    data.pop("raw")
    data.pop("custom")
    data["metadata"] = record.metadata
    if isinstance(record, Contact):
        data["tags"] = list(record.tags)
        data["name"] = record.name
    elif record.amount is not None:
        # A JSON number would lose cents on large values; a string keeps them exactly.
        data["amount"] = str(record.amount)
    data["custom"] = custom_json(record.custom)
    return data


class SyncState(StrEnum):
    IDLE = "idle"
    SYNCING = "syncing"
    WAITING = "waiting"  # for another process that holds one of its streams
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    DISABLED = "disabled"


class Failure(StrEnum):
    """What kind of failure ended a stream: what the exit code and the status follow. An
    exception declares its kind as a `failure` class attribute, beside its `exit_code`."""

    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"  # another process holds the stream
    OTHER = "other"


def failure_of(exc: BaseException) -> Failure:
    return getattr(type(exc), "failure", Failure.OTHER)


class Outcome(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # another process was writing it, and the run would not wait


@dataclass(slots=True)
class Progress:
    stream: str = ""
    records: int = 0
    pages: int = 0
    total: int | None = None


@dataclass(frozen=True, slots=True)
class RateReading:
    """A source's rate budget as its headers last reported it (shared by every request made
    with its key: syncs, tests of the connection, webhook fetches)."""

    limit: int | None = None
    remaining: int | None = None
    window: float | None = None  # seconds
    daily_remaining: int | None = None
    observed_at: str = ""

    def describe(self) -> str:
        """ "183 of 250 left per 10 s" """
        if self.remaining is None:
            return ""
        text = f"{self.remaining}"
        if self.limit is not None:
            text += f" of {self.limit}"
        text += " left"
        if self.window:
            text += f" per {self.window:g} s"
        if self.daily_remaining is not None:
            text += f", {self.daily_remaining} today"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "windowSeconds": self.window,
            "dailyRemaining": self.daily_remaining,
            "observedAt": self.observed_at or None,
        }


@dataclass(slots=True)
class SourceStatus:
    source: str
    state: SyncState = SyncState.IDLE
    last_sync: str | None = None
    contact_count: int = 0
    deal_count: int = 0
    last_error: str | None = None
    progress: Progress | None = None
    retry_at: str | None = None
    next_run: str | None = None
    waiting_for: str | None = None  # who holds the stream this sync waits for
    busy_elsewhere: str | None = None  # another process writing one of its streams
    rate: RateReading | None = None  # the vendor's rate budget, as last reported

    def to_guide(self) -> dict[str, Any]:
        return {
            "status": str(self.state),
            "lastSync": self.last_sync,
            "contactCount": self.contact_count,
            "dealCount": self.deal_count,
            "lastError": self.last_error,
        }


@dataclass(slots=True)
class StreamReport:
    stream: RecordKind
    outcome: Outcome = Outcome.SUCCESS
    read: int = 0
    written: int = 0
    quarantined: int = 0
    duplicates: int = 0
    retries: int = 0
    pages: int = 0
    error_class: str | None = None  # the exception's name, for the audit trail
    failure: Failure | None = None
    error: str | None = None
    started_at: str = field(default_factory=utc_now)
    ended_at: str | None = None
    #: "full" (every record read, the stream replaced), "incremental" (what changed since
    #: the watermark), "webhook" (the records a webhook named)
    mode: str = "full"
    deleted: int = 0  # records an incremental read or a webhook removed
    requests: int = 0  # HTTP requests sent, retries and token requests excluded
    watermark: str | None = None  # the stream's watermark after the run

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.SUCCESS


@dataclass(slots=True)
class SyncReport:
    source: str
    outcome: Outcome = Outcome.SUCCESS
    streams: dict[str, StreamReport] = field(default_factory=dict)
    started_at: str = field(default_factory=utc_now)
    ended_at: str | None = None
    error: str | None = None
    run_id: int | None = None

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.SUCCESS

    def to_guide(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, stream in self.streams.items():
            item: dict[str, Any] = {"success": stream.success, "count": stream.written}
            if stream.error:
                item["error"] = stream.error
            result[name] = item
        if self.error and not self.streams:
            result["error"] = self.error
        return result
