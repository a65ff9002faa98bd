"""The store's two back ends for parametrised tests: a SQLite file, or a PostgreSQL database
of its own on the session's scratch server (a copy of a migrated template, made in a few
milliseconds)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from crm_tui.database_url import DatabaseUrl
from crm_tui.store import Database
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.team.scratch_server import ScratchServer

BACKENDS = ("sqlite", "postgresql")
#: For a test in a module whose store fixture is on both back ends, but which runs the
#: `crm-tui` CLI as a child process: the CLI opens the SQLite file in the data dir alone.
SQLITE_ONLY = pytest.mark.parametrize("backing", ["sqlite"], indirect=True)
TEMPLATE = "crm_template"
_numbers = itertools.count(1)


def make_template(server: ScratchServer, data_dir: Path) -> None:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    PostgresDatabase(DatabaseUrl(server.url(dbname=TEMPLATE)), data_dir).close()


def new_database(server: ScratchServer) -> str:
    """A fresh, migrated database's name."""
    name = f"t{next(_numbers)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return name


@dataclass
class Backing:
    """Where one test's store lives; `open()` opens it again, as another process would."""

    kind: str
    data_dir: Path
    url: str = ""
    opened: list[Database] = field(default_factory=list)

    def open(self) -> Database:
        db: Database
        if self.kind == "sqlite":
            db = Database(self.data_dir / "crm.sqlite3")
        else:
            db = PostgresDatabase(DatabaseUrl(self.url), self.data_dir)
        self.opened.append(db)
        return db

    def env(self) -> dict[str, str]:
        """What a child process's environment needs to open this store (over its data dir)."""
        return {"CRM_DATABASE_URL": self.url} if self.url else {}

    def settings(self) -> dict[str, str]:
        """What Settings need to open this store, as field values."""
        return {"crm_database_url": self.url} if self.url else {}

    def close_all(self) -> None:
        for db in self.opened:
            # a test may have closed it already, or broken it on purpose
            with contextlib.suppress(Exception):
                db.close()


def backing_for(
    kind: str, data_dir: Path, server: Callable[[], ScratchServer]
) -> Iterator[Backing]:
    url = ""
    if kind == "postgresql":
        scratch = server()
        url = scratch.url(dbname=new_database(scratch))
    backing = Backing(kind, data_dir, url)
    yield backing
    backing.close_all()
