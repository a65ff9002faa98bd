"""`crm-tui webhooks`: serve the receiver, manage Follow Up Boss subscriptions, show stats."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_CONFIG, CliError
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Engine, Runtime, run
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.sources.http import HttpClient
    from crm_tui.webhooks.subscriptions import Outcome

T = TypeVar("T")
_SUBSCRIBABLE = click.Choice(["followupboss"])


@click.group("webhooks")
def webhooks_group() -> None:
    """Live updates: receive CRM webhooks, and manage Follow Up Boss's subscriptions.

    Example: crm-tui webhooks serve --listen 127.0.0.1:8787 --public-url https://hooks.example.com
    """


# -- serve ---------------------------------------------------------------------------------


def _log_to_stderr(rt: Runtime) -> None:
    """The foreground server logs to stderr (journald, a terminal), secrets masked."""
    from crm_tui.logs import SecretFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretFilter(rt.masker))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("crm_tui", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)


async def _serve(service: Any, engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:  # a clean stop: the receiver drains, the worker ends its round
        loop.add_signal_handler(sig, service.stop)
    async with engine:
        try:
            await service.run()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)


def _secret_settings() -> str:
    """ "FUB_SYSTEM_KEY (Follow Up Boss) or ..." from the connectors' declarations."""
    from crm_tui.sources.registry import CONNECTORS
    from crm_tui.webhooks.server import declared

    named = [f"{h.secret} ({CONNECTORS[n].display_name})" for n, h in declared().items()]
    return " or ".join(named)


@webhooks_group.command("serve")
@click.option("--listen", default="127.0.0.1:8787", show_default=True, help="HOST:PORT.")
@click.option(
    "--public-url",
    help="The receiver's public base URL, as the CRM calls it (behind a reverse proxy);"
    " a CRM that signs the URL signs this one. Default: the URL each request arrived at.",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(1024),
    default=1024 * 1024,
    show_default=True,
    help="Refuse bodies larger than this (413).",
)
@headless(json_help=None)
def serve(rt: Runtime, listen: str, public_url: str | None, max_bytes: int) -> None:
    """Receive webhooks and apply them, in the foreground until SIGTERM or Ctrl-C.

    POST /webhooks/followupboss (FUB_SYSTEM_KEY) and /webhooks/hubspot
    (HUBSPOT_CLIENT_SECRET); GET /healthz. Each verified request is stored before it is
    answered, then applied by re-fetching the records it names.
    Example: crm-tui webhooks serve --listen 0.0.0.0:8787 --public-url https://hooks.example.com
    """
    from crm_tui.config import ConfigError
    from crm_tui.webhooks.server import WebhookService, parse_listen, webhook_secrets

    host, port = parse_listen(listen)
    if not any(webhook_secrets(rt.settings).values()):
        raise ConfigError("no webhook can be verified: set " + _secret_settings())
    _log_to_stderr(rt)
    for source, secret in webhook_secrets(rt.settings).items():
        config = rt.settings.source_config(source)
        if secret and not config.enabled:
            logging.getLogger("crm_tui.webhooks").warning(
                "%s webhooks will be stored but not applied until %s is set",
                config.display_name,
                ", ".join(config.missing),
            )
    # Records are not read: the worker writes the few each webhook names.
    store = rt.writable_store(loaded=False)
    store.load_statuses_sync()
    if store.db is not None:
        store.db.durable()  # a 2xx promises the sender its webhook is kept
    engine = Engine(rt, store)
    service = WebhookService(
        rt.settings, store, engine.engine, host, port, public_url, max_bytes=max_bytes
    )
    asyncio.run(_serve(service, engine))
    click.echo("webhook receiver stopped", err=True)


# -- subscriptions -------------------------------------------------------------------------


def _with_fub(rt: Runtime, work: Callable[[HttpClient], Coroutine[Any, Any, T]]) -> T:
    """`work` done with the Follow Up Boss client (with X-System), once FUB_SYSTEM is known
    to be set."""
    from crm_tui.webhooks.subscriptions import require_system

    require_system(rt.settings)
    engine = Engine(rt, rt.unloaded_store)
    client = engine.engine.source("followupboss").client

    async def go() -> T:
        async with engine:
            return await work(client)

    return run(go())


def _partial_failure(rt: Runtime, outcome: Outcome, payload: dict[str, Any]) -> NoReturn:
    """Some items failed: what succeeded is still reported, and the exit code is the first
    failure's (4 remote, 3 configuration)."""
    what, first = outcome.failed[0]
    error = f"{len(outcome.failed)} of them failed"
    details = f"{single_line(what)}: {first.error}" + (
        f": {first.details}" if first.details else ""
    )
    masker = rt.masker
    payload.update(success=False, error=masker(error), details=masker(single_line(details)))
    payload["failed"] = json.loads(masker(json.dumps(outcome.failures_json())))
    if rt.json:
        click.echo(json.dumps(payload, ensure_ascii=False))
    else:
        for item, exc in outcome.failed:
            text = single_line(f"{item}: {exc.error}: {exc.details}")
            click.echo(f"error: {masker(text)}", err=True)
    sys.exit(first.exit_code)


