"""Which database a process's settings name: the team's PostgreSQL or the data dir's SQLite
file. The one place that chooses; psycopg is imported only in team mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_tui.store.db import Database

if TYPE_CHECKING:
    from crm_tui.config import CoreSettings


def open_database(settings: CoreSettings) -> Database:
    url = settings.database_url
    if url is None:
        return Database(settings.database_path)
    from crm_tui.store.postgres import PostgresDatabase

    return PostgresDatabase(url, settings.data_dir)
