"""A team database's address (`CRM_DATABASE_URL`): what to connect with, and how to show it
without its password.

libpq reads the URL itself, so every libpq setting in it passes through (`sslmode`,
`sslrootcert`, `target_session_attrs`, ...). Timeouts and keepalives get defaults the URL can
override: an unreachable server is an error in seconds, a client that vanished
mid-transaction is noticed by the server, and a lock held by another session (a member's
open transaction, or anyone's advisory lock on the team's writer key) is an error after a
minute, not a wait without end (`options=-c lock_timeout=...` in the URL sets another).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
_LOCK_TIMEOUT = "-c lock_timeout=60s"
MASK = "***"


class InvalidDatabaseUrl(ValueError):
    pass


@dataclass(frozen=True)
class DatabaseUrl:
    url: str

    def __post_init__(self) -> None:
        parts = _split(self.url)
        if parts is None:
            # Never the parser's words, nor its error as this one's context: they quote the
            # text it choked on, a piece of the password when one holds an unescaped @ or /.
            raise InvalidDatabaseUrl(
                "not a database URL: its host or port cannot be read (in a password, escape"
                " @ : / ? # % as %40 %3A %2F %3F %23 %25)"
            )
        if parts.scheme not in SCHEMES:
            raise InvalidDatabaseUrl(
                f"a team database URL starts with postgresql://, not {parts.scheme or '(none)'}://"
            )

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"DatabaseUrl({self.display!r})"

    __str__ = __repr__

    @property
    def password(self) -> str:
        """In the user part, or (as libpq also reads it) a `password=` setting."""
        parts = urlsplit(self.url)
        if parts.password is not None:
            return unquote(parts.password)
        return dict(parse_qsl(parts.query)).get("password", "")

    @property
    def user(self) -> str:
        return unquote(urlsplit(self.url).username or "")

    @property
    def display(self) -> str:
        """The URL with its password replaced: for messages, logs and `db status`."""
        parts = urlsplit(self.url)
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
            parts = parts._replace(netloc=netloc)
        query = [
            f"{key}={MASK}" if key == "password" else f"{key}={quote(value)}"
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return parts._replace(query="&".join(query)).geturl()

    def masked(self, text: str) -> str:
        """`text` with the password taken out wherever it appears (a server's message,
        an exception's)."""
        secret = self.password
        if not secret:
            return text
        for form in {secret, quote(secret), quote(secret, safe="")}:
            text = text.replace(form, MASK)
        return text

    def conninfo(self, application: str) -> str:
        """The URL with this program's defaults for what it leaves unset."""
        parts = urlsplit(self.url)
        raw = [pair for pair in parts.query.split("&") if pair]  # as given: never re-encoded
        given = {pair.split("=", 1)[0] for pair in raw}
        extra = {"application_name": application, **_DEFAULTS}
        added = [f"{k}={quote(v)}" for k, v in extra.items() if k not in given]
        # libpq reads PGOPTIONS only when the URL names no options: the lock timeout joins
        # whichever of the two the user gave, unless they set one of their own
        options = os.environ.get("PGOPTIONS", "")
        for pair in raw:
            if pair.startswith("options="):
                options = unquote(pair.removeprefix("options="))
        if "lock_timeout" not in options:
            options = f"{options} {_LOCK_TIMEOUT}".strip()
        kept = [pair for pair in raw if not pair.startswith("options=")]
        query = "&".join([*kept, *added, f"options={quote(options)}"])
        return parts._replace(query=query).geturl()


def _split(url: str) -> SplitResult | None:
    """The URL's parts; None when its host or port cannot be read (a bad port raises here,
    not at connect time)."""
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:  # several hosts (libpq's failover list): each its port
            parts.port  # noqa: B018
    except ValueError:
        return None
    # libpq splits the user part off at the first @, urlsplit at the last: a raw @ in a
    # password would send its tail to libpq as the host (and into its error message)
    if parts.netloc.count("@") > 1:
        return None
    return parts


def is_database_url(value: str) -> bool:
    return value.split("://", 1)[0] in SCHEMES
