"""Which database a process's settings name: the team's PostgreSQL or the data dir's SQLite
file. The one place that chooses; psycopg is imported only in team mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crm_tui.store.db import Database

if TYPE_CHECKING:
    from crm_tui.config import CoreSettings


def open_database(settings: CoreSettings) -> Database:
    """The database; in a team database, with no CRM_USER_ID given, `settings`' user
    becomes the one the login role writes (an agent's or a lead's own): the OS user name,
    the default elsewhere, means nothing to the team's database and showed an empty app."""
    url = settings.database_url
    if url is None:
        return Database(settings.database_path)
    from crm_tui.store.postgres import PostgresDatabase

    db = PostgresDatabase(url, settings.data_dir)
    adopt_role_user(settings, db.writable_users)
    return db


def adopt_role_user(settings: CoreSettings, writable: Callable[[], frozenset[str] | None]) -> None:
    """With no CRM_USER_ID given, the one user the login role writes becomes `settings`'
    user (an agent's or a lead's own); a role that writes several (a worker) or every
    one (the owner) leaves the default. The database is asked only then."""
    if "crm_user_id" in settings.model_fields_set:
        return
    users = writable()
    if users and len(users) == 1:
        settings.crm_user_id = next(iter(users))
