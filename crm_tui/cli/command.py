"""The shape almost every command shares, written once: its runtime from the click context
(`--json` given or not), its work inside `errors` (every failure one clean line or the JSON
failure shape, with its exit code), and its reply printed as JSON or as text."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from crm_tui.cli.errors import errors
from crm_tui.cli.output import JSON_HELP, emit
from crm_tui.cli.runtime import runtime_of


@dataclass(frozen=True)
class Reply:
    """What a command found: `payload` with --json, `human()` prints it otherwise. A
    non-zero `exit_code` ends the command with it, once printed. `masked`: the JSON goes
    through the settings' masker, for a payload that may quote a secret."""

    payload: dict[str, Any]
    human: Callable[[], object]
    exit_code: int = 0
    masked: bool = False


Work = Callable[..., Reply | None]


def headless(
    json_help: str | None = JSON_HELP, *, snapshot: bool = True
) -> Callable[[Work], Callable[..., None]]:
    """A command from `work(rt, **params)`: it adds `--json` (with `json_help`; None: the
    command declares its own `as_json` option, or has none) and runs `work` as every command
    runs. Put it below the command's own options, so that `--json` lists last.
    `snapshot=False`: the command reads the database itself (`rt.database`) and the
    runtime refuses to load the whole cache for it."""

    def decorate(work: Work) -> Callable[..., None]:
        @functools.wraps(work)
        def command(ctx: click.Context, *, as_json: bool = False, **params: Any) -> None:
            rt = runtime_of(ctx, as_json)
            rt.snapshot = snapshot
            with errors(rt):
                reply = work(rt, **params)
                if reply is not None:
                    emit(rt, reply.payload, reply.human, reply.masked)
                    if reply.exit_code:
                        sys.exit(reply.exit_code)

        wrapped = click.pass_context(command)
        if json_help is None:
            return wrapped
        return click.option("--json", "as_json", is_flag=True, help=json_help)(wrapped)

    return decorate
