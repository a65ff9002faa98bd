"""Follow Up Boss v1: people and deals, Basic auth with the key, `_metadata.next` cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from crm_tui.models import RecordKind
from crm_tui.sources.base import Capabilities, Source, SourceContext
from crm_tui.sources.http import HeaderAuth, HttpClient
from crm_tui.sources.mapping import is_mapping
from crm_tui.sources.pagination import CursorPaginator, Page


def primary(list_key: str) -> Any:
    """The primary entry of `emails[]`/`phones[]`: flagged primary, else the first valid."""

    def get(raw: Mapping[str, Any]) -> Any:
        items = raw.get(list_key)
        if not isinstance(items, list):
            return None
        entries = [i for i in items if is_mapping(i) and i.get("value")]
        for entry in entries:
            if entry.get("isPrimary") in (True, 1, "1", "true"):
                return entry.get("value")
        for entry in entries:
            if str(entry.get("status", "")).lower() not in ("not valid", "bad"):
                return entry.get("value")
        return entries[0].get("value") if entries else None

    return get


class FollowUpBossSource(Source):
    name = "followupboss"
    display_name = "Follow Up Boss"
    field_maps = {
        "contacts": {
            "remote_id": "id",
            "first_name": "firstName",
            "last_name": "lastName",
            "email": primary("emails"),
            "phone": primary("phones"),
            "stage": "stage",
            "tags": "tags",
            "street": "addresses[0].street",
            "city": "addresses[0].city",
            "state": "addresses[0].state",
            "postal_code": "addresses[0].code",
            "remote_created": "created",
            "remote_updated": "updated",
        },
        "deals": {
            "remote_id": "id",
            "name": "name",
            "amount": "price",
            "stage": "stageName",
            "status": "status",
            "close_date": "projectedCloseDate",
            "contact_remote_id": "people[0].id",
            "remote_created": "createdAt",
            "remote_updated": "updatedAt",
        },
    }
    _paths: dict[RecordKind, str] = {"contacts": "people", "deals": "deals"}

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        settings = ctx.settings
        key = settings.fub_api_key.get_secret_value() if settings.fub_api_key else ""
        system: dict[str, str] = {}
        if settings.fub_system:
            system["X-System"] = settings.fub_system
        if settings.fub_system_key:
            system["X-System-Key"] = settings.fub_system_key.get_secret_value()
        self.client = HttpClient(
            self.display_name,
            settings.fub_api_base_url,
            HeaderAuth.basic(key, system),
            read_timeout=settings.crm_http_timeout_seconds,
            masker=ctx.masker,
            transport=ctx.transport,
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(contacts=True, deals=True)

    def read(self, stream: RecordKind, *, probe: bool = False) -> AsyncIterator[Page]:
        path = self._paths[stream]
        paginator = CursorPaginator((path,), page_size=1 if probe else 100, read_ahead=not probe)
        return paginator.pages(self.client, path, stream)

    async def aclose(self) -> None:
        await self.client.aclose()
