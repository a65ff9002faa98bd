"""Phone numbers in one format: national for the home region (`(512) 555-0100`),
international for the rest (`+44 20 7946 0958`); what cannot be read is shown as typed."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from crm_tui.text import single_line


@lru_cache(maxsize=8192)  # lists redraw the same numbers at every scroll
def format_phone(value: str | None, region: str = "US") -> str:
    if not value:
        return ""
    text = single_line(value).strip()
    try:
        number = phonenumbers.parse(text[:64], region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(number):
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
