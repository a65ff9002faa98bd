"""What a source declares about itself, as plain data: its settings, how it authenticates,
what rate-limit headers it sends, which CSV exports it imports. Nothing here talks HTTP or
opens a database: the settings model, the Connections screen, `.env.example` and the CLI are
built from these declarations without loading a connector's machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crm_tui.models import RecordKind
    from crm_tui.sources.csv_import import CsvSpec
    from crm_tui.sources.mapping import FieldMap

SettingKind = Literal["text", "url", "file", "folder"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable a source reads."""

    env: str
    help: str
    secret: bool = False
    required: bool = False  # the source is off until it is set
    default: str | None = None
    kind: SettingKind = "text"
    #: Sent to the source's server (a ./.env may not point it elsewhere): every secret,
    #: and client ids.
    credential: bool = False

    def __post_init__(self) -> None:
        if self.secret:
            object.__setattr__(self, "credential", True)

    @property
    def field(self) -> str:
        """Its attribute on Settings: the variable's name in lower case."""
        return self.env.lower()


def is_set(value: Any) -> bool:
    return value is not None and value != ""


# -- authentication, declared ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyHeader:
    """A key sent in a header: `Authorization: Token token={key}`, `x-api-token: {key}`."""

    setting: str
    header: str = "Authorization"
    template: str = "{key}"


@dataclass(frozen=True, slots=True)
class Bearer:
    """`Authorization: Bearer {token}`: private-app tokens and personal access tokens."""

    setting: str


@dataclass(frozen=True, slots=True)
class Basic:
    """HTTP Basic with the key as the user name and an empty password (Follow Up Boss)."""

    setting: str


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """OAuth2 client credentials: a token fetched from `token_path` (relative to the base URL),
    cached and refreshed early, sent as a Bearer token."""

    token_path: str
    client_id: str
    client_secret: str


Auth = KeyHeader | Bearer | Basic | ClientCredentials


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    total_seconds: float = 120.0
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 1.0
    #: A Retry-After longer than this is not slept through: the source is rate limited.
    max_retry_after: float = 60.0


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """Where a vendor says how much of its rate limit is left. `window` is the header with
    the window's length (in `window_unit` seconds), or None and `window_seconds` fixed."""

    limit: str = "x-ratelimit-limit"
    remaining: str = "x-ratelimit-remaining"
    window: str | None = "x-ratelimit-window"
    window_unit: float = 1.0
    window_seconds: float = 10.0
    #: When the window starts afresh: seconds from now, or a UTC epoch (`reset_is_epoch`).
    #: Waited for on a 429 that carries no Retry-After.
    reset: str | None = None
    reset_is_epoch: bool = False
    #: Requests left today; at 0 a 429 means the day's budget is spent, not a burst.
    daily_remaining: str | None = None


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvExport:
    """A CSV export `crm-tui import <command>` reads into one of the source's streams."""

    command: str
    stream: RecordKind
    spec: CsvSpec
    field_map: FieldMap
    help: str = ""


@dataclass(frozen=True, slots=True)
class VendorField:
    """A field the vendor says a stream has (its field metadata: Follow Up Boss's
    `/v1/customFields`, HubSpot's properties, Pipedrive's `personFields`): where it sits in
    a record's payload, the vendor's name for it, and its type in the vendor's words."""

    path: str
    label: str
    type: str = ""


@dataclass(frozen=True, slots=True)
class Changes:
    """How a stream is read from a moment on (an incremental sync): the query parameter
    that asks for records changed since then (a UTC ISO time, which is also RFC 3339), the
    parameters that go with it (an order), listings whose records are all deletions (they
    take the same parameter), and how deletions are learnt otherwise, for people."""

    since: str
    params: Mapping[str, str] = field(default_factory=dict)
    deletions: tuple[Mapping[str, str], ...] = ()
    deletes_by: str = "a full reconcile"


@dataclass(frozen=True, slots=True)
class One:
    """Where one record is read by id (a webhook names ids): a path with `{id}`, and where
    the record sits in the body (nowhere: the body is the record)."""

    path: str
    at: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Signed:
    """A webhook request as its sender signed it: the method, the URI it called (the
    receiver's public URL), the raw body and the headers (lower-case names)."""

    method: str
    uri: str
    body: bytes
    headers: Mapping[str, str]


#: (stream, vendor id, "changed" or "deleted"): one record a webhook names.
Named = tuple["RecordKind", str, Literal["changed", "deleted"]]


@dataclass(frozen=True, slots=True)
class Webhooks:
    """How a vendor's webhooks are received: the setting holding the secret they are signed
    with, a check of a request (None when genuine, else why not: "unsigned",
    "bad_signature", "stale", "future"), why a decoded body is not one of its webhooks
    (None when it is), the event's name for the inbox, and the records it names."""

    secret: str
    check: Callable[[Signed, str], str | None]
    problem: Callable[[Any], str | None]
    event: Callable[[Any], str]
    records: Callable[[Any], list[Named]]


@dataclass(frozen=True, slots=True)
class Capabilities:
    contacts: bool = True
    deals: bool = False
    incremental: bool = False
    write_back: bool = False
    file_import: bool = False
    notes: tuple[str, ...] = field(default=())  # what a person should know (no deals API)

    def flags(self) -> dict[str, bool]:
        return {
            "contacts": self.contacts,
            "deals": self.deals,
            "incremental": self.incremental,
            "write-back": self.write_back,
            "file import": self.file_import,
        }
