"""What a command works with: its settings, its store and its sync engine, each built on
first use, and the event loop its async work runs on."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crm_tui.cli.errors import CliError
from crm_tui.config import Settings, load_settings
from crm_tui.logs import SecretFilter, SecretMasker, setup_logging
from crm_tui.store import CacheStore, Database
from crm_tui.store.opening import open_database
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.sync.engine import SyncEngine

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a command works with, built on first use."""

    data_dir: Path | None = None
    env_file: Path | None = None
    debug: bool = False
    json: bool = False
    theme: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    output: Path | None = None  # the file a command is writing, for a full disk's message
    # False: the command reads the database itself and never loads the snapshot (a cold
    # call at a million records must not cost the whole cache); `store` then refuses.
    snapshot: bool = True
    _settings: Settings | None = None
    _store: CacheStore | None = None
    _loaded: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            extra = dict(self.overrides)
            if self.data_dir is not None:
                extra["crm_data_dir"] = self.data_dir
            self._settings = load_settings(self.env_file, **extra)
            self._start_logging(self._settings)
        return self._settings

    def _start_logging(self, settings: Settings) -> None:
        masker = SecretMasker(settings.secret_values())
        level = logging.DEBUG if self.debug else logging.INFO
        problem = setup_logging(settings.log_file, masker, level)
        if problem is not None:
            click.echo(f"warning: no log file: {single_line(problem)}", err=True)
        if self.debug:
            handler = logging.StreamHandler(sys.stderr)
            handler.addFilter(SecretFilter(masker))
            logging.getLogger("crm_tui").addHandler(handler)

    def use_settings(self, settings: Settings) -> None:
        """Settings made elsewhere (the demo's), in place of reading them."""
        self._settings = settings

    @property
    def settings_read(self) -> bool:
        return self._settings is not None

    @property
    def masker(self) -> SecretMasker:
        return SecretMasker(self.settings.secret_values())

    @property
    def loaded_masker(self) -> SecretMasker:
        """The settings' masker once they are read; before (reading them failed), none."""
        return self.masker if self.settings_read else SecretMasker()

    @property
    def store(self) -> CacheStore:
        """The cache, loaded from the database."""
        store = self.unloaded_store
        if not self._loaded:
            if not self.snapshot:
                raise RuntimeError("this command reads the database, not the loaded cache")
            store.load_sync()
            self._loaded = True
        return store

    @property
    def unloaded_store(self) -> CacheStore:
        """The cache over its database, nothing read yet: for commands that only write."""
        if self._store is None:
            settings = self.settings
            db = open_database(settings)  # first: it may name the user (a team's member)
            self._store = CacheStore(settings.user_id, db)
        return self._store

    @property
    def user_id(self) -> str:
        """Whose rows the command reads and writes: in a team database, with no CRM_USER_ID,
        the user the login role writes, known once the database is open."""
        if self.settings.database_url is None:
            return self.settings.user_id
        return self.unloaded_store.user_id

    @property
    def database(self) -> Database:
        """The cache's database, for a command that reads it without loading the snapshot."""
        db = self.unloaded_store.db
        assert db is not None  # a runtime's store is always over its database
        return db

    def close(self) -> None:
        """At the command's end, however it ended: the database releases whatever the
        command still holds (a lease, a pending generation, its owner row, a team
        database's connections) rather than leaving it to the next process's sweep."""
        store, self._store, self._loaded = self._store, None, False
        if store is None or store.db is None:
            return
        try:
            store.db.close()
        except Exception as exc:  # the command's own outcome stands; the sweep does the rest
            logger.warning("closing the database: %s", single_line(str(exc)))

    def writable_store(self, loaded: bool = True) -> CacheStore:
        """The store, for a command that writes: a read-only database fails here, before any
        work starts, with the file and the reason. `loaded=False`: nothing read yet, for a
        command that only writes."""
        store = self.unloaded_store
        if store.db is not None and store.db.read_only:
            raise store.db.read_only_error()
        return self.store if loaded else store


def runtime_of(ctx: click.Context, as_json: bool = False) -> Runtime:
    """The command's runtime (the root group's options filled in), `--json` as given."""
    rt: Runtime = ctx.ensure_object(Runtime)
    rt.json = as_json
    return rt


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's work. SIGTERM (systemd stopping a unit, `kill`) cancels it as Ctrl-C
    does, so a sync or an import drops what it had half written and closes its audit row,
    instead of leaving both for the next run to find."""

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(cancellable())
    except asyncio.CancelledError:
        raise CliError(
            "Stopped", "SIGTERM: nothing half-written was kept; the previous data stands"
        ) from None


class Engine:
    """A command's SyncEngine over `store`: built now (a bad mappings.toml fails here, before
    any work), closed when the `async with` around its work ends, however it ends."""

    def __init__(self, rt: Runtime, store: CacheStore, *, wait: bool = True) -> None:
        from crm_tui.sync.engine import SyncEngine

        self.engine: SyncEngine = SyncEngine(rt.settings, store, wait=wait)

    async def __aenter__(self) -> SyncEngine:
        return self.engine

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.engine.aclose()
