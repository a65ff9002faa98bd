"""A source's match keys as arrays of 64-bit codes, one row per contact by position: a few
bytes a contact instead of a few strings, and savable beside the stream they came from.

A code is the first 8 bytes of the key's BLAKE2b digest, so it is the same in every process
and for every source (an e-mail in one CRM meets its copy in another); 0 means "no key".
Two different keys sharing a code is a 2^-64 chance per pair: at a million contacts, about
one cache in 30 million would see one false candidate, which the name check still vets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from operator import attrgetter, methodcaller
from typing import Any, cast

import numpy as np
import phonenumbers

from crm_tui.dedup.keys import PhoneKeys, name_key
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.possible import Cities, street_key
from crm_tui.dedup.texts import FIELDS, Texts
from crm_tui.heap import CHUNK
from crm_tui.models import Contact
from crm_tui.store.local_rows import LINKS_FIELD
from crm_tui.text import FOLD_VERSION

#: The saved form's layout; `saved_format` adds what the keys' meaning depends on.
LAYOUT = "dedup-keys-2"
COLUMNS = ("email", "phone", "name", "street", "city")
#: (position, local contact id, the source records it was merged from)
Merged = tuple[int, str, tuple[str, ...]]
Row = tuple[int, int, int, int, int]
NO_KEYS: Row = (0, 0, 0, 0, 0)


_EMAIL, _PHONE = attrgetter("email"), attrgetter("phone")
_STREET, _CITY = attrgetter("street"), attrgetter("city")
_BLAKE2B_8 = partial(hashlib.blake2b, digest_size=8)
_DIGEST = methodcaller("digest")


def code(text: str) -> int:
    """The 64-bit code of one key; never 0 (that is "no key")."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def codes(values: Sequence[str | None]) -> np.ndarray:
    """`values` as codes, each distinct text digested once; None and "" are 0. A slice at a
    time: one C loop over a million strings would hold the interpreter lock throughout."""
    out = np.zeros(len(values), dtype=np.uint64)
    known: dict[str | None, int] = {None: 0, "": 0}
    for start in range(0, len(values), CHUNK):
        part = values[start : start + CHUNK]
        fresh = [text for text in dict.fromkeys(part) if text not in known]
        known.update(zip(fresh, _digests(cast("list[str]", fresh)).tolist(), strict=True))
        out[start : start + len(part)] = np.fromiter(
            map(known.__getitem__, part), dtype=np.uint64, count=len(part)
        )
    return out


def _digests(texts: list[str]) -> np.ndarray:
    """`code` of each text, in C calls mapped over them (no Python frame per text)."""
    encoded = map(methodcaller("encode", "utf-8", "surrogatepass"), texts)
    digests = map(_DIGEST, map(_BLAKE2B_8, encoded))
    found = np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)
    found[found == 0] = 1
    return found


def name_text(name: tuple[str, str]) -> str:
    """A full name's key text; "" unless both parts are there (only full names are blocked
    on, see `possible`)."""
    return f"{name[0]}\x1f{name[1]}" if name[0] and name[1] else ""


@dataclass(frozen=True, slots=True)
class KeyArrays:
    """Per contact position: codes of its mailbox, phone, full name, street key, city."""

    email: np.ndarray
    phone: np.ndarray
    name: np.ndarray
    street: np.ndarray
    city: np.ndarray

    def __len__(self) -> int:
        return len(self.email)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)  # type: ignore[no-any-return]


class Keyer:
    """Contacts -> their key texts and codes, with the memo tables a build shares."""

    def __init__(self, phones: PhoneKeys) -> None:
        self.phones = phones
        self.cities = Cities()
        self._names: dict[tuple[str | None, str | None], tuple[str, str]] = {}

    def name(self, contact: Contact) -> tuple[str, str]:
        pair = (contact.first_name, contact.last_name)
        found = self._names.get(pair)
        if found is None:
            found = name_key(*pair)
            if len(self._names) < 200_000:
                self._names[pair] = found
        return found

    def texts(self, c: Contact) -> tuple[str | None, ...]:
        """One contact's key texts, in `COLUMNS` order."""
        return tuple(next(column) for column in self._columns([c]))

    def _columns(self, part: list[Contact]) -> tuple[Iterator[str | None], ...]:
        """The key texts of `part`, a column each (`COLUMNS` order), each one map."""
        return (
            map(mailbox_key, map(_EMAIL, part)),
            map(self.phones, map(_PHONE, part)),
            map(name_text, map(self.name, part)),
            map(street_key, map(_STREET, part)),
            map(self.cities, map(_CITY, part)),
        )

    def row(self, c: Contact) -> Row:
        return tuple(code(t) if t else 0 for t in self.texts(c))  # type: ignore[return-value]

    def arrays(self, contacts: Iterable[Contact]) -> KeyArrays:
        """Every contact's codes: the texts a column at a time over a slice of contacts
        (no Python frame per contact); a lazy sequence is read once."""
        columns: list[list[str | None]] = [[] for _ in COLUMNS]
        read = iter(contacts)
        while part := list(islice(read, CHUNK)):
            for column, texts in zip(columns, self._columns(part), strict=True):
                column.extend(texts)
        return KeyArrays(*(codes(column) for column in columns))


def merged_of(contacts: Iterable[Contact], first: int = 0) -> list[Merged]:
    """The local contacts a merge made, with the source records each links."""
    return [
        (at, c.id, tuple(str(x) for x in json.loads(c.raw).get(LINKS_FIELD) or ()))
        for at, c in enumerate(contacts, first)
        if c.source == "local" and LINKS_FIELD in c.raw
    ]


# -- saved form ----------------------------------------------------------------------------


def saved_format(region: str) -> str:
    """The saved keys' format name: keys folded or phone numbers read another way (another
    fold table, phone metadata, home region) are other keys, never reused."""
    return f"{LAYOUT}/{FOLD_VERSION}/{phonenumbers.__version__}/{region}"


def to_saved(
    keys: KeyArrays, merged: list[Merged], texts: dict[str, Texts]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata an ArtifactShelf saves (which checks them for damage)."""
    arrays = {name: keys.column(name) for name in COLUMNS}
    for name in FIELDS:
        arrays.update(texts[name].arrays(name))
    links = json.dumps([[record, list(linked)] for _, record, linked in merged])
    arrays["merged_at"] = np.array([at for at, _, _ in merged], dtype=np.int64)
    arrays["merged_links"] = np.frombuffer(links.encode(), dtype=np.uint8)
    return arrays, {"count": len(keys)}


def from_saved(
    arrays: Any, meta: Any, count: int
) -> tuple[KeyArrays, list[Merged], dict[str, Texts]] | None:
    """The keys saved for `count` records, or None when anything does not add up."""
    try:
        if meta.get("count") != count:
            return None
        texts = {name: Texts.saved(arrays, name, count) for name in FIELDS}
        if any(t is None for t in texts.values()):
            return None
        keys = KeyArrays(*(arrays[name] for name in COLUMNS))
        if any(len(keys.column(n)) != count or keys.column(n).dtype != np.uint64 for n in COLUMNS):
            return None
        links = json.loads(bytes(arrays["merged_links"]).decode())
        at = [int(x) for x in arrays["merged_at"]]
        if len(at) != len(links) or any(not 0 <= x < count for x in at):
            return None
        merged = zip(at, links, strict=True)
        found = [(x, str(r), tuple(str(t) for t in linked)) for x, (r, linked) in merged]
        return keys, found, texts  # type: ignore[return-value]
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None
