"""`crm-tui fields`, `map`, `unmap` and `remap`: what the Mapping screen does, for scripts.

`map` and `unmap` save `mappings.toml` (checked first: a refusal exits 2 with the reason and
leaves the file as it was), then map the stream's cached records again from their stored
payloads, without a request to the vendor. Should that re-map refuse the map all the same
(exit 2, nothing changed), the file is put back as it was. While a sync holds the stream
that re-map exits 5 with the mapping saved; `crm-tui remap` does it later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_USAGE, CliError
from crm_tui.cli.options import SOURCE_CHOICE
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Runtime, run
from crm_tui.custom_columns import COLUMN_TYPES, CUSTOM_PREFIX, Column
from crm_tui.formats import field_label
from crm_tui.models import RecordKind
from crm_tui.sources.mapping_file import MappingRefused, Saved
from crm_tui.store.db import Database
from crm_tui.store.errors import StreamBusy
from crm_tui.store.remap import RemapFailed, RemapReport

STREAM_CHOICE = click.Choice(["contacts", "deals"])
_STREAM = click.option(
    "--stream", type=STREAM_CHOICE, default="contacts", show_default=True, help="The stream."
)
_NO_REMAP = click.option(
    "--no-remap", is_flag=True, help="Save the mapping only; `crm-tui remap` maps the cache."
)


@click.command("fields")
@click.argument("source", type=SOURCE_CHOICE)
@_STREAM
@click.option(
    "--vendor",
    is_flag=True,
    help="Also ask the vendor for its field list (custom fields, with their labels): one"
    " request with the source's key. Without it no request is made.",
)
@headless()
def fields(rt: Runtime, source: str, stream: RecordKind, vendor: bool) -> Reply:
    """The fields a source's cached records hold: path, types, fill rate, samples, and
    what each is mapped to. No request is made unless --vendor asks the vendor's field
    metadata too (Follow Up Boss custom fields, HubSpot properties, Pipedrive person and
    deal fields): its fields are listed with the vendor's labels, filled or not.

    Example: crm-tui fields followupboss --stream deals --json
    """
    from crm_tui.fields.service import discover_stream, vendor_fields

    listed = run(vendor_fields(rt.settings, source, stream)) if vendor else None
    found = discover_stream(_db(rt), rt.settings, source, stream, vendor=listed)

    def human() -> None:
        rows = [
            (
                f.path,
                *((f.vendor_label or "",) if vendor else ()),
                "/".join(f.types) or "-",
                f.fill_text(found.estimated),
                " | ".join(f.samples),
                ", ".join(f.mapped_to),
            )
            for f in found.fields
        ]
        heads = ("PATH", *(("LABEL",) if vendor else ()), "TYPES", "FILLED")
        table(rows, (*heads, "SAMPLES", "MAPPED TO"))
        computed = [t.name for t in found.targets if t.spec == "(computed)"]
        if computed:
            click.echo(f"computed by {source}'s connector: {', '.join(computed)}")
        if found.estimated:
            click.echo(
                f"a sample of {found.sampled} of {found.total} {stream} records read:"
                " fill rates are estimates"
            )
        else:
            click.echo(f"all {found.total} {stream} records read")

    return Reply({"success": True, **found.to_json()}, human)


@click.command("map")
@click.argument("source", type=SOURCE_CHOICE)
@click.argument("stream", type=STREAM_CHOICE)
@click.argument("field")
@click.argument("path")
@click.option("--label", help="A custom column's name as people read it.")
@click.option(
    "--type", "column_type", type=click.Choice(COLUMN_TYPES), help="A custom column's type."
)
@_NO_REMAP
@headless()
def map_field(
    rt: Runtime,
    source: str,
    stream: RecordKind,
    field: str,
    path: str,
    label: str | None,
    column_type: str | None,
    no_remap: bool,
) -> Reply:
    """Map FIELD (a unified field such as company, or a custom column such as
    custom.lender) of SOURCE's STREAM to the payload PATH, then map the cached records again.

    Example: crm-tui map followupboss contacts custom.lender customLender --label Lender
    """
    from crm_tui.fields.service import save

    column = _column(field, label, column_type)

    def write(saved: list[Saved]) -> None:
        save(_db(rt), rt.settings, source, stream, field, path, column, saved=saved)

    report = _changed(rt, source, stream, write, None if no_remap else "mapping saved")
    column_json = column.to_json() if column else None
    return _reply(source, stream, field, f"<- {path}", report, path=path, column=column_json)


def _reply(
    source: str, stream: str, field: str, did: str, report: RemapReport | None, **more: Any
) -> Reply:
    """What `map` or `unmap` did (`did`, and `more` in the JSON), and the re-map's report."""
    payload = {
        "success": True,
        "source": source,
        "stream": stream,
        "field": field,
        **more,
        "remap": report.to_json() if report else None,
    }
    return Reply(payload, lambda: click.echo(f"{source} {stream}: {field} {did}" + _said(report)))


