"""The index of a store whose streams rest on records artifacts: each stream's segment is
the one saved for its artifact's stamp, mapped in (built over the artifact's records and
saved when there is none), with the records changed over the artifact patched in. A stream
the store holds as a dict (just synced, not yet settled) is built from its records, as
`SearchIndex.rebuild_from` does."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence

from crm_tui.custom_columns import Column
from crm_tui.models import KINDS, Record, RecordKind
from crm_tui.search.index import SearchIndex
from crm_tui.search.persist import open_segment, save_segment
from crm_tui.search.segment import Segment
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.reading import Base, StoredStreams
from crm_tui.store.stamps import StreamStamp
from crm_tui.tuning import gc_paused

log = logging.getLogger(__name__)


def index_streams(
    index: SearchIndex,
    store: StoredStreams,
    shelf: ArtifactShelf | None,
    source: str | None = None,
    kinds: Iterable[RecordKind] = KINDS,
) -> None:
    """Bring `index` up to `store` for one source (or all: then a source the store no longer
    holds leaves the index). Streams on an artifact come first, one at a time, each
    searchable as soon as it is in place; the dict streams after, built together."""
    for kind in kinds:
        names = [source] if source is not None else store.sources()
        loose = {}
        for name in names:
            view, base = _view_and_base(store, kind, name)
            if base is None or shelf is None:
                loose[name] = view.values()
                continue
            stamp, records, touched = base
            index.install(kind, name, _segment(index, shelf, kind, name, stamp, records))
            if touched:  # over the view the base came with, not a newer one of the stream
                index.patch(kind, name, functools.partial(_same, view), touched)
        if loose:
            index.rebuild_many(kind, loose)
        if source is None:
            index.keep_only(kind, set(names))


def _view_and_base(
    store: StoredStreams, kind: RecordKind, source: str
) -> tuple[Mapping[str, Record], Base | None]:
    """A stream and the artifact it rests on, read together: the loop may replace the
    stream between two reads (this runs in a worker thread), so both are read again then."""
    for _ in range(3):
        view = store.stream(kind, source)
        base = store.base_of(kind, source)
        if store.stream(kind, source) is view:
            break
    return view, base


def _same(view: Mapping[str, Record]) -> Mapping[str, Record]:
    return view


def store_index(
    store: StoredStreams,
    shelf: ArtifactShelf | None,
    columns: Mapping[str, Column],
    kinds: Iterable[RecordKind] = KINDS,
) -> SearchIndex:
    """A new index of `store` (a command's: mapped from saved segments where it can), with
    the declared custom `columns` as filter keys."""
    index = SearchIndex()
    index.columns = dict(columns)
    index_streams(index, store, shelf, kinds=kinds)
    return index


def save_segments(
    store: StoredStreams, streams: Iterable[tuple[RecordKind, str]], columns: Mapping[str, Column]
) -> None:
    """The segments of `streams` (those on an artifact) saved for their rows now, for the
    next start (a sync's process: it searches nothing itself)."""
    shelf = store.shelf
    if shelf is None:
        return
    for kind, source in streams:
        index = SearchIndex()
        index.columns = dict(columns)
        index_streams(index, store, shelf, source=source, kinds=(kind,))


def _segment(
    index: SearchIndex,
    shelf: ArtifactShelf,
    kind: RecordKind,
    source: str,
    stamp: StreamStamp,
    records: Sequence[Record],
) -> Segment:
    """The segment saved for the records at `stamp`; else one built over them, and saved."""
    found = open_segment(shelf, kind, source, stamp, records)
    if found is not None:
        return found
    with gc_paused():
        # decoded once, in order, for the build, its facets and the save (each reads every
        # record; by position a record costs twice one read in turn), then let go of
        built = Segment.build(list(records))
        built.facets()
    save_segment(shelf, kind, source, stamp, built, index.columns.values())
    return built.reading(records)
