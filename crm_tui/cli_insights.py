"""`crm-tui report pipeline` (the Pipeline screen's figures, headless) and `crm-tui serve`
(the app in a browser).

It follows cli.py's conventions (`--json`, its error shape and exit codes) and reaches for
cli.py's helpers only inside commands: cli.py imports this module at its very end.
"""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.cli import Runtime
    from crm_tui.insights import Pipeline
    from crm_tui.insights.report import Chart

_CHARTS = ("stages", "closings", "leads", "health")
#: How big the demo is: `crm-tui --demo` and `crm-tui serve --demo` take it.
DEMO_CONTACTS = click.option(
    "--contacts",
    "demo_contacts",
    type=click.IntRange(10, 1_000_000),
    default=2000,
    show_default=True,
    help="With --demo: contacts per simulated CRM.",
)


def _cli() -> Any:
    import crm_tui.cli as cli

    return cli


# -- report pipeline -----------------------------------------------------------------------


@click.group("report")
def report_group() -> None:
    """Figures from the cache, headless (the app's Pipeline screen, F7).

    Example: crm-tui report pipeline --json
    """


def _as_of(value: str | None) -> date | datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@report_group.command("pipeline")
@click.option("--filter", "filter_text", default="", help="The query language: source:S stage:X")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The day counted as today.")
@click.option(
    "--chart",
    type=click.Choice(_CHARTS),
    help="One chart only (--csv prints one: stages unless named).",
)
@click.option("--vendor-stages", is_flag=True, help="Stages as each CRM names them.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one chart's numbers as CSV.")
@click.pass_context
def report_pipeline(
    ctx: click.Context,
    filter_text: str,
    as_of: str | None,
    chart: Chart | None,
    vendor_stages: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Deals by stage, closings by month (past 12, next 6; GCI where the CRM sends it),
    lead flow by week (last 26) and sync health (last 30 runs): the Pipeline screen's
    figures, from the cache (no request to any CRM).

    Example: crm-tui report pipeline --filter "source:hubspot amount>500k" --chart closings --csv
    """
    cli = _cli()
    rt = cli._rt(ctx, as_json)
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    now = _as_of(as_of)
    with cli.errors(rt):
        pipeline = _pipeline(rt, filter_text, now)
        charts = (chart,) if chart else _CHARTS
        if as_csv:
            click.echo(pipeline.table(chart or "stages", vendor=vendor_stages).to_csv(), nl=False)
            return
        cli.emit(
            rt, pipeline.to_json(charts), lambda: _print_report(pipeline, charts, vendor_stages)
        )


def _pipeline(rt: Runtime, filter_text: str, now: date | datetime) -> Pipeline:
    from crm_tui.fields.service import columns
    from crm_tui.insights import build_pipeline
    from crm_tui.insights.report import check_filter, filtered
    from crm_tui.search.index import SearchIndex

    declared = {c.name: c for c in columns()}
    check_filter(filter_text, declared)  # a usage error before the cache is read
    store = rt.store
    index: SearchIndex | None = None

    def matching(text: str, kind: Any) -> Any:
        nonlocal index
        if index is None:  # only a filter needs the index
            index = SearchIndex()
            index.columns = declared
            index.rebuild_from(store)
        return index.matching(text, kind)

    deals = filtered("deals", filter_text, lambda: store.records("deals"), matching)
    contacts = filtered("contacts", filter_text, lambda: store.records("contacts"), matching)
    runs = store.db.recent_runs(store.user_id) if store.db is not None else []
    return build_pipeline(
        deals,
        contacts,
        runs,
        store.statuses(),
        now,
        filter_text=filter_text,  # type: ignore[arg-type]
    )


def _print_report(pipeline: Pipeline, charts: tuple[str, ...], vendor: bool) -> None:
    from crm_tui.insights.report import CHART_TITLES

    cli = _cli()
    scope = f", filter {pipeline.filter!r}" if pipeline.filter else ""
    click.echo(
        f"As of {pipeline.as_of}: {pipeline.deal_count:,} deals,"
        f" {pipeline.contact_count:,} contacts{scope}"
    )
    for chart in charts:
        table = pipeline.table(chart, vendor=vendor)  # type: ignore[arg-type]
        click.echo(f"\n{CHART_TITLES[chart]}")  # type: ignore[index]
        if table.rows:
            cli.table([["" if v is None else v for v in row] for row in table.rows], table.headers)
        else:
            click.echo("(nothing)")


# -- serve ---------------------------------------------------------------------------------


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
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--public", is_flag=True, help="Allow an address other than loopback.")
@click.option("--no-token", is_flag=True, help="No token in the URL (behind your own login).")
@click.option(
    "--public-url", help="The URL people open (your HTTPS proxy's), if not the bound one."
)
@click.option("--demo", is_flag=True, help="Serve the app over built-in simulated CRMs.")
@DEMO_CONTACTS
@click.pass_context
def serve(
    ctx: click.Context,
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

    cli = _cli()
    rt = cli._rt(ctx)
    if not is_loopback(host) and not public:
        raise click.UsageError(
            f"{host} is reachable from other machines: pass --public to serve there"
            " (crm-tui has no login of its own), or use 127.0.0.1 and an SSH tunnel"
        )
    with cli.errors(rt):
        if not is_loopback(host):
            click.echo("warning: " + NO_LOGIN_WARNING.format(where=f"{host}:{port}"), err=True)
        if no_token:
            click.echo("warning: --no-token: the URL alone opens the app", err=True)
        port = port or cli.free_loopback_port()
        if demo:
            _serve_demo(rt, host, port, None if no_token else "new", public_url, demo_contacts)
        else:
            rt.settings  # noqa: B018 -- a broken .env fails here, before anything listens
            _serve(rt, host, port, None if no_token else "new", public_url, rt.env_file)


def _serve_demo(
    rt: Runtime, host: str, port: int, token: str | None, public_url: str | None, contacts: int
) -> None:
    """The demo's simulators and first sync here, once; every browser's app reads them."""
    from crm_tui.demo.session import start_demo

    click.echo(f"Starting simulated CRM servers with {contacts} contacts each...", err=True)
    with start_demo(data_dir=rt.data_dir, contacts=contacts) as demo:
        rt._settings = demo.settings
        _first_sync(rt)
        rt.data_dir = None  # the env file names the demo's data dir
        _serve(rt, host, port, token, public_url, demo.env_file)


def _first_sync(rt: Runtime) -> None:
    from crm_tui.sync.engine import SyncEngine

    cli = _cli()

    async def sync_all() -> None:
        store = rt.writable_store(loaded=False)
        store.load_statuses_sync()
        engine = SyncEngine(rt.settings, store)
        try:
            await engine.sync_all()
        finally:
            await engine.aclose()

    cli.run(sync_all())


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

    def ready() -> None:
        # printed once: the token is in no log and no other output
        click.echo(f"crm-tui is served at {page_url(host, port, secret, public_url)}")
        click.echo("Ctrl-C stops it.", err=True)
        sys.stdout.flush()

    server.on_ready = ready
    server.serve()
    click.echo(single_line("stopped"), err=True)
