"""What the index holds of a record: its searchable fields, and the folded line made of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_tui.models import Contact, Deal, Record
from crm_tui.text import digits, fold

FIELD_SEP = "\x1f"  # never in data: control characters are stripped at ingest
SEP = FIELD_SEP.encode()
SEP_BYTE = SEP[0]
CONTACT_FIELDS = ("name", "email", "phone", "company", "status", "stage", "tags", "city")
DEAL_FIELDS = ("name", "property_address", "stage", "status", "amount")
# Fields whose values repeat across records (a few statuses, a few hundred cities) are
# matched once per distinct value, not indexed per record: a good share of the index's
# bytes, and a city held by a large part of the records answers with one gather instead
# of verifying each of their offsets.
VALUE_FIELDS = {"contacts": ("status", "stage", "tags", "city"), "deals": ("stage", "status")}
#: A line field a segment may match as a value field instead, when its values repeat
#: (see segment.company_repeats): a brokerage's name on a sixth of the contacts is then
#: one value tested, not a sixth of the records' offsets verified for each word of it.
COMPANY = "company"
LINE_FIELDS = {
    "contacts": tuple(f for f in CONTACT_FIELDS if f not in VALUE_FIELDS["contacts"]),
    "deals": tuple(f for f in DEAL_FIELDS if f not in VALUE_FIELDS["deals"]),
}


def field_text(record: Record, name: str) -> str:
    """A record's displayable value of a searchable field."""
    if name == "name":
        return record.name if isinstance(record, Contact) else (record.name or "")
    if name == "tags":
        return ", ".join(record.tags) if isinstance(record, Contact) else ""
    if name == "amount":
        amount = record.amount if isinstance(record, Deal) else None
        return f"{amount:,.0f}" if amount is not None else ""
    value = getattr(record, name, None)
    return value or ""


def custom_words(values: Mapping[str, Any]) -> str:
    """A record's custom text and list values, one field of its line: free words find
    them. Numbers and dates are left to their filters (`price_range>500000`)."""
    if not values:
        return ""
    words = [
        value if isinstance(value, str) else " ".join(value)
        for value in values.values()
        if isinstance(value, str | tuple)
    ]
    return " ".join(words)


def haystack(record: Record, company: bool = True) -> str:
    """A record's indexed text (LINE_FIELDS, then the phone's or amount's bare digits, then
    its custom text values), folded, fields apart; with `company` False, a contact's
    company left empty (matched as a value). Folding is per character and the separator
    is a starter character, so folding the joined line equals joining the folds."""
    if isinstance(record, Contact):
        first, last = record.first_name, record.last_name  # record.name, without a generator
        parts = (
            f"{first} {last}" if first and last else first or last or "",
            record.email or "",
            record.phone or "",
            (record.company or "") if company else "",
            digits(record.phone),
            custom_words(record.custom),
        )
    else:
        amount = str(int(record.amount)) if record.amount is not None else ""
        parts = (
            *(field_text(record, n) for n in LINE_FIELDS["deals"]),
            amount,
            custom_words(record.custom),
        )
    return fold(FIELD_SEP.join(parts)).replace("\n", " ")
