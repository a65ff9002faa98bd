"""`crm-tui edit`, `note` and `lead create`: changing vendor records from the terminal.

Every write is saved to the outbox first (the cache shows an edit at once, marked pending),
then the source's waiting writes are sent with its retry policy and rate budget, unless
`--queue`; what cannot be sent now goes out on the next `crm-tui sync` (a `--watch` run
too), `crm-tui outbox send`, or from the open app. What each source takes comes from its
connector's `Writes` declaration: nothing here names a vendor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_USAGE, CliError
from crm_tui.cli.options import (
    EDIT_OPTIONS,
    TYPE_CHOICE,
    field_options,
    given,
    record_kind,
    with_options,
)
from crm_tui.cli.outbox import QUEUE, outbox_summary
from crm_tui.cli.runtime import Runtime, run
from crm_tui.cli.write_report import display_name, report
from crm_tui.cli.written import Written, refusals, saved, vendor_record, writeback
from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.models import Record, RecordKind
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store.outbox import OutboxEntry

_DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the exact request that would be sent (secrets masked); save nothing.",
)
#: How every write command may end: as a dry run, or saved for the next run to send.
_WRITE_OPTIONS = with_options([_DRY_RUN, QUEUE])


def _custom_sets(sets: Sequence[str]) -> dict[str, str]:
    """`--set custom.lender=Quicken` (or `lender=Quicken`): custom column values by name;
    an empty value clears the column."""
    values: dict[str, str] = {}
    for setting in sets:
        name, equals, value = setting.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CliError("Invalid --set", f"{setting!r}: give NAME=VALUE", EXIT_USAGE)
        values[name if name.startswith(CUSTOM_PREFIX) else CUSTOM_PREFIX + name] = value
    return values


def _edit_values(
    record: Record,
    fields: dict[str, Any],
    add_tags: Sequence[str],
    remove_tags: Sequence[str],
    sets: Sequence[str] = (),
) -> dict[str, Any]:
    """The unified values asked for; --add-tag and --remove-tag change the record's tags as
    shown (or the --tag list given); --set gives custom columns' values."""
    values = {**given(fields), **_custom_sets(sets)}
    if add_tags or remove_tags:
        tags = values.get("tags", list(getattr(record, "tags", ())))
        values["tags"] = [t for t in dict.fromkeys([*tags, *add_tags]) if t not in remove_tags]
    if not values:
        raise CliError(
            "Say what to change", "give a field option; see crm-tui edit --help", EXIT_USAGE
        )
    return values


@dataclass(frozen=True)
class EditAsk:
    record_id: str
    kind: str | None
    fields: dict[str, Any]
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]
    dry_run: bool
    queue: bool
    sets: tuple[str, ...] = ()


async def _edit(rt: Runtime, ask: EditAsk) -> Written:
    from crm_tui.writeback.service import NothingToSend

    kinds: Sequence[RecordKind] = [record_kind(ask.kind)] if ask.kind else ("contacts", "deals")
    async with writeback(rt, saving=not ask.dry_run) as wb:
        record = await vendor_record(wb, ask.record_id, kinds)
        values = _edit_values(record, ask.fields, ask.add_tags, ask.remove_tags, ask.sets)
        try:
            with refusals():
                if ask.dry_run:
                    return Written(record=record, preview=await wb.preview_edit(record, values))
                entry = await wb.edit(record, values)
        except NothingToSend as exc:
            return Written(record=record, unchanged=str(exc))
        return await saved(wb, entry, ask.queue, record)


def _writable_help() -> str:
    """Which fields each source takes, from the connectors' declarations."""
    lines = []
    for name, connector in CONNECTORS.items():
        for kind in connector.writes.update:
            flags = ", ".join(
                "--tag/--add-tag/--remove-tag" if f == "tags" else f"--{f.replace('_', '-')}"
                for f in connector.writes.fields(kind)
            )
            lines.append(f"  {display_name(name)} {kind}: {flags}")
    # \b: click keeps these lines as they are (a flag is never cut at its hyphen)
    return "\b\nFields each source takes:\n" + "\n".join(lines) if lines else ""


