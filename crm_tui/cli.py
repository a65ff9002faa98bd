"""The command line: no subcommand starts the TUI; every operation also runs headless.

With `--json`, output follows the integration guide's response shapes and every failure,
click's usage errors included, prints `{"success": false, "error": ..., "details": ...}`.
Exit codes: 2 usage or invalid query, 3 configuration or authentication, 4 remote or
network (a write the vendor refused too), 5 busy (another process is syncing the stream and
--no-wait was given), 6 conflict (a write stopped: the record changed at the vendor since it
was read), 1 anything else.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from crm_tui import __version__
from crm_tui.cli_insights import DEMO_CONTACTS
from crm_tui.config import DISPLAY_NAMES, SOURCE_NAMES, ConfigError, Settings, load_settings
from crm_tui.custom_columns import Column
from crm_tui.logs import SecretFilter, SecretMasker, setup_logging
from crm_tui.models import Outcome, RecordKind, SyncState, utc_now
from crm_tui.search.query import QueryError
from crm_tui.sources.errors import SourceError
from crm_tui.sources.kit import CsvExport
from crm_tui.sources.registry import CONNECTORS, csv_exports
from crm_tui.store import CacheStore, Database
from crm_tui.store.errors import StoreError
from crm_tui.store.files import named_write_error
from crm_tui.text import single_line

T = TypeVar("T")
EXIT_OTHER, EXIT_USAGE, EXIT_CONFIG, EXIT_REMOTE, EXIT_BUSY, EXIT_CONFLICT = 1, 2, 3, 4, 5, 6
TYPE_CHOICE = click.Choice(["contact", "deal"])
SOURCE_CHOICE = click.Choice(list(SOURCE_NAMES))


def _columns() -> dict[str, Column]:
    """The custom columns mappings.toml declares: filter keys of a search."""
    from crm_tui.fields.service import columns

    return {column.name: column for column in columns()}


def _kind(value: str) -> RecordKind:
    return "contacts" if value == "contact" else "deals"


@dataclass
class Runtime:
    """What a command works with, built on first use."""

    data_dir: Path | None = None
    env_file: Path | None = None
    debug: bool = False
    json: bool = False
    theme: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    output: Path | None = None  # the file a command is writing, for a full disk's message
    _settings: Settings | None = None
    _store: CacheStore | None = None
    _loaded: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            extra = dict(self.overrides)
            if self.data_dir is not None:
                extra["crm_data_dir"] = self.data_dir
            self._settings = load_settings(self.env_file, **extra)
            masker = SecretMasker(self._settings.secret_values())
            problem = setup_logging(
                self._settings.log_file, masker, logging.DEBUG if self.debug else logging.INFO
            )
            if problem is not None:
                click.echo(f"warning: no log file: {single_line(problem)}", err=True)
            if self.debug:
                handler = logging.StreamHandler(sys.stderr)
                handler.addFilter(SecretFilter(masker))
                logging.getLogger("crm_tui").addHandler(handler)
        return self._settings

    @property
    def masker(self) -> SecretMasker:
        return SecretMasker(self.settings.secret_values())

    @property
    def store(self) -> CacheStore:
        """The cache, loaded from the database."""
        store = self.unloaded_store
        if not self._loaded:
            store.load_sync()
            self._loaded = True
        return store

    @property
    def unloaded_store(self) -> CacheStore:
        """The cache over its database, nothing read yet: for commands that only write."""
        if self._store is None:
            settings = self.settings
            self._store = CacheStore(settings.user_id, Database(settings.database_path))
        return self._store

    def writable_store(self, loaded: bool = True) -> CacheStore:
        """The store, for a command that writes: a read-only database fails here, before any
        work starts, with the file and the reason. `loaded=False`: nothing read yet, for a
        command that only writes."""
        store = self.unloaded_store
        if store.db is not None and store.db.read_only:
            raise store.db.read_only_error()
        return self.store if loaded else store


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


def _fail(
    rt: Runtime,
    error: str,
    details: str,
    code: int,
    exc: BaseException | None,
    extra: dict[str, Any] | None = None,
) -> NoReturn:
    masker = rt.masker if rt._settings is not None else SecretMasker()
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
        _fail(rt, exc.error, exc.details, exc.code, exc, exc.extra)
    except QueryError as exc:
        _fail(rt, str(exc), "", EXIT_USAGE, exc)
    except ConfigError as exc:
        _fail(rt, "Configuration error", str(exc), EXIT_CONFIG, exc)
    except (SourceError, StoreError) as exc:
        said = getattr(exc, "said", "")  # the vendor's own words, after what to fix
        details = f"{exc.details} ({said})" if exc.details and said else exc.details or said
        _fail(rt, exc.error, details, exc.exit_code, exc)
    except (ValueError, KeyError) as exc:
        _fail(rt, "Invalid input", str(exc).strip("'\""), EXIT_USAGE, exc)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            name = exc.filename or rt.output or "standard output"
            _fail(rt, "Cannot write", f"{name}: {exc.strerror}", EXIT_OTHER, exc)
        _fail(rt, "File error", f"{exc.strerror or exc}: {exc.filename or ''}", EXIT_OTHER, exc)
    except sqlite3.Error as exc:
        named = named_write_error(exc, rt.settings.database_path) if rt._settings else None
        if named is None:
            _fail(rt, "Unexpected error", f"{type(exc).__name__}: {exc}", EXIT_OTHER, exc)
        _fail(rt, named.error, named.details, named.exit_code, exc)
    except Exception as exc:
        _fail(rt, "Unexpected error", f"{type(exc).__name__}: {exc}", EXIT_OTHER, exc)


_DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's work. SIGTERM (systemd stopping a unit, `kill`) cancels it as Ctrl-C
    does, so a sync or an import drops what it had half written and closes its audit row,
    instead of leaving both for the next run to find."""

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(cancellable())
    except asyncio.CancelledError:
        raise CliError(
            "Stopped", "SIGTERM: nothing half-written was kept; the previous data stands"
        ) from None


