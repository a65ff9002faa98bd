"""A source's status as the Status screen and `crm-tui status` show it."""

from __future__ import annotations

from crm_tui.config import SOURCE_NAMES, Settings
from crm_tui.models import SourceStatus, SyncState
from crm_tui.store.cache import CacheStore


def shown_status(store: CacheStore, settings: Settings, name: str) -> SourceStatus:
    """The store's status of `name`, disabled while its settings are incomplete: whatever
    its last sync left, a source without its settings will not sync."""
    return as_shown(store.status(name), settings)


def as_shown(status: SourceStatus, settings: Settings) -> SourceStatus:
    """`status` (a copy the caller owns), disabled while its source's settings are
    incomplete: for statuses counted without a loaded store (`crm-tui status`). In a team
    database, a source the team's worker syncs shows as it is, keys here or not."""
    if (
        status.source in SOURCE_NAMES
        and not settings.source_config(status.source).enabled
        and not synced_elsewhere(status, settings)
    ):
        status.state = SyncState.DISABLED
    return status


#: What a source without keys here is, in a team database: nothing to set up.
WORKER_SYNCS = "no keys here: the team's worker syncs it with its own"


def worker_syncs(settings: Settings, name: str) -> bool:
    """A source this process has no keys for, in a team database: the worker's to sync
    (an agent needs none), not one to set up."""
    return settings.database_url is not None and not settings.source_config(name).enabled


def synced_elsewhere(status: SourceStatus, settings: Settings) -> bool:
    """A team database's source that someone else (the worker) syncs: it has been synced,
    and this process has not its keys."""
    return settings.database_url is not None and status.last_sync is not None


def shown_statuses(store: CacheStore, settings: Settings) -> dict[str, SourceStatus]:
    """Every source's `shown_status`, in the store's order of sources."""
    return {name: shown_status(store, settings, name) for name in store.sources()}
