"""Custom columns: what one is (a name, the label people read, a type), and a record's values
for them as SQLite keeps them and as `--json` prints them.

A record's `custom` maps a column's name to its typed value: text -> str, number and money
-> Decimal (exact, as amounts are), date -> an ISO date (str), list -> a tuple of str. A
column whose payload value could not be read as its type holds None; a column without a
value is absent. The stored text is JSON with numbers as JSON numbers, read back as
Decimal: it says each value's type by itself, so loading needs no declaration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn

from crm_tui import jsoncodec
from crm_tui.formats import field_label

COLUMN_TYPES = ("text", "number", "date", "money", "list")
#: Refers to a custom column where a unified field name would stand (`custom.lender`).
CUSTOM_PREFIX = "custom."
# ASCII identifiers only: a name is typed in queries (`lender:quicken`) and in TOML keys.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def is_column_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    label: str
    type: str = "text"

    @classmethod
    def implied(cls, name: str) -> Column:
        """A column mapped in `mappings.toml` without a `[columns.NAME]` table: text."""
        return cls(name, field_label(name))

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "type": self.type}


class _NoCustom(dict[str, Any]):
    """The one empty `custom` every record without custom values shares (a million records,
    one object). Read-only, so that no one fills it for all of them at once."""

    __slots__ = ()

    def __hash__(self) -> int:  # a dataclass default must be hashable
        return 0

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("a record's custom values are replaced whole, never changed in place")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse


NO_CUSTOM: dict[str, Any] = _NoCustom()


def _stored(value: Any) -> str:
    if isinstance(value, Decimal):
        # a JSON number, exactly as written (a float would lose digits past 15)
        return str(value) if value.is_finite() else "null"
    return jsoncodec.dumps(list(value) if isinstance(value, tuple) else value)


def custom_text(values: dict[str, Any]) -> str | None:
    """The column's stored text; None (NULL) for no values."""
    if not values:
        return None
    return "{" + ",".join(f"{jsoncodec.dumps(k)}:{_stored(v)}" for k, v in values.items()) + "}"


def custom_values(text: str | None) -> dict[str, Any]:
    """`custom_text` read back; a value that is not such text reads as no values (one damaged
    cell must not stop a million records loading)."""
    if not text:
        return NO_CUSTOM
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, RecursionError):
        return NO_CUSTOM
    if not isinstance(data, dict) or not data:
        return NO_CUSTOM
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def custom_json(values: dict[str, Any]) -> dict[str, Any]:
    """For `--json` and exports: amounts as strings (as `amount` is), lists as lists."""
    return {
        k: str(v) if isinstance(v, Decimal) else list(v) if isinstance(v, tuple) else v
        for k, v in values.items()
    }
