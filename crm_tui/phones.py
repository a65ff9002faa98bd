"""Phone numbers: the one place they are read (`read_phone`), stored as E.164 (`to_e164`:
the local CRM's form, the duplicate finder's keys) and shown in one format (`format_phone`:
national for the home region, `(512) 555-0100`, international for the rest, `+44 20 7946
0958`; what cannot be read is shown as typed)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from crm_tui.text import single_line


def read_phone(text: str, region: str = "US") -> phonenumbers.PhoneNumber:
    """The number `text` stands for, dialled from `region`. Raises ValueError with a
    person-readable reason."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    # "possible" (right length for its country), not "valid": the numbering plan metadata
    # lags new area codes, and numbers merged in from vendor CRMs must not be refused.
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a valid phone number")
    return number


def to_e164(text: str, region: str = "US") -> str:
    """`+15125550100`; ValueError as `read_phone`."""
    return phonenumbers.format_number(read_phone(text, region), phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=8192)  # lists redraw the same numbers at every scroll
def format_phone(value: str | None, region: str = "US") -> str:
    if not value:
        return ""
    text = single_line(value).strip()
    try:
        number = read_phone(text[:64], region)
    except ValueError:
        return text
    # By country code, not by region: a new area code the metadata does not know yet is
    # still a home number (and NANP numbers share one format).
    home = number.country_code == phonenumbers.country_code_for_region(region.upper())
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)
