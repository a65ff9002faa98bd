"""What every webhook signature check shares: the refusal reasons (as counted in
webhook_refusals), HMAC-SHA256 digests and constant-time comparison. Each vendor's own
scheme is declared by its connector (`Source.webhooks`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

#: How far a signed timestamp may be from our clock, either way (HubSpot: 5 minutes).
MAX_SKEW_MS = 5 * 60 * 1000

UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
FUTURE = "future"


def hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def hmac_base64(key: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def same(expected: str, given: str) -> bool:
    """Constant time; a header that is not ASCII refuses instead of raising."""
    return hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace"))


def freshness(timestamp_ms: str, now_ms: int | None = None) -> str | None:
    """None when a signed epoch-milliseconds timestamp is within MAX_SKEW_MS of now;
    else the refusal reason."""
    try:
        sent = int(timestamp_ms.strip())
    except ValueError:
        return BAD_SIGNATURE
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if now - sent > MAX_SKEW_MS:
        return STALE
    if sent - now > MAX_SKEW_MS:
        return FUTURE
    return None
