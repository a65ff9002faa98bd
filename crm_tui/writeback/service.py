"""Edits of vendor records, as the app and the CLI make them: checked by the local CRM's
rules and the vendor's listed values, saved to the outbox (the cache shows them at once,
marked pending), then sent by `drain`, one source's entries in order, within its rate
budget. A person retries, drops or settles (after a conflict) what did not go through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from crm_tui.config import DISPLAY_NAMES
from crm_tui.custom_columns import CUSTOM_PREFIX, Column
from crm_tui.faults import fault_point
from crm_tui.local_crm import ValidationFailed, check_fields
from crm_tui.models import Contact, Record, RecordKind, kind_of
from crm_tui.sources.errors import SourceError
from crm_tui.sources.mapping import ABSENT, coerce_custom
from crm_tui.sources.writes import (
    Draft,
    Value,
    create_draft,
    note_draft,
    unsendable,
    update_draft,
)
from crm_tui.store.outbox import OutboxEntry
from crm_tui.writeback.sender import Sender
from crm_tui.writeback.values import differing, same, unified

if TYPE_CHECKING:
    from crm_tui.sources.base import Source
    from crm_tui.sync.engine import SyncEngine

#: A new lead's fields besides a contact's: where it came from and what it asked.
LEAD_EXTRAS = ("lead_source", "message")
_NOTE_LIMIT = 10_000
Choice = Literal["mine", "theirs"]


class EditRefused(ValueError):
    """An edit that is not saved, said to the person as it stands (not a field's error)."""


class NothingToSend(EditRefused):
    """The edit changes nothing the vendor does not already have."""


class NotWritable(EditRefused):
    """The record's source lets crm-tui change nothing of it (or it is not a vendor's)."""


@dataclass(frozen=True, slots=True)
class Preview:
    """A dry run: the request that would be sent, and where."""

    url: str
    draft: Draft
    headers: tuple[str, ...]  # the names of the headers sent; their values are secrets

    def to_json(self) -> dict[str, Any]:
        return {
            **self.draft.to_json(),
            "url": self.url,
            "headers": {h: "***" for h in self.headers},
        }


class WriteBack:
    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.store = engine.store
        self.user_id = engine.settings.user_id
        self.region = engine.settings.crm_phone_region

    @property
    def _db(self) -> Any:
        if self.store.db is None:
            raise NotWritable("edits of vendor records wait in the database's outbox: none is open")
        return self.store.db

    # -- what may be written -----------------------------------------------------------------

    def _source(self, name: str) -> Source:
        return self.engine.source(name)

    def writable(self, record: Record) -> tuple[str, ...]:
        """The fields of `record` its source lets crm-tui change (() for none)."""
        connector = self.engine.connectors.get(record.source)
        if connector is None or record.source == "local":
            return ()
        kind = kind_of(record)
        return connector.writes.fields(kind)

    def custom_writable(self, record: Record) -> tuple[str, ...]:
        """The custom columns (`custom.NAME`) of `record` its source writes: mapped from a
        plain path where the vendor takes writes of its custom fields. Not among
        `writable` (the form's fields are record attributes); `check` and `edit` take both."""
        connector = self.engine.connectors.get(record.source)
        if connector is None or record.source == "local":
            return ()
        return tuple(self._source(record.source).custom_writers(kind_of(record)))

    def refusal(self, record: Record) -> str | None:
        """Why `record` cannot be edited from crm-tui now, as a person reads it; None when
        it can (a local record is the local CRM's, not the outbox's: it gets a reason)."""
        if not self.writable(record):
            return f"Read-only here: edit it in {DISPLAY_NAMES.get(record.source, record.source)}"
        config = self.engine.settings.source_config(record.source)
        if not config.enabled:
            missing = ", ".join(config.missing)
            return f"{config.display_name} is not set up here: its edits need {missing}"
        return None

    def takes_notes(self, record: Record) -> bool:
        connector = self.engine.connectors.get(record.source)
        return bool(connector and connector.writes.note and isinstance(record, Contact))

    def takes_leads(self) -> list[str]:
        """The enabled sources a new lead can be created in."""
        return [n for n in self.engine.enabled() if self.engine.connectors[n].writes.create]

    # -- making edits ------------------------------------------------------------------------

    async def check(self, record: Record, values: Mapping[str, Any]) -> dict[str, Value]:
        """The values that change `record`, cleaned; ValidationFailed (per field) when one
        is wrong, by the local CRM's rules or the vendor's list of values."""
        writable = self.writable(record)
        if not writable:
            raise NotWritable(f"{record.source} records cannot be changed from crm-tui")
        kind = kind_of(record)
        source = self._source(record.source)
        custom = {n: v for n, v in values.items() if n.startswith(CUSTOM_PREFIX)}
        plain = {n: v for n, v in values.items() if n not in custom}
        cleaned, errors = _checked(kind, plain, writable, self.region)
        more, bad = _checked_custom(custom, self.custom_writable(record), source.ctx.columns)
        cleaned.update(more)
        errors.update(bad)
        spec = source.update_spec(kind)
        assert spec is not None  # writable: the source declares updates of this stream
        errors.update(unsendable(spec, {n: v for n, v in cleaned.items() if n not in errors}))
        errors.update(await self._check_choices(record.source, kind, cleaned, record.metadata))
        if errors:
            raise ValidationFailed(errors)
        return cleaned

    async def _check_choices(
        self, name: str, kind: RecordKind, values: dict[str, Value], raw: dict[str, Any]
    ) -> dict[str, str]:
        """The fields whose value the vendor does not list, with the values it does; listed
        values are put as the record holds them (in `values`)."""
        source, errors = self._source(name), {}
        for field, value in list(values.items()):
            try:
                ok, stored = await source.listed(kind, field, value, raw)
            except SourceError:
                continue  # unreachable now: the sender checks again before writing
            if ok:
                values[field] = stored
            else:
                shown = ", ".join(list(await source.choices(kind, field, raw))[:12])
                errors[field] = f"not one of {source.display_name}'s values: {shown}"
        return errors

    async def edit(self, record: Record, values: Mapping[str, Any]) -> OutboxEntry:
        """Save an edit of a vendor record; the cache shows it at once, pending."""
        cleaned = await self.check(record, values)
        base, wanted = differing(record, cleaned)
        if not wanted:
            raise NothingToSend("nothing to change: the record already has these values")
        kind = kind_of(record)
        entry = await self.store.in_writer(
            self._db.add_edit,
            self.user_id,
            record.source,
            kind,
            "update",
            record.id,
            record.remote_id,
            base,
            wanted,
            self.user_id,
        )
        fault_point("outbox:saved")
        await self.store.outbox_changed(kind, record.source, [record.id])
        return entry

    def _note_values(self, record: Record, text: str, subject: str | None) -> dict[str, Value]:
        """A note's text and subject, checked: the same for a note saved and a dry run."""
        if not self.takes_notes(record):
            raise NotWritable(f"{record.source} takes no notes from crm-tui")
        body = (text or "").strip()
        if not body:
            raise ValidationFailed({"note": "a note needs some text"})
        if len(body) > _NOTE_LIMIT:
            raise ValidationFailed({"note": f"at most {_NOTE_LIMIT} characters"})
        wanted: dict[str, Value] = {"note": body}
        if subject and subject.strip():
            wanted["subject"] = subject.strip()
        return wanted

    async def note(self, record: Record, text: str, subject: str | None = None) -> OutboxEntry:
        wanted = self._note_values(record, text, subject)
        return await self.store.in_writer(
            self._db.add_edit,
            self.user_id,
            record.source,
            "contacts",
            "note",
            record.id,
            record.remote_id,
            {},
            wanted,
            self.user_id,
        )

    def _lead_values(self, name: str, values: Mapping[str, Any]) -> dict[str, Value]:
        """A new lead's values, checked: the same for a lead saved and a dry run."""
        spec = self._source(name).writes.create
        if spec is None:
            raise NotWritable(f"{name} takes no new leads from crm-tui")
        extras = {k: str(v).strip() for k, v in values.items() if k in LEAD_EXTRAS and v}
        fields = {k: v for k, v in values.items() if k not in LEAD_EXTRAS}
        writable = tuple(f for f in spec.fields if f not in LEAD_EXTRAS)
        cleaned, errors = _checked("contacts", fields, writable, self.region)
        if errors:
            raise ValidationFailed(errors)
        if not any(cleaned.get(f) for f in spec.required_any):
            needs = " or ".join(spec.required_any)
            raise ValidationFailed({spec.required_any[0]: f"a new lead needs {needs}"})
        return {**{k: v for k, v in cleaned.items() if v not in (None, "", [])}, **extras}

    async def create_lead(self, name: str, values: Mapping[str, Any]) -> OutboxEntry:
        wanted = self._lead_values(name, values)
        return await self.store.in_writer(
            self._db.add_edit,
            self.user_id,
            name,
            "contacts",
            "create",
            None,
            None,
            {},
            wanted,
            self.user_id,
        )

    async def write_merged(
        self, merged: Record, members: Iterable[Record]
    ) -> tuple[list[OutboxEntry], dict[str, str]]:
        """After a merge into the local CRM, its chosen values offered to each vendor record
        of the cluster through the outbox (each with its own conflict check; no vendor
        record is ever deleted): only the fields its source writes, and only where they
        differ. The entries saved, and why a record was left alone (record id -> reason)."""
        saved: list[OutboxEntry] = []
        skipped: dict[str, str] = {}
        for record in members:
            fields = {n: unified(merged, n) for n in self.writable(record)}
            chosen = {n: v for n, v in fields.items() if v not in (None, "", [])}
            if not chosen:
                skipped[record.id] = f"{record.source} lets crm-tui change none of its fields"
                continue
            try:
                saved.append(await self.edit(record, chosen))
            except NothingToSend:
                continue
            except (ValidationFailed, NotWritable) as exc:
                skipped[record.id] = str(exc)
        return saved, skipped

    # -- dry runs ----------------------------------------------------------------------------

    async def preview_edit(self, record: Record, values: Mapping[str, Any]) -> Preview:
        """The request an edit would send now (the vendor's record is read for it)."""
        cleaned = await self.check(record, values)
        _, wanted = differing(record, cleaned)
        if not wanted:
            raise NothingToSend("nothing to change: the record already has these values")
        source = self._source(record.source)
        kind = kind_of(record)
        current = await source.read_one(kind, record.remote_id)
        if current is None:
            raise SourceError(f"the record is no longer at {source.display_name}")
        choices = {n: await source.choices(kind, n, current) for n in wanted}
        spec = source.update_spec(kind)
        assert spec is not None  # checked: the source declares updates of this stream
        return _preview(source, update_draft(spec, record.remote_id, wanted, current, choices))

    def preview_note(self, record: Record, text: str, subject: str | None = None) -> Preview:
        """The request a note would send: checked as a saved note is, so a dry run never
        shows a request the real one would refuse."""
        wanted = self._note_values(record, text, subject)
        source = self._source(record.source)
        assert source.writes.note is not None  # _note_values refused a source without notes
        said = wanted.get("subject")
        draft = note_draft(
            source.writes.note, record.remote_id, str(wanted["note"]), str(said) if said else None
        )
        return _preview(source, draft)

    def preview_lead(self, name: str, values: Mapping[str, Any]) -> Preview:
        """The request a new lead would send, from its values checked as a saved lead's."""
        wanted = self._lead_values(name, values)
        source = self._source(name)
        assert source.writes.create is not None  # _lead_values refused a source without
        return _preview(source, create_draft(source.writes.create, wanted))

    # -- sending -----------------------------------------------------------------------------

    async def drain(self, names: Iterable[str] | None = None) -> list[OutboxEntry]:
        """Send what waits, for each source (or `names`) at once, each source's entries in
        order; a source that cannot be reached keeps its entries for the next run."""
        db = self._db
        await self.store.in_writer(db.recover_outbox, self.user_id)
        waiting = await self.store.in_writer(db.outbox, self.user_id, ("pending", "unsure"))
        wanted = set(names) if names is not None else None
        sources = sorted(
            {e.source for e in waiting if wanted is None or e.source in wanted}
            & set(self.engine.enabled())
        )
        done = await asyncio.gather(*(self._drain_source(n) for n in sources))
        return [entry for part in done for entry in part]

    async def _drain_source(self, name: str) -> list[OutboxEntry]:
        sender = Sender(self._source(name), self.store)
        sent: list[OutboxEntry] = []
        while True:
            entry = await self.store.in_writer(self._db.claim_edit, self.user_id, name)
            if entry is None:
                return sent
            finished = await sender.send(entry)
            if finished is None:
                return sent
            sent.append(finished)
            if finished.record_id is not None:
                await self.store.outbox_changed(finished.stream, name, [finished.record_id])
            if finished.state in ("pending", "unsure"):
                return sent  # the vendor cannot be reached now: the rest waits too

    # -- a person's decisions ----------------------------------------------------------------

    async def retry(self, entry_id: int) -> OutboxEntry | None:
        return await self._decide(entry_id, "pending")

    async def drop(self, entry_id: int) -> OutboxEntry | None:
        return await self._decide(entry_id, "dropped")

    async def settle(self, entry_id: int, choices: Mapping[str, Choice]) -> OutboxEntry | None:
        """After a conflict: per field, keep `mine` (sent over the vendor's value) or take
        `theirs` (dropped from the edit); fields not named keep the person's value. An edit
        left with nothing to send is dropped."""
        entry = await self.store.in_writer(self._db.outbox_entry, self.user_id, entry_id)
        if entry is None or entry.state != "conflict" or entry.theirs is None:
            return None
        theirs = entry.theirs
        wanted = {n: v for n, v in entry.wanted.items() if choices.get(n) != "theirs"}
        base = {n: theirs.get(n) for n in wanted}  # re-based on what the vendor has now
        if all(same(n, theirs.get(n), v) for n, v in wanted.items()):
            return await self._decide(entry_id, "dropped")
        return await self._decide(entry_id, "pending", base=base, wanted=wanted)

    async def _decide(self, entry_id: int, state: Any, **values: Any) -> OutboxEntry | None:
        entry = await self.store.in_writer(
            lambda: self._db.decide_edit(self.user_id, entry_id, state, **values)
        )
        if entry is not None and entry.record_id is not None:
            await self.store.outbox_changed(entry.stream, entry.source, [entry.record_id])
        return entry


def _checked(
    kind: RecordKind, values: Mapping[str, Any], writable: tuple[str, ...], region: str
) -> tuple[dict[str, Value], dict[str, str]]:
    """The local CRM's rules on the fields the source writes (the others refused): the
    cleaned values and the reason for each bad one."""
    errors = {n: "this source does not let crm-tui change it" for n in values if n not in writable}
    out, bad = check_fields(kind, {n: v for n, v in values.items() if n in writable}, region)
    out.pop("phone_e164", None)
    return out, {**errors, **bad}


def _checked_custom(
    values: Mapping[str, Any], writable: tuple[str, ...], columns: Mapping[str, Column]
) -> tuple[dict[str, Value], dict[str, str]]:
    """Custom column values as the outbox keeps them (text; a number's digits, a date in
    ISO form), read as their column's type, as a synced value is; the reason for each bad
    one. "" or None clears the field."""
    out: dict[str, Value] = {}
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name not in writable:
            errors[name] = "this source does not let crm-tui change it"
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            out[name] = None
            continue
        column = columns.get(name.removeprefix(CUSTOM_PREFIX))
        kind = column.type if column else "text"
        typed = coerce_custom(kind, value)
        if typed is None or typed is ABSENT or isinstance(typed, tuple):
            errors[name] = f"not a {kind} value" if typed is None else "not a single value"
            continue
        out[name] = str(typed)
    return out, errors


def _preview(source: Source, draft: Draft) -> Preview:
    url = source.client.base_url + draft.path.lstrip("/")
    return Preview(url, draft, source.header_names())
