"""Shared fixtures: an isolated environment, settings, stores, and the demo servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import stamina
from hypothesis import settings as hypothesis_settings

from crm_tui.app import CrmApp
from crm_tui.config import Settings
from crm_tui.demo.servers import DemoServers, Faults, start_demo_servers
from crm_tui.store import CacheStore, Database
from crm_tui.team import scratch_server
from tests.helpers.backends import BACKENDS, Backing, backing_for, make_template
from tests.helpers.env import DEMO_CONTACTS, make_settings
from tests.helpers.reliability import record_case, write_report
from tests.helpers.snapshots import SNAPSHOT_DIR, build_app, snapshot_settings

#: Every variable crm-tui reads: its own and each registered source's.
SETTING_NAMES = frozenset(f.upper() for f in Settings.model_fields)

# In CI, the same examples every run: a landing must not depend on a lucky draw. Locally,
# fresh examples each run keep looking for new failures.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's real settings, config dir or working directory."""
    for key in list(os.environ):
        if key.upper() in SETTING_NAMES or key.startswith("CRM_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def no_retry_sleep() -> Iterator[None]:
    """Retries still happen, up to each policy's cap, but without waiting."""
    stamina.set_testing(True, attempts=10, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[CacheStore]:
    db = Database(settings.database_path)
    yield CacheStore(settings.user_id, db)
    db.close()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[scratch_server.ScratchServer]:
    """One PostgreSQL server for the session (each xdist worker's own), with a migrated
    template that every test's database is copied from."""
    with scratch_server.running() as server:
        make_template(server, tmp_path_factory.mktemp("pg-template"))
        yield server


@pytest.fixture(params=BACKENDS)
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backing]:
    """The test's store on each back end in turn: SQLite, then PostgreSQL."""
    yield from backing_for(
        request.param, tmp_path / "data", lambda: request.getfixturevalue("pg_server")
    )


@pytest.fixture
def open_db(backing: Backing) -> Callable[[], Database]:
    return backing.open


@pytest.fixture(scope="session")
def demo_servers() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=DEMO_CONTACTS, seed=11, fub_rate_limit=10_000)
    yield servers
    servers.stop()


@pytest.fixture
def demo_settings(tmp_path: Path, demo_servers: DemoServers) -> Settings:
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    return make_settings(tmp_path, **env)


@pytest.fixture(scope="session")
def synced_demo_dir(
    tmp_path_factory: pytest.TempPathFactory, demo_servers: DemoServers
) -> Iterator[Path]:
    """A data dir holding one sync of every demo source, made once per session: copied by
    `synced_settings` for the tests of what the app does with data, not of syncing it."""
    root = tmp_path_factory.mktemp("synced-demo")
    with pytest.MonkeyPatch.context() as patch:  # no developer's config, as isolated_env
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
            patch.setenv(name, str(root / name.lower()))
        settings = make_settings(root, **{k.lower(): v for k, v in demo_servers.env().items()})
        asyncio.run(_sync_every_source(settings))
    yield settings.data_dir


async def _sync_every_source(settings: Settings) -> None:
    from crm_tui.sync.engine import SyncEngine

    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)
    store.load_statuses_sync()
    engine = SyncEngine(settings, store)
    try:
        reports = await engine.sync_all(None)
    finally:
        await engine.aclose()
        db.close()
    failed = [name for name, report in reports.items() if report.error]
    assert not failed, f"the demo sync failed for {failed}"


@pytest.fixture
def synced_settings(demo_settings: Settings, synced_demo_dir: Path) -> Settings:
    """`demo_settings` over a copy of `synced_demo_dir`: the app opens with every source
    synced (make it with `sync_stale=False`, or it may sync them again)."""
    shutil.copytree(synced_demo_dir, demo_settings.data_dir)
    return demo_settings


@pytest.fixture
def faulty_servers(request: pytest.FixtureRequest) -> Iterator[DemoServers]:
    """Demo servers of the test's own, with the faults given by
    `@pytest.mark.parametrize(..., indirect=True)` (none by default)."""
    faults: Faults = getattr(request, "param", Faults())
    servers = start_demo_servers(
        contacts=DEMO_CONTACTS, seed=11, faults=faults, fub_rate_limit=10_000
    )
    yield servers
    servers.stop()


@pytest.fixture
def snapshot_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CrmApp]]:
    """Builds the app over fixed data (tests/helpers/snapshots.py), in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    settings = snapshot_settings()
    yield lambda **options: build_app(settings, **options)
    time.tzset()
    shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)


#: `make reliability` sets it: only then does the session write its report (build/reliability.md).
REPORTING = os.environ.get("CRM_TEST_REPORT") == "1"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if REPORTING and report.when == "call" and report.passed:
        path, _, name = report.nodeid.partition("::")
        record_case(Path(path).stem, name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REPORTING:
        write_report()
