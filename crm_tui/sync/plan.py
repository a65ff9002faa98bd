"""How each of a source's streams is read, in words, for the Status screen and `doctor`."""

from __future__ import annotations

from crm_tui.config import Settings
from crm_tui.sources.registry import CONNECTORS


def read_plan(name: str, settings: Settings) -> str:
    """ "contacts: changes since the last sync (deletions: archived=true and webhooks), in
    full every 24 h; deals: in full every sync" """
    connector = CONNECTORS.get(name)
    if connector is None:
        return "in full every sync"
    hours = settings.crm_full_sync_hours
    parts = []
    for stream in ("contacts", "deals"):
        if stream not in connector.endpoints and stream not in connector.changes:
            continue
        changes = connector.changes.get(stream)
        if changes is None or not hours:
            parts.append(f"{stream}: in full every sync")
            continue
        parts.append(
            f"{stream}: changes since the last sync (deletions: {changes.deletes_by}),"
            f" in full every {hours:g} h"
        )
    return "; ".join(parts) or "in full every sync"