def _subscription_rows(subs: list[Any]) -> list[tuple[Any, ...]]:
    return [(s.id, s.event, s.url, s.status) for s in subs]


@webhooks_group.command("register")
@click.argument("source", type=_SUBSCRIBABLE)
@click.option("--url", required=True, help="The public https:// URL of /webhooks/SOURCE.")
@click.option(
    "--events",
    help="Comma-separated event names (default: every people and deals event crm-tui applies).",
)
@headless()
def register(rt: Runtime, source: str, url: str, events: str | None) -> Reply:
    """Subscribe a URL to Follow Up Boss events (one subscription per event).

    Needs FUB_SYSTEM (Follow Up Boss manages webhooks per registered system); an event
    already sent to this URL is left as it is.
    Example: crm-tui webhooks register followupboss --url https://hooks.example.com/webhooks/followupboss
    """
    from crm_tui.webhooks import subscriptions

    checked = subscriptions.check_callback_url(url)
    names = subscriptions.parse_events(events) if events else subscriptions.DEFAULT_EVENTS
    outcome = _with_fub(rt, lambda c: subscriptions.register(c, checked, names))
    payload: dict[str, Any] = {
        "success": True,
        "webhooks": [s.to_json() for s in outcome.done],
        "existing": [s.to_json() for s in outcome.existing],
    }
    if not getattr(rt.settings, "fub_system_key", None):
        payload["warning"] = "FUB_SYSTEM_KEY is not set: the receiver cannot verify them"
    if outcome.failed:
        _partial_failure(rt, outcome, payload)

    def human() -> None:
        rows = _subscription_rows(outcome.done) + _subscription_rows(outcome.existing)
        table(rows, ("ID", "EVENT", "URL", "STATUS"))
        click.echo(f"{len(outcome.done)} registered, {len(outcome.existing)} already there")
        if "warning" in payload:
            click.echo(f"warning: {payload['warning']}", err=True)

    return Reply(payload, human)


@webhooks_group.command("list")
@click.argument("source", type=_SUBSCRIBABLE)
@headless()
def list_subscriptions(rt: Runtime, source: str) -> Reply:
    """The webhook subscriptions of this system in Follow Up Boss.

    Example: crm-tui webhooks list followupboss --json
    """
    from crm_tui.webhooks import subscriptions

    found = _with_fub(rt, subscriptions.list_webhooks)
    payload = {"success": True, "webhooks": [s.to_json() for s in found], "total": len(found)}

    def human() -> None:
        table(_subscription_rows(found), ("ID", "EVENT", "URL", "STATUS"))

    return Reply(payload, human)


@webhooks_group.command("remove")
@click.argument("source", type=_SUBSCRIBABLE)
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1))
@headless()
def remove(rt: Runtime, source: str, ids: tuple[int, ...]) -> Reply:
    """Delete Follow Up Boss webhook subscriptions by id (see `webhooks list`).

    Example: crm-tui webhooks remove followupboss 12 13
    """
    from crm_tui.webhooks import subscriptions

    outcome = _with_fub(rt, lambda c: subscriptions.remove(c, list(ids)))
    payload: dict[str, Any] = {"success": True, "removed": [s.id for s in outcome.done]}
    if outcome.failed:
        _partial_failure(rt, outcome, payload)
    return Reply(payload, lambda: click.echo(f"removed {len(outcome.done)} webhook(s)"))


# -- stats ---------------------------------------------------------------------------------


@webhooks_group.command("stats")
@headless()
def stats(rt: Runtime) -> Reply:
    """The inbox by source and state, refusals by source and reason, recent failures.

    Example: crm-tui webhooks stats --json
    """
    from crm_tui.webhooks.inbox import STATES, WebhookInbox

    store = rt.unloaded_store
    if store.db is None:
        raise CliError("No database", "the inbox lives in the database", EXIT_CONFIG)
    inbox = WebhookInbox(store.db, store.user_id)
    counts, refusals = inbox.counts(), inbox.refusals()
    troubled = [
        {k: single_line(v) if isinstance(v, str) else v for k, v in row.items()}
        for row in inbox.troubled()
    ]
    payload = {
        "success": True,
        "inbox": counts,
        "refusals": refusals,
        "failures": troubled,
    }

    def human() -> None:
        rows = [(s, *(c[state] for state in STATES)) for s, c in sorted(counts.items())]
        table(rows, ("SOURCE", *(s.upper() for s in STATES)))
        if refusals:
            click.echo("")
            rows = [(r["source"], r["reason"], r["count"], r["last_at"]) for r in refusals]
            table(rows, ("SOURCE", "REFUSED", "COUNT", "LAST"))
        if troubled:
            click.echo("")
            keys = ("id", "source", "event", "state", "attempts", "error")
            table([[t[k] for k in keys] for t in troubled], [k.upper() for k in keys])

    return Reply(payload, human)


COMMANDS: tuple[click.Command, ...] = (webhooks_group,)
