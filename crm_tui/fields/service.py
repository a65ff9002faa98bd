"""Field mapping as the Mapping screen and `crm-tui fields`/`map`/`unmap` use it: discover a
stream's fields, save or remove a mapping (checked against the cached payloads too), and
re-map the cached records with the maps as they now stand.

The maps are each connector's built-in ones with `mappings.toml` on top, read afresh by
every call here: the file is the source of truth, and another process (or a person) may
have changed it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from crm_tui import jsoncodec
from crm_tui.config import ConfigError, Settings
from crm_tui.custom_columns import Column
from crm_tui.fields.discover import SAMPLE, Discovery, discover
from crm_tui.models import RecordKind, utc_now
from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.kit import VendorField
from crm_tui.sources.mapping import Mappings, mapping_gone_wrong
from crm_tui.sources.mapping_file import (
    Check,
    MappingRefused,
    Saved,
    mappings_path,
    read_mappings,
    remove_mapping,
    save_mapping,
)
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store.cache import CacheStore
from crm_tui.store.db import Database
from crm_tui.store.remap import Remapper, RemapProgress, RemapReport

#: A map leaving more than this share of a stream's cached records without an id is refused.
MOST = 0.5


def current_mappings(path: Path | None = None) -> Mappings:
    """`mappings.toml` as it is now; ConfigError naming each problem in it."""
    return read_mappings(path)


def columns(path: Path | None = None) -> list[Column]:
    """The custom columns: declared ones first, in the file's order, then those only
    mapped (text, labelled from their name)."""
    return list(current_mappings(path).columns.values())


def connector(settings: Settings, source: str, mappings: Mappings) -> Source:
    """The source as a sync would build it (its mode from the settings), with `mappings`:
    nothing is read from the network by building it."""
    if source not in CONNECTORS:
        raise MappingRefused(f"unknown source {source!r}; known: {', '.join(CONNECTORS)}")
    ctx = SourceContext(
        settings,
        settings.user_id,
        overrides=mappings.overrides,
        columns=mappings.columns,
    )
    return CONNECTORS[source](ctx)


async def vendor_fields(
    settings: Settings, source: str, stream: RecordKind, *, path: Path | None = None
) -> list[VendorField]:
    """What the vendor's field metadata lists for `stream` (async, network; one client,
    closed after). [] for a source whose vendor has no such list; SourceError (exit 4, or 3
    for refused credentials) when it cannot be read. Pass it to `discover_stream(vendor=)`."""
    built = connector(settings, source, current_mappings(path))
    if not built.field_lists.get(stream):
        return []
    if not built.is_configured(settings):
        raise ConfigError(f"{built.display_name} is not configured: its field list needs its key")
    try:
        return await built.vendor_fields(stream)
    finally:
        await built.aclose()


def discover_stream(
    db: Database,
    settings: Settings,
    source: str,
    stream: RecordKind,
    *,
    vendor: list[VendorField] | None = None,
    limit: int = SAMPLE,
    path: Path | None = None,
) -> Discovery:
    """The fields of a stream's cached payloads (a sample of `limit`), and what maps to
    each now. Blocking (a read of the database and a walk of the sample): call it from a
    worker thread in the app. `vendor`: what `Source.vendor_fields` returned, if asked."""
    mappings = current_mappings(path)
    built = connector(settings, source, mappings)
    total, payloads = db.sample_payloads(settings.user_id, source, stream, limit)
    mine = mappings.overrides.get(source, {}).get(stream, {})
    origins = {t: "mappings.toml" if t in mine else "built-in" for t in built.maps[stream]}
    return discover(
        source, stream, payloads, total, built.maps[stream], origins, mappings.columns, vendor or ()
    )


def ids_check(db: Database, settings: Settings, source: str, stream: RecordKind) -> Check:
    """A check for `save_mapping`/`remove_mapping`: map an even sample of the stream's
    cached payloads with the new map, and refuse it when the re-map that follows would
    lose records or refuse it: most of them without an id, two of them with one id (the
    re-map would keep one of the two), or too many that would not map (`mapping_gone_wrong`,
    the rule of a sync and a re-map)."""

    def check(mappings: Mappings) -> None:
        total, stored = db.sample_payloads(settings.user_id, source, stream, SAMPLE)
        payloads = [p for p in map(_payload, stored) if p is not _DAMAGED]
        if not payloads:
            return
        built = connector(settings, source, mappings)
        of = f"{len(payloads)}" + (" sampled" if total > len(payloads) else "")
        ids = [built.record_id(stream, p) for p in payloads]
        held = [i for i in ids if i is not None]
        missing = len(ids) - len(held)
        if missing > len(payloads) * MOST:
            raise MappingRefused(
                f"{missing} of {of} cached {source} {stream} would have no id under this map;"
                " not saved"
            )
        if len(set(held)) < len(held):
            raise MappingRefused(
                f"{len(held) - len(set(held))} of {of} cached {source} {stream} would share an"
                f" id with another under this map ({len(set(held))} distinct ids): the re-map"
                " would keep one of each; not saved"
            )
        now = utc_now()
        refused: list[str] = []
        for payload in payloads:
            try:
                built.map_record(stream, payload, now)
            except InvalidRecord as exc:
                refused.append(str(exc))
        if mapping_gone_wrong(len(refused), len(payloads)):
            first = " ".join(refused[0].split())
            first = first if len(first) <= 80 else first[:79] + "…"
            raise MappingRefused(
                f"{len(refused)} of {of} cached {source} {stream} would not map under this map"
                f" ({first}); not saved"
            )

    return check


_DAMAGED = object()


def _payload(raw: str) -> Any:
    """A stored payload read, or _DAMAGED (a cell that is not JSON says nothing of a map)."""
    try:
        return jsoncodec.loads(raw)
    except ValueError:
        return _DAMAGED


def save(
    db: Database,
    settings: Settings,
    source: str,
    stream: RecordKind,
    target: str,
    spec: str,
    column: Column | None = None,
    *,
    path: Path | None = None,
    saved: list[Saved] | None = None,
) -> Mappings:
    """Map `target` (a unified field or `custom.NAME`) to the payload path `spec` in
    `mappings.toml` (with `column`, declare that column too), after every check; then call
    `remap`. Blocking (it reads a sample of the cache): a worker thread in the app. Raises
    MappingRefused with the reason, ConfigError for a problem the file has already; the
    file is then as it was. `saved` (if given) is appended the save: should the re-map
    still refuse the map (RemapFailed), `saved[0].undo()` puts the file back."""
    check = ids_check(db, settings, source, stream)
    file = path or mappings_path()
    return save_mapping(file, source, stream, target, spec, column, check, saved)


def remove(
    db: Database,
    settings: Settings,
    source: str,
    stream: RecordKind,
    target: str,
    *,
    path: Path | None = None,
    saved: list[Saved] | None = None,
) -> Mappings:
    """Take `target`'s entry out of `mappings.toml` (the built-in map applies again), after
    the same checks as `save`; then call `remap`."""
    check = ids_check(db, settings, source, stream)
    return remove_mapping(path or mappings_path(), source, stream, target, check, saved)


async def remap(
    store: CacheStore,
    settings: Settings,
    source: str,
    stream: RecordKind,
    progress: RemapProgress | None = None,
    cancel: threading.Event | None = None,
    *,
    path: Path | None = None,
) -> RemapReport:
    """Map the stream's cached payloads again with the maps as they now stand, as one
    commit under the stream's lease, and show the result in `store`. Awaited on the event
    loop; the work runs in a thread, `progress(done, total)` is called from there. Raises
    StreamBusy, RemapFailed, RemapCancelled (see store/remap.py) and ConfigError."""
    remap_one = remapper(settings, source, stream, path)
    return await store.remap(source, stream, remap_one, progress, cancel)


def remapper(
    settings: Settings, source: str, stream: RecordKind, path: Path | None = None
) -> Remapper:
    """One stored payload mapped as a sync would map it now (for `Database.remap_stream`,
    which a command calls directly, without a loop)."""
    built = connector(settings, source, current_mappings(path))

    def remap_one(raw: Any, synced_at: str) -> Any:
        return built.map_record(stream, raw, synced_at)

    return remap_one
