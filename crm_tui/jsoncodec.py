"""JSON in and out of the sync's hot path: orjson where it can, the standard library where
it cannot (integers beyond 64 bits, NaN tokens, keys that are not strings)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(content: bytes | str) -> Any:
    """Parse JSON; raises ValueError when neither parser accepts it."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is; unknown types become their str()."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # a huge integer, a key that is not a string
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
