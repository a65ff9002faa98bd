"""A stream's search segment saved beside the database and mapped back in at start, so that
opening a million records' index costs page faults instead of a rebuild.

A segment is saved on the artifact shelf under the stamp of the rows it was built from, and
opened only for exactly that stamp and as many records, in the same order (a sample of
their ids is compared). Its arrays come back memory-mapped; the facets' distinct values are
one JSON array beside them. Whatever does not fit (another format, another folding, a
length, an offset or a code out of bounds) is logged and not used: the caller rebuilds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from crm_tui.custom_columns import Column
from crm_tui.models import Record, RecordKind
from crm_tui.search.facets import Facets
from crm_tui.search.ranking import NO_MATCH
from crm_tui.search.segment import BLOCK_BYTES, Segment, array_fields
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.stamps import StreamStamp
from crm_tui.text import FOLD_VERSION  # a segment folded otherwise finds other words

log = logging.getLogger(__name__)

WHAT = "segment"
#: Bump when what a saved segment means changes with no change to its arrays' names or
#: types (what fields.haystack indexes, how facets code their values).
FORMAT_VERSION = 2  # 2: a segment's line may leave the company to its facets
_SAMPLES = 32  # record ids compared at open: a list in another order is not the one saved
_VALUES = "f_values"


@functools.cache
def _dtypes() -> dict[str, np.dtype]:
    """Each array field's type, as a build makes it (an empty build: no records needed)."""
    empty = Segment.build([])
    return {name: getattr(empty, name).dtype for name in array_fields()}


def segment_format() -> str:
    """The format a segment is saved in: its version, the folding's, and every array field
    with its type, so a field added to Segment is a new format by itself."""
    fields = ",".join(f"{name}:{dtype}" for name, dtype in _dtypes().items())
    return f"search-segment-{FORMAT_VERSION}-fold{FOLD_VERSION}-{fields}"


def save_segment(
    shelf: ArtifactShelf,
    kind: RecordKind,
    source: str,
    stamp: StreamStamp,
    segment: Segment,
    columns: Iterable[Column] = (),
) -> Path | None:
    """Save `segment`, built from the stream's rows at `stamp` (no patch over it), for the
    next start, with the values of the custom `columns` (the index's: filter keys). Takes
    a pass over the records for those and the creation days: run it beside the app, not
    in its event loop. A save that fails (a full disk) is logged and loses nothing: the
    next start builds the segment again."""
    arrays = {f"s_{name}": getattr(segment, name) for name in array_fields()}
    facets = segment.facets()
    facet_arrays, values = facets.saved(columns)
    arrays.update({f"f_{name}": array for name, array in facet_arrays.items()})
    blob = json.dumps(values).encode("ascii")  # escapes: any string a record holds fits
    arrays[_VALUES] = np.frombuffer(blob, dtype=np.uint8)
    meta = {"count": len(segment.records), "deals": facets.deals, "ids": _ids(segment.records)}
    return shelf.save(WHAT, kind, source, stamp, segment_format(), arrays, meta)


def open_segment(
    shelf: ArtifactShelf,
    kind: RecordKind,
    source: str,
    stamp: StreamStamp,
    records: Sequence[Record],
) -> Segment | None:
    """The segment saved for the stream at exactly `stamp`, over `records` (the rows read at
    that stamp, in the order the segment was built from), its arrays mapped; None when
    there is none or it does not fit (logged)."""
    artifact = shelf.open(WHAT, kind, source, stamp, segment_format())
    if artifact is None:
        log.info("no saved search segment for %s of %s: building it", kind, source)
        return None
    if artifact.stamp != stamp:
        log.info("the saved search segment of %s of %s is older: building it", kind, source)
        return None
    try:
        return _restored(artifact.arrays, artifact.meta, source, records)
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # JSON and UTF-8: ValueError
        log.warning("ignoring the saved search segment of %s of %s: %s", kind, source, exc)
        return None


def _restored(
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, object],
    source: str,
    records: Sequence[Record],
) -> Segment:
    # plain arrays over the same mapped pages: np.memmap's Python hooks run at every
    # slice a search takes
    arrays = {name: array.view(np.ndarray) for name, array in arrays.items()}
    if meta.get("count") != len(records):
        raise ValueError(f"saved for {meta.get('count')} records, not {len(records)}")
    if meta.get("ids") != _ids(records):
        raise ValueError("saved for other records or another order")
    own = {name[2:]: array for name, array in arrays.items() if name.startswith("s_")}
    if own.keys() != _dtypes().keys():
        raise ValueError("not the arrays a segment has")
    _check_segment(own, len(records))
    facet_arrays = {n[2:]: a for n, a in arrays.items() if n.startswith("f_") and n != _VALUES}
    values = json.loads(arrays[_VALUES].tobytes().decode("utf-8"))
    if not isinstance(values, dict):
        raise ValueError("the facets' values are not a mapping")
    deals = meta.get("deals") is True
    facets = Facets.restored(records, source, deals, facet_arrays, values)
    return Segment.opened(records, own, facets)


def _check_segment(arrays: Mapping[str, np.ndarray], count: int) -> None:
    """What fits the records: types, lengths and the ends of the ranges. Only what touches
    a few pages: the shelf has checked every byte against the checksum saved with them
    (walking the arrays here would map the whole index into a command that asks one
    query), and what was saved was a build."""
    dtypes = _dtypes()
    for name, array in arrays.items():
        _require(array.dtype == dtypes[name] and array.ndim == 1, f"{name} is {array.dtype}")
    data, starts, name_ends = arrays["data"], arrays["starts"], arrays["name_ends"]
    size = len(data)
    _require(len(starts) == count + 1 and starts[0] == 0 and starts[-1] == size, "line starts")
    _require(not count or data[-1] == 0x0A, "text not ending a line")
    _require(len(name_ends) == count, "name ends")
    _require(len(arrays["line_at"]) == -(-size // BLOCK_BYTES), "line blocks")
    lows, offsets, run_offsets = arrays["lows"], arrays["offsets"], arrays["run_offsets"]
    for name, ranges, end in (
        ("offsets", offsets, len(lows)),
        ("runs", run_offsets, len(arrays["run_start"])),
    ):
        _require(len(ranges) == 1 + (1 << 16) and ranges[0] == 0 and ranges[-1] == end, name)
    _require(len(arrays["run_block"]) == len(arrays["run_start"]), "run blocks")
    least = arrays["least_place"]
    _require(len(least) == 1 << 16 and least.min() >= 0 and least.max() <= NO_MATCH, "places")


def _require(holds: bool, what: str) -> None:
    if not holds:
        raise ValueError(f"inconsistent segment: {what}")


def _ids(records: Sequence[Record]) -> str:
    """A digest of a few record ids spread over the sequence (a few records decoded)."""
    digest = hashlib.sha256()
    if records:
        for at in np.unique(np.linspace(0, len(records) - 1, _SAMPLES).astype(np.int64)):
            digest.update(records[int(at)].id.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]
