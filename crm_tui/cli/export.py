"""`crm-tui export`: cached records as CSV, XLSX, JSON or vCard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crm_tui.cli.cold import ColdRecords
from crm_tui.cli.command import headless
from crm_tui.cli.errors import EXIT_USAGE, CliError
from crm_tui.cli.options import SOURCE_CHOICE, TYPE_CHOICE, declared_columns, record_kind
from crm_tui.cli.runtime import Runtime
from crm_tui.models import RecordKind

if TYPE_CHECKING:
    from crm_tui.custom_columns import Column
    from crm_tui.models import Record


@click.command("export")
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
@headless(json_help=None)
def export(
    rt: Runtime, kind: str, source: str | None, query: str | None, fmt: str, output: Path | None
) -> None:
    """Export cached records as CSV, XLSX, JSON or vCard 4.0.

    Example: crm-tui export --type contact --format vcf -o team.vcf
    """
    from crm_tui.export import STDOUT, OutputPathError, check_output_path

    to_file = output is not None and str(output) != STDOUT
    if to_file:
        try:  # before reading the cache: a refused path costs nothing
            check_output_path(output)
        except OutputPathError as exc:
            raise CliError("Cannot write the export", str(exc), EXIT_USAGE) from None
    k = record_kind(kind)
    declared = declared_columns()
    records = _records(rt, k, source, query, declared)
    rt.output = output
    try:
        count = _write(output, fmt, k, records, list(declared.values()), to_file)
    except OutputPathError as exc:  # it changed since the check above
        raise CliError("Cannot write the export", str(exc), EXIT_USAGE) from None
    if to_file:
        click.echo(f"wrote {count} {k} to {output}", err=True)


def _records(
    rt: Runtime,
    kind: RecordKind,
    source: str | None,
    query: str | None,
    declared: dict[str, Column],
) -> list[Record]:
    """The source's records, or those matching `query`."""
    if not query:  # read from the database: only this kind (and source) is held
        with rt.database.consistent_reads():
            return list(ColdRecords(rt.database, rt.unloaded_store.user_id).records(kind, source))
    from crm_tui.search.stored import store_index

    index = store_index(rt.store, rt.store.shelf, declared, kinds=(kind,))
    result = index.search(query, kind, [source] if source else None, limit=10**9)
    return [h.record for hits in result.groups.values() for h in hits]


def _write(
    output: Path | None,
    fmt: str,
    kind: RecordKind,
    records: list[Record],
    custom: list[Column],
    to_file: bool,
) -> int:
    """The records written; a bar on stderr for a long export to a file, in a terminal."""
    from crm_tui.export import export as write

    if to_file and sys.stderr.isatty() and len(records) > 5000:
        with click.progressbar(length=len(records), label="exporting", file=sys.stderr) as bar:
            return write(output, fmt, kind, records, progress=bar.update, custom=custom)
    return write(output, fmt, kind, records, stdout=sys.stdout, custom=custom)


COMMANDS: tuple[click.Command, ...] = (export,)
