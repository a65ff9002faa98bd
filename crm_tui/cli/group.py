"""The root group's click behaviour: crm-tui, not click, prints every failure (the JSON
failure shape with --json), and a closed pipe is not an error."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from crm_tui.cli.errors import usage_failure


def _wants_json(argv: Sequence[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _quiet_stdout() -> None:
    """After a closed pipe (`crm-tui contacts | head -1`): point stdout at /dev/null, so the
    interpreter's last flush at exit cannot fail again (the Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test runner's stdout)
        pass


class CrmGroup(click.Group):
    """Runs click in non-standalone mode so that crm-tui, not click, prints every failure."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            usage_failure(exc, _wants_json(argv))
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        # Here, not in main(): click's main() turns a broken pipe into exit 1 by itself.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()
            raise click.exceptions.Exit(0) from None
