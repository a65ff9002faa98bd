"""Sending one claimed outbox entry to its vendor, safely.

No vendor offers optimistic concurrency, so crm-tui brings its own: the record is read
again just before the write, and a field the vendor changed since the person saw it (to
something else than what they want) stops the edit as a conflict with the three versions
kept. An entry that may already have been sent (`unsure`) is never sent blindly: the vendor
is read back first. What the vendor answers is committed to the cache before the entry is
marked done, so the record never flashes back to its old values.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from crm_tui.faults import fault_point
from crm_tui.models import RecordKind, record_id, utc_now
from crm_tui.sources.errors import (
    AnswerLost,
    InvalidRecord,
    NotFound,
    Rejected,
    SourceError,
    first_line,
)
from crm_tui.sources.writes import Value, create_draft, located, note_draft, update_draft
from crm_tui.store.outbox import OutboxEntry, State
from crm_tui.text import single_line
from crm_tui.writeback.values import conflicts, rebased_tags, same, unified

if TYPE_CHECKING:
    from crm_tui.sources.base import Source
    from crm_tui.store.cache import CacheStore

log = logging.getLogger(__name__)


_MAYBE_ADDED = "the {what} may have been added: look at the vendor, then retry or drop it"


class ClaimLost(Exception):
    """This process was presumed dead and another took the entry over: it sends nothing."""


class Finished(Exception):
    """How an entry ended, raised from deep in a send."""

    def __init__(self, state: State, error: str | None = None, **extra: Any) -> None:
        super().__init__(error or state)
        self.state = state
        self.error = error
        self.extra = extra


def _answer(body: Any) -> str:
    """The vendor's answer as one short line for the audit (ids and status, no payload)."""
    if body is None:
        return "accepted (no body)"
    if isinstance(body, dict):
        record = body.get("data") if isinstance(body.get("data"), dict) else body
        ident = record.get("id") or record.get("leadId")
        return f"accepted: id {single_line(str(ident))[:40]}" if ident is not None else "accepted"
    return "accepted"


def _outcome(exc: Finished | SourceError) -> tuple[State, str | None, dict[str, Any]]:
    """How a send that stopped ends the entry."""
    if isinstance(exc, Finished):
        return exc.state, exc.error, exc.extra
    if isinstance(exc, AnswerLost):
        return "unsure", first_line(str(exc)), {}
    if isinstance(exc, Rejected | NotFound):
        return "failed", str(exc), {}
    # unreachable, refused credentials, rate limited: the edit waits for the next run
    return "pending", first_line(str(exc)), {}


