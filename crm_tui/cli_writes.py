"""`crm-tui edit`, `note`, `lead create` and `outbox`: changing vendor records from the terminal.

Every write is saved to the outbox first (the cache shows an edit at once, marked pending),
then the source's waiting writes are sent with its retry policy and rate budget, unless
`--queue`; what cannot be sent now goes out on the next `crm-tui sync` (a `--watch` run
too), `crm-tui outbox send`, or from the open app. What each source takes comes from its
connector's `Writes` declaration: nothing here names a vendor.

It follows cli.py's conventions and uses its helpers. cli.py imports this module at its very
end, once everything imported from it here is defined; the commands join `main` as they are
defined here, so importing either module first works.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli import (
    _EDIT_OPTIONS,
    EXIT_CONFLICT,
    EXIT_REMOTE,
    EXIT_USAGE,
    SOURCE_CHOICE,
    TYPE_CHOICE,
    CliError,
    Runtime,
    _given,
    _kind,
    _options,
    _rt,
    _with,
    emit,
    errors,
    json_option,
    main,
    run,
    table,
)
from crm_tui.config import DISPLAY_NAMES
from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.models import Record, RecordKind
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store.outbox import OPEN_STATES, OutboxEntry
from crm_tui.text import single_line
from crm_tui.writeback.shown import shown_value

if TYPE_CHECKING:
    from crm_tui.store import CacheStore
    from crm_tui.sync.engine import SyncEngine
    from crm_tui.writeback.service import Preview, WriteBack

STATES = ("pending", "sending", "unsure", "done", "failed", "conflict", "dropped")
#: The states a person must act on, and the exit code each ends a command with.
_EXITS = {"failed": EXIT_REMOTE, "conflict": EXIT_CONFLICT}
_NEXT_RUN = "it goes out on the next crm-tui sync or crm-tui outbox send, or from the open app"

_DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the exact request that would be sent (secrets masked); save nothing.",
)
_QUEUE = click.option(
    "--queue", is_flag=True, help="Save it to the outbox only; send it with the next run."
)


def _display(source: str) -> str:
    return DISPLAY_NAMES.get(source, source)


def _say(rt: Runtime, line: str, err: bool = False) -> None:
    """One line of human output: vendor values and errors on one line, secrets masked."""
    click.echo(rt.masker(single_line(line)), err=err)


# -- what a command works with --------------------------------------------------------------


@asynccontextmanager
async def _writeback(rt: Runtime, saving: bool = True) -> AsyncIterator[WriteBack]:
    """The write-back service over the cache, nothing loaded (a command reads the few
    records it needs); `saving=False` for a dry run, which works on a read-only database."""
    from crm_tui.sync.engine import SyncEngine
    from crm_tui.writeback.service import WriteBack

    store = rt.writable_store(loaded=False) if saving else rt.unloaded_store
    engine = SyncEngine(rt.settings, store)
    try:
        yield WriteBack(engine)
    finally:
        await engine.aclose()


async def _record(wb: WriteBack, record_id: str, kinds: Sequence[RecordKind]) -> Record:
    """A vendor record by its cache id, as the cache shows it (pending edits laid over)."""
    source, colon, remote = record_id.partition(":")
    if not colon or not source or not remote:
        raise CliError(
            "Not a record id", f"{record_id!r}: give SOURCE:ID, e.g. followupboss:123", EXIT_USAGE
        )
    if source == "local":
        raise CliError("A local record", f"change {record_id} with crm-tui local edit", EXIT_USAGE)
    found = []
    for kind in kinds:
        await wb.store.load_ids(kind, source, [record_id])
        record = wb.store.get(kind, record_id)
        if record is not None:
            found.append(record)
    if not found:
        what = "contact" if tuple(kinds) == ("contacts",) else "record"
        raise CliError(
            "Unknown record",
            f"no {what} {record_id} in the cache: crm-tui sync {source}, then crm-tui search",
            EXIT_USAGE,
        )
    if len(found) > 1:
        raise CliError(
            "Which record?",
            f"{record_id} is a contact and a deal: add --type contact or --type deal",
            EXIT_USAGE,
        )
    return found[0]


@contextmanager
def _refusals() -> Iterator[None]:
    """A value the rules or the source refuse: exit 2 with each field's reason; nothing was
    saved. The JSON failure carries them per field under `fields`."""
    from crm_tui.local_crm import ValidationFailed
    from crm_tui.writeback.service import NotWritable

    try:
        yield
    except ValidationFailed as exc:
        raise CliError(
            "Invalid input", f"{exc} (nothing was saved)", EXIT_USAGE, {"fields": exc.errors}
        ) from None
    except NotWritable as exc:
        raise CliError("Not writable", str(exc), EXIT_USAGE) from None


# -- what happened, reported -----------------------------------------------------------------


@dataclass
class Written:
    """How a write command ended: the entry as it stands after the send (if any), every
    entry the send finished, the record it changed, or the request a dry run would send."""

    entry: OutboxEntry | None = None
    finished: list[OutboxEntry] = field(default_factory=list)
    record: Record | None = None
    preview: Preview | None = None
    blocker: OutboxEntry | None = None
    queued: bool = False
    pending: dict[str, Any] | None = None  # what waiting edits still lay over the record
    unchanged: str | None = None  # why nothing was saved (the record has these values)


async def _saved(
    wb: WriteBack, entry: OutboxEntry, queue: bool, record: Record | None = None
) -> Written:
    """After saving: the source's waiting writes sent (unless `queue`), and the entry as it
    stands then, with the earlier entry of the same record that holds it back, if any."""
    finished = [] if queue else await wb.drain([entry.source])
    db = wb.store.db
    assert db is not None  # the outbox lives in the database
    now = db.outbox_entry(wb.user_id, entry.id) or entry
    pending = None
    if now.record_id is not None:
        await wb.store.load_ids(now.stream, now.source, [now.record_id])
        record = wb.store.get(now.stream, now.record_id)
        pending = wb.store.pending(now.record_id)
    blocker = _blocker(wb, now)
    return Written(now, finished, record, blocker=blocker, queued=queue, pending=pending)


def _blocker(wb: WriteBack, entry: OutboxEntry) -> OutboxEntry | None:
    """An earlier unfinished entry of the same record: a later one waits for it."""
    if entry.state != "pending" or entry.record_id is None or wb.store.db is None:
        return None
    earlier = [
        e
        for e in wb.store.db.outbox(wb.user_id, OPEN_STATES, entry.source, limit=1_000_000)
        if e.record_id == entry.record_id and e.id < entry.id
    ]
    return earlier[-1] if earlier else None  # newest first: the last is the oldest


def _message(outcome: Written) -> str:
    """One line: what became of the write, and what happens next."""
    entry = outcome.entry
    assert entry is not None
    vendor, error = _display(entry.source), entry.error or ""
    # an entry the send did not reach waits for the reason an earlier one stopped it
    reasons = (e.error for e in outcome.finished if e.state in ("pending", "unsure") and e.error)
    error = error or next(reasons, "")
    if entry.state == "pending":
        if outcome.blocker is not None:
            b = outcome.blocker
            return (
                f"saved; waits behind outbox {b.id} ({b.state}) of the same record:"
                f" settle, retry or drop that first (crm-tui outbox)"
            )
        if outcome.queued or not error:
            return f"saved; {_NEXT_RUN}"
        return f"saved; {vendor} could not be reached ({error}); {_NEXT_RUN}"
    return {
        "done": f"{vendor} has it" + (f" ({entry.answer})" if entry.answer else ""),
        "unsure": f"sent, but the answer was lost ({error}); {vendor} is read back before"
        " it is sent again, on the next run",
        "failed": f"{vendor} refused it: {error}",
        "conflict": f"changed at {vendor} since it was read; nothing was sent",
        "dropped": _dropped(outcome),
        "sending": "another process is sending it now",
    }[entry.state]


def _dropped(outcome: Written) -> str:
    entry = outcome.entry
    assert entry is not None
    if entry.action != "update":
        return "dropped; it is not sent"
    if outcome.pending:
        return "dropped; the record still shows the values of other waiting edits"
    return f"dropped; the record shows {_display(entry.source)}'s values again"


def _hint(entry: OutboxEntry) -> str:
    if entry.state == "conflict":
        return (
            f"settle it: crm-tui outbox settle {entry.id} --mine FIELD (send yours) or"
            f" --theirs FIELD (keep the vendor's), or crm-tui outbox drop {entry.id}"
        )
    return f"fix the cause, then crm-tui outbox retry {entry.id}; or crm-tui outbox drop {entry.id}"


def _versions(entry: OutboxEntry) -> list[dict[str, Any]]:
    """A conflict's three versions, field by field: what the person saw, what the vendor has
    now, what the person wants; `conflict` marks the fields changed at the vendor."""
    from crm_tui.writeback.values import conflicts

    theirs = entry.theirs or {}
    changed = set(conflicts(entry.base, entry.wanted, theirs))
    return [
        {
            "field": name,
            "before": entry.base.get(name),
            "theirs": theirs.get(name),
            "mine": mine,
            "conflict": name in changed,
        }
        for name, mine in entry.wanted.items()
    ]


def _target(entry: OutboxEntry) -> str:
    return entry.record_id or f"new lead at {_display(entry.source)}"


def _entry_payload(rt: Runtime, outcome: Written) -> dict[str, Any]:
    entry = outcome.entry
    assert entry is not None
    payload: dict[str, Any] = {
        "success": entry.state not in _EXITS,
        "state": entry.state,
        "message": _message(outcome),
        "entry": entry.to_json(),
        "outbox": [e.to_json() for e in outcome.finished],
    }
    if outcome.record is not None:
        payload["record"] = record_marks(rt.unloaded_store).json(outcome.record.to_json())
    if outcome.blocker is not None:
        payload["blocked_by"] = outcome.blocker.id
    if entry.state == "conflict":
        payload["conflict"] = _versions(entry)
    if entry.state in _EXITS:
        payload["error"] = "Conflict" if entry.state == "conflict" else "Refused by the vendor"
        payload["details"] = single_line(f"{payload['message']}; {_hint(entry)}")
    return payload


def _version_row(version: dict[str, Any]) -> tuple[str, ...]:
    shown = (shown_value(version[k], 10_000) for k in ("before", "theirs", "mine"))
    return (version["field"], *shown, "changed at the vendor" if version["conflict"] else "")


def _print_entry(rt: Runtime, outcome: Written, payload: dict[str, Any]) -> None:
    entry = outcome.entry
    assert entry is not None
    _say(rt, f"{_target(entry)}: {entry.state} (outbox {entry.id}): {payload['message']}")
    if entry.state == "conflict":
        rows = [_version_row(v) for v in payload["conflict"]]
        table(rows, ("FIELD", "BEFORE", "THEIRS", "MINE", ""))
    if entry.state in _EXITS:
        _say(rt, f"error: {payload['error']}: {_hint(entry)}", err=True)


def _report(rt: Runtime, outcome: Written) -> None:
    """Print how the write ended; exit 4 (refused) or 6 (conflict) when a person must act."""
    if outcome.preview is not None:
        _print_preview(rt, outcome)
        return
    if outcome.entry is None:
        _unchanged(rt, outcome)
        return
    payload = _entry_payload(rt, outcome)
    emit(rt, payload, lambda: _print_entry(rt, outcome, payload))
    code = _EXITS.get(outcome.entry.state)
    if code:
        sys.exit(code)


def _unchanged(rt: Runtime, outcome: Written) -> None:
    """An edit that changes nothing: no entry, exit 0 (the record is as wanted)."""
    record = outcome.record
    assert record is not None
    payload = {
        "success": True,
        "state": "unchanged",
        "message": outcome.unchanged,
        "entry": None,
        "outbox": [],
        "record": record_marks(rt.unloaded_store).json(record.to_json()),
    }
    emit(rt, payload, lambda: _say(rt, f"{record.id}: {outcome.unchanged}"))


def _print_preview(rt: Runtime, outcome: Written) -> None:
    """A dry run: the request as it would leave, header values masked, nothing saved."""
    assert outcome.preview is not None
    request = outcome.preview.to_json()
    payload: dict[str, Any] = {"success": True, "dryRun": True, "request": request}
    if outcome.record is not None:
        payload["record"] = outcome.record.to_json()

    def human() -> None:
        import httpx

        url = httpx.URL(request["url"], params=request["params"] or None)
        _say(rt, "dry run: nothing saved, nothing sent")
        _say(rt, f"{request['method']} {url}")
        for name, value in request["headers"].items():
            _say(rt, f"{name}: {value}")
        _say(rt, "")
        for line in json.dumps(request["body"], indent=2, ensure_ascii=False).splitlines():
            _say(rt, line)

    if rt.json:  # masked as the human lines are: a dry run must never show a secret
        click.echo(rt.masker(json.dumps(payload, ensure_ascii=False, default=str)))
    else:
        human()


# -- edit -------------------------------------------------------------------------------------


def _custom_sets(sets: Sequence[str]) -> dict[str, str]:
    """`--set custom.lender=Quicken` (or `lender=Quicken`): custom column values by name;
    an empty value clears the column."""
    values: dict[str, str] = {}
    for given in sets:
        name, equals, value = given.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CliError("Invalid --set", f"{given!r}: give NAME=VALUE", EXIT_USAGE)
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
    values = {**_given(fields), **_custom_sets(sets)}
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

    kinds: Sequence[RecordKind] = [_kind(ask.kind)] if ask.kind else ("contacts", "deals")
    async with _writeback(rt, saving=not ask.dry_run) as wb:
        record = await _record(wb, ask.record_id, kinds)
        values = _edit_values(record, ask.fields, ask.add_tags, ask.remove_tags, ask.sets)
        try:
            with _refusals():
                if ask.dry_run:
                    return Written(record=record, preview=await wb.preview_edit(record, values))
                entry = await wb.edit(record, values)
        except NothingToSend as exc:
            return Written(record=record, unchanged=str(exc))
        return await _saved(wb, entry, ask.queue, record)


def _writable_help() -> str:
    """Which fields each source takes, from the connectors' declarations."""
    lines = []
    for name, connector in CONNECTORS.items():
        for kind in connector.writes.update:
            flags = ", ".join(
                "--tag/--add-tag/--remove-tag" if f == "tags" else f"--{f.replace('_', '-')}"
                for f in connector.writes.fields(kind)
            )
            lines.append(f"  {_display(name)} {kind}: {flags}")
    # \b: click keeps these lines as they are (a flag is never cut at its hyphen)
    return "\b\nFields each source takes:\n" + "\n".join(lines) if lines else ""


