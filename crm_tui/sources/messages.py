"""Error messages that name the cause a person can act on: which address could not be
reached and why, how long the server was given, which setting holds the refused key and
in which file. Plain text, one line each; the vendor's own message is cleaned to one line."""

from __future__ import annotations

import errno
import json
import re
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from crm_tui.models import Outcome, SyncReport
from crm_tui.sources.errors import first_line
from crm_tui.text import single_line

#: Keys vendors put their human message under, most specific first.
_MESSAGE_KEYS = ("message", "errorMessage", "error_description", "detail", "title", "error")


def _host_port(url: httpx.URL) -> str:
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def _where_from(exc: BaseException) -> str:
    request = getattr(exc, "_request", None)
    return "" if request is None else _host_port(request.url)


def _errno_of(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore, which wraps the OSError
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


E = TypeVar("E", bound=BaseException)


def _cause_of(exc: BaseException, kind: type[E]) -> E | None:
    """The first `kind` in the chain `exc` was raised from."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_CAUSES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "the connection was reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}


def connect_failure(exc: httpx.TransportError, base: httpx.URL) -> str:
    """ "cannot connect to 127.0.0.1:9999 (connection refused ...)" and the like."""
    where = _where_from(exc) or _host_port(base)
    code = _errno_of(exc)
    bad_tls = _cause_of(exc, ssl.SSLError)
    if isinstance(exc, httpx.ConnectTimeout):
        cause = "no answer to the connection"
    elif bad_tls is not None:
        reason = getattr(bad_tls, "verify_message", None) or getattr(bad_tls, "reason", None)
        cause = f"TLS failed: {single_line(str(reason or bad_tls))[:120]}"
    elif code in _CAUSES:
        cause = _CAUSES[code]
    elif _cause_of(exc, socket.gaierror) is not None:
        cause = "no such host name: check the base URL"
    elif isinstance(exc, httpx.ConnectError):
        cause = single_line(str(exc))[:120] or "the connection failed"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"{where} closed the connection before answering"
    else:
        return f"the connection to {where} failed ({type(exc).__name__})"
    return f"cannot connect to {where} ({cause})"


def no_answer(seconds: float) -> str:
    return f"the server did not answer within {seconds:g} s"


def vendor_said(body: str) -> str:
    """The vendor's message out of an error body, cleaned to one line ("" when there is
    none): never raw JSON, never markup, at most 200 characters."""
    text = body.strip()
    if not text:
        return ""
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if found is not None:
        message = _message_in(found)
        if message is None:
            return ""
        text = message
    elif text.startswith("<"):  # an HTML error page says nothing a person can act on
        return ""
    return " ".join(single_line(text).split())[:200]


def _message_in(found: object, depth: int = 0) -> str | None:
    if depth > 3:
        return None
    if isinstance(found, str):
        return found or None
    if isinstance(found, list):
        return _message_in(found[0], depth + 1) if found else None
    if isinstance(found, dict):
        for key in _MESSAGE_KEYS:
            if key in found:
                message = _message_in(found[key], depth + 1)
                if message:
                    return message
        if "errors" in found:
            return _message_in(found["errors"], depth + 1)
    return None


def home_short(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def where_to_fix(settings: tuple[str, ...]) -> str:
    """ "check FUB_API_KEY in ~/.config/crm-tui/.env": the place that set the first of them
    (config.winning_source, the order settings are read in), else the config dir's .env."""
    from crm_tui.config import ConfigError, config_dir, winning_source

    names = " and ".join(settings)
    if not settings:
        return "check the credentials"
    try:
        where = winning_source(settings[0])
    except ConfigError:  # a .env that cannot be read: say where it should go
        where = None
    if where is None:
        return f"set {names} in {home_short(config_dir() / '.env')}"
    return f"check {names} in {where if where == 'the environment' else home_short(Path(where))}"


def refused(settings: tuple[str, ...]) -> str:
    """What was refused, by the kind of credential."""
    if len(settings) > 1:
        return "the client id or secret was refused"
    return "the API key was refused"


# -- what a sync came to, for a person ------------------------------------------------------

#: Sources whose sync is a copy of this machine's own records: nothing to tell anybody.
QUIET_SOURCES = frozenset({"local"})
_REFUSED = re.compile(r"^(the .+ (?:was|were) refused): (?:check|set) (.+?) in .+$")


def problem_of(report: SyncReport) -> str:
    """What went wrong in a run: every stream failing for one reason says it once, without
    stream names, the vendor's words on a line under it; otherwise each failed stream by
    name."""
    failed = [
        s
        for s in report.streams.values()
        if s.error and s.outcome not in (Outcome.SUCCESS, Outcome.CANCELLED)
    ]
    messages = list(dict.fromkeys(s.error for s in failed if s.error))
    if not messages:
        return report.error or str(report.outcome)
    if len(messages) == 1 and len(failed) == len(report.streams):
        return messages[0]  # every stream, for one reason
    if len(failed) == 1:
        return f"{failed[0].stream}: {failed[0].error}"
    return "; ".join(f"{s.stream}: {first_line(s.error or '')}" for s in failed)


def one_line(message: str) -> str:
    """An error for one line of output: the vendor's words in parentheses after it."""
    first, _, said = message.partition("\n")
    return f"{first} ({' '.join(said.split())})" if said.strip() else first


def brief(message: str) -> str:
    """One line for a list of sources: "the API key was refused (FUB_API_KEY)"."""
    line = first_line(message)
    return _REFUSED.sub(r"\1 (\2)", line)


def sync_summary(reports: Mapping[str, SyncReport], names: Mapping[str, str]) -> tuple[str, bool]:
    """One notice for a sync of every source: "3 sources synced, 1 failed: Follow Up Boss:
    the API key was refused (FUB_API_KEY)", and whether anything failed. "" when there is
    nothing to tell (only quiet sources ran)."""
    synced = failed = cancelled = skipped = 0
    problems = []
    for name, report in reports.items():
        outcome = report.outcome
        if outcome is Outcome.SUCCESS:
            synced += name not in QUIET_SOURCES
        elif outcome is Outcome.CANCELLED:
            cancelled += 1
        elif outcome is Outcome.SKIPPED:
            skipped += 1
        else:
            failed += 1
            partly = " (partly synced)" if outcome is Outcome.PARTIAL else ""
            problems.append(f"{names.get(name, name)}{partly}: {brief(problem_of(report))}")
    parts = [f"{synced} source{'s' if synced != 1 else ''} synced"] if synced else []
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{cancelled} cancelled"] if cancelled else []
    parts += [f"{skipped} skipped (another process is syncing)"] if skipped else []
    if not parts:
        return "", False
    text = ", ".join(parts)
    if len(problems) == 1:
        text += f": {problems[0]}"
    elif problems:
        text += ":\n" + "\n".join(problems)
    return text, bool(failed)
