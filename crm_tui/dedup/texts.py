"""The few texts of a contact a cluster shows (its id, when it last changed, its folded name),
saved beside its keys so that a start reads them from the saved file for just the positions
in clusters, a slice of a mapped array each, instead of reaching every record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crm_tui.heap import CHUNK
from crm_tui.models import Contact

#: Ends each text in a blob. Control characters are stripped from CRM text at ingest, so
#: none occurs inside one; `Texts.at` checks the count all the same.
_END = "\x00"
_SEP = "\x1f"  # between a folded given and family name
FIELDS = ("ids", "updated", "names")


@dataclass(frozen=True, slots=True)
class Texts:
    """Strings by position: one UTF-8 blob of terminated strings, and where each starts."""

    blob: np.ndarray  # uint8
    starts: np.ndarray  # int64, one more than there are strings

    @classmethod
    def of(cls, values: Sequence[str]) -> Texts:
        blob = bytearray()
        lengths = np.zeros(len(values) + 1, dtype=np.int64)
        for first in range(0, len(values), CHUNK):
            encoded = [
                (v + _END).encode("utf-8", "surrogatepass") for v in values[first : first + CHUNK]
            ]
            lengths[first + 1 : first + 1 + len(encoded)] = list(map(len, encoded))
            blob += b"".join(encoded)
        return cls(np.frombuffer(bytes(blob), dtype=np.uint8), np.cumsum(lengths))

    def at(self, positions: np.ndarray) -> list[str] | None:
        """The strings at `positions`; None if the blob does not hold that many there."""
        low, high = self.starts[positions], self.starts[positions + 1]
        sizes = high - low
        if len(sizes) == 0:
            return []
        if (sizes <= 0).any():
            return None
        # every byte's index: each string's start, then counting on through its length
        shift = np.repeat(low - (np.cumsum(sizes) - sizes), sizes)
        chunk = self.blob[shift + np.arange(int(sizes.sum()))].tobytes()
        found = chunk.decode("utf-8", "surrogatepass").split(_END)
        return found[:-1] if len(found) == len(positions) + 1 else None

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        return {f"{name}_blob": self.blob, f"{name}_starts": self.starts}

    @classmethod
    def saved(cls, arrays: Mapping[str, np.ndarray], name: str, count: int) -> Texts | None:
        blob, starts = arrays[f"{name}_blob"], arrays[f"{name}_starts"]
        sound = (
            blob.dtype == np.uint8
            and starts.dtype == np.int64
            and len(starts) == count + 1
            and (count == 0 or (starts[0] == 0 and starts[-1] == len(blob)))
        )
        return cls(blob, starts) if sound else None


def texts_of(contacts: Sequence[Contact], names: Sequence[tuple[str, str]]) -> dict[str, Texts]:
    """`FIELDS` of each contact; `names` are their folded names, in the same order."""
    return {
        "ids": Texts.of([c.id for c in contacts]),
        "updated": Texts.of([c.remote_updated or c.remote_created or "" for c in contacts]),
        "names": Texts.of([f"{given}{_SEP}{family}" for given, family in names]),
    }


def split_name(text: str) -> tuple[str, str]:
    given, _, family = text.partition(_SEP)
    return given, family
