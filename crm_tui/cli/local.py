"""`crm-tui local`: the team's own CRM, records created, edited and deleted (validated)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.options import CONTACT_OPTIONS, DEAL_OPTIONS, EDIT_OPTIONS, given, with_options
from crm_tui.cli.runtime import Runtime, run
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.local_crm import LocalCrm
    from crm_tui.models import Record


@click.group("local")
def local_group() -> None:
    """Create, edit and delete records in the team's own CRM (validated).

    Example: crm-tui local add-contact --first-name Ana --last-name Lee --email ana@x.co
    """


def local_crm(rt: Runtime) -> LocalCrm:
    """The local CRM over the command's store, nothing read yet."""
    from crm_tui.local_crm import LocalCrm
    from crm_tui.sources.base import SourceContext

    store = rt.writable_store(loaded=False)
    return LocalCrm(store, SourceContext(rt.settings, rt.settings.user_id, db=store.db))


def _changed(verb: str, record: Record) -> Reply:
    return Reply(
        {"success": True, "record": record.to_json()},
        lambda: click.echo(f"{verb} {record.id}: {single_line(record.name or '')}"),
    )


@local_group.command("add-contact")
@with_options(CONTACT_OPTIONS)
@headless()
def local_add_contact(rt: Runtime, **fields: Any) -> Reply:
    """Add a local contact.

    Example: crm-tui local add-contact --first-name Ana --phone "(512) 555-0101" --tag buyer
    """
    return _changed("added", run(local_crm(rt).add("contacts", given(fields))))


@local_group.command("add-deal")
@with_options(DEAL_OPTIONS)
@headless()
def local_add_deal(rt: Runtime, **fields: Any) -> Reply:
    """Add a local deal.

    Example: crm-tui local add-deal --name "12 Oak St" --amount 450000 --close-date 2026-12-31
    """
    return _changed("added", run(local_crm(rt).add("deals", given(fields))))


@local_group.command("edit")
@click.argument("record_id")
@with_options(EDIT_OPTIONS)
@headless()
def local_edit(rt: Runtime, record_id: str, **fields: Any) -> Reply:
    """Change fields of a local record (`local:7` or `7`); an empty value clears a field.

    Example: crm-tui local edit local:7 --email ana@new.co --status client
    """
    return _changed("updated", run(local_crm(rt).edit(record_id, given(fields))))


@local_group.command("delete")
@click.argument("record_id")
@headless()
def local_delete(rt: Runtime, record_id: str) -> Reply:
    """Delete a local record.

    Example: crm-tui local delete local:7
    """
    return _changed("deleted", run(local_crm(rt).delete(record_id)))


COMMANDS: tuple[click.Command, ...] = (local_group,)
