"""`paths`, `test-connection` and `doctor`: where crm-tui keeps things, and whether its
settings, database and sources work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_CONFIG, EXIT_REMOTE
from crm_tui.cli.options import SOURCE_CHOICE
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Engine, Runtime, run
from crm_tui.config import DISPLAY_NAMES
from crm_tui.sources.registry import CONNECTORS
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.sync.engine import ConnectionResult


@click.command("paths")
@headless()
def paths(rt: Runtime) -> Reply:
    """Print the config file, data dir, database and log file in use.

    Example: crm-tui paths --json
    """
    from crm_tui.config import config_dir, default_env_files
    from crm_tui.sources.mapping_file import mappings_path

    s = rt.settings
    info = {
        "config_dir": str(config_dir()),
        "env_files": [str(p) for p in default_env_files(rt.env_file)],
        "mappings": str(mappings_path()),
        "data_dir": str(s.data_dir),
        "database": s.database_location,
        "log_file": str(s.log_file),
        "user_id": s.user_id,
    }
    # the files and folders each source reads, as its settings declare them
    for cls in CONNECTORS.values():
        for setting in cls.settings:
            value = getattr(s, setting.field)
            if setting.kind in ("file", "folder") and value is not None:
                info[setting.field] = str(value)
    return Reply(
        {"success": True, **info}, lambda: [click.echo(f"{k:<11} {v}") for k, v in info.items()]
    )


@click.command("test-connection")
@click.argument("source", required=False, type=SOURCE_CHOICE)
@headless()
def test_connection(rt: Runtime, source: str | None) -> Reply:
    """Authenticate with a source (or every enabled one) and read one small page.

    Example: crm-tui test-connection followupboss
    """
    engine = Engine(rt, rt.store)
    names = [source] if source else engine.engine.enabled()

    async def check() -> list[ConnectionResult]:
        async with engine as syncer:
            return [await syncer.test_connection(n) for n in names]

    results = run(check())
    payload = {
        "success": all(r.ok for r in results),
        "results": {r.source: r.to_json() for r in results},
    }
    failed = next((r for r in results if not r.ok), None)
    code = 0 if failed is None else EXIT_CONFIG if failed.config_error else EXIT_REMOTE
    return Reply(payload, lambda: _results_table(results), code)


def _results_table(results: list[ConnectionResult]) -> None:
    from crm_tui.sources.messages import one_line

    rows = [
        (DISPLAY_NAMES.get(r.source, r.source), "ok" if r.ok else "FAILED", one_line(r.message))
        for r in results
    ]
    table(rows, ("SOURCE", "RESULT", "MESSAGE"))


@click.command("doctor")
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild a damaged database (keeping a copy of it), then re-sync every source.",
)
@click.option("--no-sync", is_flag=True, help="With --repair: do not re-sync afterwards.")
@headless()
def doctor(rt: Runtime, repair: bool, no_sync: bool) -> Reply:
    """Check the settings, the database, file modes and every source's connection.

    Each check prints ok, warning or failed, and what to do. With --repair, a damaged
    database is kept as crm.sqlite3.broken-TIME, what still reads is recovered (the local
    CRM's own records first, counted) and every source re-synced.

    Example: crm-tui doctor; crm-tui doctor --repair --json
    """
    from crm_tui.app import check_keymap
    from crm_tui.doctor import run_doctor

    report = run(
        run_doctor(
            lambda: rt.settings,
            rt.env_file,
            repair=repair,
            sync=not no_sync,
            keymap_problems=check_keymap,
        )
    )
    code = report.exit_code
    payload: dict[str, Any] = {"success": code == 0, **report.to_json()}
    if code:
        wrong = [c for c in report.standing if c.failed]
        payload["error"] = f"{len(wrong)} check(s) failed" if wrong else "The re-sync failed"
        payload["details"] = wrong[0].message if wrong else ""

    def human() -> None:
        masker = rt.loaded_masker
        for line in _doctor_lines(report):
            click.echo(masker(single_line(line)))

    # masked whole: a check's message may quote a setting
    return Reply(payload, human, code, masked=True)


def _check_rows(checks: Sequence[Any]) -> Iterator[str]:
    for c in checks:
        yield f"{c.status:<8} {c.name:<24} {c.message}".rstrip()
        if c.fix and c.status != "ok":
            yield f"{'':<8} {'':<24} fix: {c.fix}"


def _doctor_lines(report: Any) -> Iterator[str]:
    yield from _check_rows(report.checks)
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
        yield from _check_rows(report.after)
    if report.sync is not None:
        yield "re-sync:"
        for name, r in report.sync.items():
            counts = ", ".join(f"{s.written:,} {k}" for k, s in r.streams.items())
            yield f"  {DISPLAY_NAMES.get(name, name):<15} {r.outcome}  {counts}  {r.error or ''}"
    yield from report.notes


COMMANDS: tuple[click.Command, ...] = (paths, test_connection, doctor)
