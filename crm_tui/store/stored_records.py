"""A stream's records kept as an artifact (memory-mapped arrays), not as Python objects: a
record is made from its row when it is read, and let go after.

Arrays: `data` (the UTF-8 bytes of every row, as `Database.read_stream_lines` gives them),
`ends` (where each row ends in `data`), and an id lookup with no Python dict: `id_hash` (a
64-bit hash of each id, sorted) with `id_order` (the row of each hash). A lookup checks the
id of the row it lands on, so a hash shared by two ids never returns the wrong record.

An artifact is trusted only whole: its arrays' CRC-32s, saved in its metadata, are checked
when it is opened (about 35 ms per 250 MB), as are their shapes and order.
"""

from __future__ import annotations

import logging
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from crm_tui.models import Record, RecordKind
from crm_tui.sequences import OnDemand
from crm_tui.store.artifacts import Artifact
from crm_tui.store.db import RECORD_SEPARATOR, record_decoder
from crm_tui.store.row_files import MappedBytes
from crm_tui.store.stamps import StreamStamp

log = logging.getLogger(__name__)

WHAT = "records"
#: Changes whenever what the arrays hold or mean does (a column added to a record too).
FORMAT = "records-1"
_NAMES = ("data", "ends", "id_hash", "id_order")
_SEPARATOR = RECORD_SEPARATOR.encode()


class DamagedArtifact(ValueError):
    """An artifact's arrays are not as they were saved."""


def id_hash(record_id: bytes) -> int:
    """A 64-bit hash of an id, the same in every process (Python's `hash` is not)."""
    return (zlib.crc32(record_id) << 32) | zlib.adler32(record_id)


class RecordsBuilder:
    """A stream's arrays made a row at a time (its UTF-8 bytes, one row per id): what
    several streams read in one pass of their table are built side by side, and no row is
    held as a Python object once added."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")
        self._hashes = array("Q")

    def add(self, row: bytes) -> None:
        self._data += row
        self._ends.append(len(self._data))
        self._hashes.append(id_hash(row.partition(_SEPARATOR)[0]))

    def __len__(self) -> int:
        return len(self._ends)

    def finish(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays (`data` shares the builder's buffer: no copy of it at its peak), and
        the metadata that vouches for them. The builder is spent after."""
        hashes = _as_array(self._hashes, np.uint64)
        order = np.argsort(hashes, kind="stable").astype(np.uint32)
        arrays = {
            "data": _as_array(self._data, np.uint8),
            "ends": _as_array(self._ends, np.uint64),
            "id_hash": hashes[order],
            "id_order": order,
        }
        self._hashes = array("Q")
        return arrays, {"rows": len(self._ends)}


def _as_array(buffer: bytearray | array[int], dtype: type[np.generic]) -> np.ndarray:
    return np.frombuffer(buffer, dtype=dtype) if len(buffer) else np.zeros(0, dtype)


def build_arrays(
    lines: Iterable[str | bytes],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of rows `lines` (one per id), and the metadata that vouches for them."""
    builder = RecordsBuilder()
    for line in lines:
        builder.add(line if isinstance(line, bytes) else line.encode())
    return builder.finish()


class StoredRecords(OnDemand[Record]):
    """A read-only sequence of one stream's records over an artifact's arrays. Records are
    made when read and not kept: reading one twice makes two equal records."""

    def __init__(self, kind: RecordKind, stamp: StreamStamp, arrays: Mapping[str, np.ndarray]):
        self.kind = kind
        self.stamp = stamp
        self._data = arrays["data"]
        self._ends = arrays["ends"]
        self._hash = arrays["id_hash"]
        self._order = arrays["id_order"]
        self._view = memoryview(self._data)  # a slice of it is a row, with no copy
        self._file = MappedBytes.of(self._data)
        self._decode: Callable[[str], Record] = record_decoder(kind, share=False)

    @classmethod
    def opened(cls, kind: RecordKind, artifact: Artifact) -> StoredRecords:
        """The records of an artifact the shelf opened (its files' checksums checked
        there), their shapes checked here; raises DamagedArtifact when anything is off."""
        arrays = artifact.arrays
        if set(arrays) != set(_NAMES):
            raise DamagedArtifact(f"arrays {sorted(arrays)}")
        _check_shapes(arrays, artifact.meta.get("rows"))
        return cls(kind, artifact.stamp, arrays)

    def __len__(self) -> int:
        return len(self._ends)

    def _row(self, position: int) -> str:
        start = int(self._ends[position - 1]) if position else 0
        end = int(self._ends[position])
        if self._file is None:
            return str(self._view[start:end], "utf-8")
        row = self._file.read(start, end)
        if len(row) != end - start:
            raise DamagedArtifact("the records file is shorter than when it was opened")
        return str(row, "utf-8")

    def _at(self, position: int) -> Record:
        return self._decode(self._row(position))

    def __iter__(self) -> Iterator[Record]:
        decode, view = self._decode, self._view
        start = 0
        for end in self._ends.tolist() if len(self._ends) < 4096 else _chunked(self._ends):
            yield decode(str(view[start:end], "utf-8"))
            start = end

    def id_at(self, position: int) -> str:
        """The id of the record at `position`, without making the record."""
        return self._row(position).partition(RECORD_SEPARATOR)[0]

    def position(self, record_id: str) -> int | None:
        key = id_hash(record_id.encode())
        at = int(np.searchsorted(self._hash, np.uint64(key), side="left"))
        while at < len(self._hash) and int(self._hash[at]) == key:
            found = int(self._order[at])
            if self.id_at(found) == record_id:
                return found
            at += 1
        return None

    def positions(self, ids: Iterable[str]) -> dict[str, int]:
        """Where each of `ids` is (ids that are not here are left out)."""
        found = {}
        for record_id in ids:
            at = self.position(record_id)
            if at is not None:
                found[record_id] = at
        return found

    def get(self, record_id: str) -> Record | None:
        at = self.position(record_id)
        return None if at is None else self._at(at)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays (mapped from the file: paged in as read, not heap memory)."""
        return sum(a.nbytes for a in (self._data, self._ends, self._hash, self._order))


def _chunked(ends: np.ndarray, size: int = 65_536) -> Iterator[int]:
    """A big array's values as ints, a slice at a time (not a list of a million at once)."""
    for at in range(0, len(ends), size):
        yield from ends[at : at + size].tolist()


def _check_shapes(arrays: Mapping[str, np.ndarray], rows: object) -> None:
    data, ends, hashes, order = (arrays[name] for name in _NAMES)
    count = len(ends)
    if rows != count or len(hashes) != count or len(order) != count:
        raise DamagedArtifact("the arrays' lengths differ")
    if count and (int(ends[-1]) != len(data) or bool(np.any(ends[1:] < ends[:-1]))):
        raise DamagedArtifact("the row ends do not fit the data")
    if count and (int(order.max()) >= count or bool(np.any(hashes[1:] < hashes[:-1]))):
        raise DamagedArtifact("the id lookup is out of order")
