"""Possible matches: records that share no e-mail and no phone but agree on the full name
and on a street address, or on a city when the name is rare in the cache.

A work address in one CRM and a new number in another leave no key in common; a person
would still link them at a glance. These are offered below any key match's confidence and
never merged without a person.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from crm_tui.dedup.blocks import sized_runs
from crm_tui.text import fold

#: Confidence of a possible match by what agrees besides the name.
POSSIBLE = {"street": 0.5, "city": 0.4}
#: A name+place held by more records than this is a common name at a big address.
MAX_BLOCK = 50

# USPS Publication 28's common suffixes and directions, and the unit words.
_WORDS = {
    "street": "st", "str": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr",
    "lane": "ln", "boulevard": "blvd", "court": "ct", "place": "pl", "terrace": "ter",
    "circle": "cir", "parkway": "pkwy", "highway": "hwy", "square": "sq", "trail": "trl",
    "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne",
    "northwest": "nw", "southeast": "se", "southwest": "sw", "apartment": "apt",
    "suite": "ste", "unit": "apt",
}  # fmt: skip
_NOT_WORD = re.compile(r"\W+")


def street_key(value: str | None) -> str:
    """Folded, punctuation gone, the usual abbreviations spelled one way; "" when absent
    or with no number in it (`N/A`, `unknown`: placeholders, not an address)."""
    if not value or not any(c.isdigit() for c in value):
        return ""
    words = _NOT_WORD.sub(" ", fold(value).replace("#", " apt ")).split()
    return " ".join(_WORDS.get(w, w) for w in words)


class Cities:
    """City text -> its folded form ("" if absent); cities repeat, so each is folded once
    and every record of one city shares one string."""

    def __init__(self) -> None:
        self._folded: dict[str, str] = {}

    def __call__(self, city: str | None) -> str:
        if not city:
            return ""
        folded = self._folded.get(city)
        if folded is None:
            folded = self._folded.setdefault(city, " ".join(fold(city).split()))
        return folded


def possible_links(
    names: np.ndarray,
    streets: np.ndarray,
    cities: np.ndarray,
    root: Callable[[int], int],
    rare: int,
) -> list[tuple[int, int, str]]:
    """(a, b, "street" or "city") for records in different clusters (`root`) that agree on
    the full name and on the street (the city too where both have one), or on the city
    alone when at most `rare` records hold the name. The arrays are key codes by position
    (see `keyarrays`: 0 is none, and a name has one only with both its parts)."""
    held = _held(names)
    by_street = sized_runs((held >= 2) & (streets != 0), names, streets, MAX_BLOCK)
    by_city = sized_runs((held >= 2) & (held <= rare) & (cities != 0), names, cities, MAX_BLOCK)
    blocks = [*by_street, *by_city]
    # in order of each block's first record, a street's before a city's (records forward)
    firsts = np.fromiter((first for first, _ in blocks), dtype=np.int64, count=len(blocks))
    kinds = np.repeat(np.array([0, 1], dtype=np.int8), [len(by_street), len(by_city)])
    found: list[tuple[int, int, str]] = []
    for at in np.lexsort((kinds, firsts)).tolist():
        kind = "city" if at >= len(by_street) else "street"
        heads: dict[int, int] = {}
        for i in blocks[at][1]:
            heads.setdefault(root(i), i)
        first, *others = heads.values()
        found.extend(
            (first, other, kind)
            for other in others
            if not (cities[first] and cities[other] and cities[first] != cities[other])
        )
    return found


def _held(names: np.ndarray) -> np.ndarray:
    """Per position, how many positions hold its name code (0 where there is none). By
    sorting: numpy's hashing unique is several times slower on a million codes."""
    named = np.flatnonzero(names)
    order = named[np.argsort(names[named], kind="stable")]
    ordered = names[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(np.concatenate((starts, [len(ordered)])))
    held = np.zeros(len(names), dtype=np.int64)
    held[order] = np.repeat(sizes, sizes)
    return held
