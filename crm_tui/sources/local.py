"""The team's own CRM: rows in the local SQLite tables, a source like the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS, RecordKind
from crm_tui.sources.base import Capabilities, Source
from crm_tui.sources.errors import SourceError
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import Page

_SKIP = {
    "id",
    "source",
    "remote_id",
    "user_id",
    "raw",
    "synced_at",
    "remote_created",
    "remote_updated",
    "deleted",
}


def _identity_map(fields: tuple[str, ...]) -> FieldMap:
    mapping: FieldMap = {name: name for name in fields if name not in _SKIP}
    mapping.update(remote_id="id", remote_created="created_at", remote_updated="updated_at")
    return mapping


class LocalSource(Source):
    name = "local"
    display_name = "Local"
    field_maps = {"contacts": _identity_map(CONTACT_FIELDS), "deals": _identity_map(DEAL_FIELDS)}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True, write_back=True)

    async def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        db = self.ctx.db
        if db is None:
            raise SourceError("Local CRM unavailable", "no database is open")
        rows = await asyncio.to_thread(db.local_records, self.ctx.user_id, stream)
        yield Page(rows[:1] if probe else rows, total=len(rows))
