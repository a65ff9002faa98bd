"""A source's match keys brought up to date for a few changed contacts (a webhook, an
incremental sync), instead of re-keying every contact of the source."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from crm_tui.dedup.keys import PhoneKeys, name_key
from crm_tui.dedup.mailbox import mailbox_key
from crm_tui.dedup.possible import Cities
from crm_tui.models import Contact
from crm_tui.positions import IdPositions

if TYPE_CHECKING:
    from crm_tui.dedup.clusters import SourceKeys

#: Re-keying a share of a source larger than this costs about what building it afresh does.
REKEY_SHARE = 0.05
_LISTS = ("ids", "emails", "phones", "names", "updated", "streets", "cities")


def rekeyed(
    keys: SourceKeys,
    version: object,
    stream: Mapping[str, Contact],
    ids: set[str],
    phones: PhoneKeys,
    links_field: str,
) -> SourceKeys:
    """`keys` with the contacts `ids` keyed again from `stream` (the
    source's current contacts; an id missing there was deleted), under `version`."""
    lists = {name: list(getattr(keys, name)) for name in _LISTS}
    at = IdPositions(lists["ids"]).find(ids)
    cities = Cities()
    gone = sorted((at[i] for i in ids if i in at and i not in stream), reverse=True)
    for record_id in ids:
        contact = stream.get(record_id)
        if contact is None:
            continue
        values = _keys_of(contact, phones, cities)
        if record_id in at:
            for name, value in zip(_LISTS, values, strict=True):
                lists[name][at[record_id]] = value
        else:
            for name, value in zip(_LISTS, values, strict=True):
                lists[name].append(value)
    for position in gone:  # from the end, so the positions before stay right
        for values in lists.values():
            del values[position]
    merged = [(i, linked) for i, linked in keys.merged if i not in ids]
    for record_id in ids:
        contact = stream.get(record_id)
        if contact is not None and contact.source == "local" and links_field in contact.raw:
            linked = json.loads(contact.raw).get(links_field) or ()
            merged.append((contact.id, tuple(str(x) for x in linked)))
    return replace(keys, version=version, merged=merged, **lists)  # type: ignore[arg-type]


def _keys_of(c: Contact, phones: PhoneKeys, cities: Cities) -> tuple[object, ...]:
    """One contact's keys, in `_LISTS` order, as SourceKeys.build makes them."""
    return (
        c.id,
        mailbox_key(c.email),
        phones(c.phone),
        name_key(c.first_name, c.last_name),
        c.remote_updated or c.remote_created or "",
        c.street,
        cities(c.city),
    )