@main.command("edit", epilog=_writable_help())
@click.argument("record_id")
@_with(_EDIT_OPTIONS)
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
@_DRY_RUN
@_QUEUE
@json_option
@click.pass_context
def edit(
    ctx: click.Context,
    record_id: str,
    add_tags: tuple[str, ...],
    remove_tags: tuple[str, ...],
    kind: str | None,
    sets: tuple[str, ...],
    dry_run: bool,
    queue: bool,
    as_json: bool,
    **fields: Any,
) -> None:
    """Change fields of a vendor CRM's record (SOURCE:ID); an empty value clears a field.

    --tag replaces every tag; --add-tag and --remove-tag change the tags it has. Only the
    fields its source takes are accepted, checked as local edits are. The edit is saved to
    the outbox (shown at once, pending), then sent after a check that the vendor did not
    change those fields meanwhile. Exit 0 done or saved to go out later, 4 refused by the
    vendor, 6 conflict. Local records: crm-tui local edit.

    Example: crm-tui edit followupboss:123 --stage "Active Client" --add-tag buyer
    --set custom.lender=Quicken
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        ask = EditAsk(record_id, kind, fields, add_tags, remove_tags, dry_run, queue, sets)
        _report(rt, run(_edit(rt, ask)))


# -- note -------------------------------------------------------------------------------------


async def _note(
    rt: Runtime, record_id: str, text: str, subject: str | None, dry_run: bool, queue: bool
) -> Written:
    async with _writeback(rt, saving=not dry_run) as wb:
        record = await _record(wb, record_id, ("contacts",))
        with _refusals():
            if dry_run:
                return Written(record=record, preview=wb.preview_note(record, text, subject))
            entry = await wb.note(record, text, subject)
        return await _saved(wb, entry, queue, record)


@main.command("note")
@click.argument("record_id")
@click.argument("text")
@click.option("--subject", help="The note's subject, where the source keeps one.")
@_DRY_RUN
@_QUEUE
@json_option
@click.pass_context
def note(
    ctx: click.Context,
    record_id: str,
    text: str,
    subject: str | None,
    dry_run: bool,
    queue: bool,
    as_json: bool,
) -> None:
    """Add a note to a vendor CRM's contact (SOURCE:ID), through the outbox.

    Exit 0 done or saved to go out later, 4 refused by the vendor.

    Example: crm-tui note followupboss:123 "Called, wants a showing Sat"
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _report(rt, run(_note(rt, record_id, text, subject, dry_run, queue)))


