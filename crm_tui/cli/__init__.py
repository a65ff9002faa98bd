"""The command line: no subcommand starts the TUI; every operation also runs headless.

With `--json`, output follows the integration guide's response shapes and every failure,
click's usage errors included, prints `{"success": false, "error": ..., "details": ...}`;
the exit codes are in `crm_tui.cli.errors`. One module per group of commands; each lists
what it adds to `main` in its COMMANDS.
"""

from __future__ import annotations

from pathlib import Path

import click

from crm_tui import __version__
from crm_tui.cli import (
    cache,
    checks,
    db,
    duplicates,
    export,
    imports,
    local,
    mapping,
    outbox,
    report,
    serve,
    simulator,
    sync,
    webhooks,
    writes,
)
from crm_tui.cli.errors import errors
from crm_tui.cli.group import CrmGroup
from crm_tui.cli.launch import DEMO_CONTACTS, config_dir_from, run_demo, run_tui
from crm_tui.cli.runtime import Runtime
from crm_tui.tuning import tune_batch


@click.group(
    cls=CrmGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="crm-tui")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Use this data directory.")
@click.option("--env-file", type=click.Path(path_type=Path), help="Read settings from this file.")
@click.option(
    "--database-url",
    envvar=None,
    metavar="URL",
    help="Team mode: the store in this PostgreSQL database (as CRM_DATABASE_URL).",
)
@click.option("--demo", is_flag=True, help="Run against built-in simulated CRM servers.")
@DEMO_CONTACTS
@click.option("--theme", help="A Textual theme name (textual-dark, nord, gruvbox, ...).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs on stderr.")
@click.pass_context
def main(
    ctx: click.Context,
    data_dir: Path | None,
    env_file: Path | None,
    database_url: str | None,
    demo: bool,
    demo_contacts: int,
    theme: str | None,
    debug: bool,
) -> None:
    """crm-tui: every CRM your team uses, in one terminal.

    With no command, opens the app. Example: crm-tui --demo
    """
    tune_batch()
    rt = ctx.ensure_object(Runtime)
    ctx.call_on_close(rt.close)
    rt.data_dir, rt.env_file, rt.debug, rt.theme = data_dir, env_file, debug, theme
    if database_url:
        rt.overrides["crm_database_url"] = database_url
    config_dir_from(env_file)
    if ctx.invoked_subcommand is not None:
        if demo:
            raise click.UsageError("--demo starts the app; it takes no command")
        return
    with errors(rt):
        if demo:
            run_demo(rt, demo_contacts)
        else:
            run_tui(rt, rt.settings, start_sync=False)


for _module in (
    cache,
    sync,
    checks,
    imports,
    export,
    local,
    duplicates,
    writes,
    outbox,
    mapping,
    webhooks,
    report,
    serve,
    simulator,
    db,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)
