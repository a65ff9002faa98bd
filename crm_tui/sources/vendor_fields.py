"""Vendor field metadata: the fields a vendor says a stream has, custom ones included.

A connector declares where its vendor lists them (`FieldList`: a paged `Stream`, and how one
listed item becomes a `VendorField`); `Source.vendor_fields` reads every page through the
source's one HTTP client (auth, retries, rate budget, secret masking: `sources/http.py`) and
parses them here, so no connector carries a copy of the reading or of its errors.

What comes back is vendor text: labels and types are stripped of control, bidi and
zero-width characters and kept to one line here, and are still shown with markup off. A
response that is not the documented shape is an error that says which item and why: a
half-read list would look complete to whoever maps from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_tui.sources.errors import NotFound, RemoteError
from crm_tui.sources.kit import VendorField
from crm_tui.sources.pagination import Stream, read_pages
from crm_tui.text import single_line, strip_controls

if TYPE_CHECKING:
    from crm_tui.sources.http import HttpClient

#: A name that is a plain step of a field-map path (`customLender`, a Pipedrive hash,
#: HubSpot's `price_range`); a vendor name outside it cannot be mapped, so is not listed.
_PATH_STEP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9a-f]{40}")
MAX_LABEL = 120


class Malformed(ValueError):
    """One listed item is not the documented shape; the message says how."""


#: One listed item -> the field it describes, or None for an item that is no field to list
#: (an archived property, a standard field the payloads already show).
ItemReader = Callable[[Mapping[str, Any]], VendorField | None]


@dataclass(frozen=True, slots=True)
class FieldList:
    """Where a vendor lists a stream's fields and how one item reads. `fallback`: where to
    ask when the first place answers 404 (an account or API version without it)."""

    stream: Stream
    read: ItemReader
    fallback: FieldList | None = None


def text(item: Mapping[str, Any], *keys: str, required: bool = True) -> str:
    """The first of `keys` holding a string, cleaned to one line; "" when none does and it
    is not `required`."""
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return single_line(strip_controls(value)).strip()[:MAX_LABEL]
    if required:
        raise Malformed(f"no {' or '.join(keys)} string in it")
    return ""


def path_step(name: str) -> str | None:
    """`name` if it can be a step of a field-map path, else None."""
    return name if _PATH_STEP.fullmatch(name) else None


async def read_fields(
    client: HttpClient, listing: FieldList, display_name: str, stream: str
) -> list[VendorField]:
    """Every field `listing` names, in the vendor's order, each path once. Raises
    RemoteError (and the HTTP layer's SourceErrors) with the item at fault named."""
    what = f"{stream} field metadata"
    try:
        found: dict[str, VendorField] = {}
        n = 0
        async for page in read_pages(client, listing.stream, what):
            for item in page.records:
                n += 1
                if not isinstance(item, Mapping):
                    raise Malformed("not a JSON object")
                field = listing.read(item)
                if field is not None:
                    found.setdefault(field.path, field)
        return list(found.values())
    except NotFound:
        if listing.fallback is None:
            raise
        return await read_fields(client, listing.fallback, display_name, stream)
    except Malformed as error:
        raise RemoteError(
            f"Failed to read {display_name}'s {what}",
            f"item {n} of the list is not the documented shape ({error}): nothing was used",
        ) from None