# -- lead create ------------------------------------------------------------------------------

#: The sources whose connector declares new leads.
LEAD_SOURCES = click.Choice([n for n, c in CONNECTORS.items() if c.writes.create])
_LEAD_OPTIONS = _options(("first-name", "last-name", "email", "phone", "tag"))


@main.group("lead")
def lead_group() -> None:
    """New leads in a vendor CRM.

    Example: crm-tui lead create followupboss --first-name Ana --email ana@x.co
    """


async def _create_lead(
    rt: Runtime, source: str, values: dict[str, Any], dry_run: bool, queue: bool
) -> Written:
    async with _writeback(rt, saving=not dry_run) as wb:
        with _refusals():
            if dry_run:
                return Written(preview=wb.preview_lead(source, values))
            entry = await wb.create_lead(source, values)
        return await _saved(wb, entry, queue)


@lead_group.command("create")
@click.argument("source", type=LEAD_SOURCES)
@_with(_LEAD_OPTIONS)
@click.option("--source", "lead_source", help="Where the lead came from (its lead source).")
@click.option("--message", help="What the lead asked or said.")
@_DRY_RUN
@_QUEUE
@json_option
@click.pass_context
def lead_create(
    ctx: click.Context, source: str, dry_run: bool, queue: bool, as_json: bool, **fields: Any
) -> None:
    """Create a lead in SOURCE through the outbox (the vendor's own intake).

    It needs an e-mail or a phone (or what the source asks). Exit 0 done or saved to go out
    later, 4 refused by the vendor.

    Example: crm-tui lead create followupboss --first-name Ana --email ana@x.co --source Zillow
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _report(rt, run(_create_lead(rt, source, _given(fields), dry_run, queue)))


# -- outbox -----------------------------------------------------------------------------------


def _outbox_rows(entries: Iterable[OutboxEntry]) -> list[tuple[Any, ...]]:
    return [
        (
            e.id,
            e.source,
            _target(e),
            e.action,
            e.state,
            ", ".join(e.wanted),
            e.attempts,
            e.updated_at,
            e.error or "",
        )
        for e in entries
    ]


_OUTBOX_HEADERS = (
    "ID",
    "SOURCE",
    "RECORD",
    "ACTION",
    "STATE",
    "FIELDS",
    "ATTEMPTS",
    "UPDATED",
    "ERROR",
)


@main.group("outbox", invoke_without_command=True)
@click.option("--state", "states", type=click.Choice(STATES), multiple=True, help="Only these.")
@click.option("--source", type=SOURCE_CHOICE, help="Only this source.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@click.pass_context
def outbox_group(
    ctx: click.Context, states: tuple[str, ...], source: str | None, limit: int, as_json: bool
) -> None:
    """Writes to vendor CRMs, newest first: waiting, sent, refused, in conflict.

    Exit 0. Subcommands retry, drop, settle and send act on them.

    Example: crm-tui outbox --state failed --state conflict --json
    """
    if ctx.invoked_subcommand is not None:
        return
    rt = _rt(ctx, as_json)
    with errors(rt):
        db = rt.unloaded_store.db
        assert db is not None
        entries = db.outbox(rt.settings.user_id, states or None, source, limit)  # type: ignore[arg-type]
        payload = {"success": True, "outbox": [e.to_json() for e in entries], "count": len(entries)}
        emit(rt, payload, lambda: table(_outbox_rows(entries), _OUTBOX_HEADERS))


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
    async with _writeback(rt) as wb:
        entry = _entry(wb, entry_id)
        if verb == "retry":
            decided = await wb.retry(entry_id)
        elif verb == "drop":
            decided = await wb.drop(entry_id)
        else:
            decided = await wb.settle(entry_id, _choices(entry, **settle))
        if decided is None:
            raise _not_now(entry, verb)
        return await _saved(wb, decided, queue or decided.state != "pending")


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
@_QUEUE
@json_option
@click.pass_context
def outbox_retry(ctx: click.Context, entry_id: int, queue: bool, as_json: bool) -> None:
    """Send a failed, unsure or waiting entry again, now (its source's other waiting writes
    too). Exit codes as for crm-tui edit.

    Example: crm-tui outbox retry 12
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _report(rt, run(_decided(rt, entry_id, "retry", queue)))


