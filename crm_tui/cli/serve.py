"""`crm-tui serve`: the app in a browser (textual-serve), one app per connection."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from crm_tui.cli.command import headless
from crm_tui.cli.launch import DEMO_CONTACTS, announce_demo
from crm_tui.cli.runtime import Engine, Runtime, run
from crm_tui.text import single_line


def _app_command(rt: Runtime, env_file: Path | None) -> str:
    """The command textual-serve runs per browser connection: this crm-tui, with the
    options this one was given."""
    args = [sys.executable, "-m", "crm_tui"]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    if rt.data_dir is not None:
        args += ["--data-dir", str(rt.data_dir)]
    if rt.theme:
        args += ["--theme", rt.theme]
    return shlex.join(args)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to bind; 0 takes a free one (the URL printed names it).",
)
@click.option("--public", is_flag=True, help="Allow an address other than loopback.")
@click.option("--no-token", is_flag=True, help="No token in the URL (behind your own login).")
@click.option(
    "--public-url", help="The URL people open (your HTTPS proxy's), if not the bound one."
)
@click.option("--demo", is_flag=True, help="Serve the app over built-in simulated CRMs.")
@DEMO_CONTACTS
@headless(json_help=None)
def serve(
    rt: Runtime,
    host: str,
    port: int,
    public: bool,
    no_token: bool,
    public_url: str | None,
    demo: bool,
    demo_contacts: int,
) -> None:
    """Serve the app to a browser (textual-serve): one app per connection, on loopback by
    default, for an SSH tunnel or your HTTPS proxy. The URL printed holds a random token.

    Example: crm-tui serve --port 8000   (then: ssh -L 8000:127.0.0.1:8000 host)
    """
    from crm_tui.serve import NO_LOGIN_WARNING, is_loopback

    if not is_loopback(host) and not public:
        raise click.UsageError(
            f"{host} is reachable from other machines: pass --public to serve there"
            " (crm-tui has no login of its own), or use 127.0.0.1 and an SSH tunnel"
        )
    if not is_loopback(host):
        click.echo("warning: " + NO_LOGIN_WARNING.format(where=f"{host}:{port}"), err=True)
    if no_token:
        click.echo("warning: --no-token: the URL alone opens the app", err=True)
    if demo:
        _serve_demo(rt, host, port, None if no_token else "new", public_url, demo_contacts)
    else:
        rt.settings  # noqa: B018 -- a broken .env fails here, before anything listens
        _serve(rt, host, port, None if no_token else "new", public_url, rt.env_file)


def _serve_demo(
    rt: Runtime, host: str, port: int, token: str | None, public_url: str | None, contacts: int
) -> None:
    """The demo's simulators and first sync here, once; every browser's app reads them."""
    from crm_tui.demo.clock import DemoClock
    from crm_tui.demo.session import start_demo

    announce_demo(contacts)
    with start_demo(data_dir=rt.data_dir, contacts=contacts, clock=DemoClock.today()) as demo:
        rt.use_settings(demo.settings)
        _first_sync(rt)
        rt.data_dir = None  # the env file names the demo's data dir
        _serve(rt, host, port, token, public_url, demo.env_file)


def _first_sync(rt: Runtime) -> None:
    async def sync_all() -> None:
        store = rt.writable_store(loaded=False)
        store.load_statuses_sync()
        async with Engine(rt, store) as engine:
            await engine.sync_all()

    run(sync_all())


def _serve(
    rt: Runtime,
    host: str,
    port: int,
    token: str | None,
    public_url: str | None,
    env_file: Path | None,
) -> None:
    from crm_tui.serve import TokenServer, new_token, page_url

    secret = new_token() if token is not None else None
    server = TokenServer(_app_command(rt, env_file), host, port, secret, public_url=public_url)

    def ready(bound_port: int) -> None:
        # printed once: the token is in no log and no other output
        click.echo(f"crm-tui is served at {page_url(host, bound_port, secret, public_url)}")
        click.echo("Ctrl-C stops it.", err=True)
        sys.stdout.flush()

    server.on_ready = ready
    server.serve()
    click.echo(single_line("stopped"), err=True)


COMMANDS: tuple[click.Command, ...] = (serve,)
