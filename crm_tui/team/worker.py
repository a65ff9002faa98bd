"""One sync worker for a team: `crm-tui sync --team DIR [--watch]`.

DIR holds one settings file per person, `USER.env`, with that person's vendor keys; the
file's name is their user id. The worker syncs each of them into the shared store, over one
connection (its own role, a `worker` member of their team), so fifty agents' apps read one
copy of each vendor's data and spend its rate limit once. Agents' apps need no vendor keys.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from crm_tui.config import ConfigError, Settings, load_settings
from crm_tui.models import SyncReport
from crm_tui.store import CacheStore
from crm_tui.store.db import Database

T = TypeVar("T")
# A user id that is also a safe file name, and never a path.
_USER_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}\.env$")


@dataclass(frozen=True)
class TeamUser:
    user_id: str
    env_file: Path


def team_users(folder: Path) -> list[TeamUser]:
    """Everyone with a settings file in `folder`, in name order."""
    if not folder.is_dir():
        raise ConfigError(f"--team: no such folder: {folder}")
    found = [
        TeamUser(path.name.removesuffix(".env"), path)
        for path in sorted(folder.iterdir())
        if _USER_FILE.match(path.name) and path.is_file()
    ]
    if not found:
        raise ConfigError(f"--team: {folder} holds no USER.env file (one per person, their keys)")
    return found


def user_settings(worker: Settings, user: TeamUser) -> Settings:
    """A person's settings: their file's keys, with the worker's database and data dir."""
    url = worker.crm_database_url
    return load_settings(
        user.env_file,
        crm_user_id=user.user_id,
        crm_database_url=url.get_secret_value() if url is not None else None,
        crm_data_dir=worker.data_dir,
    )


class TeamSync:
    """Every person's SyncEngine over the one database, run at once (each source of each
    person is its own lease, so two workers by mistake wait for each other, never mix)."""

    def __init__(self, worker: Settings, db: Database, folder: Path) -> None:
        from crm_tui.sync.engine import SyncEngine

        self.engines: dict[str, SyncEngine] = {}
        #: people left out, each with why (the others are synced all the same)
        self.skipped: dict[str, str] = {}
        #: what to tell whoever runs the worker (a file of keys others may read)
        self.warnings: list[str] = []
        served = db.writable_users()
        for user in team_users(folder):
            mode = user.env_file.stat().st_mode & 0o777
            if mode & 0o077:
                self.warnings.append(
                    f"{user.env_file} holds vendor keys and others may read it"
                    f" (mode {mode:o}): chmod 600 {user.env_file}"
                )
            if served is not None and user.user_id not in served:
                self.skipped[user.user_id] = (
                    f"{user.env_file.name}: this database role may not write"
                    f" {user.user_id}'s rows; its owner makes the worker's role a worker of"
                    f" {user.user_id}'s team (crm-tui db member add ROLE --position worker"
                    " --team TEAM), or the file goes"
                )
                continue
            store = CacheStore(user.user_id, db)
            store.load_statuses_sync()
            self.engines[user.user_id] = SyncEngine(user_settings(worker, user), store)
        if not self.engines:
            raise ConfigError("--team: nobody to sync: " + "; ".join(self.skipped.values()))

    async def sync_once(self, full: bool = False) -> dict[str, dict[str, SyncReport]]:
        found = await _every(e.sync_all(None, full=full) for e in self.engines.values())
        return dict(zip(self.engines, found, strict=True))

    async def watch(
        self,
        minutes: float,
        stop: asyncio.Event,
        on_run: Callable[[str, dict[str, SyncReport]], Any],
    ) -> None:
        from crm_tui.sync.scheduler import Scheduler

        schedulers = [
            Scheduler(engine, minutes, on_run=lambda reports, u=user: on_run(u, reports))
            for user, engine in self.engines.items()
        ]
        await _every(_until_stopped(s, stop) for s in schedulers)

    def stop(self, stop: asyncio.Event) -> None:
        """Stop watching: the syncs running now are cancelled (each keeps its previous
        data), and no other starts."""
        stop.set()
        self.cancel_all()

    def cancel_all(self) -> None:
        for engine in self.engines.values():
            for name in engine.running():
                engine.cancel(name)

    async def aclose(self) -> None:
        for engine in self.engines.values():
            await engine.aclose()


async def _until_stopped(scheduler: Any, stop: asyncio.Event) -> None:
    """A person's scheduled syncs until `stop`; a sync cancelled because of it ends the loop
    quietly (its data kept, as `sync --watch` keeps it)."""
    try:
        await scheduler.run_forever(stop)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise


async def _every(work: Iterable[Awaitable[T]]) -> list[T]:
    """Every person's work run at once and each to its end; a failure is raised once all are
    done (one left running when another failed would be cut off mid-commit at exit)."""
    ended = await asyncio.gather(*work, return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast("list[T]", ended)
