"""Reading what people type (amounts, dates) and showing values the way people read them.

The one amount parser for the project, with two entrances: `parse_amount` for what a person
types (the local CRM's form, the CLI, the search filters: strict, `450k` and `$1.2M` read),
`read_amount` for what a CRM or a spreadsheet stored (the sync's mapping, write-back
comparisons, the deal charts: lenient about currency signs and commas). Both end in one
range check. Dates are read leniently; where `03/04/2026` could be either, the locale
decides (see `day_first`).
"""

from __future__ import annotations

import math
import os
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_tui.timefmt import parse_utc

MAX_AMOUNT_CHARS = 64
MAX_MAGNITUDE = 15  # digits before the point: below 1e15
MAX_DECIMALS = 20

_SUFFIXES = {"k": 3, "m": 6, "mm": 6, "b": 9, "bn": 9}
_AMOUNT = re.compile(
    r"(?P<sign>-)?\$?(?P<number>(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,9})?)"
    r"(?P<suffix>k|mm|m|bn|b)?",
    re.IGNORECASE,
)
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+")
AMOUNT_HELP = "not an amount: try 450k, $1.2M or 1,250,000.50"


def parse_amount(text: str) -> Decimal:
    """`$1.2M`, `450k`, `1,250,000`, `$1,250,000.50`, `USD 12.5`, `1e6` -> Decimal.

    Commas group thousands only (`1,25` is refused rather than read as 125 or 1.25).
    Raises ValueError with a message for the person who typed it."""
    squeezed = re.sub(r"\s+|^usd|usd$", "", text.strip(), flags=re.IGNORECASE)
    if len(squeezed) > MAX_AMOUNT_CHARS:
        raise ValueError(AMOUNT_HELP)
    match = _AMOUNT.fullmatch(squeezed)
    if match is None:
        raise ValueError(AMOUNT_HELP)
    whole = re.split(r"[.e]", match["number"], flags=re.IGNORECASE)[0]
    if "," in whole and not _GROUPED.fullmatch(whole):
        raise ValueError("commas must group thousands, as in 1,250,000")
    try:
        amount = Decimal(match["number"].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise ValueError(AMOUNT_HELP) from None
    if match["suffix"]:  # by the exponent: scaleb would trap Overflow on 1e999999999k
        sign, digits, exponent = amount.as_tuple()
        assert isinstance(exponent, int)
        amount = Decimal((sign, digits, exponent + _SUFFIXES[match["suffix"].lower()]))
    try:
        amount = amount_in_range(amount)
    except OutOfRange:
        raise ValueError("too large: under 1,000,000,000,000,000") from None
    if amount == amount.to_integral_value():
        amount = amount.quantize(Decimal(1))  # 1.2E+6 -> 1200000
    return -amount if match["sign"] else amount


_MONEY_JUNK = re.compile(r"[\s$,€£]|USD", re.IGNORECASE)


def read_amount(value: Any) -> Decimal | None:
    """An amount as a program stored it: a number, or text with currency signs, spaces and
    commas about it (`$1,250,000.50`, `USD 12.5`, `1.2e6`); None when empty. Raises
    ValueError saying what is wrong, for a quarantine reason."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        amount = Decimal(str(value))
    elif isinstance(value, str):
        text = _MONEY_JUNK.sub("", value)
        if not text:
            return None
        if len(text) > MAX_AMOUNT_CHARS:
            raise ValueError(f"not a number (longer than {MAX_AMOUNT_CHARS} characters)")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {value[:40]!r}") from None
        if not amount.is_finite():
            raise ValueError("not a finite number")
    else:
        raise ValueError(f"not a number ({type(value).__name__})")
    return amount_in_range(amount)


class OutOfRange(ValueError):
    """An amount too large to keep: what a person typed is told so in their words."""


def amount_in_range(amount: Decimal) -> Decimal:
    """The one range check for money, typed or synced: below 1e15, at most 20 decimals.
    By its exponent, never by arithmetic: comparing 1E+999999999 raises Overflow."""
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity handed in as a Decimal
        raise ValueError("not a finite number")
    if amount.is_zero():
        return amount if -MAX_DECIMALS <= exponent <= 0 else Decimal(0)
    if amount.adjusted() >= MAX_MAGNITUDE:
        raise OutOfRange("out of range")
    if exponent < -MAX_DECIMALS:
        raise ValueError(f"more than {MAX_DECIMALS} decimal places")
    return amount


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def format_amount(amount: Decimal | None, currency: str = "USD") -> str:
    """`$1,522,000`, `$1,250,000.50`, `1,000 CAD`: cents only when there are some."""
    if amount is None:
        return ""
    places = 0 if amount == amount.to_integral_value() else 2
    number = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get((currency or "").upper())
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}".rstrip()


# -- dates ------------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
#: Territories that write the month first (12/15/2026). Everyone else writes the day first;
#: year-first locales type ISO dates, which are read the same everywhere.
MONTH_FIRST = frozenset({"US", "PH", "FM", "MH", "PW", "AS", "GU", "MP", "PR", "UM", "VI"})
DATE_HELP = "not a date: try 2026-12-15, 12/15/2026 or Dec 15 2026"


class NotADate(ValueError):
    """Text that is no date in any form read here (not a date that does not exist)."""


def locale_territory(environ: dict[str, str] | None = None) -> str | None:
    """The territory of the locale dates are written in: LC_ALL, LC_TIME, then LANG
    (`en_GB.UTF-8` -> `GB`), as POSIX orders them. None for C/POSIX or unset."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_TIME", "LANG"):
        value = env.get(name)
        if value:
            match = re.match(r"[A-Za-z]{2,3}[_-]([A-Za-z]{2})\b", value)
            return match.group(1).upper() if match else None
    return None


