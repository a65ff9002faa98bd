"""The Textual app: owns the store, the engine and the search index; wires screens to them.

Attributes down, messages up: screens read the store and subscribe to `store_changed`; they
ask the app to act (sync, cancel, clear, test) through its methods. Syncs run as async
workers, one group per source, that never take the app down when they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import importlib
import logging
import pkgutil
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from crm_tui.background import background_thread
from crm_tui.config import DISPLAY_NAMES, ConfigError, Settings, config_dir
from crm_tui.dedup import DuplicateFinder, People
from crm_tui.dedup.clusters import EMPTY as EMPTY_PEOPLE
from crm_tui.dedup.merge import MergeResult
from crm_tui.dedup.review import EMPTY_REVIEW, Review
from crm_tui.heap import release_gradually
from crm_tui.insights.dealtable import SegmentTables
from crm_tui.insights.leads import SegmentLeads
from crm_tui.local_crm import LocalCrm
from crm_tui.logs import SecretFilter, SecretMasker
from crm_tui.models import KINDS, Outcome, RecordKind, StreamReport, SyncReport
from crm_tui.screens.confirm import QuitConfirmScreen
from crm_tui.screens.store_error import StoreErrorScreen
from crm_tui.screens.typing import TypeToFilter
from crm_tui.search.index import SearchIndex
from crm_tui.search.reindex import Key, PendingReindex
from crm_tui.search.stored import index_streams
from crm_tui.sources.base import SourceContext
from crm_tui.sources.errors import SourceError
from crm_tui.sources.http import tls_context
from crm_tui.sources.messages import problem_of, sync_summary
from crm_tui.store import CacheStore, Database, StoreChange
from crm_tui.store.damage import damaged
from crm_tui.store.errors import StoreError
from crm_tui.store.health import pages_problem
from crm_tui.store.leases import Holder
from crm_tui.store.opening import open_database
from crm_tui.store.settling import settle_all
from crm_tui.sync.engine import ConnectionResult, SyncEngine, failed_report
from crm_tui.sync.scheduler import announce_next_run
from crm_tui.tomlfile import read_toml, where
from crm_tui.tuning import settle_heap, tune_interactive
from crm_tui.writeback.service import Choice, WriteBack
from crm_tui.writeback.shown import Decision, anything_waits, decision_notice, drain_notices

log = logging.getLogger(__name__)


# -- keymap.toml ---------------------------------------------------------------------------


def keymap_path() -> Path:
    return config_dir() / "keymap.toml"


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def known_binding_ids() -> set[str]:
    """Every binding id a keymap may name: the ids on the BINDINGS of the app, its screens
    and its widgets (every module of theirs is imported first, so none is missed)."""
    import crm_tui.screens
    import crm_tui.widgets

    for package in (crm_tui.screens, crm_tui.widgets):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    ids = set()
    for cls in _subclasses(DOMNode):
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


KeyPath = tuple[str, ...]


def _flatten(table: dict[str, Any], keys: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """`mode.search = "f12"` (unquoted) reads as a table: the id is the dotted path."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, (*keys, key))
        else:
            yield (*keys, key), value


def load_keymap(path: Path) -> tuple[dict[str, str], list[str]]:
    """The bindings `keymap.toml` asks for, and its problems (file and line each): syntax,
    unknown binding ids, values that are not keys."""
    data, text, problems = read_toml(path)
    if problems or not data:
        return {}, problems
    known = known_binding_ids()
    keymap: dict[str, str] = {}
    for keys, value in _flatten(data):
        binding_id = ".".join(keys)
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(sorted(known))
            problems.append(f"{where(path, text, keys)}: unknown binding id {binding_id!r}; {hint}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(
                f"{where(path, text, keys)}: {binding_id!r} needs keys as a string,"
                ' such as "f12" or "ctrl+s,f5"'
            )
        else:
            keymap[binding_id] = value
    return keymap, problems


def check_keymap(path: Path | None = None) -> list[str]:
    """Every problem in `keymap.toml` (none when it is absent), one line each."""
    return load_keymap(path or keymap_path())[1]


