"""Whether one person's records disagree on a field: values compared as what they mean
(a phone by its number, an e-mail by its mailbox, text by its folded letters), never by how
each CRM happened to write them."""

from __future__ import annotations

from collections.abc import Iterable

from crm_tui.dedup.keys import PhoneKeys
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.text import fold


def compared_as(name: str, value: str, phones: PhoneKeys) -> str | None:
    """What field `name`'s `value` is compared as; None when it says nothing."""
    if name == "phone":
        return phones(value)
    if name == "email":
        return mailbox_key(value)
    return fold(value).strip() or None


def values_differ(name: str, values: Iterable[str], phones: PhoneKeys) -> bool:
    """Whether the non-empty `values` of field `name` are more than one value."""
    return len({compared_as(name, v, phones) for v in values if v} - {None}) > 1
