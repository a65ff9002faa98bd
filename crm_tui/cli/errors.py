"""Every failure as one clean line (or the JSON failure shape) and its exit code.

Exit codes: 2 usage or invalid query, 3 configuration or authentication, 4 remote or
network (a write the vendor refused too), 5 busy (another process is syncing the stream and
--no-wait was given), 6 conflict (a write stopped: the record changed at the vendor since it
was read), 1 anything else. Failures are told apart by their type, never by their text.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click

from crm_tui.config import ConfigError
from crm_tui.search.query import QueryError
from crm_tui.sources.errors import SourceError
from crm_tui.store.errors import StoreError
from crm_tui.store.files import named_write_error
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.cli.runtime import Runtime

EXIT_OTHER, EXIT_USAGE, EXIT_CONFIG, EXIT_REMOTE, EXIT_BUSY, EXIT_CONFLICT = 1, 2, 3, 4, 5, 6
_DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class CliError(Exception):
    """`extra`: more keys for the JSON failure (a refused edit's reasons per field)."""

    def __init__(
        self,
        error: str,
        details: str = "",
        code: int = EXIT_OTHER,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error, self.details, self.code = error, details, code
        self.extra = extra or {}


def fail(
    rt: Runtime,
    error: str,
    details: str,
    code: int,
    exc: BaseException | None,
    extra: dict[str, Any] | None = None,
) -> NoReturn:
    masker = rt.loaded_masker
    error, details = masker(single_line(error)), masker(single_line(details))
    if rt.json:
        payload = {"success": False, "error": error, "details": details, **(extra or {})}
        click.echo(masker(json.dumps(payload)))
    else:
        click.echo(f"error: {error}" + (f": {details}" if details else ""), err=True)
        if rt.debug and exc is not None:
            click.echo(masker("".join(traceback.format_exception(exc))), err=True)
    sys.exit(code)


@contextmanager
def errors(rt: Runtime) -> Iterator[None]:
    """Turns every failure into one clean line (or JSON) and the right exit code."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError, BrokenPipeError):
        raise
    except CliError as exc:
        fail(rt, exc.error, exc.details, exc.code, exc, exc.extra)
    except QueryError as exc:
        fail(rt, str(exc), "", EXIT_USAGE, exc)
    except ConfigError as exc:
        fail(rt, "Configuration error", str(exc), EXIT_CONFIG, exc)
    except (SourceError, StoreError) as exc:
        said = getattr(exc, "said", "")  # the vendor's own words, after what to fix
        details = f"{exc.details} ({said})" if exc.details and said else exc.details or said
        fail(rt, exc.error, details, exc.exit_code, exc)
    except (ValueError, KeyError) as exc:
        fail(rt, "Invalid input", str(exc).strip("'\""), EXIT_USAGE, exc)
    except OSError as exc:
        _file_failure(rt, exc)
    except sqlite3.Error as exc:
        named = named_write_error(exc, rt.settings.database_path) if rt.settings_read else None
        if named is None:
            fail(rt, "Unexpected error", f"{type(exc).__name__}: {exc}", EXIT_OTHER, exc)
        fail(rt, named.error, named.details, named.exit_code, exc)
    except Exception as exc:
        fail(rt, "Unexpected error", f"{type(exc).__name__}: {exc}", EXIT_OTHER, exc)


def _file_failure(rt: Runtime, exc: OSError) -> NoReturn:
    """A full disk names the file being written (standard output when none is)."""
    if exc.errno in _DISK_FULL:
        name = exc.filename or rt.output or "standard output"
        fail(rt, "Cannot write", f"{name}: {exc.strerror}", EXIT_OTHER, exc)
    fail(rt, "File error", f"{exc.strerror or exc}: {exc.filename or ''}", EXIT_OTHER, exc)


def usage_failure(exc: click.ClickException, as_json: bool) -> NoReturn:
    """Click's own errors (a bad option, a missing argument, a bad choice): the JSON failure
    shape on stdout when --json was asked for, click's usage text otherwise."""
    if not as_json:
        exc.show()
        sys.exit(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    details = ""
    if ctx is not None:
        details = f"{ctx.get_usage()}; try '{ctx.command_path} --help'"
    payload = {
        "success": False,
        "error": single_line(exc.format_message()),
        "details": single_line(details),
    }
    click.echo(json.dumps(payload, ensure_ascii=False))
    sys.exit(exc.exit_code)
