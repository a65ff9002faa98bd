"""JSON in and out of the sync's hot path: orjson where it can, the standard library where
it cannot (integers beyond 64 bits, NaN tokens, keys that are not strings, lone surrogates).

Both paths agree on what comes out:
- `loads`: integers exact within 64 bits, floats beyond (infinity past 1e308), as orjson
  reads them; the standard library alone would keep 30 digits exactly and refuse 5,000;
- `dumps`: text SQLite can store. orjson refuses a lone surrogate, the standard library
  writes it; `dumps` then raises ValueError rather than hand back text no UTF-8 encoder
  takes (it would fail a whole batch of rows at once).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INT64_MIN, _UINT64_END = -(2**63), 2**64


def _parse_int(text: str) -> int | float:
    if len(text) <= 20:
        value = int(text)
        if _INT64_MIN <= value < _UINT64_END:
            return value
    return float(text)


def loads(content: bytes | str) -> Any:
    """Parse JSON; raises ValueError when neither parser accepts it."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content, parse_int=_parse_int)


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is; unknown types become their str(). Raises
    ValueError for text that cannot be encoded as UTF-8 (a lone surrogate)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # a huge integer, a key that is not a string, a lone surrogate
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text that cannot be encoded as UTF-8 (a lone surrogate)") from None
    return text