def _column(field: str, label: str | None, column_type: str | None) -> Column | None:
    """The custom column --label and --type describe (what they leave out as it was
    declared), or None when neither is given."""
    from crm_tui.fields.service import current_mappings

    if label is None and column_type is None:
        return None
    if not field.startswith(CUSTOM_PREFIX):
        raise CliError(
            "--label and --type describe a custom column", f"{field} is a field", EXIT_USAGE
        )
    name = field.removeprefix(CUSTOM_PREFIX)
    was = current_mappings().columns.get(name)
    return Column(
        name,
        label if label is not None else was.label if was else field_label(name),
        column_type or (was.type if was else "text"),
    )


def _changed(
    rt: Runtime,
    source: str,
    stream: RecordKind,
    write: Callable[[list[Saved]], None],
    done: str | None,
) -> RemapReport | None:
    """mappings.toml changed by `write` (a refusal exits 2), then the stream re-mapped unless
    `done` is None; `done` says what was saved, for a busy stream."""
    saved: list[Saved] = []
    with _refusals():
        write(saved)
    return None if done is None else _remap(rt, source, stream, done, saved)


@click.command("unmap")
@click.argument("source", type=SOURCE_CHOICE)
@click.argument("stream", type=STREAM_CHOICE)
@click.argument("field")
@_NO_REMAP
@headless()
def unmap_field(rt: Runtime, source: str, stream: RecordKind, field: str, no_remap: bool) -> Reply:
    """Take FIELD's entry for SOURCE's STREAM out of mappings.toml (the built-in map applies
    again; a custom column's declaration stays), then map the cached records again.

    Example: crm-tui unmap followupboss contacts custom.lender
    """
    from crm_tui.fields.service import remove

    def write(saved: list[Saved]) -> None:
        remove(_db(rt), rt.settings, source, stream, field, saved=saved)

    report = _changed(rt, source, stream, write, None if no_remap else "mapping removed")
    return _reply(source, stream, field, "unmapped", report)


@click.command("remap")
@click.argument("source", type=SOURCE_CHOICE)
@click.option("--stream", type=STREAM_CHOICE, help="Only this stream (default: both).")
@headless()
def remap(rt: Runtime, source: str, stream: RecordKind | None) -> Reply:
    """Map SOURCE's cached records again from their stored payloads, with mappings.toml as it
    is now. No request is made.

    Example: crm-tui remap followupboss --stream contacts
    """
    streams: tuple[RecordKind, ...] = (stream,) if stream else ("contacts", "deals")
    reports = [_remap(rt, source, s, "") for s in streams]
    return Reply(
        {"success": True, "remap": [r.to_json() for r in reports]},
        lambda: [click.echo(f"{source} {r.stream}:" + _said(r)) for r in reports],
    )


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused mapping: exit 2 with its reason."""
    try:
        yield
    except MappingRefused as exc:
        raise CliError("Mapping refused", str(exc), EXIT_USAGE) from None


def _db(rt: Runtime) -> Database:
    db = rt.writable_store(loaded=False).db
    assert db is not None  # the command line's store always has its database
    return db


def _remap(
    rt: Runtime, source: str, stream: RecordKind, done: str, saved: list[Saved] | None = None
) -> RemapReport:
    """The stream re-mapped now; `done` says what was saved before, for a busy stream. A map
    the re-map refuses is not left saved: `saved` is undone (the next sync would fail)."""
    from crm_tui.fields.service import remapper

    progress, clear = _progress(f"re-mapping {source} {stream}")
    try:
        return _db(rt).remap_stream(
            rt.settings.user_id, source, stream, remapper(rt.settings, source, stream), progress
        )
    except RemapFailed as exc:
        if not saved:
            raise
        if saved[0].undo():
            back = "mappings.toml put back as it was"
        else:
            back = "mappings.toml saved again since by another process: left as it is"
        raise RemapFailed(exc.error, f"{exc.details}; {back}", exc.path) from None
    except StreamBusy as exc:
        if done:
            later = f"`crm-tui remap {source} --stream {stream}` once it is done"
            details = f"{done}, records not re-mapped: {exc.details}; {later}"
        else:
            details = f"{exc.details}; try again once it is done"
        raise StreamBusy(exc.error, details, exc.path) from None
    finally:
        clear()


def _progress(what: str) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A one-line count on stderr, for terminals only."""
    if not sys.stderr.isatty():
        return None, lambda: None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\r\x1b[K{what} {done}/{total}")
        sys.stderr.flush()

    return show, lambda: sys.stderr.write("\r\x1b[K")


def _said(report: RemapReport | None) -> str:
    if report is None:
        return " (cache not re-mapped)"
    changed = "all" if report.changed is None else f"{report.changed}"
    kept = f", {report.kept} kept as they were (quarantined)" if report.kept else ""
    return f" re-mapped {report.read} records, {changed} changed{kept}"


COMMANDS: tuple[click.Command, ...] = (fields, map_field, unmap_field, remap)
