"""Records as a source would have cached them, for tests that seed a store by hand."""

from __future__ import annotations

from typing import Any

from crm_tui.models import Contact


def cached_contact(source: str, n: int | str, user_id: str, **fields: Any) -> Contact:
    """Contact `n` of `source` (id `source:n`), owned by `user_id`."""
    return Contact(id=f"{source}:{n}", source=source, remote_id=str(n), user_id=user_id, **fields)
