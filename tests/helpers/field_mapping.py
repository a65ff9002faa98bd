"""Payloads cached as a sync leaves them, for the field-mapping tests."""

from __future__ import annotations

from crm_tui.config import Settings
from crm_tui.demo import data
from crm_tui.fields.service import connector
from crm_tui.models import RecordKind
from crm_tui.sources.mapping import Mappings
from crm_tui.store import Database

N = 300


SEED = 11


def cache(
    db: Database, settings: Settings, source: str, stream: RecordKind, payloads: list
) -> None:
    """Payloads mapped with the built-in maps and committed, as a sync would leave them."""
    built = connector(settings, source, Mappings())
    records = [built.map_record(stream, p, "2026-11-01T00:00:00Z") for p in payloads]
    db.replace_stream(settings.user_id, source, stream, records)


def fub_people() -> list[dict]:
    people = [data.fub_person(SEED, i, N) for i in range(N)]
    return [p for p in people if "id" in p]  # the demo's one person without an id