class CrmApp(App[None]):
    TITLE = "crm-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("1,f1", "switch_mode('status')", "Status", id="mode.status", show=False),
        Binding("2,f2", "switch_mode('search')", "Search", id="mode.search", show=False),
        Binding("3,f3", "switch_mode('browse')", "Browse", id="mode.browse", show=False),
        Binding("4,f4", "switch_mode('audit')", "Audit", id="mode.audit", show=False),
        Binding(
            "5,f5", "switch_mode('connections')", "Connections", id="mode.connections", show=False
        ),
        Binding("6,f6", "switch_mode('people')", "People", id="mode.people", show=False),
        Binding("7,f7", "switch_mode('pipeline')", "Pipeline", id="mode.pipeline", show=False),
        Binding("question_mark", "toggle_help", "Help", id="app.help"),
        # `q` quits only from screens where nothing is typed (Status, Connections); ctrl+q
        # quits from anywhere. F1-F7 switch screens anywhere; a digit typed into a list
        # goes to its box instead (screens/typing.py).
        Binding("q", "quit_key", "Quit (where nothing is typed)", id="app.quit", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit_anywhere", priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        store: CacheStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_on_start: bool = False,
        sync_stale: bool = True,
    ) -> None:
        from crm_tui.screens import MODES

        self.MODES = MODES
        super().__init__()
        self.settings = settings
        self.masker = SecretMasker(settings.secret_values())
        if store is None:
            db = open_database(settings)  # first: it may name the user (a team's member)
            store = CacheStore(settings.user_id, db)
        self.store = store
        self.engine = SyncEngine(settings, self.store, masker=self.masker, transport=transport)
        self.index = SearchIndex()
        self.index.columns = self.engine.columns  # custom columns are filter keys
        self.deal_tables = SegmentTables()  # the Pipeline's, per index segment of deals
        self.lead_groups = SegmentLeads()  # and of contacts
        self.dedup = DuplicateFinder(settings.crm_phone_region, self.store.shelf)
        self.people: People = EMPTY_PEOPLE
        self.review: Review = EMPTY_REVIEW  # the clusters in sections, with decisions
        #: Seconds after the start's duplicate clusters before every page is read.
        self.pages_check_delay = 1.0
        self._pages_due = False  # the start's page check waits for the clusters
        self.last_merge: MergeResult | None = None
        self.local = LocalCrm(
            self.store, SourceContext(settings, settings.user_id, db=self.store.db)
        )
        self.sync_on_start = sync_on_start
        self.sync_stale = sync_stale
        self._batch_quiet = False  # the running batch was the schedule's alone
        #: A bound socket to receive webhooks on in this process, or None: the demo does,
        #: a team runs `crm-tui webhooks serve` instead.
        self.webhook_listen: socket.socket | None = None
        self.env_file: Path | None = None  # --env-file (or the demo's): setup saves there
        self.loaded = False
        self.store_error: StoreError | None = None  # the snapshot could not be read
        self._seen_version: int | None = None
        self._seen_change = 0  # the newest row of the change log applied
        self._people_again = False  # contacts changed while the duplicates were found
        self._decisions_stamp: tuple[object, ...] | None = None  # as last reviewed
        self.store_changed: Signal[StoreChange] = Signal(self, "store-changed")
        # Re-indexing to do: per (source, kinds), the ids changed, or None for everything.
        self._reindexing = PendingReindex()
        #: A sync-all's sources and their reports as they end (None: still running).
        self._batch: dict[str, SyncReport | None] | None = None
        self._writeback: WriteBack | None = None
        #: Open outbox entries by state: Status shows them, the periodic drain looks here.
        self.outbox_open: dict[str, int] = {}
        self._draining = False
        #: A drain asked for while one runs: (sources, None for all; quiet), run after it.
        self._drain_again: tuple[set[str] | None, bool] | None = None
        self.store.subscribe(self._on_store_change)
        #: "Now" for the Pipeline's months and weeks; tests and snapshots fix it.
        self.clock: Callable[[], datetime] = _utc_now

    # -- lifecycle -----------------------------------------------------------------------

    # How often to look for writes by another process (cron, the CLI, webhooks): a cheap
    # PRAGMA, in a thread; what changed is then read from the change log.
    WATCH_SECONDS = 0.25

    welcome: str | None = None

    def on_mount(self) -> None:
        tune_interactive()
        self.sub_title = self.settings.user_id
        self._apply_keymap()
        if self.welcome:
            self.notify(self.welcome, timeout=15, markup=False)
        if self.read_only_reason:
            self.sub_title = f"{self.settings.user_id} · read-only"
            self.notify(
                f"Read-only database: {self.read_only_reason}. Browsing and search work;"
                " syncs, imports, edits and clearing the cache are off.",
                title="Read-only",
                severity="warning",
                timeout=30,
                markup=False,
            )
        self.switch_mode("status")
        follow = getattr(self.store.db, "follow_commits", None)  # a team database's notices
        if follow is not None:  # before the load reads data_version: it counts from here
            self.run_worker(
                follow(),
                group="notices",
                exit_on_error=False,
                name="listen for commits",
            )
        self.run_worker(self._load, group="load", exit_on_error=False, name="load snapshot")
        self.set_interval(self.WATCH_SECONDS, self._watch_database, name="watch database")
        self.set_interval(self.SWEEP_SECONDS, self._sweep_runs, name="sweep runs")
        self.set_interval(self.DRAIN_SECONDS, self._drain_if_waiting, name="send changes")
        interval = self.settings.crm_sync_interval_minutes
        if interval:
            self.set_interval(interval * 60, self.sync_all_scheduled, name="scheduled sync")
            self._announce_next_run()

    async def _load(self) -> None:
        await asyncio.to_thread(tls_context)  # so building a source's client never stalls
        try:
            if self.store.db is not None:  # read first: a commit during the load shows next
                db, user = self.store.db, self.store.user_id
                self._seen_version = await asyncio.to_thread(db.data_version)
                self._seen_change = await asyncio.to_thread(db.last_change)
                self._decisions_stamp = await asyncio.to_thread(db.decisions_stamp, user)
            await self.store.load()
        except StoreError as exc:
            self.show_store_error(exc)
            return
        await asyncio.to_thread(index_streams, self.index, self.store, self.store.shelf)
        settle_heap()
        self._warm_pipeline()
        if self.store.db is not None:
            held = await asyncio.to_thread(self.store.db.leases, self.store.user_id)
            self._show_other_writers(held)
        self.loaded = True
        self.store_changed.publish(StoreChange(None, KINDS))
        self._find_people()
        await self.count_outbox()
        if anything_waits(self.outbox_open):  # edits saved before a quit or a lost network
            self.drain_outbox(quiet=True)
        # A whole-file read competes for the cores: after the work a start brings (the
        # clusters; see _people_worker), and never while a sync runs (_check_pages).
        self._pages_due = True
        if self.webhook_listen is not None and not self.read_only_reason:
            self.run_worker(
                partial(self._serve_webhooks, self.webhook_listen),
                group="webhooks",
                exit_on_error=False,
                name="receive webhooks",
            )
        if self.sync_on_start:
            self.sync_all()
        elif self.sync_stale and not self.read_only_reason:
            self._sync_together(self.engine.stale_sources())

    async def _serve_webhooks(self, bound: socket.socket) -> None:
        """The receiver and its worker, in this app: each change a CRM posts is fetched
        through the app's own sources (one rate budget) and shows at once."""
        from crm_tui.webhooks.server import WebhookService

        try:
            service = WebhookService(self.settings, self.store, self.engine, bound=bound)
            await service.start()
        except Exception as exc:  # no receiver: say why, the rest of the app goes on
            bound.close()
            why = exc if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            self.notify(f"Webhooks: {self.masker(str(why))}", severity="warning", markup=False)
            return
        self.notify(f"Receiving webhooks at {service.url}/webhooks/...", markup=False)
        try:
            await service.run()
        finally:
            await service.close()

    def _check_pages(self) -> None:
        """Every page of the file read once, in the background once no sync runs: damage
        the load did not meet (an index, the audit trail) is shown too, not left for a
        later write."""
        db = self.store.db
        if db is None or db.backend != "sqlite" or self.store_error is not None:
            return  # a team database's server checks its own pages
        if self.engine.running():
            self.set_timer(5.0, self._check_pages)
            return

        async def check() -> None:
            pool = background_thread("crm-integrity")
            try:
                loop = asyncio.get_running_loop()
                problem = await loop.run_in_executor(pool, pages_problem, db.path)
            finally:
                pool.shutdown(wait=False)
            if problem is not None:
                self.show_store_error(damaged(db.path, problem))

        self.run_worker(check, group="integrity", exit_on_error=False, name="check pages")

    #: How often the open app looks for runs whose process died (a cron sync killed):
    #: without it they would read "running" until some process opens the database again.
    SWEEP_SECONDS = 60.0

    def _sweep_runs(self) -> None:
        db = self.store.db
        if db is not None and not self.read_only_reason and self.store_error is None:
            self.run_worker(
                partial(self._swept, db), group="sweep", exit_on_error=False, name="sweep"
            )

    async def _swept(self, db: Database) -> None:
        if await self.store.in_writer(db.interrupt_abandoned_runs):
            self.store_changed.publish(StoreChange(None, (), status_only=True))

    def _watch_database(self) -> None:
        """One look at a time, never cancelled: a look that is applying another process's
        changes (seconds, for a stream of a million) finishes before the next begins."""
        watching = any(w.group == "watch" and not w.is_finished for w in self.workers)
        if self.loaded and self.store.db is not None and not watching:
            self.run_worker(  # the function, not a coroutine: an app closing never runs it
                self._reload_if_changed,
                group="watch",
                exit_on_error=False,
                name="watch database",
            )

    async def _reload_if_changed(self) -> None:
        """SQLite's data_version moves only when another connection commits: then what it
        changed is read from the change log and applied (a stream replaced is read again,
        records changed are read by id), off the event loop; the screens re-read it."""
        db = self.store.db
        assert db is not None
        try:
            version = await asyncio.to_thread(db.data_version)
            changed = version != self._seen_version
            if changed:
                found = await asyncio.to_thread(
                    db.changes_since, self.store.user_id, self._seen_change
                )
                await self.store.follow(found)
                # seen only once applied: a look that failed is made again
                self._seen_version, self._seen_change = version, found.last
                await self.count_outbox()  # the CLI may have saved or sent an edit
                if found.empty:  # statuses, audit rows, leases, decisions: no record changed
                    await self.store.refresh_statuses()
                    await self._review_if_decided()
            # Leases are taken and released by commits; a holder that died says nothing,
            # so while one is shown, look again each time.
            shown = any(s.busy_elsewhere for s in self.store.statuses().values())
            if changed or shown:
                held = await asyncio.to_thread(db.leases, self.store.user_id)
                self._show_other_writers(held)
        except StoreError as exc:
            self.show_store_error(exc)

    async def _review_if_decided(self) -> None:
        """Sort the clusters again only when another process decided something: at a
        million contacts a review is built in seconds and dropped in tens of ms, and a sync
        elsewhere commits (statuses, heartbeats) every few seconds."""
        db = self.store.db
        assert db is not None
        stamp = await asyncio.to_thread(db.decisions_stamp, self.store.user_id)
        if stamp != self._decisions_stamp:
            self._decisions_stamp = stamp
            self.refresh_review()

    def _show_other_writers(self, held: list[tuple[str, str, Holder]]) -> None:
        """A sync in another process (cron, `sync --watch`) shows on Status as it runs."""
        mine = self.store.db.owner.id if self.store.db is not None else None
        busy = {source: h.short() for source, _, h in held if h.owner.id != mine}
        for source in self.store.sources():
            if self.store.status(source).busy_elsewhere != busy.get(source):
                self.store.update_status(source, busy_elsewhere=busy.get(source))

    def show_store_error(self, error: StoreError) -> None:
        """The snapshot could not be read: say which file, what is wrong and what to do,
        over every screen, and sync nothing into it (a damaged file only gets worse)."""
        first = self.store_error is None
        self.store_error = error
        self.loaded = False  # no watching, re-indexing or syncing on top of it
        log.error("store: %s", self.masker(str(error)))
        self.sub_title = f"{self.settings.user_id} · {error.error}"
        self.store_changed.publish(StoreChange(None, KINDS, status_only=True))
        if first:
            self.push_screen(StoreErrorScreen(error))

    async def on_unmount(self) -> None:
        await self.engine.aclose()

    def _apply_keymap(self) -> None:
        """The CLI refuses a keymap with problems before the app starts; an app built some
        other way applies what it can and says what it left out."""
        keymap, problems = load_keymap(keymap_path())
        for problem in problems:
            self.notify(f"keymap.toml: {problem}", severity="warning", markup=False)
        if keymap:
            self.set_keymap(keymap)

    # -- store -> screens ----------------------------------------------------------------

    def _on_store_change(self, change: StoreChange) -> None:
        if not change.status_only and self.loaded:
            key = self._reindexing.add(change)
            if key is not None:
                self.run_worker(
                    partial(self._reindex, key),
                    group="index",
                    exit_on_error=False,
                    name="re-index",
                    description="re-index",
                )
        self.store_changed.publish(change)

    async def _reindex(self, key: Key) -> None:
        await self._reindexing.apply(key, self.index, self.store)
        source, kinds = key
        self.store_changed.publish(StoreChange(source, kinds, status_only=True))
        if "contacts" in kinds:
            self._find_people()
        self._warm_pipeline()

    def _warm_pipeline(self) -> None:
        """The Pipeline's figures for the index as it is now, in a thread (a source's
        records changed: its segment's groups only), so that F7 only adds them up."""
        deals, contacts, now = self.index.parts("deals"), self.index.parts("contacts"), self.clock()
        work = functools.partial(self._warmed, deals, contacts, now)  # a coroutine when run
        self.run_worker(
            work,
            group="pipeline-warm",
            exit_on_error=False,
            name="warm pipeline",
            # Textual's default is repr(work), which would print every segment's records
            description="the Pipeline's deal tables",
        )

    async def _warmed(self, deals: list[Any], contacts: list[Any], now: datetime) -> None:
        await asyncio.to_thread(self.deal_tables.warm, deals, now)
        await asyncio.to_thread(self._warm_leads, contacts, now)

    def _warm_leads(self, parts: list[Any], now: datetime) -> None:
        with self.lead_groups.lock:
            self.lead_groups.flow(parts, now)

    def _find_people(self) -> None:
        """Duplicate clusters, recomputed off the loop; only changed contacts are re-keyed.
        One run at a time: changes arriving meanwhile (a webhook a second) make one more
        run after it, never a queue of runs each holding a worker thread."""
        if any(w.group == "people" and not w.is_finished for w in self.workers):
            self._people_again = True
            return
        self.run_worker(
            self._people_worker, group="people", exit_on_error=False, name="find duplicates"
        )

    async def _people_worker(self) -> None:
        self._people_again = True
        while self._people_again:
            self._people_again = False
            people = await asyncio.to_thread(self.dedup.refresh, self.store)
            review = await asyncio.to_thread(self._review_of, people)
            old, self.people, self.review = self.people, people, review
            settle_heap()
            self.store_changed.publish(StoreChange(None, ("contacts",), status_only=True))
            # A million records' clusters, freed in one go, would hold the loop for a while:
            # the indexes go at once (they only point), the clusters a slice at a time once
            # the screens have let go of them.
            for index in (old.by_record, old.by_id, old.shared_by_record):
                release_gradually(index)
            release_gradually(old.clusters, after=2.0)
        if self._pages_due:
            self._pages_due = False
            self.set_timer(self.pages_check_delay, self._check_pages)

    def _review_of(self, people: People) -> Review:
        """The clusters in sections, with this user's decisions read from the database."""
        db, user = self.store.db, self.store.user_id
        if db is None:
            return Review.of(people, ())
        return Review.of(people, db.rejections(user), db.merges(user))

    def refresh_review(self) -> None:
        """After a decision: the same clusters, sorted into sections again (no re-keying)."""

        async def again() -> None:
            people = self.people
            review = await asyncio.to_thread(self._review_of, people)
            if people is self.people:  # else a newer refresh brought its own review
                self.review = review
                self.store_changed.publish(StoreChange(None, ("contacts",), status_only=True))

        self.run_worker(again, group="review", exit_on_error=False, name="review duplicates")

    # -- actions screens ask for ---------------------------------------------------------

    @property
    def read_only_reason(self) -> str:
        """Why this app may only read its database ("" when it may write)."""
        db = self.store.db
        return db.read_only_reason if db is not None else ""

    def writes_blocked(self) -> bool:
        """True, with a notice, when the database is read-only: screens ask before writing."""
        if self.read_only_reason:
            self.notify(
                f"Read-only database: {self.read_only_reason}",
                severity="warning",
                markup=False,
            )
            return True
        return False

    def sync_source(self, name: str, *, full: bool = False) -> None:
        """Sync one source in the background: what changed since its last sync, or with
        `full` every record (a reconcile)."""
        if self.store_error is not None:
            self.notify(f"Not syncing: {self.store_error.error}", severity="error", markup=False)
            return
        if self.writes_blocked():
            return
        if self._syncing(name):
            self.notify(f"{DISPLAY_NAMES.get(name, name)} is already syncing", markup=False)
            return
        self.run_worker(
            partial(self._sync, name, full),
            group=f"sync-{name}",
            name=f"sync {name}",
            description=f"sync {name}",
            exit_on_error=False,
        )

    def sync_all(self, *, quiet: bool = False) -> None:
        """Every enabled source; one notice when the last of them ends (see _sync), or with
        `quiet` (the schedule's runs, every few minutes) only when something failed."""
        if self.writes_blocked():
            return
        names = [n for n in self.engine.enabled() if not self.engine.is_running(n)]
        self._sync_together(names, quiet=quiet)

    def _sync_together(self, names: Iterable[str], *, quiet: bool = False) -> None:
        """Sources synced side by side, told about in one notice when the last ends."""
        if self._batch is None:  # a sync-all still running adds these to its notice
            self._batch = {}
            self._batch_quiet = quiet
        self._batch_quiet = self._batch_quiet and quiet  # a person asked too: tell them
        for name in names:
            self._batch.setdefault(name, None)
            self.sync_source(name)
        self._batch = {n: r for n, r in self._batch.items() if r is not None or self._syncing(n)}
        if not self._batch:
            self._batch = None

    def _syncing(self, name: str) -> bool:
        group = f"sync-{name}"
        pending = any(w.group == group and not w.is_finished for w in self.workers)
        return pending or self.engine.is_running(name)

    def sync_all_scheduled(self) -> None:
        self.sync_all(quiet=True)  # sources still running are skipped
        self._announce_next_run()

    def _announce_next_run(self) -> None:
        minutes = self.settings.crm_sync_interval_minutes
        announce_next_run(self.store, self.engine.enabled(), minutes * 60)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette: the actions the screen's keys offer now, then the app's
        (only those that apply: no sync while read-only, no cancel when nothing syncs)."""
        yield from super().get_system_commands(screen)
        yield from self._binding_commands(screen)
        yield SystemCommand("Help: keys and query syntax", "The ? page", self.action_toggle_help)
        yield SystemCommand(
            "Set up a source", "Enter a CRM's key, test it, save it to .env", self.open_setup
        )
        for mode in self.MODES:
            if mode != self.current_mode:
                yield SystemCommand(
                    f"Go to {mode}",
                    f"Switch to the {mode} screen",
                    partial(self.switch_mode, mode),
                )
        names = self.engine.enabled()
        writable = not self.read_only_reason and self.store_error is None
        if writable and any(not self._syncing(name) for name in names):
            yield SystemCommand(
                "Sync all sources", "Start a sync of every enabled source", self.sync_all
            )
        for name in names:
            display = DISPLAY_NAMES.get(name, name)
            if self._syncing(name):
                yield SystemCommand(
                    f"Cancel sync: {display}",
                    "Stop it; the old data stays",
                    partial(self.cancel_sync, name),
                )
            elif writable:
                yield SystemCommand(
                    f"Sync {display}",
                    f"Start a sync of {display}",
                    partial(self.sync_source, name),
                )
            yield SystemCommand(
                f"Map fields: {display}",
                "Which payload field fills each field and custom column",
                partial(self.open_mapping, name),
            )
            yield SystemCommand(
                f"Test connection: {display}",
                "Authenticate, read one page",
                partial(
                    self.run_worker,
                    partial(self.test_connection, name),
                    group="test",
                    exit_on_error=False,
                ),
            )

    def _binding_commands(self, screen: Screen[Any]) -> Iterator[SystemCommand]:
        """One command per key the screen (and the widget focused on it) offers now: read
        from their BINDINGS and check_action, never from a second list of actions."""
        from textual.actions import parse

        from crm_tui.screens.help import key_text, own_bindings

        nodes: list[DOMNode] = [screen]
        if screen.focused is not None:
            nodes += [n for n in screen.focused.ancestors_with_self if n is not screen]
        nodes = [n for n in nodes if isinstance(n, DOMNode) and n is not self]
        seen: set[str] = set()
        for node in nodes:
            for binding in own_bindings(type(node)):
                namespace, action, params = parse(binding.action)
                if not binding.show or binding.action in seen:
                    continue
                seen.add(binding.action)
                target = self if namespace == "app" else screen if namespace == "screen" else node
                if not target.check_action(action, params):
                    continue  # does not apply now (the footer hides or dims it too)
                yield SystemCommand(
                    binding.description or action.replace("_", " ").capitalize(),
                    f"{key_text(self, binding)} · {_title_of(screen)}",
                    partial(self.run_action, binding.action, node),
                )

    async def _sync(self, name: str, full: bool = False) -> SyncReport:
        report: SyncReport | None = None
        try:
            report = await self.engine.sync_source(name, full=full)
        except (ConfigError, SourceError) as exc:
            report = failed_report(name, self.masker(str(exc)))
        except asyncio.CancelledError:  # cancelled by the person: said so, not "failed"
            report = failed_report(name, "cancelled")
            report.outcome = Outcome.CANCELLED
            raise
        finally:
            if self._batch is not None and name in self._batch:
                self._batch[name] = report or failed_report(name, "did not finish")
                self._batch_done()
            elif report is not None:
                self._notify_sync(name, report)
        answered = report.outcome in (Outcome.SUCCESS, Outcome.PARTIAL)
        if answered:
            await self._settle(name)
        if answered and anything_waits(self.outbox_open):
            self.drain_outbox([name], quiet=True)  # the source answers again: send what waits
        return report

    async def _settle(self, name: str) -> None:
        """A source's synced streams onto their records artifacts, as `crm-tui sync` leaves
        them: the dicts of records the sync committed go, the next start maps them in."""
        try:
            await settle_all(self.store, [(kind, name) for kind in KINDS])
        except StoreError as exc:  # the records stay as the sync left them, in memory
            log.warning("could not settle %s: %s", name, exc)

    def _notify_sync(self, name: str, report: SyncReport) -> None:
        """One source's sync, ended: its counts, or what went wrong and what to fix."""
        display = DISPLAY_NAMES.get(name, name)
        counts = ", ".join(_stream_counts(k, s) for k, s in report.streams.items())
        if report.outcome is Outcome.SUCCESS:
            self.notify(f"{display}: synced {counts}", markup=False)
        elif report.outcome is Outcome.PARTIAL:
            self.notify(
                f"{display}: partly synced: {problem_of(report)}",
                severity="warning",
                markup=False,
                timeout=10,
            )
        elif report.outcome not in (Outcome.CANCELLED, Outcome.SKIPPED):
            self.notify(
                f"{display}: {problem_of(report)}", severity="error", markup=False, timeout=10
            )

    def _batch_done(self) -> None:
        """When the last source of a sync-all ends: one notice for all of them."""
        batch = self._batch
        if batch is None or any(r is None for r in batch.values()):
            return
        self._batch = None
        reports = {n: r for n, r in batch.items() if r is not None}
        text, failed = sync_summary(reports, DISPLAY_NAMES)
        if text and (failed or not self._batch_quiet):
            self.notify(
                text,
                severity="error" if failed else "information",
                markup=False,
                timeout=12 if failed else 5,
            )

    def cancel_sync(self, name: str) -> bool:
        cancelled = self.engine.cancel(name)
        if cancelled:
            self.notify(
                f"{DISPLAY_NAMES.get(name, name)}: sync cancelled, previous data kept", markup=False
            )
        return cancelled

    async def clear_cache(self, source: str | None) -> None:
        if self.writes_blocked():
            return
        imported = await self.store.clear(source)
        what = DISPLAY_NAMES.get(source, source) if source else "every source"
        also = f" ({imported:,} imported rows too)" if imported else ""
        self.notify(f"Cache cleared for {what}{also}", markup=False)

    async def test_connection(self, name: str) -> ConnectionResult:
        result = await self.engine.test_connection(name)
        self.notify(
            f"{DISPLAY_NAMES.get(name, name)}: {result.message}",
            markup=False,
            severity="information" if result.ok else "error",
        )
        self.store_changed.publish(StoreChange(name, (), status_only=True))
        return result

    # -- the outbox: edits of vendor records --------------------------------------------

    #: How often the open app sends edits still waiting (the network may be back).
    DRAIN_SECONDS = 60.0

    @property
    def writeback(self) -> WriteBack:
        """Edits of vendor records, through the engine of the settings in force."""
        if self._writeback is None or self._writeback.engine is not self.engine:
            self._writeback = WriteBack(self.engine)
        return self._writeback

    def drain_outbox(self, names: Iterable[str] | None = None, *, quiet: bool = False) -> None:
        """Send what waits in the outbox (for `names`, or every source) in the background.
        `quiet`: nobody asked, so nothing is said about edits that merely still wait.
        One drain at a time and never cancelled: an edit cut mid-request would stay claimed
        by this live process. One asked for meanwhile runs right after it."""
        if self.store.db is None or self.read_only_reason or self.store_error is not None:
            return
        wanted = None if names is None else set(names)
        if self._draining:
            self._drain_again = _more_drain(self._drain_again, wanted, quiet)
            return
        self._draining = True
        self.run_worker(
            partial(self._drain, wanted, quiet),
            group="outbox",
            exit_on_error=False,
            name="send changes",
            description="send changes",
        )

    async def _drain(self, names: set[str] | None, quiet: bool) -> None:
        try:
            while True:
                finished = await self.writeback.drain(names)
                for text, severity in drain_notices(finished, quiet=quiet):
                    self.notify(self.masker(text), severity=severity, markup=False, timeout=8)
                await self.count_outbox()
                if self._drain_again is None:
                    return
                (names, quiet), self._drain_again = self._drain_again, None
        except StoreError as exc:
            self.show_store_error(exc)
        finally:
            self._draining = False  # no await since the last look at _drain_again

    def _drain_if_waiting(self) -> None:
        if self.loaded and anything_waits(self.outbox_open):
            self.drain_outbox(quiet=True)

    async def count_outbox(self) -> None:
        """Open entries by state, read again; screens told when the counts moved."""
        db = self.store.db
        if db is None:
            return
        try:
            counts = await asyncio.to_thread(db.outbox_counts, self.store.user_id)
        except StoreError as exc:
            self.show_store_error(exc)
            return
        if counts != self.outbox_open:
            self.outbox_open = counts
            self.store_changed.publish(StoreChange(None, (), status_only=True))

    def decide_edit(
        self, entry_id: int, decision: Decision, choices: Mapping[str, Choice] | None = None
    ) -> None:
        """A person's retry, drop or resolution of a conflict; what it leaves waiting is
        sent at once."""
        if not self.writes_blocked():
            self.run_worker(
                partial(self._decided, entry_id, decision, dict(choices or {})),
                group="outbox-decide",
                exit_on_error=False,
                name="decide a change",
                description="decide a change",
            )

    async def _decided(self, entry_id: int, decision: Decision, choices: dict[str, Choice]) -> None:
        writeback = self.writeback
        if decision == "settle":
            entry = await writeback.settle(entry_id, choices)
        elif decision == "drop":
            entry = await writeback.drop(entry_id)
        else:
            entry = await writeback.retry(entry_id)
        text, severity = decision_notice(entry, decision)
        self.notify(text, severity=severity, markup=False)
        await self.count_outbox()
        if entry is not None and entry.state == "pending":
            self.drain_outbox([entry.source])

    # -- setting a source up ------------------------------------------------------------

    def open_mapping(self, source: str, stream: RecordKind = "contacts") -> None:
        """The Mapping screen of one source's stream (Connections' `m`, the palette)."""
        from crm_tui.screens.mapping import MappingScreen

        self.push_screen(MappingScreen(source, stream))

    def open_setup(self, source: str | None = None) -> None:
        from crm_tui.screens.setup import SetupScreen

        self.push_screen(SetupScreen(source))

    def _mask_everywhere(self, settings: Settings) -> None:
        """Secrets typed into the app are masked like those read at start: in messages,
        the audit and every log handler's filter."""
        secrets = settings.secret_values()
        self.masker.add(*secrets)
        handlers = [*logging.getLogger().handlers, *logging.getLogger("crm_tui").handlers]
        for handler in handlers:  # the log file and --debug's stderr sit on "crm_tui"
            for found in handler.filters:
                if isinstance(found, SecretFilter):
                    found.masker.add(*secrets)

    async def test_with(self, settings: Settings, name: str) -> ConnectionResult:
        """A connection test with settings not saved yet (the setup screen's)."""
        self._mask_everywhere(settings)
        engine = SyncEngine(
            settings, self.store, masker=self.masker, transport=self.engine._ctx.transport
        )
        try:
            return await engine.test_connection(name)
        finally:
            await engine.aclose()

    def apply_settings(self, settings: Settings) -> bool:
        """New settings (saved by the setup screen) for the syncs from now on; False when a
        sync is running or webhooks are received (their service holds this engine): they
        apply at the next start."""
        if self.engine.running() or self.webhook_listen is not None:
            return False
        self._mask_everywhere(settings)
        old = self.engine
        self.settings = settings
        self.engine = SyncEngine(
            settings, self.store, masker=self.masker, transport=old._ctx.transport
        )
        self.run_worker(old.aclose, group="close", exit_on_error=False, name="close sources")
        self.store_changed.publish(StoreChange(None, (), status_only=True))
        return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_failure(event)

    def report_failure(self, event: Worker.StateChanged) -> None:
        """A worker that failed (the app's, or a screen's): logged, and told on screen."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            what = event.worker.name or event.worker.group
            log.error("worker %s failed: %s", what, self.masker(repr(error)))
            self.notify(self.masker(f"{what} failed: {error}"), severity="error", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit_key":  # not offered where a person types a name
            return not isinstance(self.screen, TypeToFilter)
        return True

    async def action_quit_key(self) -> None:
        await self.run_action("quit")

    # -- quitting ------------------------------------------------------------------------

    #: Worker groups whose work a quit would cut short, as a person would name it.
    SAVING_GROUPS = {
        "form": "a save",
        "local": "a change to local records",
        "clear": "clearing the cache",
        "outbox": "sending changes to a CRM",
    }
    #: How long a quit waits for cancelled syncs to write their audit rows.
    QUIT_WAIT_SECONDS = 5.0

    def running_work(self) -> list[str]:
        """What quitting now would cut short, one phrase each ("a sync of Pipedrive")."""
        syncing = set(self.engine.running())
        for worker in self.workers:
            if worker.group.startswith("sync-") and not worker.is_finished:
                syncing.add(worker.group.removeprefix("sync-"))
        names = [DISPLAY_NAMES.get(n, n) for n in sorted(syncing)]
        work = [f"a sync of {names[0]}"] if len(names) == 1 else []
        work += [f"syncs of {_joined(names, capital=False)}"] if len(names) > 1 else []
        for worker in self.workers:
            phrase = self.SAVING_GROUPS.get(worker.group)
            if phrase and not worker.is_finished and phrase not in work:
                work.append(phrase)
        return work

    async def action_quit(self) -> None:
        """q, ctrl+q and the palette's Quit: ask first when a sync or a save would be cut."""
        work = self.running_work()
        if not work:
            self.exit()
            return
        if isinstance(self.screen, QuitConfirmScreen):
            return  # already asking
        one = len(work) == 1 and not work[0].startswith("syncs")
        question = (
            f"{_joined(work)} {'is' if one else 'are'} running:"
            f" quit and cancel {'it' if one else 'them'}?"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._cancel_and_exit, group="quit", name="quit")

        self.push_screen(QuitConfirmScreen(question), answered)

    async def _cancel_and_exit(self) -> None:
        """Cancel every sync, let each write its audit row (cancelled) and let saves finish,
        for a few seconds at most; whatever is still open is marked interrupted on close."""
        running = self.engine.running()
        if running:
            self.notify("Cancelling, then quitting…", markup=False)
        for worker in self.workers:  # not started yet: nothing to write, just stop it
            name = worker.group.removeprefix("sync-")
            if worker.group.startswith("sync-") and name not in running:
                worker.cancel()
        for name in running:  # cancelled once: a second cancel would cut its audit short
            self.engine.cancel(name)
        waiting = [
            w
            for w in self.workers
            if not w.is_finished and (w.group.startswith("sync-") or w.group in self.SAVING_GROUPS)
        ]
        if waiting:
            await asyncio.wait(
                [asyncio.ensure_future(_settled(w)) for w in waiting],
                timeout=self.QUIT_WAIT_SECONDS,
            )
        self.exit()

    def action_toggle_help(self) -> None:
        """`?`: crm-tui's keys by screen and the query syntax; `?` or `esc` closes it."""
        from crm_tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())


