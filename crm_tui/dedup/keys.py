"""What two contact records are compared on: the mailbox an e-mail delivers to (see
`mailbox`), phone in E.164, and the folded name.

E-mail and phone are keys: equal keys make two records candidates. The name is evidence
only: it confirms or vetoes a candidate link, never makes one.
"""

from __future__ import annotations

import re
from enum import StrEnum

from rapidfuzz.distance import Indel

from crm_tui.phones import to_e164
from crm_tui.text import digits, fold

#: Regions that share the +1 country code: ten digits there are a whole number.
NANP_REGIONS = frozenset({"US", "CA", "PR", "GU", "VI", "AS", "MP"})
#: An extension after the number: "ext. 12", "extension 12", "x12", "#12".
_EXTENSION = re.compile(
    r"\s*[,;]?\s*(?<![a-z])(?:ext(?:ension)?\.?|x|#)\s*\d{1,7}\s*$", re.IGNORECASE
)
#: Common English short forms, folded. Optional evidence: "Bill" and "William" agree.
NICKNAMES: dict[str, str] = {
    "bill": "william",
    "will": "william",
    "billy": "william",
    "bob": "robert",
    "rob": "robert",
    "bobby": "robert",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "betsy": "elizabeth",
    "mike": "michael",
    "jen": "jennifer",
    "jenny": "jennifer",
    "rick": "richard",
    "dick": "richard",
    "rich": "richard",
    "joe": "joseph",
    "tom": "thomas",
    "chris": "christopher",
    "dan": "daniel",
    "danny": "daniel",
    "matt": "matthew",
    "kate": "katherine",
    "kathy": "katherine",
    "katie": "katherine",
    "jim": "james",
    "jimmy": "james",
    "jon": "jonathan",
    "steve": "stephen",
    "tony": "anthony",
    "andy": "andrew",
    "sam": "samuel",
    "alex": "alexander",
    "ben": "benjamin",
    "nick": "nicholas",
    "greg": "gregory",
    "ken": "kenneth",
    "ron": "ronald",
    "don": "donald",
    "ed": "edward",
    "pat": "patricia",
    "sue": "susan",
    "peggy": "margaret",
    "maggie": "margaret",
    "deb": "deborah",
    "debbie": "deborah",
    "cindy": "cynthia",
    "becky": "rebecca",
    "pam": "pamela",
    "tim": "timothy",
    "larry": "lawrence",
    "jerry": "gerald",
}
#: Indel similarity (0-1) above which two spellings count as the same name: a swapped
#: or missing letter in a seven-letter name stays above it, "mark" and "sarah" do not.
SIMILAR = 0.8


class NameAgreement(StrEnum):
    SAME = "same"  # equal once case and accents are folded, nicknames included
    SIMILAR = "similar"  # a typo apart, or an initial
    UNKNOWN = "unknown"  # one side has no name to compare
    DIFFERENT = "different"


class PhoneKeys:
    """Phone text -> E.164 (or `#` and the last ten digits when it will not parse).

    North American numbers, nearly all of a US team's data, take a digits-only fast path;
    everything else goes through `phonenumbers`, memoised per distinct text."""

    def __init__(self, region: str = "US") -> None:
        self.region = region.upper()
        self._nanp = self.region in NANP_REGIONS
        self._memo: dict[str, str | None] = {}

    def __call__(self, value: str | None) -> str | None:
        if not value:
            return None
        if "x" in value or "X" in value or "#" in value:
            value = _EXTENSION.sub("", value)  # an extension reaches the same line
        number = digits(value)
        if len(number) == 10 and self._nanp and value[0] != "+":
            return None if number[0] in "01" else "+1" + number
        if len(number) == 11 and number[0] == "1" and (self._nanp or value.lstrip()[0] == "+"):
            return "+" + number
        found = self._memo.get(value, "")
        if found == "":
            found = self._parse(value, number)
            if len(self._memo) < 100_000:
                self._memo[value] = found
        return found

    def _parse(self, value: str, number: str) -> str | None:
        if len(number) < 7 or len(set(number)) == 1:
            return None  # an extension, a placeholder like 000-000-0000
        try:
            return to_e164(value, self.region)
        except ValueError:
            return "#" + number[-10:] if len(number) >= 10 else None


def name_key(first: str | None, last: str | None) -> tuple[str, str]:
    """Folded (first, last); nicknames mapped to the full form they stand for."""
    given = fold(first or "").strip()
    given = NICKNAMES.get(given, given)
    return given, fold(last or "").strip()


def _similar(a: str, b: str) -> bool:
    return Indel.normalized_similarity(a, b) >= SIMILAR


def _given_agree(a: str, b: str) -> NameAgreement:
    if not a or not b:
        return NameAgreement.UNKNOWN
    if a == b:
        return NameAgreement.SAME
    short, long = sorted((a, b), key=len)
    if len(short.rstrip(".")) == 1 and long.startswith(short[0]):
        return NameAgreement.SIMILAR  # "J." and "John"
    return NameAgreement.SIMILAR if _similar(a, b) else NameAgreement.DIFFERENT


def compare_names(a: tuple[str, str], b: tuple[str, str]) -> NameAgreement:
    if a == b:
        return NameAgreement.SAME if any(a) else NameAgreement.UNKNOWN
    if not any(a) or not any(b):
        return NameAgreement.UNKNOWN
    given = _given_agree(a[0], b[0])
    family = _given_agree(a[1], b[1]) if a[1] and b[1] else NameAgreement.UNKNOWN
    parts = {given, family}
    if NameAgreement.DIFFERENT in parts:
        return NameAgreement.DIFFERENT
    if parts == {NameAgreement.SAME}:
        return NameAgreement.SAME
    if parts == {NameAgreement.UNKNOWN}:
        return NameAgreement.UNKNOWN
    return NameAgreement.SIMILAR