@outbox_group.command("drop")
@_ENTRY_ID
@json_option
@click.pass_context
def outbox_drop(ctx: click.Context, entry_id: int, as_json: bool) -> None:
    """Give up an entry that is not done: the record shows the vendor's values again.

    Example: crm-tui outbox drop 12
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _report(rt, run(_decided(rt, entry_id, "drop", True)))


@outbox_group.command("settle")
@_ENTRY_ID
@click.option("--mine", multiple=True, help="Send my value of this field (repeatable).")
@click.option("--theirs", multiple=True, help="Keep the vendor's value of this field.")
@_QUEUE
@json_option
@click.pass_context
def outbox_settle(
    ctx: click.Context,
    entry_id: int,
    mine: tuple[str, ...],
    theirs: tuple[str, ...],
    queue: bool,
    as_json: bool,
) -> None:
    """Settle a conflict field by field, then send it (fields not named: mine).

    Taking the vendor's value of every field drops the edit. Exit codes as for crm-tui edit.

    Example: crm-tui outbox settle 12 --mine stage --theirs phone
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
        _report(rt, run(_decided(rt, entry_id, "settle", queue, mine=mine, theirs=theirs)))


async def _send(rt: Runtime, names: Sequence[str]) -> list[OutboxEntry]:
    async with _writeback(rt) as wb:
        return await wb.drain(list(names) or None)