def make_app(
    settings: Settings,
    *,
    theme: str | None = None,
    sync_on_start: bool = False,
    store: CacheStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sync_stale: bool = True,
    welcome: str | None = None,
    webhook_listen: socket.socket | None = None,
    env_file: Path | None = None,
    clock: Callable[[], datetime] | None = None,
) -> CrmApp:
    """Build the app; the CLI and the tests both come through here. `welcome`: a notice
    shown when it opens; `webhook_listen`: a bound socket to receive webhooks on while it
    runs; `clock`: what "now" is for the Pipeline's charts (a test fixes it)."""
    app = CrmApp(
        settings,
        store=store,
        transport=transport,
        sync_on_start=sync_on_start,
        sync_stale=sync_stale,
    )
    app.welcome = welcome
    app.webhook_listen = webhook_listen
    app.env_file = env_file
    if clock is not None:
        app.clock = clock
    if theme:
        if theme not in app.available_themes:
            raise ValueError(f"unknown theme {theme!r}; try: {', '.join(app.available_themes)}")
        app.theme = theme
    return app


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _title_of(screen: Screen[Any]) -> str:
    """A screen's name for a command's help line: "Search screen", "Record screen"."""
    from crm_tui.screens.help import screen_title

    return f"{screen_title(type(screen))} screen"


async def _settled(worker: Worker[Any]) -> None:
    """A worker has ended, however it ended."""
    with contextlib.suppress(Exception):
        await worker.wait()


def _more_drain(
    queued: tuple[set[str] | None, bool] | None, names: set[str] | None, quiet: bool
) -> tuple[set[str] | None, bool]:
    """A drain asked for while one runs, added to those already queued behind it: every
    source if any asked for every one; quiet only if all of them were."""
    if queued is None:
        return names, quiet
    before, was_quiet = queued
    both = None if before is None or names is None else before | names
    return both, was_quiet and quiet


def _joined(phrases: list[str], *, capital: bool = True) -> str:
    """ "a, b and c", capitalised unless asked not to."""
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return text[:1].upper() + text[1:] if capital else text


def _stream_counts(kind: str, report: StreamReport) -> str:
    """ "1,204 contacts" after a full read; "12 contacts changed, 1 deleted" after a catch-up."""
    if report.mode == "full":
        return f"{report.written:,} {kind}"
    deleted = f", {report.deleted:,} deleted" if report.deleted else ""
    return f"{report.written:,} {kind} changed{deleted}"
