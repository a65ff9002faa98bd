"""The team's own CRM: rows in the local SQLite tables, a source like the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from crm_tui.models import CONTACT_EDITABLE, CUSTOM_FIELD, DEAL_EDITABLE, RecordKind
from crm_tui.sources.base import Source
from crm_tui.sources.errors import SourceError
from crm_tui.sources.kit import Capabilities
from crm_tui.sources.mapping import FieldMap
from crm_tui.sources.pagination import Page

if TYPE_CHECKING:
    from crm_tui.config import Settings


def _identity_map(fields: tuple[str, ...]) -> FieldMap:
    """Local rows store the unified field names, so the map is the names themselves; their
    custom columns' values sit in one object."""
    mapping: FieldMap = {name: name for name in (*fields, CUSTOM_FIELD)}
    mapping.update(remote_id="id", remote_created="created_at", remote_updated="updated_at")
    return mapping


class LocalSource(Source):
    name = "local"
    display_name = "Local"
    short_name = "LOC"
    field_maps = {
        "contacts": _identity_map(CONTACT_EDITABLE),
        "deals": _identity_map(DEAL_EDITABLE),
    }

    @classmethod
    def mode(cls, settings: Settings) -> str:
        return "database"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True, write_back=True)

    async def read_other(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        db = self.ctx.db
        if db is None:
            raise SourceError("Local CRM unavailable", "no database is open")
        rows = await asyncio.to_thread(db.local_records, self.ctx.user_id, stream)
        yield Page(rows[:1] if probe else rows, total=len(rows))
