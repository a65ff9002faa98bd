"""Text handling: cleaning untrusted strings, and folding them for matching.

Every CRM, CSV and user string passes through here.

Three kinds of character never reach a terminal or a vCard from CRM text:
- control characters: C0 (but tab and newline), DEL and C1. ESC sequences, OSC 52 and
  friends would otherwise reach the terminal;
- bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069): they
  reorder what follows them, so `Ana\\u202eeL` would show as another name (Trojan Source);
- invisible characters: zero-width ones (U+200B-U+200D, U+2060-U+2064, U+FEFF, U+180E),
  the soft hyphen, Hangul fillers (U+115F, U+1160, U+3164, U+FFA0: printable, yet blank),
  interlinear annotations (U+FFF9-U+FFFB) and tag characters (U+E0000-U+E007F, which smuggle
  ASCII no one sees): they make two names that look the same differ. The joiners U+200C and
  U+200D go too, though Persian spelling and emoji sequences use them: a name keeps its
  letters, and one that merely looks like another can no longer be one.
U+2028 and U+2029 are line breaks: kept as a newline in text, a space on one line.

Search, filters and the duplicate finder match on folded text (case, accents and
transliteration ignored) and on a phone's bare digits.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

from crm_tui.fold_table import LETTERS

# Character-class ranges, shared with the raw payload's check in sources/mapping.py.
_BLANK_PRINTABLE = "\u115f\u1160\u3164\uffa0"
INVISIBLE = (
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    f"\ufff9-\ufffb\U000e0000-\U000e007f{_BLANK_PRINTABLE}"
)
LINE_BREAKS = "\u2028\u2029"
_BLANK = re.compile(f"[{_BLANK_PRINTABLE}]")
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{INVISIBLE}]")
_CONTROL_OR_BREAK = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{INVISIBLE}{LINE_BREAKS}]")
_CONTROL_KEEP_NOTHING = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{INVISIBLE}{LINE_BREAKS}]")


def _keep_line_breaks(match: re.Match[str]) -> str:
    return "\n" if match.group() in LINE_BREAKS else ""


def strip_controls(value: str) -> str:
    """Remove control, bidi and zero-width characters, keeping tabs and newlines (notes have
    them); U+2028 and U+2029 become newlines."""
    if "\u2028" in value or "\u2029" in value:
        return _CONTROL_OR_BREAK.sub(_keep_line_breaks, value)
    return _CONTROL.sub("", value)


def single_line(value: str) -> str:
    """A value for a table cell: every control, bidi and zero-width character, newlines
    included, becomes a space. One character for one, so match spans computed on the value
    still point at the same characters."""
    return _CONTROL_KEEP_NOTHING.sub(" ", value)


def clean(value: object) -> str | None:
    """An optional field's text: None stays None, everything else is str, stripped of controls."""
    if value is None:
        return None
    if type(value) is str:
        # No control, bidi or zero-width character (all non-printable): the common case, at
        # C speed. Hangul fillers are printable, and blank: beyond ASCII, look for them.
        if value.isprintable() and (value.isascii() or _BLANK.search(value) is None):
            return value.strip() or None
        text = value
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        return None
    text = strip_controls(text).strip()
    return text or None


#: After decomposing, what is still not ASCII in a Latin name (`ł`, `Ø`, `æ`, `þ`, `ı`,
#: `ŋ`...) becomes the ASCII a person types for it (`Łukasz` is `Lukasz`): the generated
#: table, from a maintained transliteration library. The middle dot goes too: `ŀ`
#: decomposes to `l·`, and Catalan mostly writes `col·legi` with the plain dot.
_LETTER_MAP = {**LETTERS, "·": ""}
_LETTERS = str.maketrans(_LETTER_MAP)
#: A regex substitution runs at C speed where str.translate and a generator call Python per
#: character; these two turn most non-ASCII names (`José Núñez`, `Wałęsa`) into ASCII. The
#: accents are the Latin alphabet's (Combining Diacritical Marks but the grapheme joiner,
#: which is no combining mark).
_LATIN_ACCENTS = "".join(chr(c) for c in range(0x300, 0x370) if unicodedata.combining(chr(c)))
_ACCENTS = re.compile(f"[{_LATIN_ACCENTS}]+")
_TABLED = re.compile(f"[{re.escape(''.join(_LETTER_MAP))}]")


def _letter(match: re.Match[str]) -> str:
    return _LETTER_MAP[match.group()]


#: Bump when fold()'s steps change; a change of the table or of Python's Unicode data
#: changes FOLD_VERSION by itself.
_FOLD_RULES = 1


def fold_version(letters: dict[str, str], unicode_version: str, rules: int) -> str:
    """A short digest of everything fold()'s output depends on."""
    material = json.dumps([rules, unicode_version, sorted(letters.items())], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:12]


#: Changes whenever fold() may fold a string differently: what is saved from folded text
#: (a persisted search index, duplicate keys) records it and is rebuilt when it differs.
FOLD_VERSION = fold_version(LETTERS, unicodedata.unidata_version, _FOLD_RULES)


def fold(text: str) -> str:
    """Lowercase, without accents, transliterated: `José` -> `jose`, `Søren` -> `soren`,
    `YILDIRIM` and `Yıldırım` -> `yildirim`. Search and the duplicate finder both match on
    it. ASCII (most data) takes the fast path."""
    if text.isascii():
        return text.lower()
    bare = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    if not bare.isascii():
        bare = _TABLED.sub(_letter, bare)  # as written: the table holds both cases
        if not bare.isascii():  # other scripts, or rarer marks: one character at a time
            bare = "".join(c for c in bare if not unicodedata.combining(c)).casefold()
            return bare.translate(_LETTERS)
    return bare.lower()


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


_NOT_DIGIT = re.compile(r"\D")
_NOT_DIGIT_BYTES = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)


def digits(text: str | None) -> str:
    """The digits of a text (a phone number's, to match however it was typed)."""
    if not text:
        return ""
    if text.isascii():  # bytes.translate deletes at C speed, faster than the regex
        return text.encode().translate(None, _NOT_DIGIT_BYTES).decode()
    return _NOT_DIGIT.sub("", text)
