"""Sequences whose items are made when read (decoded from a mapped file, looked up across
parts): what Python's sequence protocol asks of them is here once, the reading in each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class OnDemand(Sequence[T]):
    """A read-only sequence; a subclass gives `__len__` and `_at(position)` for a position
    in range. Slices give lists; an item read twice may be two equal objects. Equal to any
    sequence of equal items in the same order (a list, as callers were given before)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _at(self, position: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, position: int) -> T: ...

    @overload
    def __getitem__(self, position: slice) -> list[T]: ...

    def __getitem__(self, position: int | slice) -> T | list[T]:
        if isinstance(position, slice):
            return [self._at(i) for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"position out of range (of {len(self)})")
        return self._at(position)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)}>"