def emit(rt: Runtime, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if rt.json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        human()


CELL_WIDTH = 40


def cut(value: str, width: int = CELL_WIDTH) -> str:
    """`value` in at most `width` characters: a longer one ends in an ellipsis, after its last
    whole word when that keeps most of the width."""
    if len(value) <= width:
        return value
    head = value[: width - 1]
    space = head.rfind(" ")
    if space >= width * 2 // 3:
        head = head[:space]
    return head.rstrip() + "…"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table: no colour, no box drawing, safe to pipe. Long values are cut
    with an ellipsis, and one line on stderr says where the full text is."""
    full = [[single_line("" if v is None else str(v)) for v in row] for row in rows]
    cells = [[cut(v) for v in row] for row in full]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    click.echo(line.rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    if cells != full:
        click.echo(
            f"note: values longer than {CELL_WIDTH} characters were cut (…);"
            " --json prints the full text",
            err=True,
        )


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (guide shapes).")(fn)


def _rt(ctx: click.Context, as_json: bool = False) -> Runtime:
    rt: Runtime = ctx.ensure_object(Runtime)
    rt.json = as_json
    return rt


# -- the group -----------------------------------------------------------------------------


def _wants_json(argv: Sequence[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _usage_failure(exc: click.ClickException, as_json: bool) -> NoReturn:
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
            _usage_failure(exc, _wants_json(argv))
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


@click.group(
    cls=CrmGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="crm-tui")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Use this data directory.")
@click.option("--env-file", type=click.Path(path_type=Path), help="Read settings from this file.")
@click.option("--demo", is_flag=True, help="Run against built-in simulated CRM servers.")
@DEMO_CONTACTS
@click.option("--theme", help="A Textual theme name (textual-dark, nord, gruvbox, ...).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs on stderr.")
@click.pass_context
def main(
    ctx: click.Context,
    data_dir: Path | None,
    env_file: Path | None,
    demo: bool,
    demo_contacts: int,
    theme: str | None,
    debug: bool,
) -> None:
    """crm-tui: every CRM your team uses, in one terminal.

    With no command, opens the app. Example: crm-tui --demo
    """
    rt = ctx.ensure_object(Runtime)
    rt.data_dir, rt.env_file, rt.debug, rt.theme = data_dir, env_file, debug, theme
    _config_dir_from(env_file)
    if ctx.invoked_subcommand is not None:
        if demo:
            raise click.UsageError("--demo starts the app; it takes no command")
        return
    with errors(rt):
        if demo:
            _run_demo(rt, demo_contacts)
        else:
            _run_tui(rt, rt.settings, start_sync=False)


def _config_dir_from(env_file: Path | None) -> None:
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


def _run_tui(
    rt: Runtime,
    settings: Settings,
    start_sync: bool,
    welcome: str | None = None,
    webhook_listen: tuple[str, int] | None = None,
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


#: Changes a second at the demo's simulators: enough to see, few enough to read.
DEMO_CHURN = 0.2


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_demo(rt: Runtime, contacts: int) -> None:
    from crm_tui.demo.session import start_demo

    click.echo(f"Starting simulated CRM servers with {contacts} contacts each...", err=True)
    # Records change live: a few a second at the simulators, posted as signed webhooks to
    # the app (Follow Up Boss, HubSpot) or found by the minutely incremental sync.
    with start_demo(data_dir=rt.data_dir, contacts=contacts, crm_sync_interval_minutes=1) as demo:
        rt._settings = demo.settings
        setup_logging(demo.settings.log_file, SecretMasker(demo.settings.secret_values()))
        port = free_loopback_port()
        demo.start_churn(DEMO_CHURN, f"http://127.0.0.1:{port}/webhooks/{{source}}")
        cli = f"crm-tui --env-file {demo.env_file} status"
        click.echo(f"The CLI works on this demo while it runs: {cli}", err=True)
        welcome = f"Demo: records change live. The CLI works on it: {cli}"
        _run_tui(
            rt,
            demo.settings,
            True,
            welcome,
            webhook_listen=("127.0.0.1", port),
            env_file=demo.env_file,
        )


@main.command()
@json_option
@click.pass_context
def paths(ctx: click.Context, as_json: bool) -> None:
    """Print the config file, data dir, database and log file in use.

    Example: crm-tui paths --json
    """
    from crm_tui.config import config_dir, default_env_files
    from crm_tui.sources.mapping_file import mappings_path

    rt = _rt(ctx, as_json)
    with errors(rt):
        s = rt.settings
        info = {
            "config_dir": str(config_dir()),
            "env_files": [str(p) for p in default_env_files(rt.env_file)],
            "mappings": str(mappings_path()),
            "data_dir": str(s.data_dir),
            "database": str(s.database_path),
            "log_file": str(s.log_file),
            "user_id": s.user_id,
        }
        # the files and folders each source reads, as its settings declare them
        for cls in CONNECTORS.values():
            for setting in cls.settings:
                value = getattr(s, setting.field)
                if setting.kind in ("file", "folder") and value is not None:
                    info[setting.field] = str(value)
        emit(
            rt,
            {"success": True, **info},
            lambda: [click.echo(f"{k:<11} {v}") for k, v in info.items()],
        )


# -- status, data --------------------------------------------------------------------------


@main.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each source's sync status and counts (guide: GET sync-status).

    Example: crm-tui status --json
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        store, settings = rt.store, rt.settings
        statuses = store.statuses()
        for name, cfg in settings.sources().items():
            if not cfg.enabled:
                statuses[name].state = SyncState.DISABLED
        payload = {
            "success": True,
            "timestamp": utc_now(),
            "status": {name: s.to_guide() for name, s in statuses.items()},
            # beside the guide's shape: what each vendor's headers said was left
            "rateBudgets": {n: s.rate.to_json() for n, s in statuses.items() if s.rate},
        }

        def human() -> None:
            rows = []
            for name, s in statuses.items():
                cfg = settings.source_config(name) if name in SOURCE_NAMES else None
                note = s.last_error or (
                    "missing " + ", ".join(cfg.missing) if cfg and not cfg.enabled else ""
                )
                rows.append(
                    (
                        DISPLAY_NAMES.get(name, name),
                        s.state,
                        s.last_sync or "never",
                        s.contact_count,
                        s.deal_count,
                        s.rate.describe() if s.rate else "",
                        note,
                    )
                )
            headers = ("SOURCE", "STATUS", "LAST SYNC", "CONTACTS", "DEALS", "RATE BUDGET")
            table(rows, (*headers, "NOTE"))

        emit(rt, payload, human)


@main.command("cached-data")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@json_option
@click.pass_context
def cached_data(ctx: click.Context, source: str | None, as_json: bool) -> None:
    """Everything in the cache by source (guide: GET cached-data).

    Example: crm-tui cached-data --source brivity --json
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        store = rt.store
        payload = {"success": True, "timestamp": utc_now(), "data": store.get_cached_data(source)}

        def human() -> None:
            rows = [
                (n, d["syncStatus"], d["lastSync"] or "never", len(d["contacts"]), len(d["deals"]))
                for n, d in payload["data"].items()
            ]
            table(rows, ("SOURCE", "STATUS", "LAST SYNC", "CONTACTS", "DEALS"))

        emit(rt, payload, human)


def _records_command(kind: RecordKind) -> Callable[..., None]:
    @click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
    @click.option("--limit", type=click.IntRange(0), default=0, help="At most N (0: all).")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, source: str | None, limit: int, as_json: bool) -> None:
        from crm_tui.cli_writes import record_marks

        rt = _rt(ctx, as_json)
        with errors(rt):
            records = rt.store.records(kind, source)
            if limit:
                records = records[:limit]
            marks = record_marks(rt.store)  # edits still on their way to the vendor
            payload = {
                "success": True,
                kind: [marks.json(r.to_json()) for r in records],
                "count": len(records),
            }

            def human() -> None:
                rows: list[tuple[Any, ...]]
                if kind == "contacts":
                    rows = [
                        (r.source, r.name, r.email, r.phone, r.company, r.status) for r in records
                    ]
                    headers = ("SOURCE", "NAME", "EMAIL", "PHONE", "COMPANY", "STATUS")
                else:
                    rows = [(r.source, r.name, r.amount, r.stage, r.close_date) for r in records]
                    headers = ("SOURCE", "NAME", "AMOUNT", "STAGE", "CLOSE DATE")
                table(*marks.column([r.id for r in records], rows, headers))

            emit(rt, payload, human)

    command.__doc__ = (
        f"Cached {kind} (guide: GET {kind}).\n\n"
        f"    Example: crm-tui {kind} --source followupboss --json"
    )
    return command


