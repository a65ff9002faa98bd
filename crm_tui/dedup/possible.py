"""Possible matches: records that share no e-mail and no phone but agree on the full name
and on a street address, or on a city when the name is rare in the cache.

A work address in one CRM and a new number in another leave no key in common; a person
would still link them at a glance. These are offered below any key match's confidence and
never merged without a person.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from crm_tui.heap import Sharded, dismantle
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
    names: Sequence[tuple[str, str]],
    streets: Sequence[str | None],
    cities: Sequence[str],
    root: Callable[[int], int],
    rare: int,
) -> list[tuple[int, int, str]]:
    """(a, b, "street" or "city") for records in different clusters (`root`) that agree on
    the full name and on the street (the city too where both have one), or on the city
    alone when at most `rare` records hold the name. `streets` are as the CRMs wrote them:
    only records whose name is held twice are read."""
    # Sharded, not one dict: resizing a dict of a million keys (or freeing it) is one C loop
    # holding the interpreter lock, and the app's loop waits on it while a sync runs.
    counts = Sharded[tuple[str, str], int]()
    for name in names:
        counts[name] = (counts.get(name) or 0) + 1
    blocks = Sharded[tuple[tuple[str, str], str, str], list[int]]()
    ordered: list[tuple[str, list[int]]] = []  # first-seen order: records walked forward

    def add(key: tuple[tuple[str, str], str, str], i: int) -> None:
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = []
            ordered.append((key[1], block))
        block.append(i)

    for i, name in enumerate(names):
        held = counts[name]
        if held < 2 or not (name[0] and name[1]):
            continue
        street, city = street_key(streets[i]), cities[i]
        if street:
            add((name, "street", street), i)
        if city and held <= rare:
            add((name, "city", city), i)
    counts.release()
    blocks.release()
    found: list[tuple[int, int, str]] = []
    for kind, block in ordered:
        if len(block) < 2 or len(block) > MAX_BLOCK:
            continue
        heads: dict[int, int] = {}
        for i in block:
            heads.setdefault(root(i), i)
        first, *others = heads.values()
        found.extend(
            (first, other, kind)
            for other in others
            if not (cities[first] and cities[other] and cities[first] != cities[other])
        )
    dismantle(ordered)
    return found