@click.command("edit", epilog=_writable_help())
@click.argument("record_id")
@with_options(EDIT_OPTIONS)
@click.option("--add-tag", "add_tags", multiple=True, help="Add this tag (repeatable).")
@click.option("--remove-tag", "remove_tags", multiple=True, help="Remove this tag (repeatable).")
@click.option("--type", "kind", type=TYPE_CHOICE, help="When the id is a contact's and a deal's.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="custom.NAME=VALUE",
    help="A custom column's value (repeatable), where its source takes writes of the"
    " custom field it is mapped from.",
)
@_WRITE_OPTIONS
@headless()
def edit(
    rt: Runtime,
    record_id: str,
    add_tags: tuple[str, ...],
    remove_tags: tuple[str, ...],
    kind: str | None,
    sets: tuple[str, ...],
    dry_run: bool,
    queue: bool,
    **fields: Any,
) -> Reply:
    """Change fields of a vendor CRM's record (SOURCE:ID); an empty value clears a field.

    --tag replaces every tag; --add-tag and --remove-tag change the tags it has. Only the
    fields its source takes are accepted, checked as local edits are. The edit is saved to
    the outbox (shown at once, pending), then sent after a check that the vendor did not
    change those fields meanwhile. Exit 0 done or saved to go out later, 4 refused by the
    vendor, 6 conflict. Local records: crm-tui local edit.

    Example: crm-tui edit followupboss:123 --stage "Active Client" --add-tag buyer
    --set custom.lender=Quicken
    """
    ask = EditAsk(record_id, kind, fields, add_tags, remove_tags, dry_run, queue, sets)
    return report(rt, run(_edit(rt, ask)))


async def _note(
    rt: Runtime, record_id: str, text: str, subject: str | None, dry_run: bool, queue: bool
) -> Written:
    async with writeback(rt, saving=not dry_run) as wb:
        record = await vendor_record(wb, record_id, ("contacts",))
        with refusals():
            if dry_run:
                return Written(record=record, preview=wb.preview_note(record, text, subject))
            entry = await wb.note(record, text, subject)
        return await saved(wb, entry, queue, record)


@click.command("note")
@click.argument("record_id")
@click.argument("text")
@click.option("--subject", help="The note's subject, where the source keeps one.")
@_WRITE_OPTIONS
@headless()
def note(
    rt: Runtime,
    record_id: str,
    text: str,
    subject: str | None,
    dry_run: bool,
    queue: bool,
) -> Reply:
    """Add a note to a vendor CRM's contact (SOURCE:ID), through the outbox.

    Exit 0 done or saved to go out later, 4 refused by the vendor.

    Example: crm-tui note followupboss:123 "Called, wants a showing Sat"
    """
    return report(rt, run(_note(rt, record_id, text, subject, dry_run, queue)))


#: The sources whose connector declares new leads.
LEAD_SOURCES = click.Choice([n for n, c in CONNECTORS.items() if c.writes.create])


_LEAD_OPTIONS = field_options(("first-name", "last-name", "email", "phone", "tag"))


@click.group("lead")
def lead_group() -> None:
    """New leads in a vendor CRM.

    Example: crm-tui lead create followupboss --first-name Ana --email ana@x.co
    """


async def _create_lead(
    rt: Runtime, source: str, values: dict[str, Any], dry_run: bool, queue: bool
) -> Written:
    async with writeback(rt, saving=not dry_run) as wb:
        with refusals():
            if dry_run:
                return Written(preview=wb.preview_lead(source, values))
            entry = await wb.create_lead(source, values)
        return await saved(wb, entry, queue)


@lead_group.command("create")
@click.argument("source", type=LEAD_SOURCES)
@with_options(_LEAD_OPTIONS)
@click.option("--source", "lead_source", help="Where the lead came from (its lead source).")
@click.option("--message", help="What the lead asked or said.")
@_WRITE_OPTIONS
@headless()
def lead_create(rt: Runtime, source: str, dry_run: bool, queue: bool, **fields: Any) -> Reply:
    """Create a lead in SOURCE through the outbox (the vendor's own intake).

    It needs an e-mail or a phone (or what the source asks). Exit 0 done or saved to go out
    later, 4 refused by the vendor.

    Example: crm-tui lead create followupboss --first-name Ana --email ana@x.co --source Zillow
    """
    return report(rt, run(_create_lead(rt, source, given(fields), dry_run, queue)))


def write_merged(rt: Runtime, merged: Record, members: Sequence[Record]) -> dict[str, Any]:
    """`merge --write-back`: the merged values offered to each vendor record of the cluster
    and sent now; what each ended as, and the records left alone with why."""

    async def offer() -> tuple[list[OutboxEntry], list[OutboxEntry], dict[str, str]]:
        async with writeback(rt) as wb:
            saved, skipped = await wb.write_merged(merged, members)
            sources = sorted({e.source for e in saved})
            return saved, (await wb.drain(sources) if sources else []), skipped

    saved, finished, skipped = run(offer())
    return {
        "entries": [e.to_json() for e in finished or saved],
        "skipped": skipped,
        "summary": outbox_summary(finished) or "write-back: nothing to change at the vendors",
    }


COMMANDS: tuple[click.Command, ...] = (edit, note, lead_group)
