"""`crm-tui import <command>`: one command per CSV export a source declares, each first a
plan, then the records (unless --dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.runtime import Engine, Runtime, run
from crm_tui.sources.kit import CsvExport
from crm_tui.sources.registry import csv_exports
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.sources.imports import FilePlan

#: Records written per store call: a few megabytes at a time, never the whole file.
IMPORT_BATCH = 10_000


@click.group("import")
def import_group() -> None:
    """Import CRM CSV exports: first a plan, then the records (unless --dry-run).

    Example: crm-tui import topproducer contacts.csv --dry-run
    """


def _import(rt: Runtime, name: str, files: tuple[Path, ...], dry_run: bool) -> Reply:
    from crm_tui.sources.imports import plan_import
    from crm_tui.sources.mapping_file import read_mappings

    # read as a sync reads it: an import maps a file as the sync of its source would
    mappings = read_mappings()
    plans = [
        plan_import(name, path, rt.user_id, mappings.overrides, mappings.columns) for path in files
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

    return Reply(payload, human)


def _apply_plan(rt: Runtime, plan: FilePlan) -> dict[str, Any]:
    """Write a plan's records as one import: the file is read again a batch at a time and
    committed at the end, all of it or none of it."""
    engine = Engine(rt, rt.writable_store(loaded=False))
    batches = plan.batches(IMPORT_BATCH)  # a file changed since its plan fails here

    async def write() -> Any:
        async with engine as syncer:
            return await syncer.import_records(
                plan.importer.source,
                plan.importer.kind,
                str(plan.path.resolve()),
                batches,
                plan.invalid_rows,
                plan.rows,
                plan.duplicates,
            )

    report = run(write())
    # Counted by the database: a duplicate row was written over its id's earlier row.
    return {"file": str(plan.path), "written": report.written}


def _print_plan(plan: FilePlan) -> None:
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

    def run_import(rt: Runtime, files: tuple[Path, ...], dry_run: bool) -> Reply:
        return _import(rt, command, files, dry_run)

    run_import.__doc__ = (
        f"{export.help or f'{command} exports'}\n\n"
        f"    Example: crm-tui import {command} {export.stream}.csv --dry-run"
    )
    return click.command(command)(_FILES(_DRY(headless()(run_import))))


for _command, (_source, _export) in csv_exports().items():
    import_group.add_command(_import_command(_command, _export))

COMMANDS: tuple[click.Command, ...] = (import_group,)
