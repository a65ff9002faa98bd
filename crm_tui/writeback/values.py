"""Edits of vendor records as values: compared with what the vendor has, and laid over the
cached record until the vendor confirms them. Pure functions: the store uses them too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.models import Record
from crm_tui.phones import format_phone
from crm_tui.sources.writes import Value


def unified(record: Record, name: str) -> Value:
    """A record's field (or custom column, `custom.NAME`) as the outbox keeps values:
    text, a list of tags, None."""
    if name.startswith(CUSTOM_PREFIX):
        value = record.custom.get(name.removeprefix(CUSTOM_PREFIX))
    else:
        value = getattr(record, name, None)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _amount(value: Any) -> Decimal | None:
    """A value that is a number as written, or None. Not `formats.read_amount`, which reads
    what a person typed ("$1,200"): a text column holding "1,2" must differ from "12"."""
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def same(name: str, a: Value, b: Value) -> bool:
    """Whether two values of a field mean the same (tags in any order, 500000 = 500000.00,
    an e-mail in any case, "" = none)."""
    if a in (None, "", []) or b in (None, "", []):
        return a in (None, "", []) and b in (None, "", [])
    if name == "tags":
        return sorted(map(str, a)) == sorted(map(str, b))  # type: ignore[arg-type]
    if name == "amount" or (name.startswith(CUSTOM_PREFIX) and _both_numbers(a, b)):
        return _amount(a) == _amount(b)
    if name == "email":
        return str(a).casefold() == str(b).casefold()
    if name == "phone":  # the vendor may write back "(512) 555-0100" for 512-555-0100
        return format_phone(str(a)) == format_phone(str(b))
    return str(a) == str(b)


def _both_numbers(a: Value, b: Value) -> bool:
    """A custom number column's values (550000 = 550000.00); text that merely looks like a
    number compares the same way, which is what a person means by it too."""
    return _amount(a) is not None and _amount(b) is not None and not isinstance(a, list)


def differing(
    record: Record, values: Mapping[str, Value]
) -> tuple[dict[str, Value], dict[str, Value]]:
    """(base, wanted) for the fields whose value changes: what the person saw, what they
    want."""
    wanted = {n: v for n, v in values.items() if not same(n, unified(record, n), v)}
    return {n: unified(record, n) for n in wanted}, wanted


def conflicts(
    base: Mapping[str, Value], wanted: Mapping[str, Value], theirs: Mapping[str, Value]
) -> list[str]:
    """The fields the vendor changed since the person saw them, to something else than what
    they want."""
    return [
        n
        for n in wanted
        if not same(n, theirs.get(n), base.get(n)) and not same(n, theirs.get(n), wanted[n])
    ]


def rebased_tags(
    base: Mapping[str, Value], wanted: Mapping[str, Value], theirs: Mapping[str, Value]
) -> tuple[dict[str, Value], dict[str, Value]]:
    """Tags added or removed at the vendor meanwhile are no conflict: the person's own
    additions and removals are applied to the vendor's tags as they are now."""
    base, wanted = dict(base), dict(wanted)
    if "tags" not in wanted or same("tags", theirs.get("tags"), base.get("tags")):
        return base, wanted
    before, mine = _tags(base.get("tags")), _tags(wanted.get("tags"))
    now = _tags(theirs.get("tags"))
    removed = set(before) - set(mine)
    added = [t for t in mine if t not in before and t not in now]
    base["tags"] = now
    wanted["tags"] = [t for t in now if t not in removed] + added
    return base, wanted


def _tags(value: Value) -> list[str]:
    return [str(t) for t in value] if isinstance(value, list) else []


def with_values(record: Record, values: Mapping[str, Value]) -> Record:
    """The record as it will be once the vendor has `values` (the cache shows this while an
    edit waits)."""
    changes: dict[str, Any] = {}
    custom = dict(record.custom)
    for name, value in values.items():
        if name.startswith(CUSTOM_PREFIX):
            column = name.removeprefix(CUSTOM_PREFIX)
            if value in (None, ""):
                custom.pop(column, None)
            else:  # a number column's value stays a number: its filters compare numbers
                was = record.custom.get(column)
                custom[column] = _amount(value) if isinstance(was, Decimal) else value
            changes["custom"] = custom
        elif name == "tags":
            changes[name] = tuple(value) if isinstance(value, list) else ()
        elif name == "amount":
            changes[name] = _amount(value) if value not in (None, "") else None
        elif name == "probability":
            changes[name] = int(value) if value not in (None, "") else None  # type: ignore[arg-type]
        elif name == "email" and isinstance(value, str):
            changes[name] = value.lower()
        elif hasattr(record, name):
            changes[name] = value if value != "" else None
    return replace(record, **changes) if changes else record
