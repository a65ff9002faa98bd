"""The values a field already holds across the cache, most used first: what a form offers
while someone types a status, a stage or a tag."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from crm_tui.models import Record
from crm_tui.text import single_line

MAX_SUGGESTIONS = 500
SUGGESTED_FIELDS = ("status", "stage", "tags")


def used_values(
    records: Iterable[Record], fields: Sequence[str] = SUGGESTED_FIELDS
) -> dict[str, list[str]]:
    """Field -> its distinct values, most used first. Plain loop: run it in a thread on a
    big cache."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in fields}
    for record in records:
        for name in fields:
            value = getattr(record, name, None)
            if not value:
                continue
            items = value if isinstance(value, tuple | list) else (value,)
            counts[name].update(v for v in items if isinstance(v, str) and v)
    return {
        name: [single_line(v).strip() for v, _ in count.most_common(MAX_SUGGESTIONS)]
        for name, count in counts.items()
    }
