"""What a write command works with (the write-back service over the command's store) and
how it ended: saved to the outbox, sent, held back by an earlier write, or refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_tui.cli.errors import EXIT_USAGE, CliError
from crm_tui.cli.runtime import Engine, Runtime
from crm_tui.models import Record, RecordKind
from crm_tui.store.outbox import OPEN_STATES, OutboxEntry

if TYPE_CHECKING:
    from crm_tui.writeback.service import Preview, WriteBack


@asynccontextmanager
async def writeback(rt: Runtime, saving: bool = True) -> AsyncIterator[WriteBack]:
    """The write-back service over the cache, nothing loaded (a command reads the few
    records it needs); `saving=False` for a dry run, which works on a read-only database."""
    from crm_tui.writeback.service import WriteBack

    store = rt.writable_store(loaded=False) if saving else rt.unloaded_store
    async with Engine(rt, store) as engine:
        yield WriteBack(engine)


async def vendor_record(wb: WriteBack, record_id: str, kinds: Sequence[RecordKind]) -> Record:
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
def refusals() -> Iterator[None]:
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


async def saved(
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
