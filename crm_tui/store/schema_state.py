"""A database's schema version beside the one this program knows, read without migrating:
`crm-tui db status`, and `db migrate`'s "from"."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm_tui.store.db import MIGRATIONS as SQLITE_STEPS

if TYPE_CHECKING:
    from crm_tui.config import CoreSettings


@dataclass(frozen=True)
class SchemaState:
    backend: str
    location: str
    version: int
    known: int

    @property
    def verdict(self) -> str:
        if self.version > self.known:
            return "newer than this crm-tui: upgrade crm-tui"
        if self.version < self.known:
            return f"{self.known - self.version} step(s) to apply: crm-tui db migrate"
        return "current"

    def to_json(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "location": self.location,
            "version": self.version,
            "programVersion": self.known,
            "state": self.verdict,
        }


def schema_state(settings: CoreSettings) -> SchemaState:
    url = settings.database_url
    if url is None:
        path = settings.database_path
        version = 0
        if path.exists():
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            finally:
                conn.close()
        return SchemaState("sqlite", str(path), version, len(SQLITE_STEPS))
    from crm_tui.store.pg_connection import PgConnection
    from crm_tui.store.pg_schema import MIGRATIONS as PG_STEPS
    from crm_tui.store.postgres import applied_version

    conn_pg = PgConnection(url)
    try:
        version = applied_version(conn_pg)
    finally:
        conn_pg.close()
    return SchemaState("postgresql", url.display, version, len(PG_STEPS))
