"""The team's own CRM: validated create, edit and delete, written through to the cache.

Every entry point (CLI, app) goes through `LocalCrm`, so validation is the same everywhere:
invalid input is refused with a message per field and nothing is saved.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email

from crm_tui.custom_columns import is_column_name
from crm_tui.formats import parse_amount, parse_date
from crm_tui.models import (
    CONTACT_EDITABLE,
    CUSTOM_FIELD,
    DEAL_EDITABLE,
    Record,
    RecordKind,
    utc_now,
)
from crm_tui.phones import to_e164
from crm_tui.sources.base import SourceContext
from crm_tui.sources.errors import first_line
from crm_tui.sources.local import LocalSource
from crm_tui.sources.mapping import load_mappings
from crm_tui.sources.mapping_file import mappings_path
from crm_tui.store.cache import CacheStore
from crm_tui.store.db import Database
from crm_tui.store.local_rows import LINKS_FIELD
from crm_tui.text import clean

log = logging.getLogger(__name__)


class ValidationFailed(ValueError):
    """Field -> message, for every field that is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _phone(value: str, region: str) -> tuple[str, str]:
    """(as typed, E.164). Raises ValueError with a person-readable reason."""
    return value, to_e164(value, region)


def _amount(text: str) -> str:
    amount = parse_amount(text)
    if amount < 0:
        raise ValueError("must be 0 or more")
    return str(amount)


