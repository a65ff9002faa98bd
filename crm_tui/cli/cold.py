"""What a cold command reads of the cache without loading it: each source's status and
counts from the index, and a stream's records a batch at a time, laid out as a loaded
`CacheStore` lays them (imported rows over synced ones, unsent edits' values over both), in
the same order, so the output is the same and memory holds a batch, not the cache."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import click

from crm_tui.cli.marks import Marks
from crm_tui.config import SOURCE_NAMES, Settings
from crm_tui.models import KINDS, Record, RecordKind, SourceStatus
from crm_tui.store import CacheStore, Database
from crm_tui.store.stream_view import laid
from crm_tui.sync.shown import as_shown

#: Records per write to standard output: few system calls, and `| head` stops us soon.
_WRITE_BATCH = 500


def cold_statuses(store: CacheStore, settings: Settings) -> dict[str, SourceStatus]:
    """`shown_statuses` of a loaded store, from the database's index and status rows: the
    same sources in the same order with the same counts, no record read."""
    db = _db(store)
    store.load_statuses_sync()
    with db.consistent_reads():
        counts = {kind: db.stream_counts(store.user_id, kind) for kind in KINDS}
    saved = store.statuses()  # nothing loaded: their counts are 0, filled in below
    names = dict.fromkeys([*SOURCE_NAMES, *counts["contacts"], *counts["deals"], *saved])
    return {
        name: as_shown(
            replace(
                saved.get(name) or store.status(name),
                contact_count=counts["contacts"].get(name, 0),
                deal_count=counts["deals"].get(name, 0),
            ),
            settings,
        )
        for name in names
    }


class ColdRecords:
    """A user's cached records read from the database as `CacheStore.records` returns them.
    Use inside `db.consistent_reads()`, so the streams, their imports and the unsent edits
    read are of one commit."""

    def __init__(self, db: Database, user_id: str) -> None:
        self.db, self.user_id = db, user_id
        self.pending: dict[str, dict[str, Any]] = db.pending_values(user_id)[1]

    def records(self, kind: RecordKind, source: str | None = None) -> Iterator[Record]:
        """Every source's in the loaded store's order of sources, or only `source`'s."""
        for name in [source] if source is not None else self._sources(kind):
            yield from self.stream(kind, name)

    def _sources(self, kind: RecordKind) -> list[str]:
        """The loaded store's order: the known sources, then others as its load meets them
        (contacts' first), of those holding records of `kind`."""
        counts = {k: self.db.stream_counts(self.user_id, k) for k in KINDS}
        names = dict.fromkeys([*SOURCE_NAMES, *counts["contacts"], *counts["deals"]])
        return [name for name in names if counts[kind].get(name)]

    def stream(self, kind: RecordKind, source: str) -> Iterator[Record]:
        """One stream: its synced rows in row order, an imported row in place of the synced
        one of its id, then imported ids the sync does not have (as `CacheStore._swap`)."""
        load = self.db.load_records
        overlay = {r.id: r for r in load(self.user_id, kind, True, source)}
        for batch in self.db.stream_id_batches(self.user_id, kind, source):
            rows = {r.id: r for r in load(self.user_id, kind, False, source, batch)}
            for record_id in batch:
                yield laid(overlay.pop(record_id, None) or rows[record_id], self.pending)
        for record in overlay.values():
            yield laid(record, self.pending)


def echo_listing(kind: RecordKind, records: Iterable[Record], marks: Marks) -> None:
    """`{"success": true, kind: [...], "count": N}` exactly as `json.dumps` writes it, one
    batch of records at a time: a reader that stops early (`| head`) stops the reading."""
    pieces = [json.dumps({"success": True, kind: []})[:-2]]  # up to and with the "["
    count = 0
    for record in records:
        item = json.dumps(marks.json(record.to_json()), ensure_ascii=False, default=str)
        pieces.append(f", {item}" if count else item)
        count += 1
        if len(pieces) >= _WRITE_BATCH:
            click.echo("".join(pieces), nl=False)
            pieces = []
    pieces.append(f'], "count": {count}}}')
    click.echo("".join(pieces))


def _db(store: CacheStore) -> Database:
    assert store.db is not None  # a runtime's store is always over its database
    return store.db