main.command("contacts")(_records_command("contacts"))
main.command("deals")(_records_command("deals"))


@main.command()
@click.argument("query")
@click.option("--type", "kind", type=TYPE_CHOICE, default="contact", show_default=True)
@click.option("--source", "sources", type=SOURCE_CHOICE, multiple=True, help="Only these.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Results per source.",
)
@json_option
@click.pass_context
def search(
    ctx: click.Context, query: str, kind: str, sources: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Search every source at once (guide: GET search).

    Filters: source:S status:X stage:X city:X tag:X, and for deals amount>N amount<=N
    closing:2026-12.

    Example: crm-tui search "jo sm" --json
    """
    from crm_tui.cli_writes import record_marks
    from crm_tui.search.index import SearchIndex

    rt = _rt(ctx, as_json)
    with errors(rt):
        index = SearchIndex()
        index.columns = _columns()
        index.rebuild_from(rt.store, kinds=(_kind(kind),))
        result = index.search(query, _kind(kind), sources or None, limit)
        marks = record_marks(rt.store)  # edits still on their way to the vendor
        payload = result.to_guide()
        for hits in payload["results"].values():
            for hit in hits:
                marks.json(hit)

        def human() -> None:
            for source, hits in result.groups.items():
                click.echo(f"{DISPLAY_NAMES.get(source, source)} ({result.counts[source]})")
                for hit in hits:
                    r = hit.record
                    extra = (
                        (r.email or r.phone or "")
                        if kind == "contact"
                        else (f"{r.amount:,.0f}" if r.amount is not None else "")
                    )
                    mark = f"  ({marks.label(r.id)})" if marks.label(r.id) else ""
                    click.echo(
                        f"  {single_line(r.name or '')}  {single_line(extra)}  [{r.id}]{mark}"
                    )
            click.echo(f"{result.total} result(s)")

        emit(rt, payload, human)


# -- sync ----------------------------------------------------------------------------------


def _progress_printer(store: CacheStore) -> Callable[[], None]:
    """A one-line progress display on stderr, for terminals only."""
    if not sys.stderr.isatty():
        return lambda: None

    def show(_change: Any) -> None:
        parts = []
        for name, s in store.statuses().items():
            if s.progress is not None:
                of = f"/{s.progress.total}" if s.progress.total else ""
                parts.append(f"{name} {s.progress.stream} {s.progress.records}{of}")
        if parts:
            sys.stderr.write("\r\x1b[K" + "  ".join(parts))
            sys.stderr.flush()

    unsubscribe = store.subscribe(show)

    def done() -> None:
        unsubscribe()
        sys.stderr.write("\r\x1b[K")

    return done


def _say_when_waiting(store: CacheStore) -> None:
    """One line on stderr each time a sync starts waiting for another process: a cron
    log then says why a run took longer."""
    said: dict[str, str | None] = {}

    def show(_change: Any) -> None:
        for name, status in store.statuses().items():
            who = status.waiting_for
            if who and said.get(name) != who:
                prefix = "\r\x1b[K" if sys.stderr.isatty() else ""
                click.echo(f"{prefix}{DISPLAY_NAMES.get(name, name)}: waiting for {who}", err=True)
            said[name] = who

    store.subscribe(show)


@main.command()
@click.argument("sources", nargs=-1, type=SOURCE_CHOICE)
@click.option("--watch", is_flag=True, help="Keep running, syncing every interval.")
@click.option("--interval", type=click.FloatRange(min=0.05), help="Minutes between runs.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="When another process is syncing a stream, skip it and exit 5 instead of waiting.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Read every stream in full (a reconcile), not only what changed since the last sync.",
)
@json_option
@click.pass_context
def sync(
    ctx: click.Context,
    sources: tuple[str, ...],
    watch: bool,
    interval: float | None,
    no_wait: bool,
    full: bool,
    as_json: bool,
) -> None:
    """Sync the named sources, or every enabled one (guide: POST sync-all, sync/SOURCE).

    Writes waiting in their outbox (crm-tui edit, note, lead create) are sent first, so the
    sync reads back the vendor's new values; how each ended is under `outbox`.

    A stream whose vendor can say what changed (Follow Up Boss people, HubSpot, Pipedrive)
    is read from its watermark on; in full the first time, when its last full read is older
    than CRM_FULL_SYNC_HOURS, and with --full. The others are read in full every time.

    One process writes a stream at a time: a sync that finds another process syncing the
    same stream waits for it (and says so on stderr), or with --no-wait skips it and exits 5.

    Example: crm-tui sync followupboss --json; crm-tui sync --full; crm-tui sync --watch
    """
    from crm_tui.sync.engine import SyncEngine

    rt = _rt(ctx, as_json)
    with errors(rt):
        # The records are not read: a sync writes them, and an incremental one a few of
        # them (reading a million would be most of its time). Statuses are.
        store = rt.writable_store(loaded=False)
        store.load_statuses_sync()
        engine = SyncEngine(rt.settings, store, wait=not no_wait)
        _say_when_waiting(store)
        names = list(sources) or None
        if watch:
            minutes = interval or rt.settings.crm_sync_interval_minutes
            if not minutes:
                raise CliError(
                    "--watch needs an interval",
                    "use --interval or CRM_SYNC_INTERVAL_MINUTES",
                    EXIT_USAGE,
                )
            run(_watch(engine, names, minutes))
            return
        sent, reports = run(_sync_once(rt, engine, names, full))
        payload = _sync_payload(rt, reports, sources)
        payload["outbox"] = [entry.to_json() for entry in sent]
        emit(rt, payload, lambda: _sync_table(reports, sent))
        if not payload["success"]:
            sys.exit(_sync_exit_code(reports))


async def _sync_once(
    rt: Runtime, engine: Any, names: list[str] | None, full: bool
) -> tuple[list[Any], dict[str, Any]]:
    """The outbox of the sources sent first (so the sync reads their new values back),
    then the sync: what was sent and each source's report."""
    from crm_tui.cli_writes import send_outbox

    done = lambda: None  # noqa: E731
    if not rt.json:
        done = _progress_printer(engine.store)
    try:
        sent = await send_outbox(engine, names)
        return sent, await engine.sync_all(names, full=full)
    finally:
        done()
        await engine.aclose()


def _sync_exit_code(reports: dict[str, Any]) -> int:
    classes = {s.error_class for r in reports.values() for s in r.streams.values()}
    if "AuthError" in classes:
        return EXIT_CONFIG
    return EXIT_BUSY if classes <= {"StreamBusy", None} else EXIT_REMOTE


def _sync_payload(rt: Runtime, reports: dict[str, Any], sources: tuple[str, ...]) -> dict[str, Any]:
    """The guide's sync result, with how each stream was read beside it under `streams`."""
    from crm_tui.sync.engine import guide_sync_result

    message = (
        "Sync initiated for all enabled CRM sources"
        if not sources
        else f"Sync completed for {', '.join(sources)}"
    )
    if all(r.outcome is Outcome.SKIPPED for r in reports.values()):
        message = "Sync skipped: another process is syncing it (run again, or drop --no-wait)"
    payload = guide_sync_result(reports, message)
    payload["streams"] = {
        name: {stream: _stream_json(s) for stream, s in report.streams.items()}
        for name, report in reports.items()
    }
    if not payload["success"]:
        payload.update(_sync_failure(rt, reports))
    return payload


def _sync_table(reports: dict[str, Any], sent: Sequence[Any] = ()) -> None:
    from crm_tui.cli_writes import outbox_summary
    from crm_tui.sources.messages import one_line

    rows = [
        (
            DISPLAY_NAMES.get(name, name),
            stream,
            s.mode,
            s.outcome,
            s.written,
            s.deleted,
            s.requests,
            one_line(s.error or ""),
        )
        for name, report in reports.items()
        for stream, s in report.streams.items()
    ]
    headers = ("SOURCE", "STREAM", "MODE", "OUTCOME", "RECORDS", "DELETED", "REQUESTS")
    table(rows, (*headers, "ERROR"))
    if sent:
        click.echo(single_line(outbox_summary(sent)))


def _stream_json(report: Any) -> dict[str, Any]:
    """How one stream was synced, beside the guide's result: mode, counts, watermark."""
    return {
        "mode": report.mode,
        "outcome": str(report.outcome),
        "read": report.read,
        "written": report.written,
        "deleted": report.deleted,
        "quarantined": report.quarantined,
        "requests": report.requests,
        "pages": report.pages,
        "watermark": report.watermark,
    }


def _sync_failure(rt: Runtime, reports: dict[str, Any]) -> dict[str, str]:
    """The failure shape's `error` and `details` beside the guide's sync result, so a script
    reads a failed sync the way it reads any other failure."""
    streams = [
        (name, stream)
        for name, report in reports.items()
        for stream in report.streams.values()
        if stream.error
    ]
    auth = [(name, s) for name, s in streams if s.error_class == "AuthError"]
    shown = auth or streams
    from crm_tui.sources.messages import one_line, problem_of

    failing = dict.fromkeys(n for n, _ in shown)  # each source once, its problem once
    details = "; ".join(
        f"{DISPLAY_NAMES.get(n, n)}: {one_line(problem_of(reports[n]))}" for n in failing
    )
    if not shown:
        details = "; ".join(f"{n}: {r.error}" for n, r in reports.items() if r.error)
    busy = bool(streams) and all(s.error_class == "StreamBusy" for _, s in streams)
    error = "Authentication failed" if auth else "Busy" if busy else "Sync failed"
    return {"error": error, "details": rt.masker(single_line(details))}


async def _watch(engine: Any, names: list[str] | None, minutes: float) -> None:
    from crm_tui.sync.scheduler import Scheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()
        for name in engine.running():  # cancelled work keeps the previous data
            engine.cancel(name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    def log_run(reports: dict[str, Any]) -> None:
        for name, report in reports.items():
            click.echo(
                f"{utc_now()} {name}: {report.outcome} "
                + ", ".join(
                    f"{k} {s.written} ({s.mode}, {s.deleted} deleted)"
                    for k, s in report.streams.items()
                ),
                err=True,
            )

    async def send_first() -> None:
        from crm_tui.cli_writes import outbox_summary, send_outbox

        summary = outbox_summary(await send_outbox(engine, names))
        if summary:
            click.echo(f"{utc_now()} {single_line(summary)}", err=True)

    scheduler = Scheduler(engine, minutes, on_run=log_run, sources=names, before_run=send_first)
    try:
        await scheduler.run_forever(stop)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
    finally:
        await engine.aclose()


# -- cache, connections --------------------------------------------------------------------


@main.command("clear-cache")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source (default: all).")
@json_option
@click.pass_context
def clear_cache(ctx: click.Context, source: str | None, as_json: bool) -> None:
    """Drop cached records for one source or all (guide: POST cache/clear).

    The local CRM's own rows are kept; only its cached copy is cleared.

    Example: crm-tui clear-cache --source brivity --json
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        imported = run(rt.writable_store(loaded=False).clear(source))
        message = f"Cache cleared for {source}" if source else "Cache cleared for all sources"
        if imported:
            message += f" ({imported} imported record(s) too: import their files again)"
        emit(rt, {"success": True, "message": message}, lambda: click.echo(message))


@main.command("test-connection")
@click.argument("source", required=False, type=SOURCE_CHOICE)
@json_option
@click.pass_context
def test_connection(ctx: click.Context, source: str | None, as_json: bool) -> None:
    """Authenticate with a source (or every enabled one) and read one small page.

    Example: crm-tui test-connection followupboss
    """
    from crm_tui.sources.messages import one_line
    from crm_tui.sync.engine import SyncEngine

    rt = _rt(ctx, as_json)
    with errors(rt):
        engine = SyncEngine(rt.settings, rt.store)
        names = [source] if source else engine.enabled()

        async def check() -> list[Any]:
            try:
                return [await engine.test_connection(n) for n in names]
            finally:
                await engine.aclose()

        results = run(check())
        payload = {
            "success": all(r.ok for r in results),
            "results": {r.source: r.to_json() for r in results},
        }
        emit(
            rt,
            payload,
            lambda: table(
                [
                    (
                        DISPLAY_NAMES.get(r.source, r.source),
                        "ok" if r.ok else "FAILED",
                        one_line(r.message),
                    )
                    for r in results
                ],
                ("SOURCE", "RESULT", "MESSAGE"),
            ),
        )
        if not payload["success"]:
            failed = next(r for r in results if not r.ok)
            sys.exit(EXIT_CONFIG if failed.config_error else EXIT_REMOTE)


# -- doctor --------------------------------------------------------------------------------


@main.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild a damaged database (keeping a copy of it), then re-sync every source.",
)
@click.option("--no-sync", is_flag=True, help="With --repair: do not re-sync afterwards.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, repair: bool, no_sync: bool, as_json: bool) -> None:
    """Check the settings, the database, file modes and every source's connection.

    Each check prints ok, warning or failed, and what to do. With --repair, a damaged
    database is kept as crm.sqlite3.broken-TIME, what still reads is recovered (the local
    CRM's own records first, counted) and every source re-synced.

    Example: crm-tui doctor; crm-tui doctor --repair --json
    """
    from crm_tui.doctor import run_doctor

    rt = _rt(ctx, as_json)
    with errors(rt):
        from crm_tui.app import check_keymap

        report = run(
            run_doctor(
                lambda: rt.settings,
                rt.env_file,
                repair=repair,
                sync=not no_sync,
                keymap_problems=check_keymap,
            )
        )
        masker = rt.masker if rt._settings is not None else SecretMasker()
        code = report.exit_code
        payload: dict[str, Any] = {"success": code == 0, **report.to_json()}
        if code:
            wrong = [c for c in report.standing if c.failed]
            payload["error"] = f"{len(wrong)} check(s) failed" if wrong else "The re-sync failed"
            payload["details"] = wrong[0].message if wrong else ""
        if rt.json:
            click.echo(masker(json.dumps(payload, ensure_ascii=False, default=str)))
        else:
            for line in _doctor_lines(report):
                click.echo(masker(single_line(line)))
        if code:
            sys.exit(code)


def _doctor_lines(report: Any) -> Iterator[str]:
    def rows(checks: Sequence[Any]) -> Iterator[str]:
        for c in checks:
            yield f"{c.status:<8} {c.name:<24} {c.message}".rstrip()
            if c.fix and c.status != "ok":
                yield f"{'':<8} {'':<24} fix: {c.fix}"

    yield from rows(report.checks)
    if report.repair is not None:
        yield ""
        yield f"repaired {report.repair.path}"
        for kept in report.repair.kept:
            yield f"  kept the broken file as {kept}"
        for t in report.repair.tables:
            lost = "unknown" if t.lost is None else f"{t.lost:,}"
            yield f"  {t.table:<20} recovered {t.recovered:>9,}   lost {lost}"
        yield from (f"  {note}" for note in report.repair.notes)
        yield "after the repair:"
        yield from rows(report.after)
    if report.sync is not None:
        yield "re-sync:"
        for name, r in report.sync.items():
            counts = ", ".join(f"{s.written:,} {k}" for k, s in r.streams.items())
            yield f"  {DISPLAY_NAMES.get(name, name):<15} {r.outcome}  {counts}  {r.error or ''}"
    yield from report.notes


# -- import, export ------------------------------------------------------------------------


@main.group("import")
def import_group() -> None:
    """Import CRM CSV exports: first a plan, then the records (unless --dry-run).

    Example: crm-tui import topproducer contacts.csv --dry-run
    """


def _import(
    ctx: click.Context, name: str, files: tuple[Path, ...], dry_run: bool, as_json: bool
) -> None:
    from crm_tui.sources.imports import plan_import
    from crm_tui.sources.mapping_file import read_mappings

    rt = _rt(ctx, as_json)
    with errors(rt):
        # read as a sync reads it: an import maps a file as the sync of its source would
        mappings = read_mappings()
        plans = [
            plan_import(name, path, rt.settings.user_id, mappings.overrides, mappings.columns)
            for path in files
        ]
        applied = [] if dry_run else [_apply_plan(rt, plan) for plan in plans]
        payload = {
            "success": True,
            "dryRun": dry_run,
            "plans": [p.to_json() for p in plans],
            "applied": applied,
        }

        def human() -> None:
            for plan in plans:
                _print_plan(plan)
            click.echo(
                "dry run: nothing written"
                if dry_run
                else f"imported {sum(a['written'] for a in applied)} record(s)"
            )

        emit(rt, payload, human)


#: Records written per store call: a few megabytes at a time, never the whole file.
IMPORT_BATCH = 10_000


def _apply_plan(rt: Runtime, plan: Any) -> dict[str, Any]:
    """Write a plan's records as one import: the file is read again a batch at a time and
    committed at the end, all of it or none of it."""
    from crm_tui.sync.engine import SyncEngine

    engine = SyncEngine(rt.settings, rt.writable_store(loaded=False))
    report = run(
        engine.import_records(
            plan.importer.source,
            plan.importer.kind,
            str(plan.path.resolve()),
            plan.batches(IMPORT_BATCH),
            plan.invalid_rows,
            plan.rows,
            plan.duplicates,
        )
    )
    # Counted by the database: a duplicate row was written over its id's earlier row.
    return {"file": str(plan.path), "written": report.written}


def _print_plan(plan: Any) -> None:
    """The plan as text: counts, encoding, errors, columns, invalid rows (the first 20)."""
    click.echo(
        f"{single_line(plan.path.name)}: {plan.importer.source} {plan.importer.kind}, "
        f"{plan.rows} rows, {plan.valid} valid, {plan.invalid.total} invalid, "
        f"{plan.duplicates} duplicates, {plan.errors.total} unreadable"
    )
    click.echo(f"  encoding: {plan.encoding}")
    for warning in plan.encoding_warnings:
        click.echo(
            f"  warning: {_lines_text(warning['lines'], warning['count'])}"
            f" decoded as {warning['assumed']}, not as {plan.encoding}"
        )
    for _line, error in plan.errors.items[:20]:
        click.echo(f"  error: {single_line(error)}")
    if plan.errors.total > 20:
        click.echo(f"  ... and {plan.errors.total - 20} more errors")
    for canonical, header in plan.columns.items():
        click.echo(f"  {header!r} -> {canonical}")
    if plan.metadata_only:
        click.echo("  kept in metadata only: " + ", ".join(repr(c) for c in plan.metadata_only))
    for row, line, reason in plan.invalid.items[:20]:
        click.echo(f"  row {row} (line {line}): {single_line(reason)}")
    if plan.invalid.total > 20:
        click.echo(f"  ... and {plan.invalid.total - 20} more invalid rows")
    if plan.ragged.total:
        click.echo(
            f"  wrong number of columns: {_lines_text(plan.ragged.items, plan.ragged.total)}"
        )


def _lines_text(lines: list[int], count: int, shown: int = 10) -> str:
    text = ("line " if count == 1 else "lines ") + ", ".join(str(n) for n in lines[:shown])
    return text + (f" and {count - shown} more" if count > shown else "")


_FILES = click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_DRY = click.option("--dry-run", is_flag=True, help="Show the plan, write nothing.")


def _import_command(command: str, export: CsvExport) -> click.Command:
    """`crm-tui import <command>`, one per CSV export a source declares."""

    @_FILES
    @_DRY
    @json_option
    @click.pass_context
    def run_import(
        ctx: click.Context, files: tuple[Path, ...], dry_run: bool, as_json: bool
    ) -> None:
        _import(ctx, command, files, dry_run, as_json)

    run_import.__doc__ = (
        f"{export.help or f'{command} exports'}\n\n"
        f"    Example: crm-tui import {command} {export.stream}.csv --dry-run"
    )
    return click.command(command)(run_import)


for _command, (_source, _export) in csv_exports().items():
    import_group.add_command(_import_command(_command, _export))


@main.command()
@click.option("--type", "kind", type=TYPE_CHOICE, default="contact", show_default=True)
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@click.option("--query", help="Only records matching this search.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "json", "vcf"]),
    default="csv",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write here (mode 0600, replaced whole); `-` or none: standard output.",
)
@click.pass_context
def export(
    ctx: click.Context,
    kind: str,
    source: str | None,
    query: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export cached records as CSV, XLSX, JSON or vCard 4.0.

    Example: crm-tui export --type contact --format vcf -o team.vcf
    """
    from crm_tui.export import STDOUT, OutputPathError, check_output_path
    from crm_tui.export import export as write

    rt = _rt(ctx, False)
    with errors(rt):
        to_file = output is not None and str(output) != STDOUT
        if to_file:
            try:  # before reading the cache: a refused path costs nothing
                check_output_path(output)
            except OutputPathError as exc:
                raise CliError("Cannot write the export", str(exc), EXIT_USAGE) from None
        k = _kind(kind)
        declared = _columns()
        custom = list(declared.values())
        if query:
            from crm_tui.search.index import SearchIndex

            index = SearchIndex()
            index.columns = declared
            index.rebuild_from(rt.store, kinds=(k,))
            result = index.search(query, k, [source] if source else None, limit=10**9)
            records = [h.record for hits in result.groups.values() for h in hits]
        else:
            records = rt.store.records(k, source)
        rt.output = output
        show_bar = to_file and sys.stderr.isatty() and len(records) > 5000
        try:
            if show_bar:
                with click.progressbar(
                    length=len(records), label="exporting", file=sys.stderr
                ) as bar:
                    count = write(output, fmt, k, records, progress=bar.update, custom=custom)
            else:
                count = write(output, fmt, k, records, stdout=sys.stdout, custom=custom)
        except OutputPathError as exc:  # it changed since the check above
            raise CliError("Cannot write the export", str(exc), EXIT_USAGE) from None
        if to_file:
            click.echo(f"wrote {count} {k} to {output}", err=True)


# -- local CRM -----------------------------------------------------------------------------


@main.group("local")
def local_group() -> None:
    """Create, edit and delete records in the team's own CRM (validated).

    Example: crm-tui local add-contact --first-name Ana --last-name Lee --email ana@x.co
    """


def _local(rt: Runtime) -> Any:
    from crm_tui.local_crm import LocalCrm
    from crm_tui.sources.base import SourceContext

    store = rt.writable_store(loaded=False)
    return LocalCrm(store, SourceContext(rt.settings, rt.settings.user_id, db=store.db))


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
        if v is not None and v != ()
    }


def _local_output(rt: Runtime, verb: str, record: Any) -> None:
    emit(
        rt,
        {"success": True, "record": record.to_json()},
        lambda: click.echo(f"{verb} {record.id}: {single_line(record.name or '')}"),
    )


_CONTACT_FLAGS = (
    "first-name",
    "last-name",
    "email",
    "phone",
    "company",
    "status",
    "stage",
    "tag",
    "street",
    "city",
    "state",
    "postal-code",
)
_DEAL_FLAGS = (
    "name",
    "amount",
    "currency",
    "stage",
    "probability",
    "close-date",
    "property-address",
    "status",
    "contact-id",
)
_DESTINATIONS = {"tag": "tags", "contact-id": "contact_remote_id"}


def _options(flags: Sequence[str]) -> list[Any]:
    return [
        click.option(
            f"--{flag}", _DESTINATIONS.get(flag, flag.replace("-", "_")), multiple=flag == "tag"
        )
        for flag in flags
    ]


_CONTACT_OPTIONS = _options(_CONTACT_FLAGS)
_DEAL_OPTIONS = _options(_DEAL_FLAGS)
_EDIT_OPTIONS = _options(list(dict.fromkeys(_CONTACT_FLAGS + _DEAL_FLAGS)))


def _with(options: list[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@local_group.command("add-contact")
@_with(_CONTACT_OPTIONS)
@json_option
@click.pass_context
def local_add_contact(ctx: click.Context, as_json: bool, **fields: Any) -> None:
    """Add a local contact.

    Example: crm-tui local add-contact --first-name Ana --phone "(512) 555-0101" --tag buyer
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _local_output(rt, "added", run(_local(rt).add("contacts", _given(fields))))


@local_group.command("add-deal")
@_with(_DEAL_OPTIONS)
@json_option
@click.pass_context
def local_add_deal(ctx: click.Context, as_json: bool, **fields: Any) -> None:
    """Add a local deal.

    Example: crm-tui local add-deal --name "12 Oak St" --amount 450000 --close-date 2026-12-31
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _local_output(rt, "added", run(_local(rt).add("deals", _given(fields))))


@local_group.command("edit")
@click.argument("record_id")
@_with(_EDIT_OPTIONS)
@json_option
@click.pass_context
def local_edit(ctx: click.Context, record_id: str, as_json: bool, **fields: Any) -> None:
    """Change fields of a local record (`local:7` or `7`); an empty value clears a field.

    Example: crm-tui local edit local:7 --email ana@new.co --status client
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _local_output(rt, "updated", run(_local(rt).edit(record_id, _given(fields))))


@local_group.command("delete")
@click.argument("record_id")
@json_option
@click.pass_context
def local_delete(ctx: click.Context, record_id: str, as_json: bool) -> None:
    """Delete a local record.

    Example: crm-tui local delete local:7
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _local_output(rt, "deleted", run(_local(rt).delete(record_id)))


# -- duplicates ----------------------------------------------------------------------------


def _review(rt: Runtime) -> Any:
    """Every cluster in its section, with the user's decisions from the database."""
    from crm_tui.dedup import DuplicateFinder
    from crm_tui.dedup.review import Review

    people = DuplicateFinder(rt.settings.crm_phone_region).refresh(rt.store)
    db, user = rt.store.db, rt.store.user_id
    if db is None:
        return people, Review.of(people, ())
    return people, Review.of(people, db.rejections(user), db.merges(user))


def _settled_json(cluster: Any, review: Any) -> dict[str, Any]:
    """A merged cluster, with the merge that settled it (for `merge --undo`)."""
    entry = review.entry_for(cluster)
    return {**cluster.to_json(), "merge_id": entry.id if entry is not None else None}


def _cluster(people: Any, cluster_id: str) -> Any:
    cluster = people.by_id.get(cluster_id)
    if cluster is None:
        raise CliError(
            "Unknown cluster", f"no cluster {cluster_id}; see crm-tui duplicates", EXIT_USAGE
        )
    return cluster


@main.command()
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Only clusters at least this sure (0-1).",
)
@click.option("--source", type=SOURCE_CHOICE, help="Only clusters that include this source.")
@json_option
@click.pass_context
def duplicates(
    ctx: click.Context, min_confidence: float, source: str | None, as_json: bool
) -> None:
    """The same person in several records, across and inside sources.

    Records are linked by e-mail (as the mail server reads it) or phone (E.164); names
    confirm or veto a link, never make one. `clusters` are left to review (names that
    differ last); `possible` share only a name and a street or city; `settled` were merged;
    `rejected` were marked not the same person. Example: crm-tui duplicates --json
    """
    from crm_tui.dedup.review import select

    rt = _rt(ctx, as_json)
    with errors(rt):
        _, review = _review(rt)
        store = rt.store
        shown = {
            name: select(clusters, min_confidence, source)
            for name, clusters in review.sections.items()
        }
        clusters = shown["open"] + shown["names_differ"]

        def human() -> None:
            for c in clusters:
                flag = "  (names differ: check)" if c.flagged else ""
                click.echo(f"{c.id}  {c.confidence:.2f}  {', '.join(c.sources)}{flag}")
                for member in c.members:
                    record = store.get("contacts", member)
                    name = single_line(record.name if record else "")
                    click.echo(f"    {member}  {name}")
            click.echo(
                f"{len(clusters)} cluster(s) to review; {len(shown['possible'])} possible, "
                f"{len(shown['merged'])} merged, {len(shown['rejected'])} not the same person"
            )

        payload = {
            "success": True,
            "clusters": [c.to_json() for c in clusters],
            "total": len(clusters),
            "possible": [c.to_json() for c in shown["possible"]],
            "settled": [_settled_json(c, review) for c in shown["merged"]],
            "rejected": [c.to_json() for c in shown["rejected"]],
        }
        emit(rt, payload, human)


@main.command()
@click.argument("cluster_id", required=False)
@click.option("--prefer", type=SOURCE_CHOICE, help="Take this source's values first.")
@click.option("--all", "every", is_flag=True, help="Merge every cluster left to review.")
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=0.95,
    show_default=True,
    help="With --all: only clusters at least this sure.",
)
@click.option("--source", type=SOURCE_CHOICE, help="With --all: only clusters with this source.")
@click.option("--dry-run", is_flag=True, help="With --all: say what would merge, merge nothing.")
@click.option("--undo", "undo_id", type=int, help="Undo the merge with this merge_id.")
@click.option(
    "--force", is_flag=True, help="Merge a cluster whose names differ, or a possible one."
)
@click.option(
    "--write-back",
    is_flag=True,
    help="Also send the chosen values to each vendor record of the cluster that takes edits"
    " (through the outbox, each with its conflict check; nothing is deleted).",
)
@json_option
@click.pass_context
def merge(
    ctx: click.Context,
    cluster_id: str | None,
    prefer: str | None,
    every: bool,
    min_confidence: float,
    source: str | None,
    dry_run: bool,
    undo_id: int | None,
    force: bool,
    write_back: bool,
    as_json: bool,
) -> None:
    """Create or update one local CRM contact from a duplicate cluster, or many.

    Each field takes the most recently updated non-empty value (or --prefer's); the linked
    source ids are kept on the local contact. Vendor CRMs are never written to. --all
    merges the clusters left to review whose names agree (never "names differ" or possible
    ones); each merge has a merge_id that --undo takes back.
    Examples: crm-tui merge p0135889936 --prefer followupboss --json;
    crm-tui merge --all --min-confidence 0.95 --dry-run; crm-tui merge --undo 12
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        chosen = [x for x in (cluster_id, every or None, undo_id) if x is not None]
        if len(chosen) != 1:
            raise CliError(
                "Say what to merge",
                "give exactly one of: a cluster id, --all, --undo ID",
                EXIT_USAGE,
            )
        if undo_id is not None:
            _undo_merge(rt, undo_id)
        elif every:
            _merge_all(rt, min_confidence, source, dry_run)
        else:
            _merge_one(rt, str(cluster_id), prefer, force, write_back)


def _merge_one(
    rt: Runtime, cluster_id: str, prefer: str | None, force: bool, write_back: bool = False
) -> None:
    from crm_tui.dedup.merge import cluster_records, merge_cluster

    people, _ = _review(rt)
    cluster = _cluster(people, cluster_id)
    if (cluster.flagged or cluster.possible) and not force:
        why = "their names differ" if cluster.flagged else "only a name and a place agree"
        raise CliError(
            "Check before merging",
            f"{cluster_id}: {why}; see crm-tui duplicates, then add --force to merge anyway",
            EXIT_USAGE,
        )
    from crm_tui.cli_writes import write_merged

    records = cluster_records(rt.store, cluster)
    result = run(merge_cluster(_local(rt), cluster, records, prefer))
    verb = "created" if result.created else "updated"
    written = write_merged(rt, result.record, records) if write_back else None

    def human() -> None:
        click.echo(
            f"{verb} {result.record.id}: {single_line(result.record.name)}"
            f" (merge {result.entry_id})"
        )
        if written is not None:
            click.echo(rt.masker(single_line(written["summary"])))

    payload = {"success": True, **result.to_json()}
    if written is not None:
        payload["write_back"] = written
    emit(rt, payload, human)


def _merge_all(rt: Runtime, min_confidence: float, source: str | None, dry_run: bool) -> None:
    from crm_tui.dedup.review import bulk_mergeable, merge_all, plan_bulk, select

    _, review = _review(rt)
    chosen = select(review.sections["open"], min_confidence, source)
    report = plan_bulk(chosen) if dry_run else run(merge_all(_local(rt), chosen))
    verb = "would merge" if dry_run else "merged"
    planned = bulk_mergeable(chosen) if dry_run else []

    def human() -> None:
        for cluster in planned:
            record = rt.store.get("contacts", cluster.members[0])
            name = single_line(record.name if record else "")
            click.echo(f"{cluster.id}  {cluster.confidence:.2f}  {name}")
        for result in report.merged:
            click.echo(f"{result.cluster_id} -> {result.record.id} (merge {result.entry_id})")
        for cluster, why in report.failed:
            click.echo(f"{cluster}: not merged: {single_line(why)}")
        click.echo(f"{verb} {report.people} people ({report.records} records)")

    payload = {"success": not report.failed, **report.to_json()}
    if dry_run:
        payload["clusters"] = [c.to_json() for c in planned]
    emit(rt, payload, human)


def _undo_merge(rt: Runtime, merge_id: int) -> None:
    from crm_tui.dedup.merge import AlreadyUndone, NewerMerge, undo_merge

    db = rt.store.db
    entry = db.merge_entry(rt.store.user_id, merge_id) if db is not None else None
    if entry is None:
        raise CliError("Unknown merge", f"no merge {merge_id}", EXIT_USAGE)
    try:
        run(undo_merge(_local(rt), entry))
    except AlreadyUndone as exc:
        raise CliError("Already undone", str(exc), EXIT_USAGE) from None
    except NewerMerge as exc:
        raise CliError("A later merge comes first", str(exc), EXIT_USAGE) from None
    verb = "removed" if entry.created else "restored"
    emit(
        rt,
        {"success": True, "undone": entry.to_json(), "local_id": entry.local_id, "action": verb},
        lambda: click.echo(f"merge {merge_id} undone: {entry.local_id} {verb}"),
    )


@main.command()
@click.argument("cluster_id")
@click.option("--undo", is_flag=True, help="Take the decision back: the cluster returns.")
@json_option
@click.pass_context
def reject(ctx: click.Context, cluster_id: str, undo: bool, as_json: bool) -> None:
    """Mark a duplicate cluster "not the same person": it leaves the list for good.

    Kept per user in the database; a record that later joins the cluster brings it back
    for review. Example: crm-tui reject p0135889936 (and --undo to take it back)
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        people, _ = _review(rt)
        cluster = _cluster(people, cluster_id)
        db = rt.store.db
        if db is None:
            raise CliError("No database", "decisions are kept in the database", EXIT_CONFIG)
        user = rt.store.user_id
        if cluster.settled:
            raise CliError(
                "Merged already",
                f"{cluster.id} was merged; undo the merge first (crm-tui merge --undo ID)",
                EXIT_USAGE,
            )
        if undo:
            changed = db.unreject(user, cluster.members, cluster.possible) > 0
            said = "back for review" if changed else "was not marked; nothing changed"
        else:
            db.reject(user, cluster.id, cluster.members)
            changed, said = True, "not the same person"
        emit(
            rt,
            {
                "success": True,
                "cluster": cluster.id,
                "state": "open" if undo else "rejected",
                "changed": changed,
            },
            lambda: click.echo(f"{cluster.id}: {said}"),
        )


# -- simulator -----------------------------------------------------------------------------


@main.command()
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
@click.option(
    "--rate-limit",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Follow Up Boss requests per 10 s.",
)
@click.option(
    "--token-expires-in",
    type=click.IntRange(1),
    default=3600,
    show_default=True,
    help="Seconds an OAuth token lives (the guide's contract).",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1000),
    default=0.0,
    show_default=True,
    help="Records changed per second, in the simulators that change, from --seed.",
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
) -> None:
    """Run the simulated CRM servers in the foreground (Ctrl-C stops).

    Example: crm-tui simulator --contacts 100000 --fault error_rate=0.1 --churn 2
    """
    import threading

    from crm_tui.demo.servers import Faults, start_demo_servers

    try:
        parsed = Faults.parse(list(faults))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from None
    from crm_tui.demo.simulators import SIMULATORS

    ports = tuple(port + n for n in range(len(SIMULATORS))) if port else None
    servers = start_demo_servers(
        contacts,
        seed,
        parsed,
        ports=ports,
        fub_rate_limit=rate_limit,
        token_expires_in=token_expires_in,
    )
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


from crm_tui.cli_webhooks import webhooks_group  # noqa: E402

main.add_command(webhooks_group)

# report pipeline, serve: the Pipeline's figures headless, and the app in a browser
from crm_tui.cli_insights import report_group, serve  # noqa: E402

main.add_command(report_group)
main.add_command(serve)

# edit, note, lead create, outbox; fields, map, unmap, remap: they join `main` as
# crm_tui.cli_writes and crm_tui.cli_mapping define them
import crm_tui.cli_mapping  # noqa: E402
import crm_tui.cli_writes  # noqa: E402, F401
