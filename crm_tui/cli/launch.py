"""Starting the app: in this terminal (no command), over the built-in demo (`--demo`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from crm_tui.cli.options import with_default
from crm_tui.cli.runtime import Runtime
from crm_tui.config import ConfigError, Settings
from crm_tui.logs import SecretMasker, setup_logging

#: Changes a second at the demo's simulators: enough to see, few enough to read.
DEMO_CHURN = 0.2
#: How big the demo is: `crm-tui --demo` and `crm-tui serve --demo` take it.
DEMO_CONTACTS = with_default(
    "--contacts",
    "demo_contacts",
    kind=click.IntRange(10, 1_000_000),
    default=2000,
    help="With --demo: contacts per simulated CRM.",
)


def config_dir_from(env_file: Path | None) -> None:
    """A settings file that names a config dir (the demo's demo.env) puts the config files
    there for this command, unless the environment already says where."""
    from dotenv import dotenv_values

    from crm_tui.config import CONFIG_DIR_ENV

    if env_file is None or CONFIG_DIR_ENV in os.environ:
        return
    try:
        chosen = dotenv_values(env_file).get(CONFIG_DIR_ENV)
    except (OSError, ValueError):  # not there, not text: reading the settings says so
        return
    if chosen:
        os.environ[CONFIG_DIR_ENV] = chosen


def run_tui(
    rt: Runtime,
    settings: Settings,
    start_sync: bool,
    welcome: str | None = None,
    webhook_listen: socket.socket | None = None,
    env_file: Path | None = None,
) -> None:
    from crm_tui.app import check_keymap, make_app  # Textual loads only when the app is wanted
    from crm_tui.hangup import watch_for_hangup

    problems = check_keymap()
    if problems:
        raise ConfigError("; ".join(problems))
    app = make_app(
        settings,
        theme=rt.theme or settings.crm_theme,
        sync_on_start=start_sync,
        welcome=welcome,
        webhook_listen=webhook_listen,
        env_file=env_file or rt.env_file,
    )
    watch_for_hangup()
    app.run()


def announce_demo(contacts: int) -> None:
    """Before the demo starts: a missing demo extra fails here in one line."""
    from crm_tui.demo.servers import require_demo_extra

    require_demo_extra()
    click.echo(f"Starting simulated CRM servers with {contacts} contacts each...", err=True)


def run_demo(rt: Runtime, contacts: int) -> None:
    from crm_tui.demo.clock import DemoClock
    from crm_tui.demo.session import start_demo
    from crm_tui.webhooks.server import bind

    announce_demo(contacts)
    # Records change live: a few a second at the simulators, posted as signed webhooks to
    # the app (Follow Up Boss, HubSpot) or found by the minutely incremental sync. Their
    # dates run up to today, so the Pipeline's recent weeks and months have something.
    clock = DemoClock.today()
    with start_demo(
        data_dir=rt.data_dir, contacts=contacts, clock=clock, crm_sync_interval_minutes=1
    ) as demo:
        rt.use_settings(demo.settings)
        setup_logging(demo.settings.log_file, SecretMasker(demo.settings.secret_values()))
        # bound now, so nothing else takes the port before the app listens there
        bound = bind("127.0.0.1", 0)
        port = bound.getsockname()[1]
        demo.start_churn(DEMO_CHURN, f"http://127.0.0.1:{port}/webhooks/{{source}}")
        cli = f"crm-tui --env-file {demo.env_file} status"
        click.echo(f"The CLI works on this demo while it runs: {cli}", err=True)
        welcome = f"Demo: records change live. The CLI works on it: {cli}"
        run_tui(
            rt,
            demo.settings,
            True,
            welcome,
            webhook_listen=bound,
            env_file=demo.env_file,
        )