@outbox_group.command("send")
@click.argument("sources", nargs=-1, type=SOURCE_CHOICE)
@json_option
@click.pass_context
def outbox_send(ctx: click.Context, sources: tuple[str, ...], as_json: bool) -> None:
    """Send what waits now, for the named sources or every enabled one.

    Exit 0, 4 when the vendor refused one, else 6 when one is in conflict.

    Example: crm-tui outbox send followupboss --json
    """
    rt = _rt(ctx, as_json)
    with errors(rt):
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
                table(_outbox_rows(sent), _OUTBOX_HEADERS)
            _say(rt, outbox_summary(sent) or "outbox: nothing waited")

        emit(rt, payload, human)
        if code:
            sys.exit(code)


def _exit_code(entries: Iterable[OutboxEntry]) -> int:
    states = {e.state for e in entries}
    return EXIT_REMOTE if "failed" in states else EXIT_CONFLICT if "conflict" in states else 0


# -- for cli.py's sync, merge and lists ---------------------------------------------------------


def write_merged(rt: Runtime, merged: Record, members: Sequence[Record]) -> dict[str, Any]:
    """`merge --write-back`: the merged values offered to each vendor record of the cluster
    and sent now; what each ended as, and the records left alone with why."""

    async def offer() -> tuple[list[OutboxEntry], list[OutboxEntry], dict[str, str]]:
        async with _writeback(rt) as wb:
            saved, skipped = await wb.write_merged(merged, members)
            sources = sorted({e.source for e in saved})
            return saved, (await wb.drain(sources) if sources else []), skipped

    saved, finished, skipped = run(offer())
    return {
        "entries": [e.to_json() for e in finished or saved],
        "skipped": skipped,
        "summary": outbox_summary(finished) or "write-back: nothing to change at the vendors",
    }


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


