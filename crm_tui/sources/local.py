"""The team's own CRM: rows in the local SQLite tables, a source like the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from crm_tui.models import CONTACT_EDITABLE, DEAL_EDITABLE, RecordKind
from crm_tui.sources.base import Capabilities, Source
from crm_tui.sources.errors import SourceError
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import Page


def _identity_map(fields: tuple[str, ...]) -> FieldMap:
    """Local rows store the unified field names, so the map is the names themselves."""
    mapping: FieldMap = {name: name for name in fields}
    mapping.update(remote_id="id", remote_created="created_at", remote_updated="updated_at")
    return mapping


class LocalSource(Source):
    name = "local"
    display_name = "Local"
    field_maps = {
        "contacts": _identity_map(CONTACT_EDITABLE),
        "deals": _identity_map(DEAL_EDITABLE),
    }

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True, write_back=True)

    async def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        db = self.ctx.db
        if db is None:
            raise SourceError("Local CRM unavailable", "no database is open")
        rows = await asyncio.to_thread(db.local_records, self.ctx.user_id, stream)
        yield Page(rows[:1] if probe else rows, total=len(rows))
