"""A team on one PostgreSQL database: agents' apps reading and searching while the sync
worker writes every agent's contacts.

    python benchmarks/team_bench.py                          # 20 agents, 100,000 contacts
    python benchmarks/team_bench.py --agents 3 --contacts 3000   # a smoke run (< 1 min)

What runs, all real processes over real connections:

- a scratch PostgreSQL 15 server (crm_tui/team/scratch_server.py); the bench, as the
  database's owner, migrates it, creates a login role per agent (a01, a02, ...; position
  agent, user id = the role, team "north") and one for the worker (position worker), each
  with a password made for this run;
- `crm-tui simulator --contacts C` (C = contacts / agents): Follow Up Boss's simulator, one
  account every agent's USER.env points at (rows are per user id, so each agent gets its own
  copy of C contacts, and the simulator's deals);
- the worker: the real CLI, `crm-tui --database-url URL sync --team DIR --json`, connected
  as the worker role over loopback TCP. A first run seeds every agent before the apps start;
  then (unless --no-baseline) a `--full` run with no app running, for comparison; then,
  with the apps running, another `--full`: the measured write phase, every agent's contacts
  read and written again, `--contacts` in all. Before each `--full` the simulator is started
  again with another `--seed` (the same ids, other names, e-mails and cities): a refresh that
  finds the rows it replaces unchanged logs no change (`Database.swap_generation`), and the
  apps would have nothing to follow;
- one process per agent (this script in a hidden mode), connected as the agent's role over
  loopback TCP: it opens `PostgresDatabase`, `CacheStore(user, db)`, `await store.load()`,
  and indexes the store with `index_streams` as the app's `_load` does (each agent has its
  own data dir, as on its own machine, so each builds its own records artifacts). Then, as
  the app does: notices heard on its event loop (`db.follow_commits`), and every 250 ms
  `db.data_version()` and, when it moved,
  `db.changes_since(user, last)` and `await store.follow(changes)` (app.py's
  `_reload_if_changed`), with the index brought up to each change the way the app's
  `_on_store_change` / `_reindex` do it (a stream replaced: `index_streams` for it; a few
  records: `SearchIndex.patch`); and meanwhile one search (`SearchIndex.search`, in a thread,
  as the Search screen runs it) of a query from a fixed list of 2-5 letter prefixes and city
  names, then 50 ms of sleep, again and again. Each search's latency is the await of it,
  so it includes waiting for the interpreter lock while the same app applies the worker's
  changes: what a person would feel.

Figures: per agent the time from its process's spawn to searchable (imports, connecting,
loading and indexing; all agents start at once), the searches it ran, and their p50 / p95 /
max while idle (a few seconds before the worker starts) and while the worker writes; how
many follows applied the worker's changes and how long after the worker's exit the app had
applied its last one; the worker's wall time for its rows; propagation: once every app has
applied the worker's changes (and a second more), the bench, as owner, adds one local
contact per agent (`LocalCrm.add` for that agent's user id, one after another), in a few
rounds, and each app reports when it first held the marker in its store (its `follow`
installed it) and when a search first found it (after the re-index); per agent from its
marker's commit, and the max over the agents (the time for a change to reach every app).
The database's connections in use (`pg_stat_activity` for this database, every 0.5 s,
leaving out the sampler's own) by phase, with their states and application names at the
peak. The load average is printed beside the figures: other work on the host weighs in.

This machine has 2 cores: 20 agent processes, the worker, the simulator and the server all
contend for them, so the figures are those of a crowded host, not of 20 laptops. Times are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from crm_tui.config import Settings
from crm_tui.database_url import DatabaseUrl
from crm_tui.models import RecordKind
from crm_tui.search.index import SearchIndex
from crm_tui.search.stored import index_streams
from crm_tui.store import CacheStore, StoreChange
from crm_tui.store.postgres import PostgresDatabase
from crm_tui.team import scratch_server
from crm_tui.team.members import Member, add_member

DBNAME = "crm_team"
TEAM = "north"
WORKER_ROLE = "sync_worker"
#: What each app types: name and e-mail prefixes, and cities of the simulator's data.
QUERIES = (
    "jo", "sm", "ann", "ma", "li", "da", "wil", "br", "ke", "ro", "chri", "jen",
    "austin", "dallas", "denver", "raleigh", "round", "cedar", "hous", "phoe",
)  # fmt: skip
SEARCH_PAUSE = 0.05  # between one search's answer and the next search
WATCH_SECONDS = 0.25  # the app's watch (CrmApp.WATCH_SECONDS)
SAMPLE_SECONDS = 0.5  # pg_stat_activity
URL_ENV = "TEAM_BENCH_AGENT_URL"  # an agent's URL (with its password): never on a command line
#: The simulator's settings a person's USER.env holds: Follow Up Boss only.
FUB_KEYS = ("FUB_API_KEY", "FUB_API_BASE_URL", "FUB_SYSTEM", "FUB_SYSTEM_KEY")
#: The simulator's data for the seed run, the baseline run and the write phase: other
#: names, e-mails, cities under the same ids each time, so that every row the worker writes
#: is a change (one the apps follow).
SEED_FIRST, SEED_BASELINE, SEED_WRITES = 3, 4, 5


# -- one agent's app (a process of its own) ----------------------------------------------


def emit(event: str, **values: Any) -> None:
    print(json.dumps({"event": event, **values}), flush=True)


class Reindexer:
    """The app's `_on_store_change` and `_reindex`: changes gathered per (source, kinds) by
    the app's own PendingReindex, one re-index task per key at a time."""

    def __init__(self, index: SearchIndex, store: CacheStore, after: Any) -> None:
        from crm_tui.search.reindex import PendingReindex

        self.index = index
        self.store = store
        self.after = after  # called once each re-index is done (marker checks)
        self.pending = PendingReindex()
        self.tasks: set[asyncio.Task[None]] = set()
        self.count = 0
        self.seconds = 0.0

    def on_change(self, change: StoreChange) -> None:
        if change.status_only:
            return
        key = self.pending.add(change)
        if key is not None:
            task = asyncio.get_running_loop().create_task(self._reindex(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _reindex(self, key: tuple[str | None, tuple[RecordKind, ...]]) -> None:
        started = time.perf_counter()
        try:
            await self.pending.apply(key, self.index, self.store)
        except Exception as exc:  # the app logs a failed worker and goes on
            print(f"re-index failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise
        self.count += 1
        self.seconds += time.perf_counter() - started
        self.after()


@dataclass
class AgentState:
    user: str
    tag: str
    seen: dict[str, float] = field(default_factory=dict)  # marker -> in the store at
    found: dict[str, float] = field(default_factory=dict)  # marker -> a search found it at
    searches: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    follows: list[tuple[float, float, int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def agent(url: str, data_dir: Path, user: str, tag: str) -> None:
    """One app: load and index, then search and watch until told to stop (stdin)."""
    from crm_tui.cli.options import declared_columns
    from crm_tui.tuning import settle_heap, tune_interactive

    tune_interactive()
    began = time.time()
    state = AgentState(user, tag)
    db = PostgresDatabase(DatabaseUrl(url), data_dir)
    opened = time.time()
    store = CacheStore(user, db)
    index = SearchIndex()
    index.columns = declared_columns()
    # notices heard on this loop (the app's follow_commits worker); then read first, as the
    # app's _load does: a commit during the load shows next
    listening = asyncio.ensure_future(db.follow_commits())
    seen_version = await asyncio.to_thread(db.data_version)
    seen_change = await asyncio.to_thread(db.last_change)
    await store.load()
    loaded = time.time()
    await asyncio.to_thread(index_streams, index, store, store.shelf)
    settle_heap()
    searchable = time.time()

    def check_found() -> None:
        for token in [t for t in state.seen if t not in state.found]:
            if index.search(token, "contacts").total:
                state.found[token] = time.time()
                emit("found", token=token, at=state.found[token])

    def look_for_markers(change: StoreChange) -> None:
        """A marker is in the store from the moment a local contact's change is installed
        (before the index hears of it: subscribed first)."""
        if change.source != "local" or "contacts" not in change.kinds or change.status_only:
            return
        for record in store.stream("contacts", "local").values():
            token = getattr(record, "last_name", None) or ""
            if token.startswith(f"zq{tag}") and token not in state.seen:
                state.seen[token] = time.time()
                emit("seen", token=token, at=state.seen[token])

    reindexer = Reindexer(index, store, check_found)
    store.subscribe(look_for_markers)
    store.subscribe(reindexer.on_change)
    emit(
        "ready",
        began=began,
        opened=opened,
        loaded=loaded,
        searchable=searchable,
        contacts=store.count("contacts"),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()

    async def watch() -> None:
        nonlocal seen_version, seen_change
        tick = time.monotonic()
        while not stop.is_set():
            try:
                version = await asyncio.to_thread(db.data_version)
                if version != seen_version:
                    started = time.time()
                    found = await asyncio.to_thread(db.changes_since, user, seen_change)
                    await store.follow(found)
                    seen_version, seen_change = version, found.last
                    emit("looked", last=found.last, at=time.time())
                    if found.empty:
                        await store.refresh_statuses()
                    else:
                        changed = len(found.streams) + (1 if found.everything else 0)
                        ids = sum(len(i) for i in found.ids.values())
                        state.follows.append((started, time.time(), changed, ids))
            except Exception as exc:  # the app shows a store error and keeps running
                state.errors.append(f"watch: {type(exc).__name__}: {exc}")
                print(state.errors[-1], file=sys.stderr, flush=True)
            tick += WATCH_SECONDS
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            tick = max(tick, time.monotonic() - WATCH_SECONDS)  # late: no burst to catch up

    async def search() -> None:
        n = 0
        while not stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            started = time.perf_counter()
            try:
                await asyncio.to_thread(index.search, query, "contacts")
            except Exception as exc:
                state.errors.append(f"search {query!r}: {type(exc).__name__}: {exc}")
                print(state.errors[-1], file=sys.stderr, flush=True)
            state.searches.append((time.time(), time.perf_counter() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SEARCH_PAUSE)

    await asyncio.gather(watch(), search())
    listening.cancel()
    for task in list(reindexer.tasks):
        task.cancel()
    emit(
        "done",
        searches=state.searches,
        follows=state.follows,
        reindexes=reindexer.count,
        reindex_seconds=reindexer.seconds,
        errors=state.errors,
    )
    db.close()


# -- the bench ---------------------------------------------------------------------------


@dataclass
class AgentProcess:
    role: str
    spawned: float
    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stderr_path: Path | None = None

    def event(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            return next((e for e in self.events if e["event"] == name), None)

    def token_at(self, name: str, token: str) -> float | None:
        with self.lock:
            for e in self.events:
                if e["event"] == name and e["token"] == token:
                    return float(e["at"])
        return None

    def caught_up(self, seq: int) -> float | None:
        """When it had applied everything up to change `seq`."""
        with self.lock:
            for e in self.events:
                if e["event"] == "looked" and e["last"] >= seq:
                    return float(e["at"])
        return None


def read_events(agent_process: AgentProcess) -> None:
    stdout = agent_process.process.stdout
    assert stdout is not None
    for line in stdout:
        if line.startswith("{"):
            with agent_process.lock:
                agent_process.events.append(json.loads(line))


def isolated_env(root: Path) -> dict[str, str]:
    """No settings but the ones given: no .env, config or vendor keys of whoever runs this."""
    config = root / "config"
    config.mkdir(exist_ok=True)
    prefixes = ("CRM_", "FUB_", "BRIVITY_", "TOPPRODUCER_", "HUBSPOT_", "PIPEDRIVE_", "LOFTY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        XDG_CONFIG_HOME=str(config),
        CRM_CONFIG_DIR=str(config),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    return env


def start_simulator(
    contacts: int, seed: int, env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`crm-tui simulator` in the background, and the settings it printed (its stderr in
    a file of `cwd`)."""
    log = cwd / f"simulator-{seed}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "crm_tui", "simulator", "--contacts", str(contacts),
             "--seed", str(seed), "--rate-limit", str(10**9)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=cwd,
        )  # fmt: skip
    settings: dict[str, str] = {}
    assert process.stdout is not None
    while not all(k in settings for k in FUB_KEYS):
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator did not start: {log.read_text()[-1000:]}")
        if "=" in line and not line.startswith("#"):
            key, _, value = line.strip().partition("=")
            settings[key] = value
    # the rest of its output, read so that it never blocks on a full pipe
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, settings


def set_up_team(
    server: scratch_server.ScratchServer, roles: list[str], data_dir: Path
) -> dict[str, str]:
    """The database made and migrated by its owner, a login role per agent and the worker's,
    each a member; role -> password (made for this run)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
        passwords = {}
        for role in [*roles, WORKER_ROLE]:
            passwords[role] = secrets.token_urlsafe(18)
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(passwords[role])
                )
            )
    owner = PostgresDatabase(DatabaseUrl(server.url(dbname=DBNAME)), data_dir)  # migrates
    try:
        for role in roles:
            add_member(owner, Member(role, "agent", role, TEAM))
        add_member(owner, Member(WORKER_ROLE, "worker", None, TEAM))
    finally:
        owner.close()
    return passwords


def stop_process(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_team(team: Path, roles: Iterable[str], settings: dict[str, str]) -> None:
    """Each agent's USER.env: the simulator's Follow Up Boss keys."""
    for role in roles:
        path = team / f"{role}.env"
        path.write_text("".join(f"{k}={settings[k]}\n" for k in FUB_KEYS))
        path.chmod(0o600)


@dataclass
class WorkerRun:
    seconds: float
    code: int
    read: int
    written: int
    contacts_written: int
    failed: list[str]


def run_worker(
    url: str, data_dir: Path, team: Path, env: dict[str, str], cwd: Path, full: bool
) -> WorkerRun:
    argv = [sys.executable, "-m", "crm_tui", "--database-url", url, "--data-dir", str(data_dir),
            "sync", "--team", str(team), "--json", *(["--full"] if full else [])]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    read = written = contacts = 0
    failed: list[str] = []
    try:
        payload = json.loads(done.stdout)
    except ValueError:
        payload = {}
        failed.append(f"no JSON (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    for user, result in payload.get("users", {}).items():
        if not result.get("success"):
            failed.append(f"{user}: {result.get('error')}: {result.get('details')}")
        for streams in result.get("streams", {}).values():
            for kind, stream in streams.items():
                read += int(stream.get("read") or 0)
                written += int(stream.get("written") or 0)
                if kind == "contacts":
                    contacts += int(stream.get("written") or 0)
    return WorkerRun(seconds, done.returncode, read, written, contacts, failed)


class ConnectionSampler:
    """pg_stat_activity for the team database every SAMPLE_SECONDS, on a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, dict[str, int], dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT coalesce(state, '?'), application_name, count(*)"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " GROUP BY 1, 2"
                ).fetchall()
                states: dict[str, int] = {}
                apps: dict[str, int] = {}
                for state, app, n in rows:
                    states[state] = states.get(state, 0) + n
                    apps[app or "?"] = apps.get(app or "?", 0) + n
                self.samples.append((time.time(), sum(states.values()), states, apps))
                self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.1f}"


def seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


async def add_markers(
    owner: PostgresDatabase, roles: list[str], token: str, data_dir: Path
) -> dict[str, float]:
    """One local contact per agent, through the local CRM as the owner; role -> when its
    commit had returned."""
    from crm_tui.local_crm import LocalCrm
    from crm_tui.sources.base import SourceContext

    committed = {}
    for role in roles:
        settings = Settings(_env_file=None, crm_user_id=role, crm_data_dir=data_dir)
        crm = LocalCrm(CacheStore(role, owner), SourceContext(settings, role, db=owner))
        await crm.add("contacts", {"first_name": "Marker", "last_name": token})
        committed[role] = time.time()
    return committed


def wait_for(agents: Iterable[AgentProcess], name: str, token: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(agents)
    while pending and time.monotonic() < deadline:
        pending = [
            a
            for a in pending
            if (a.event(name) is None if token is None else a.token_at(name, token) is None)
            and a.process.poll() is None
        ]
        time.sleep(0.02)
    return not pending


def run(args: argparse.Namespace) -> None:
    # a SIGTERM (timeout, CI) unwinds through the finally: no server or process left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    roles = [f"a{n:02d}" for n in range(1, args.agents + 1)]
    args.load_before = os.getloadavg()[0]
    per_agent = max(1, args.contacts // args.agents)
    tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    server = scratch_server.start()
    simulator = None
    agents: list[AgentProcess] = []
    sampler: ConnectionSampler | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="team-bench-") as folder:
            root = Path(folder)
            env = isolated_env(root)
            os.environ["CRM_CONFIG_DIR"] = env["CRM_CONFIG_DIR"]  # the markers' LocalCrm
            started = time.perf_counter()
            passwords = set_up_team(server, roles, root / "owner")
            print(
                f"server and team: {time.perf_counter() - started:.1f} s"
                f" ({args.agents} agents, {per_agent:,} contacts each)",
                flush=True,
            )
            simulator, settings = start_simulator(per_agent, SEED_FIRST, env, root)
            team = root / "team"
            team.mkdir(mode=0o700)
            write_team(team, roles, settings)
            worker_url = server.url(WORKER_ROLE, passwords[WORKER_ROLE], DBNAME)
            worker_dir = root / "worker"
            seed = run_worker(worker_url, worker_dir, team, env, root, full=False)
            print(
                f"seed sync (before the apps start): {seed.seconds:.1f} s, {seed.read:,} read,"
                f" {seed.written:,} written, exit {seed.code}",
                flush=True,
            )
            for problem in seed.failed[:5]:
                print(f"  seed problem: {problem}")
            # The next runs read other data each: a refresh that finds the same rows logs
            # no change (db.swap_generation), and the apps would follow nothing.
            baseline = None
            if args.baseline:
                stop_process(simulator)
                simulator, settings = start_simulator(per_agent, SEED_BASELINE, env, root)
                write_team(team, roles, settings)
                baseline = run_worker(worker_url, worker_dir, team, env, root, full=True)
                print(
                    f"baseline: sync --team --full with no app running: {baseline.seconds:.1f}"
                    f" s, {baseline.written:,} written, exit {baseline.code}",
                    flush=True,
                )
            stop_process(simulator)
            simulator, settings = start_simulator(per_agent, SEED_WRITES, env, root)
            write_team(team, roles, settings)

            owner_url = server.url(dbname=DBNAME)
            sampler = ConnectionSampler(owner_url)
            for role in roles:
                agent_env = {**env, URL_ENV: server.url(role, passwords[role], DBNAME)}
                stderr_path = root / f"{role}.stderr"
                with stderr_path.open("w") as stderr:
                    spawned = time.time()
                    process = subprocess.Popen(
                        [sys.executable, __file__, "--agent", role, "--data-dir",
                         str(root / "agents" / role), "--tag", tag],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                        text=True, env=agent_env, cwd=root,
                    )  # fmt: skip
                one = AgentProcess(role, spawned, process, stderr_path=stderr_path)
                threading.Thread(target=read_events, args=(one,), daemon=True).start()
                agents.append(one)
            if not wait_for(agents, "ready", None, args.timeout):
                print("some apps never became searchable (see their errors below)")
            all_ready = time.time()

            time.sleep(args.idle_seconds)
            write_began = time.time()
            writes = run_worker(worker_url, worker_dir, team, env, root, full=True)
            write_ended = time.time()
            # each app's newest change (an agent's role sees its own rows of the log only)
            with psycopg.connect(owner_url, autocommit=True) as conn:
                newest = dict(
                    conn.execute("SELECT user_id, max(seq) FROM changes GROUP BY user_id")
                )
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and any(
                a.caught_up(newest.get(a.role, 0)) is None and a.process.poll() is None
                for a in agents
            ):
                time.sleep(0.05)
            caught_up = {a.role: a.caught_up(newest.get(a.role, 0)) for a in agents}
            if None in caught_up.values():
                print("some apps never applied all of the worker's changes", flush=True)
            time.sleep(args.settle_seconds)

            owner = PostgresDatabase(DatabaseUrl(owner_url), root / "owner")
            rounds: list[tuple[str, dict[str, float]]] = []
            try:
                for n in range(args.marker_rounds):
                    token = f"zq{tag}{string.ascii_lowercase[n]}"
                    committed = asyncio.run(add_markers(owner, roles, token, root / "owner"))
                    wait_for(agents, "found", token, args.timeout)
                    rounds.append((token, committed))
                    time.sleep(0.5)
            finally:
                owner.close()
            markers_ended = time.time()

            for one in agents:
                if one.process.poll() is None:
                    assert one.process.stdin is not None
                    one.process.stdin.write("stop\n")
                    one.process.stdin.flush()
            for one in agents:
                try:
                    one.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    one.process.kill()
                    one.process.wait()
            time.sleep(0.1)  # the reader threads' last lines
            sampler.stop()
            phases = {
                "apps starting": (0.0, all_ready),
                "idle": (all_ready, write_began),
                "worker writing": (write_began, write_ended),
                "catch up + markers": (write_ended, markers_ended),
            }
            report(
                args, per_agent, seed, baseline, writes, agents, rounds, sampler, phases, caught_up
            )
    finally:
        for one in agents:
            if one.process.poll() is None:
                one.process.kill()
        if sampler is not None:
            sampler.stop()
        if simulator is not None:
            stop_process(simulator)
        server.stop()


def report(
    args: argparse.Namespace,
    per_agent: int,
    seed: WorkerRun,
    baseline: WorkerRun | None,
    writes: WorkerRun,
    agents: list[AgentProcess],
    rounds: list[tuple[str, dict[str, float]]],
    sampler: ConnectionSampler,
    phases: dict[str, tuple[float, float]],
    caught_up: dict[str, float | None],
) -> None:
    idle = phases["idle"]
    writing = phases["worker writing"]
    print(
        f"\n{args.agents} apps, {per_agent:,} contacts each ({per_agent * args.agents:,} in all);"
        f" search every {SEARCH_PAUSE * 1000:.0f} ms after the last answer, watch every"
        f" {WATCH_SECONDS * 1000:.0f} ms; {os.cpu_count()} cores, load average"
        f" {args.load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"\nworker, sync --team --full while the apps search: {writes.seconds:.1f} s wall,"
        f" {writes.read:,} records read, {writes.written:,} written"
        f" ({writes.contacts_written:,} contacts; {writes.written / writes.seconds:,.0f}"
        f" records/s), exit {writes.code}"
    )
    for problem in writes.failed[:5]:
        print(f"  worker problem: {problem}")

    print(
        f"\n{'app':<5}{'searchable s':>13}{'load s':>8}{'index s':>8}{'contacts':>9}"
        f"{'idle p95':>9}{'writes n':>9}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
        f"{'follows':>8}{'apply s':>8}{'caught up':>10}{'marker s':>9}{'found s':>8}"
    )
    all_writes: list[float] = []
    all_idle: list[float] = []
    seen_lags: list[float] = []
    found_lags: list[float] = []
    catch_up: list[float] = []  # from the worker's exit to its last change applied
    errors: dict[str, list[str]] = {}
    for one in agents:
        ready = one.event("ready")
        done = one.event("done") or {}
        searches = [tuple(s) for s in done.get("searches", [])]
        during = [s for at, s in searches if writing[0] <= at <= writing[1]]
        before = [s for at, s in searches if idle[0] <= at < idle[1]]
        all_writes += during
        all_idle += before
        caught = caught_up.get(one.role)
        until = caught if caught is not None else phases["catch up + markers"][1]
        follows = [f for f in done.get("follows", []) if writing[0] <= f[0] <= until]
        applying = sum(end - start for start, end, _, _ in follows)
        if caught is not None:
            catch_up.append(caught - writing[1])
        seen = [
            at - committed[one.role]
            for token, committed in rounds
            if (at := one.token_at("seen", token)) is not None
        ]
        found = [
            at - committed[one.role]
            for token, committed in rounds
            if (at := one.token_at("found", token)) is not None
        ]
        seen_lags += seen
        found_lags += found
        problems = list(done.get("errors", []))
        if one.stderr_path is not None and one.stderr_path.exists():
            text = one.stderr_path.read_text(errors="replace").strip()
            if text and not problems:
                problems.append(text[-1500:])
        if one.process.returncode:
            problems.append(f"exit {one.process.returncode}")
        if problems:
            errors[one.role] = problems
        if ready is None:
            print(f"{one.role:<5}  never searchable")
            continue
        print(
            f"{one.role:<5}{ready['searchable'] - one.spawned:>13.2f}"
            f"{ready['loaded'] - ready['opened']:>8.2f}"
            f"{ready['searchable'] - ready['loaded']:>8.2f}"
            f"{ready['contacts']:>9,}{ms(percentile(before, 0.95)):>9}{len(during):>9}"
            f"{ms(percentile(during, 0.5)):>8}{ms(percentile(during, 0.95)):>8}"
            f"{ms(max(during, default=math.nan)):>8}{len(follows):>8}{applying:>8.2f}"
            f"{seconds(None if caught is None else caught - writing[1]):>10}"
            f"{seconds(statistics.median(seen) if seen else None):>9}"
            f"{seconds(statistics.median(found) if found else None):>8}"
        )
    readies = [e["searchable"] - a.spawned for a in agents if (e := a.event("ready")) is not None]
    print(
        "(searchable: from the process's spawn, all apps started at once; load: store.load();"
        " index: index_streams; idle p95: the searches before the worker started;"
        " writes n / p50 / p95 / max: the searches while it ran; follows / apply s: the"
        " worker's changes applied from the change log (each a follow of changes_since) and"
        " the time spent in those follows; caught up: from the worker's exit to the app having"
        " applied its last change (negative: before the process had exited);"
        f" marker / found: median over {len(rounds)} round(s), from the marker's commit to"
        " the app holding it / a search finding it)"
    )
    print("\nsummary")
    if readies:
        print(
            f"  time to searchable: median {statistics.median(readies):.2f} s,"
            f" max {max(readies):.2f} s (median parts: interpreter and imports"
            f" {median_part(agents, 'began', None):.2f} s, connecting"
            f" {median_part(agents, 'opened', 'began'):.2f} s, load"
            f" {median_part(agents, 'loaded', 'opened'):.2f} s, index"
            f" {median_part(agents, 'searchable', 'loaded'):.2f} s)"
        )
    print(
        f"  search while idle, all apps: {len(all_idle):,} searches, p50"
        f" {ms(percentile(all_idle, 0.5))} ms, p95 {ms(percentile(all_idle, 0.95))} ms"
    )
    per_app_p95 = [
        percentile(
            [s for at, s in ((x[0], x[1]) for x in (a.event("done") or {}).get("searches", []))
             if writing[0] <= at <= writing[1]],
            0.95,
        )
        for a in agents
    ]  # fmt: skip
    per_app_p95 = [p for p in per_app_p95 if not math.isnan(p)]
    print(
        f"  search while the worker writes, all apps: {len(all_writes):,} searches, p50"
        f" {ms(percentile(all_writes, 0.5))} ms, p95 {ms(percentile(all_writes, 0.95))} ms,"
        f" max {ms(max(all_writes, default=math.nan))} ms; worst app's p95"
        f" {ms(max(per_app_p95, default=math.nan))} ms"
    )
    print(
        f"  worker wall time for {writes.contacts_written:,} contacts"
        f" ({writes.written:,} records): {writes.seconds:.1f} s"
        f" (seed run before the apps: {seed.seconds:.1f} s"
        + (
            f"; the same --full with no app running: {baseline.seconds:.1f} s)"
            if baseline is not None
            else ")"
        )
    )
    for label, lags in (("in its store", seen_lags), ("found by its search", found_lags)):
        if lags:
            missing = len(agents) * len(rounds) - len(lags)
            print(
                f"  propagation, commit to {label}: median {statistics.median(lags):.3f} s,"
                f" max {max(lags):.3f} s (time for a change to reach every app)"
                + (f"; {missing} marker(s) never arrived" if missing else "")
            )
    if catch_up:
        print(
            f"  the worker's last change applied by every app {max(catch_up):.2f} s after the"
            f" worker exited (median app {statistics.median(catch_up):.2f} s)"
        )
    print_connections(sampler, phases)
    if errors:
        print("\nerrors in agent processes")
        for role, problems in errors.items():
            for problem in problems[:3]:
                print(f"  {role}: {problem}")


def median_part(agents: list[AgentProcess], end: str, start: str | None) -> float:
    """The median over the apps of one stretch of their start (from `start`'s time, or
    from the spawn)."""
    parts = [
        e[end] - (e[start] if start is not None else a.spawned)
        for a in agents
        if (e := a.event("ready")) is not None
    ]
    return statistics.median(parts) if parts else math.nan


def print_connections(sampler: ConnectionSampler, phases: dict[str, tuple[float, float]]) -> None:
    samples = sampler.samples
    if not samples:
        return
    print(
        f"\ndatabase connections in use (pg_stat_activity of the team database every"
        f" {SAMPLE_SECONDS} s: client backends, the sampler's own left out)"
    )
    for name, (start, end) in phases.items():
        counts = [n for at, n, _, _ in samples if start <= at <= end]
        if counts:
            print(
                f"  {name:<18} median {statistics.median(counts):>5.0f}   peak {max(counts):>4}"
                f"   ({len(counts)} samples)"
            )
    _, peak, states, apps = max(samples, key=lambda s: s[1])
    print(
        f"  peak {peak} connections; by state: "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items(), key=lambda kv: -kv[1]))
    )
    print(
        "  by application: "
        + ", ".join(f"{k or '?'} {v}" for k, v in sorted(apps.items(), key=lambda kv: -kv[1]))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=20, help="Apps, one process each.")
    parser.add_argument(
        "--contacts", type=int, default=100_000, help="Contacts the worker writes, in all."
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="Searching before the worker starts."
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=1.0,
        help="After every app has applied the worker's changes, before the markers.",
    )
    parser.add_argument("--marker-rounds", type=int, default=3, help="Propagation rounds.")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="Skip the worker's --full run with no app running (for comparison).",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="Per wait, seconds.")
    parser.add_argument("--agent", help=argparse.SUPPRESS)  # one app's process: its role
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        asyncio.run(agent(os.environ[URL_ENV], args.data_dir, args.agent, args.tag))
        return
    run(args)


if __name__ == "__main__":
    main()
