"""`crm-tui outbox`: the writes to vendor CRMs, listed, retried, dropped, settled and sent;
and the outbox sent before each sync."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_CONFLICT, EXIT_REMOTE, EXIT_USAGE, CliError
from crm_tui.cli.options import SOURCE_CHOICE
from crm_tui.cli.output import say, table
from crm_tui.cli.runtime import Runtime, run
from crm_tui.cli.write_report import report, target
from crm_tui.cli.written import Written, saved, writeback
from crm_tui.store.outbox import OutboxEntry

if TYPE_CHECKING:
    from crm_tui.sync.engine import SyncEngine
    from crm_tui.writeback.service import WriteBack

QUEUE = click.option(
    "--queue", is_flag=True, help="Save it to the outbox only; send it with the next run."
)
STATES = ("pending", "sending", "unsure", "done", "failed", "conflict", "dropped")


def _outbox_rows(entries: Iterable[OutboxEntry]) -> list[tuple[Any, ...]]:
    return [
        (
            e.id,
            e.source,
            target(e),
            e.action,
            e.state,
            ", ".join(e.wanted),
            e.attempts,
            e.updated_at,
            e.error or "",
        )
        for e in entries
    ]


_HEADERS = ("ID", "SOURCE", "RECORD", "ACTION", "STATE", "FIELDS", "ATTEMPTS", "UPDATED", "ERROR")


@click.group("outbox", invoke_without_command=True)
@click.option("--state", "states", type=click.Choice(STATES), multiple=True, help="Only these.")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@headless()
def outbox_group(
    rt: Runtime, states: tuple[str, ...], source: str | None, limit: int
) -> Reply | None:
    """Writes to vendor CRMs, newest first: waiting, sent, refused, in conflict.

    Exit 0. Subcommands retry, drop, settle and send act on them.

    Example: crm-tui outbox --state failed --state conflict --json
    """
    if click.get_current_context().invoked_subcommand is not None:
        return None  # the subcommand says what it does, with its own --json
    db = rt.unloaded_store.db
    assert db is not None
    entries = db.outbox(rt.settings.user_id, states or None, source, limit)  # type: ignore[arg-type]
    payload = {"success": True, "outbox": [e.to_json() for e in entries], "count": len(entries)}
    return Reply(payload, lambda: table(_outbox_rows(entries), _HEADERS))


def _entry(wb: WriteBack, entry_id: int) -> OutboxEntry:
    db = wb.store.db
    entry = db.outbox_entry(wb.user_id, entry_id) if db is not None else None
    if entry is None:
        raise CliError(
            "Unknown outbox entry", f"no entry {entry_id}; see crm-tui outbox", EXIT_USAGE
        )
    return entry


def _not_now(entry: OutboxEntry, verb: str) -> CliError:
    return CliError(
        f"Cannot {verb} it",
        f"outbox {entry.id} is {entry.state}; only a pending, unsure, failed or conflict"
        " entry can be retried or dropped, and only a conflict settled",
        EXIT_USAGE,
    )


async def _decided(rt: Runtime, entry_id: int, verb: str, queue: bool, **settle: Any) -> Written:
    """Retry, drop or settle an entry; a retried or settled one is sent at once unless
    `queue`."""
    async with writeback(rt) as wb:
        entry = _entry(wb, entry_id)
        if verb == "retry":
            decided = await wb.retry(entry_id)
        elif verb == "drop":
            decided = await wb.drop(entry_id)
        else:
            decided = await wb.settle(entry_id, _choices(entry, **settle))
        if decided is None:
            raise _not_now(entry, verb)
        return await saved(wb, decided, queue or decided.state != "pending")


def _choices(entry: OutboxEntry, mine: Sequence[str], theirs: Sequence[str]) -> dict[str, Any]:
    """--mine and --theirs as the settle's per-field choice, each a field of the edit."""
    if entry.state != "conflict":
        raise _not_now(entry, "settle")
    unknown = [f for f in (*mine, *theirs) if f not in entry.wanted]
    both = set(mine) & set(theirs)
    if unknown or both:
        said = f"not fields of this edit: {', '.join(unknown)}" if unknown else ""
        said = said or f"both --mine and --theirs: {', '.join(sorted(both))}"
        raise CliError(
            "Cannot settle it", f"{said}; its fields: {', '.join(entry.wanted)}", EXIT_USAGE
        )
    return {**dict.fromkeys(mine, "mine"), **dict.fromkeys(theirs, "theirs")}


