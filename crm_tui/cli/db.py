"""`db status`, `db migrate`, `db copy --to URL` and `db member ...`: the store's schema on
either back end, moving a SQLite cache into a team database, and who may see what there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.output import table
from crm_tui.cli.runtime import Runtime
from crm_tui.database_url import DatabaseUrl, InvalidDatabaseUrl

if TYPE_CHECKING:
    from crm_tui.store.postgres import PostgresDatabase


@click.group("db")
def db() -> None:
    """The store's database: schema, copying into a team database, team members."""


@db.command("status")
@headless(snapshot=False)
def status(rt: Runtime) -> Reply:
    """The database's schema version beside this program's (nothing is changed).

    Example: crm-tui db status --json
    """
    from crm_tui.store.schema_state import schema_state

    state = schema_state(rt.settings)
    payload = {"success": True, **state.to_json()}
    return Reply(
        payload,
        lambda: click.echo(
            f"{_where(state.backend, state.location)}: schema {state.version}, this crm-tui"
            f" {state.known} ({state.verdict})"
        ),
    )


@db.command("migrate")
@headless(snapshot=False)
def migrate(rt: Runtime) -> Reply:
    """Bring the database's schema up to this program's (opening it does the same).

    Example: crm-tui db migrate --json
    """
    from crm_tui.store.schema_state import schema_state

    before = schema_state(rt.settings)
    after = rt.database.schema_version
    message = (
        f"schema {before.version} -> {after}"
        if after != before.version
        else f"schema {after}, current"
    )
    payload = {"success": True, "backend": before.backend, "from": before.version, "to": after}
    return Reply(payload, lambda: click.echo(f"{before.location}: {message}"))


@db.command("copy")
@click.option(
    "--to", "to", required=True, metavar="URL", help="The team database (postgresql://...)."
)
@click.option(
    "--replace", is_flag=True, help="Overwrite what the team database holds of this user."
)
@headless(snapshot=False)
def copy(rt: Runtime, to: str, replace: bool) -> Reply:
    """Copy this user's store (local CRM first, then the cache) into a team database.

    Example: crm-tui db copy --to postgresql://me@db.example/crm --json
    """
    from crm_tui.store.postgres import PostgresDatabase
    from crm_tui.team.copy import copy_user

    try:
        url = DatabaseUrl(to)
    except InvalidDatabaseUrl as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    rt.masker.add(url.password)
    source = rt.database
    if source.backend != "sqlite":
        raise click.UsageError("db copy reads a SQLite cache: unset CRM_DATABASE_URL")
    target = PostgresDatabase(url, rt.settings.data_dir)
    try:
        counts = copy_user(source, target, rt.settings.user_id, replace)
    finally:
        target.close()
    payload = {"success": True, "to": url.display, "user": rt.settings.user_id, "copied": counts}
    return Reply(
        payload,
        lambda: table(sorted(counts.items()), ("TABLE", "ROWS")),
        masked=True,
    )


@db.group("member")
def member() -> None:
    """Who may see what in the team database (run as its owner)."""


@member.command("add")
@click.argument("role")
@click.option("--position", type=click.Choice(["agent", "lead", "worker"]), required=True)
@click.option("--user-id", help="Whose rows are this person's (agents and leads).")
@click.option("--team", help="The team a lead sees or a worker syncs.")
@headless(snapshot=False)
def member_add(
    rt: Runtime, role: str, position: str, user_id: str | None, team: str | None
) -> Reply:
    """Give a database login role its position: an agent sees their own rows, a lead their
    team's, a worker writes for its team.

    Example: crm-tui db member add alice --position agent --user-id alice --team north
    """
    from crm_tui.team.members import Member, add_member

    found = Member(role, position, user_id, team)
    add_member(_team_database(rt), found)
    return Reply(
        {"success": True, "member": found.to_json()}, lambda: click.echo(f"{role}: {position}")
    )


@member.command("remove")
@click.argument("role")
@headless(snapshot=False)
def member_remove(rt: Runtime, role: str) -> Reply:
    """Take a role's position away (it then sees nothing).

    Example: crm-tui db member remove alice
    """
    from crm_tui.team.members import remove_member

    gone = remove_member(_team_database(rt), role)
    message = f"{role}: removed" if gone else f"{role}: not a member"
    return Reply({"success": True, "removed": gone}, lambda: click.echo(message))


@member.command("list")
@headless(snapshot=False)
def member_list(rt: Runtime) -> Reply:
    """Every member: role, position, user and team.

    Example: crm-tui db member list --json
    """
    from crm_tui.team.members import list_members

    found = list_members(_team_database(rt))
    rows = [(m.role, m.position, m.user_id or "", m.team or "") for m in found]
    return Reply(
        {"success": True, "members": [m.to_json() for m in found]},
        lambda: table(rows, ("ROLE", "POSITION", "USER", "TEAM")),
    )


def _team_database(rt: Runtime) -> PostgresDatabase:
    from crm_tui.store.postgres import PostgresDatabase

    found = rt.database
    if not isinstance(found, PostgresDatabase):
        raise click.UsageError("team members live in a team database: set CRM_DATABASE_URL")
    return found


COMMANDS: tuple[click.Command, ...] = (db,)


def _where(backend: str, location: str) -> str:
    """A URL names its back end already ("postgresql://..."); a file's path does not."""
    return location if location.startswith(backend) else f"{backend} {location}"
