"""Follow Up Boss webhooks as its servers send them: the events and their signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

FUB_KEY = "fub-system-key-0123456789"


def fub_sign(body: bytes, key: str = FUB_KEY) -> str:
    return hmac.new(key.encode(), base64.b64encode(body), hashlib.sha256).hexdigest()


def fub_event(event: str, ids: Sequence[Any], n: int = 1) -> dict[str, Any]:
    return {
        "eventId": f"e{n}",
        "eventCreated": "2026-05-01T12:00:00Z",
        "event": event,
        "resourceIds": list(ids),
        "uri": None,
    }