_ENTRY_ID = click.argument("entry_id", type=int)


@outbox_group.command("retry")
@_ENTRY_ID
@QUEUE
@headless()
def outbox_retry(rt: Runtime, entry_id: int, queue: bool) -> Reply:
    """Send a failed, unsure or waiting entry again, now (its source's other waiting writes
    too). Exit codes as for crm-tui edit.

    Example: crm-tui outbox retry 12
    """
    return report(rt, run(_decided(rt, entry_id, "retry", queue)))


@outbox_group.command("drop")
@_ENTRY_ID
@headless()
def outbox_drop(rt: Runtime, entry_id: int) -> Reply:
    """Give up an entry that is not done: the record shows the vendor's values again.

    Example: crm-tui outbox drop 12
    """
    return report(rt, run(_decided(rt, entry_id, "drop", True)))


@outbox_group.command("settle")
@_ENTRY_ID
@click.option("--mine", multiple=True, help="Send my value of this field (repeatable).")
@click.option("--theirs", multiple=True, help="Keep the vendor's value of this field.")
@QUEUE
@headless()
def outbox_settle(
    rt: Runtime,
    entry_id: int,
    mine: Sequence[str],
    theirs: Sequence[str],
    queue: bool,
) -> Reply:
    """Settle a conflict field by field, then send it (fields not named: mine).

    Taking the vendor's value of every field drops the edit. Exit codes as for crm-tui edit.

    Example: crm-tui outbox settle 12 --mine stage --theirs phone
    """
    return report(rt, run(_decided(rt, entry_id, "settle", queue, mine=mine, theirs=theirs)))


async def _send(rt: Runtime, names: Sequence[str]) -> list[OutboxEntry]:
    async with writeback(rt) as wb:
        return await wb.drain(list(names) or None)


@outbox_group.command("send")
@click.argument("sources", nargs=-1, type=SOURCE_CHOICE)
@headless()
def outbox_send(rt: Runtime, sources: tuple[str, ...]) -> Reply:
    """Send what waits now, for the named sources or every enabled one.

    Exit 0, 4 when the vendor refused one, else 6 when one is in conflict.

    Example: crm-tui outbox send followupboss --json
    """
    sent = run(_send(rt, sources))
    code = _exit_code(sent)
    payload: dict[str, Any] = {
        "success": not code,
        "outbox": [e.to_json() for e in sent],
        "count": len(sent),
    }
    if code:
        payload["error"] = "Not all sent"
        payload["details"] = outbox_summary(sent)

    def human() -> None:
        if sent:
            table(_outbox_rows(sent), _HEADERS)
        say(rt, outbox_summary(sent) or "outbox: nothing waited")

    return Reply(payload, human, code)


def _exit_code(entries: Iterable[OutboxEntry]) -> int:
    states = {e.state for e in entries}
    return EXIT_REMOTE if "failed" in states else EXIT_CONFLICT if "conflict" in states else 0


async def send_outbox(engine: SyncEngine, names: Iterable[str] | None) -> list[OutboxEntry]:
    """A sync sends the outbox of the sources it syncs first, so it reads back the vendor's
    new values."""
    from crm_tui.writeback.service import WriteBack

    return await WriteBack(engine).drain(names)


def outbox_summary(entries: Sequence[OutboxEntry]) -> str:
    """ "outbox: 2 done, 1 failed (see crm-tui outbox ...)", or "" when nothing was sent."""
    if not entries:
        return ""
    counts = Counter(e.state for e in entries)
    line = "outbox: " + ", ".join(f"{n} {state}" for state, n in counts.items())
    stuck = [s for s in ("failed", "conflict") if counts[s]]
    if stuck:
        line += " (see crm-tui outbox " + " ".join(f"--state {s}" for s in stuck) + ")"
    return line


COMMANDS: tuple[click.Command, ...] = (outbox_group,)
