"""Folding text for matching (case and accents) and mapping matches back for highlighting."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import AnyStr

#: Latin letters that are not a base letter plus accents, so decomposing leaves them as
#: they are: written as the ASCII a person types for them (`Łukasz` is `Lukasz`). Keyed
#: by the casefolded form; the middle dot is what `ŀ` (Catalan) decomposes to beside `l`.
_LETTERS = str.maketrans(
    {
        "æ": "ae", "ð": "d", "ø": "o", "þ": "th", "đ": "d", "ħ": "h", "ı": "i", "ĸ": "k",
        "ł": "l", "ŋ": "n", "œ": "oe", "ŧ": "t", "ƀ": "b", "ƈ": "c", "ɗ": "d", "ƒ": "f",
        "ɠ": "g", "ɨ": "i", "ƙ": "k", "ƚ": "l", "ɲ": "n", "ƞ": "n", "ɵ": "o", "ƥ": "p",
        "ƫ": "t", "ƭ": "t", "ʈ": "t", "ʋ": "v", "ƴ": "y", "ƶ": "z", "ȥ": "z", "ǝ": "e",
        "ə": "e", "ǥ": "g", "ȡ": "d", "ȴ": "l", "ȵ": "n", "ȶ": "t", "ȷ": "j", "ɇ": "e",
        "ɉ": "j", "ɍ": "r", "ɏ": "y", "·": "",
    }
)  # fmt: skip


def fold(text: str) -> str:
    """Lowercase, without accents, transliterated: `José` -> `jose`, `Søren` -> `soren`,
    `YILDIRIM` and `Yıldırım` -> `yildirim`. Search and the duplicate finder both match on
    it. ASCII (most data) takes the fast path."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return bare.translate(_LETTERS)


def fold_with_positions(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index it came from in `text`."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = fold(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


def spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where any of the (folded) terms occur in `text`, as merged [start, end) in `text`."""
    if not text or not terms:
        return []
    folded, origin = fold_with_positions(text)
    found = [(origin[start], origin[end - 1] + 1) for start, end in occurrences(folded, terms)]
    return merge_spans(found)


def occurrences(folded: AnyStr, terms: Sequence[AnyStr]) -> list[tuple[int, int]]:
    """Every [start, end) of every term in `folded` (a term may overlap another)."""
    found: list[tuple[int, int]] = []
    for term in terms:
        if not term:
            continue
        start = folded.find(term)
        while start >= 0:
            end = start + len(term)
            found.append((start, end))
            start = folded.find(term, end)
    return found


def merge_spans(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping and touching spans made one."""
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


_NOT_DIGIT = re.compile(r"\D")


_NOT_DIGIT_BYTES = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)


def digits(text: str | None) -> str:
    if not text:
        return ""
    if text.isascii():  # bytes.translate deletes at C speed: half the regex's time
        return text.encode().translate(None, _NOT_DIGIT_BYTES).decode()
    return _NOT_DIGIT.sub("", text)
