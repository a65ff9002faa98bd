"""`crm-tui simulator`: the simulated CRM servers in the foreground, for trying crm-tui or
testing against them."""

from __future__ import annotations

import signal
import sys

import click

from crm_tui.cli.options import with_default
from crm_tui.config import ConfigError


@click.command("simulator")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="The first simulator's port; the others take the next ones (0: free ports).",
)
@click.option("--contacts", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="name=value, e.g. error_rate=0.2, latency=0.5, burst_every=10.",
)
@with_default(
    "--rate-limit",
    kind=click.IntRange(1),
    default=200,
    help="Follow Up Boss requests per 10 s.",
)
@with_default(
    "--token-expires-in",
    kind=click.IntRange(1),
    default=3600,
    help="Seconds an OAuth token lives (the guide's contract).",
)
@with_default(
    "--churn",
    kind=click.FloatRange(0, 1000),
    default=0.0,
    help="Records changed per second, in the simulators that change, from --seed.",
)
@click.option(
    "--dated-to-today",
    is_flag=True,
    help="Date the records up to today, as crm-tui --demo does (default: the fixed dates "
    "from 2024-01-01 that tests compare).",
)
@click.option(
    "--webhook-url",
    default=None,
    help="POST each change here as a signed webhook, by the simulators whose CRM sends them;"
    " {source} in the URL names the CRM (.../webhooks/{source}).",
)
def simulator(
    port: int,
    contacts: int,
    seed: int,
    faults: tuple[str, ...],
    rate_limit: int,
    token_expires_in: int,
    churn: float,
    webhook_url: str | None,
    dated_to_today: bool,
) -> None:
    """Run the simulated CRM servers in the foreground (Ctrl-C stops).

    Example: crm-tui simulator --contacts 100000 --fault error_rate=0.1 --churn 2
    """
    import threading

    from crm_tui.demo.clock import FIXED, DemoClock
    from crm_tui.demo.servers import Faults, start_demo_servers

    try:
        parsed = Faults.parse(list(faults))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from None
    from crm_tui.demo.simulators import SIMULATORS

    ports = tuple(port + n for n in range(len(SIMULATORS))) if port else None
    try:
        servers = start_demo_servers(
            contacts,
            seed,
            parsed,
            ports=ports,
            fub_rate_limit=rate_limit,
            token_expires_in=token_expires_in,
            clock=DemoClock.today() if dated_to_today else FIXED,
        )
    except ConfigError as exc:  # the demo extra is not installed
        raise click.ClickException(str(exc)) from None
    if churn or webhook_url:
        servers.start_churn(churn, webhook_url)
    click.echo("# point crm-tui at the simulators:")
    for key, value in servers.env().items():
        click.echo(f"{key}={value}")
    sys.stdout.flush()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        servers.stop()
        click.echo("simulators stopped", err=True)


COMMANDS: tuple[click.Command, ...] = (simulator,)