@dataclass(frozen=True)
class Marks:
    """What waits in the outbox for each record, to show beside it in lists: the values an
    unsent edit gives it (`pending`) and its newest unfinished entry (`outbox`)."""

    store: CacheStore
    open: Mapping[str, OutboxEntry]

    def json(self, data: dict[str, Any]) -> dict[str, Any]:
        values = self.store.pending(data["id"])
        entry = self.open.get(data["id"])
        if values:
            data["pending"] = values
        if entry is not None:
            data["outbox"] = {"id": entry.id, "state": entry.state, "action": entry.action}
        return data

    def label(self, record_id: str) -> str:
        entry = self.open.get(record_id)
        if entry is None:
            return ""
        return entry.state if entry.action == "update" else f"{entry.action} {entry.state}"

    def column(
        self, ids: Sequence[str], rows: list[tuple[Any, ...]], headers: tuple[str, ...]
    ) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
        """The rows with an OUTBOX column, when one of them has something waiting."""
        labels = [self.label(i) for i in ids]
        if not any(labels):
            return rows, headers
        return [(*row, label) for row, label in zip(rows, labels, strict=True)], (
            *headers,
            "OUTBOX",
        )


def record_marks(store: CacheStore) -> Marks:
    db = store.db
    entries = db.outbox(store.user_id, OPEN_STATES, limit=1_000_000) if db is not None else []
    newest: dict[str, OutboxEntry] = {}
    for entry in entries:  # newest first: the first seen of a record is its newest
        if entry.record_id is not None:
            newest.setdefault(entry.record_id, entry)
    return Marks(store, newest)
