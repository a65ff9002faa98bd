"""Errors a source raises. Each carries the integration guide's short text and the details."""

from __future__ import annotations

from crm_tui.models import Failure


class SourceError(Exception):
    """A failure talking to or reading from a source. `error` is short, `details` explains
    (what to fix, where one can be named); `said`, the vendor's own message, cleaned, goes
    on a line of its own under them. None of them names the source: whoever shows the error
    puts the name in front once."""

    exit_code = 4

    def __init__(self, error: str, details: str = "", said: str = "") -> None:
        text = f"{error}: {details}" if details else error
        super().__init__(f"{text}\n{said}" if said else text)
        self.error = error
        self.details = details
        self.said = said


class AuthError(SourceError):
    """Credentials refused or missing: a configuration problem, never retried."""

    exit_code = 3
    failure = Failure.AUTH


class RemoteError(SourceError):
    """The remote answered badly or not at all (after retries)."""


class NotFound(RemoteError):
    """HTTP 404: the record (or the endpoint) is not there; for one record, deleted."""


class RateLimited(RemoteError):
    """The remote asked us to wait longer than we are willing to."""

    failure = Failure.RATE_LIMITED

    def __init__(self, error: str, details: str, retry_at: str | None) -> None:
        super().__init__(error, details)
        self.retry_at = retry_at


class AnswerLost(RemoteError):
    """A request that must not be repeated left, and no answer came back: the vendor may
    have carried it out. Whoever sent it reads the vendor before deciding to send again."""


class Rejected(RemoteError):
    """The vendor refused a write as it stands (a validation error, a missing permission,
    a deleted record): sending it again will not help; the person must change or drop it."""


class PaginationError(RemoteError):
    """A paginator would loop forever (a repeated cursor, too many pages)."""


class ImportFileError(SourceError):
    """A CSV file that cannot be read as the export it claims to be."""

    exit_code = 2


class InvalidRecord(Exception):
    """One record that cannot become a Contact or Deal; it goes to quarantine."""


def first_line(message: str) -> str:
    """An error's own line, without the vendor's message under it."""
    return message.split("\n", 1)[0]