def day_first(environ: dict[str, str] | None = None) -> bool:
    """Whether `03/04/2026` is 3 April. Month first (US) when the locale says nothing."""
    territory = locale_territory(environ)
    return territory is not None and territory not in MONTH_FIRST


def _year(text: str) -> int:
    if len(text) == 4:
        return int(text)
    if len(text) == 2:
        return 2000 + int(text)
    raise NotADate(DATE_HELP)


def parse_date(text: str, dayfirst: bool | None = None) -> date:
    """`2026-12-15`, `12/15/2026`, `15.12.2026`, `Dec 15 2026`, `15 December 2026`,
    `December 15th, 2026`. `dayfirst` settles `03/04/2026` (default: the locale's order).
    Raises ValueError with a message for the person who typed it."""
    words = [w for w in re.split(r"[\s,/.\-]+", text.strip().lower()) if w]
    words = [re.sub(r"(?<=\d)(st|nd|rd|th)$", "", w) for w in words]
    if len(words) != 3 or any(len(w) > 9 for w in words):
        raise NotADate(DATE_HELP)
    named = [w for w in words if w in _MONTHS]
    try:
        if named:
            month = _MONTHS[named[0]]
            day_text, year_text = (w for w in words if w != named[0])
            if len(day_text) == 4:  # 2026 Dec 15
                day_text, year_text = year_text, day_text
            return date(_year(year_text), month, int(day_text))
        if not all(w.isdigit() for w in words):
            raise NotADate(DATE_HELP)
        if len(words[0]) == 4:  # ISO order, whatever the separator
            return date(int(words[0]), int(words[1]), int(words[2]))
        first, second, year = int(words[0]), int(words[1]), _year(words[2])
        if dayfirst is None:
            dayfirst = day_first()
        if first > 12 or (dayfirst and second <= 12):
            return date(year, second, first)
        return date(year, first, second)
    except NotADate:
        raise
    except ValueError:  # a day, month or year out of its range
        raise ValueError(f"no such date: {text.strip()[:20]}") from None


def format_date(value: str | None) -> str:
    """An ISO date as people read it: `Dec 15, 2026` (unambiguous in every locale)."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return value
    return f"{day:%b} {day.day}, {day.year}"


def local_time(stamp: str | None) -> str:
    """A UTC timestamp in the local time zone, with its zone's name."""
    when = parse_utc(stamp)
    if when is None:
        return ""
    local = when.astimezone()
    return f"{local:%b} {local.day}, {local:%Y %H:%M %Z}"


def utc_time(stamp: str | None) -> str:
    when = parse_utc(stamp)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


# -- labels -----------------------------------------------------------------------------------

_LABELS = {
    "id": "Id",
    "remote_id": "Remote id",
    "contact_remote_id": "Contact",
    "postal_code": "Postal code",
    "property_address": "Property address",
    "close_date": "Close date",
    "probability": "Probability",
    "remote_created": "Created",
    "remote_updated": "Updated",
    "synced_at": "Synced",
    "email": "E-mail",
}


def field_label(name: str) -> str:
    """A record field as people call it: `close_date` -> `Close date`."""
    return _LABELS.get(name) or name.replace("_", " ").capitalize()