def _probability(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise ValueError("must be a whole number between 0 and 100")
    return int(text)


def _close_date(text: str) -> str:
    return parse_date(text).isoformat()


def _currency(text: str) -> str:
    if len(text) != 3 or not text.isalpha():
        raise ValueError("must be a three-letter code such as USD")
    return text.upper()


def _email(text: str) -> str:
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _custom(value: Any) -> dict[str, Any]:
    """A local record's custom values as its payload keeps them: text, numbers or lists of
    text by column name (each read as its column's type when the record is mapped)."""
    if not isinstance(value, dict):
        raise ValueError("custom values are given by column name")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not is_column_name(name):
            raise ValueError(f"{str(name)[:40]!r} is not a custom column's name")
        if isinstance(item, list | tuple):
            out[name] = [t for t in (clean(i) for i in item) if t]
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out[name] = item
        elif isinstance(item, Decimal):
            out[name] = str(item)
        elif (text := clean(item)) is not None:
            out[name] = text
    return out


def _contact_id(text: str) -> str:
    """A local contact's id as the app shows it (`local:12`) or bare (`12`): stored bare,
    the remote id a deal's link is read by."""
    return text.removeprefix("local:").strip()


_CHECKS: dict[str, Any] = {
    "contact_remote_id": _contact_id,
    "amount": _amount,
    "probability": _probability,
    "close_date": _close_date,
    "currency": _currency,
    "email": _email,
}


def validate(kind: RecordKind, fields: dict[str, Any], region: str = "US") -> dict[str, Any]:
    """The cleaned payload to store, or ValidationFailed naming each bad field."""
    out, errors = check_fields(kind, fields, region)
    return _required(kind, out, errors)


def check_fields(
    kind: RecordKind, fields: dict[str, Any], region: str = "US"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each field cleaned (e-mail syntax, a possible phone number with its E.164 form
    under `phone_e164`, amounts, dates), and the reason for each that is wrong: the rules
    every edit follows, of a local record or a vendor's."""
    allowed = CONTACT_EDITABLE if kind == "contacts" else DEAL_EDITABLE
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == CUSTOM_FIELD:
            try:
                out[name] = _custom(value)
            except ValueError as exc:
                errors[name] = str(exc)
            continue
        if name not in allowed:
            errors[name] = f"not a {kind[:-1]} field"
            continue
        if name == "tags":
            items = value if isinstance(value, list | tuple) else str(value or "").split(",")
            out[name] = [t for t in (clean(i) for i in items) if t]
            continue
        text = clean(value)
        try:
            if text is None:
                out[name] = None
            elif name == "phone":
                out[name], out["phone_e164"] = _phone(text, region)
            else:
                out[name] = _CHECKS.get(name, str)(text)
        except ValueError as exc:
            errors[name] = str(exc)
    return out, errors


def _required(kind: RecordKind, out: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    if kind == "contacts" and not (out.get("first_name") or out.get("last_name")):
        errors.setdefault("first_name", "a first or last name is required")
    if kind == "deals" and not out.get("name"):
        errors.setdefault("name", "a deal needs a name")
    if errors:
        raise ValidationFailed(errors)
    return out


@dataclass
class LocalCrm:
    store: CacheStore
    context: SourceContext
    last_deleted: tuple[RecordKind, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.context.columns:
            self.reload_columns()

    def reload_columns(self) -> None:
        """Read the custom columns' types from mappings.toml again (after the Mapping
        screen saved it): a local record's custom values are read as their column's type
        (a number as a Decimal), as every other source's are. A file with a problem leaves
        them as text: the local CRM stays usable, and the sync names the problem."""
        try:
            columns = load_mappings(mappings_path()).columns
        except (ValueError, OSError) as exc:
            log.warning("local CRM: custom columns read as text: %s", first_line(str(exc)))
            columns = {}
        self.context = replace(self.context, columns=columns)

    @property
    def region(self) -> str:
        return self.context.settings.crm_phone_region

    def _record(self, kind: RecordKind, row: dict[str, Any]) -> Record:
        return LocalSource(self.context).map_record(kind, row, utc_now())

    def _db(self) -> Database:
        if self.store.db is None:
            raise RuntimeError("the local CRM needs a database")
        return self.store.db

    def _writing(self, kind: RecordKind) -> AbstractAsyncContextManager[Any]:
        """The local stream's lease: an edit never lands between a sync of the local CRM
        reading its rows and committing them (the commit would drop the edit's copy)."""
        return self.store.lease("local", kind, "local edit")

    async def add(
        self, kind: RecordKind, fields: dict[str, Any], links: Sequence[str] = ()
    ) -> Record:
        """`links`: the source records this one was merged from, kept in its payload."""
        (record,) = await self.add_many(kind, [(fields, links)])
        assert record is not None  # nothing is skipped unless asked
        return record

    async def add_many(
        self,
        kind: RecordKind,
        items: Sequence[tuple[dict[str, Any], Sequence[str]]],
        skip_linked: bool = False,
    ) -> list[Record | None]:
        """Several new records, (fields, links) each: all validated first (one refused,
        none saved), then one lease, one transaction and one cache update for them all.
        With `skip_linked`, an item whose links another local contact links already (a
        merge another process made meanwhile) is not added: None in its place."""
        payloads = []
        for fields, links in items:
            payload = validate(kind, fields, self.region)
            if links:
                payload[LINKS_FIELD] = list(links)
            payloads.append(payload)
        async with self._writing(kind):
            db, user = self._db(), self.store.user_id
            keep = [True] * len(payloads)
            if skip_linked:
                linked = await self.store.in_writer(
                    db.linking_locals, user, [x for _, links in items for x in links]
                )
                keep = [not any(x in linked for x in links) for _, links in items]
            now = utc_now()
            fresh = [p for p, k in zip(payloads, keep, strict=True) if k]
            ids = iter(await self.store.in_writer(db.add_local_records, user, kind, fresh, now))
            records = [
                self._record(kind, {**p, "id": next(ids), "created_at": now, "updated_at": now})
                if k
                else None
                for p, k in zip(payloads, keep, strict=True)
            ]
            await self.store.upsert(kind, [r for r in records if r is not None])
        return records

    async def find(self, record_id: str) -> tuple[RecordKind, dict[str, Any]]:
        """A local record by id (`7` or `local:7`), with its kind: read on the writer
        thread, after any write already asked for."""
        number = record_id.removeprefix("local:")
        if not number.isdigit():
            raise KeyError(f"not a local record id: {record_id}")
        found = await self.store.in_writer(self._db().local_record, self.store.user_id, int(number))
        return cast(tuple[RecordKind, dict[str, Any]], found)

    async def edit(
        self, record_id: str, changes: dict[str, Any], links: Sequence[str] = ()
    ) -> Record:
        record, _ = await self.replace(record_id, changes, links)
        return record

    async def replace(
        self, record_id: str, changes: dict[str, Any], links: Sequence[str] = ()
    ) -> tuple[Record, dict[str, Any]]:
        """Edit, returning the row as it was just before (read under the lease, so an undo
        never brings back an older copy than the one this edit replaced)."""
        kind, _ = await self.find(record_id)
        async with self._writing(kind):
            return await self._edit(record_id, changes, links)

    async def _edit(
        self, record_id: str, changes: dict[str, Any], links: Sequence[str]
    ) -> tuple[Record, dict[str, Any]]:
        kind, row = await self.find(record_id)  # again: it may have changed while we waited
        current = {
            k: v
            for k, v in row.items()
            if k not in ("id", "created_at", "updated_at", "phone_e164", LINKS_FIELD)
        }
        payload = validate(kind, {**current, **changes}, self.region)
        merged_from = list(dict.fromkeys([*(row.get(LINKS_FIELD) or ()), *links]))
        if merged_from:
            payload[LINKS_FIELD] = merged_from
        now = utc_now()
        db, user = self._db(), self.store.user_id
        await self.store.in_writer(db.save_local_record, user, kind, payload, now, row["id"])
        record = self._record(
            kind, {**payload, "id": row["id"], "created_at": row["created_at"], "updated_at": now}
        )
        await self.store.upsert(kind, [record])
        return record, row

    async def delete(self, record_id: str) -> Record:
        kind, _ = await self.find(record_id)
        async with self._writing(kind):
            kind, row = await self.find(record_id)
            record = self._record(kind, row)
            db, user = self._db(), self.store.user_id
            await self.store.in_writer(db.delete_local_record, user, kind, row["id"])
            await self.store.delete(kind, [record.id])
        self.last_deleted = (kind, row)
        return record

    async def put_back(self, kind: RecordKind, row: dict[str, Any]) -> Record:
        """Write a record exactly as `find` returned it earlier (undo of an edit)."""
        await self.revert(f"local:{row['id']}", row, kind=kind)
        return self._record(kind, row)

    async def remove(self, record_id: str) -> None:
        """Delete without keeping it for undo (undo of a create)."""
        await self.revert(record_id, None)

    async def revert(
        self,
        record_id: str,
        previous: dict[str, Any] | None,
        check: Callable[[], None] | None = None,
        kind: RecordKind | None = None,
    ) -> None:
        """Take a record back to `previous` (a row as `find` gave it), or remove it when
        None, under the lease and in one transaction with `check` (which raises to refuse:
        an undo marks its journal row there, so the mark and the change land together).
        `kind` defaults to the record's own, or contacts when it is gone."""
        number = int(record_id.removeprefix("local:"))
        if kind is None:
            kind = "contacts"
            with contextlib.suppress(KeyError):  # gone already: a check may still apply
                kind, _ = await self.find(record_id)
        async with self._writing(kind):
            db, user = self._db(), self.store.user_id

            def apply() -> bool:
                with db.transaction():
                    if check is not None:
                        check()
                    if previous is not None:
                        db.restore_local_record(user, kind, previous)
                        return True
                    return bool(db.delete_local_record(user, kind, number))

            changed = await self.store.in_writer(apply)
            if previous is not None:
                await self.store.upsert(kind, [self._record(kind, previous)])
            elif changed:
                await self.store.delete(kind, [f"local:{number}"])

    async def undo_delete(self) -> Record | None:
        """Bring back the last deleted record, under its old id."""
        if self.last_deleted is None:
            return None
        kind, row = self.last_deleted
        self.last_deleted = None
        return await self.put_back(kind, row)