class Sender:
    """Sends the entries of one source."""

    def __init__(self, source: Source, store: CacheStore) -> None:
        self.source = source
        self.store = store
        self.db = store.db

    async def send(self, entry: OutboxEntry) -> OutboxEntry | None:
        """Send one claimed entry and record how it ended: vendor failures and bugs end up
        in the entry (a bug as `failed`, so one bad entry never blocks the others); None
        when the claim was lost. Cancellation gives the claim back and is raised."""
        assert self.db is not None
        try:
            await {"update": self._update, "create": self._create, "note": self._note}[
                entry.action
            ](entry)
        except ClaimLost:
            log.warning("[%s] outbox %d taken over meanwhile", self.source.display_name, entry.id)
            return None
        except (Finished, SourceError) as exc:
            state, error, extra = _outcome(exc)
            return await self._finish(entry, state, error, **extra)
        except Exception as exc:
            log.exception("[%s] outbox %d could not be sent", self.source.display_name, entry.id)
            return await self._finish(entry, "failed", f"crm-tui failed: {type(exc).__name__}")
        except BaseException:
            await self._release(entry)  # cancelled (the app closing): nothing is lost
            raise
        return await self._finish(entry, "done")

    async def _finish(
        self, entry: OutboxEntry, state: State, error: str | None = None, **extra: Any
    ) -> OutboxEntry | None:
        assert self.db is not None
        if error is not None:
            error = single_line(error)[:500]
        try:
            return await self.store.in_writer(
                lambda: self.db.finish_edit(entry.id, state, error=error, **extra)  # type: ignore[union-attr]
            )
        except Exception:
            await self._release(entry)  # the claim must never outlive the attempt
            raise

    async def _release(self, entry: OutboxEntry) -> None:
        assert self.db is not None
        try:
            await asyncio.shield(self.store.in_writer(self.db.release_edit, entry.id))
        except Exception:  # the database is gone: the claim ends with this process
            log.exception("[%s] outbox %d not released", self.source.display_name, entry.id)

    # -- updates -------------------------------------------------------------------------------

    async def _update(self, entry: OutboxEntry) -> None:
        source, stream = self.source, entry.stream
        spec = source.update_spec(stream)  # its writable custom columns included
        if spec is None or entry.remote_id is None:
            raise Finished("failed", f"{source.display_name} does not let crm-tui change {stream}")
        current = await source.read_one(stream, entry.remote_id)
        if current is None:
            raise Finished("failed", f"the record is no longer at {source.display_name}")
        theirs = self._values(stream, current, entry.wanted)
        base, wanted = rebased_tags(entry.base, entry.wanted, theirs)
        todo = {n: v for n, v in wanted.items() if not same(n, theirs.get(n), v)}
        if not todo:
            await self._commit(stream, current)
            raise Finished("done", answer=f"{source.display_name} already has these values")
        if conflicts(base, wanted, theirs):
            raise Finished(
                "conflict",
                f"changed at {source.display_name} since it was edited",
                theirs=theirs,
            )
        for name, value in todo.items():
            if not (await source.listed(stream, name, value, current))[0]:
                unlisted = f"{name} {value!r} is not one of {source.display_name}'s values"
                raise Finished("failed", unlisted)
        choices = {n: await source.choices(stream, n, current) for n in todo}
        draft = update_draft(spec, entry.remote_id, todo, current, choices)
        body = await self._sent(entry, draft, repeatable=True)
        written = located(body, spec.at) if spec.answers_whole else None
        if not self._is(stream, written, entry.remote_id) or _partial(written, current, draft):
            written = await source.read_one(stream, entry.remote_id)
        if written is not None:
            await self._commit(stream, written)
        raise Finished("done", answer=_answer(body))

    def _values(self, stream: RecordKind, raw: Any, fields: dict[str, Value]) -> dict[str, Value]:
        try:
            record = self.source.map_record(stream, raw, utc_now())
        except InvalidRecord as exc:
            raise Finished("failed", f"the vendor's record cannot be read: {exc}") from None
        return {n: unified(record, n) for n in fields}

    def _is(self, stream: RecordKind, raw: Any, remote_id: str) -> bool:
        wanted = record_id(self.source.name, remote_id)
        return raw is not None and self.source.record_id(stream, raw) == wanted

    # -- new leads and notes -------------------------------------------------------------------

    async def _create(self, entry: OutboxEntry) -> None:
        spec = self.source.writes.create
        if spec is None:
            raise Finished("failed", f"{self.source.display_name} takes no new leads from crm-tui")
        reachable = bool(entry.wanted.get("email") or entry.wanted.get("phone"))
        # the vendor merges a repeat only by e-mail or phone: a name alone is created twice
        repeatable = spec.deduplicates and reachable
        if entry.state == "unsure" and not repeatable:
            if not reachable:
                raise Finished("failed", _MAYBE_ADDED.format(what="lead"))
            found = await self._find_lead(entry.wanted)
            if found is not None:
                await self._commit("contacts", found)
                arrived = "a lead with this e-mail or phone is at the vendor"
                raise Finished("done", answer=arrived, **self._ids(found))
        body = await self._sent(entry, create_draft(spec, entry.wanted), repeatable)
        if body is None:
            raise Finished("failed", f"{self.source.display_name} ignored the new lead")
        created = located(body, spec.at)
        extra: dict[str, Any] = {}
        if isinstance(created, dict) and self.source.record_id("contacts", created):
            await self._commit("contacts", created)
            extra = self._ids(created)
        raise Finished("done", answer=_answer(body), **extra)

    def _ids(self, raw: Any) -> dict[str, Any]:
        rid = self.source.record_id("contacts", raw)
        return {"record_id": rid, "remote_id": rid.split(":", 1)[1]} if rid else {}

    async def _find_lead(self, wanted: dict[str, Value]) -> Any | None:
        """A lead that arrived though its answer was lost: one with its e-mail or phone."""
        email, phone = wanted.get("email"), wanted.get("phone")
        async for page in self.source.read("contacts"):
            for raw in page.records:
                try:
                    record = self.source.map_record("contacts", raw, utc_now())
                except InvalidRecord:
                    continue
                if (email and same("email", record.email, email)) or (
                    phone and same("phone", record.phone, phone)  # type: ignore[union-attr]
                ):
                    return raw
        return None

    async def _note(self, entry: OutboxEntry) -> None:
        spec = self.source.writes.note
        if spec is None or entry.remote_id is None:
            raise Finished("failed", f"{self.source.display_name} takes no notes from crm-tui")
        text, subject = str(entry.wanted.get("note") or ""), entry.wanted.get("subject")
        if entry.state == "unsure":
            before = {str(i) for i in entry.base.get("notes_before") or ()}
            if set(await self._notes_like(entry.remote_id, text)) - before:
                raise Finished("done", answer="found at the vendor: it had arrived")
        # the same text noted earlier must not pass for this one in a later read-back
        seen = await self._notes_like(entry.remote_id, text)
        draft = note_draft(spec, entry.remote_id, text, str(subject) if subject else None)
        body = await self._sent(entry, draft, repeatable=False, base={"notes_before": seen})
        raise Finished("done", answer=_answer(body))

    async def _notes_like(self, remote_id: str, text: str) -> list[str]:
        """The ids of the contact's latest notes with this text."""
        spec = self.source.writes.note
        assert spec is not None
        if spec.listing is None:
            raise Finished("failed", _MAYBE_ADDED.format(what="note"))
        params = {**spec.listing_params}
        if spec.listing_param:
            params[spec.listing_param] = remote_id
        body = await self.source.client.get_json(
            spec.listing.format(id=remote_id), params, what="notes"
        )
        notes = located(body, spec.listing_at)
        if not isinstance(notes, list):
            return []
        return [
            str(n.get("id"))
            for n in notes
            if isinstance(n, dict) and str(n.get(spec.text) or "").strip() == text.strip()
        ]

    # -- the request and the cache -------------------------------------------------------------

    async def _sent(
        self, entry: OutboxEntry, draft: Any, repeatable: bool, base: dict[str, Any] | None = None
    ) -> Any:
        """Mark the entry as perhaps sent (committed), then send it; not at all when
        another process took it over meanwhile."""
        assert self.db is not None
        if not await self.store.in_writer(self.db.mark_sent, entry.id, base):
            raise ClaimLost(entry.id)
        fault_point("outbox:sending")
        body = await self.source.send(draft, repeatable=repeatable)
        fault_point("outbox:answered")
        return body

    async def _commit(self, stream: RecordKind, raw: Any) -> None:
        """The vendor's version of a record into the cache, under the stream's lease."""
        try:
            record = self.source.map_record(stream, raw, utc_now())
        except InvalidRecord as exc:
            log.warning("[%s] written record not cached: %s", self.source.display_name, exc)
            return
        async with self.store.lease(self.source.name, stream, "edit") as lease:
            await self.store.commit_changes(self.source.name, stream, [record], [], lease, None)


def _partial(written: Any, current: Any, draft: Any) -> bool:
    """An answer that lacks fields the record had before the write, other than those the
    write sent (a custom field set to null goes): the vendor answered with its default
    fields only (Follow Up Boss sends custom fields when asked, `fields=allFields`), so
    the record is read again rather than cached without them."""
    if not isinstance(written, dict) or not isinstance(current, dict):
        return False
    sent = draft.body.keys() if isinstance(draft.body, dict) else ()
    return any(key not in written and key not in sent for key in current)
