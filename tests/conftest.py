"""Shared fixtures: an isolated environment, settings, stores, and the demo servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import stamina
from hypothesis import settings as hypothesis_settings

from crm_tui.config import Settings
from crm_tui.demo.servers import DemoServers, Faults, start_demo_servers
from crm_tui.store import CacheStore, Database

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


def run_crm(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`crm-tui ARGS` in a child process with `env` on top of this one's environment."""
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=timeout,
        preexec_fn=preexec,
    )


@pytest.fixture
def no_retry_sleep() -> Iterator[None]:
    """Retries still happen, up to each policy's cap, but without waiting."""
    stamina.set_testing(True, attempts=10, cap=True)
    yield
    stamina.set_testing(False)


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    values.setdefault("crm_data_dir", tmp_path / "data")
    values.setdefault("crm_user_id", "alice")
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[CacheStore]:
    db = Database(settings.database_path)
    yield CacheStore(settings.user_id, db)
    db.close()


DEMO_CONTACTS = 260  # three FUB pages and change: paging is exercised, runs stay fast


@pytest.fixture(scope="session")
def demo_servers() -> Iterator[DemoServers]:
    servers = start_demo_servers(contacts=DEMO_CONTACTS, seed=11, fub_rate_limit=10_000)
    yield servers
    servers.stop()


@pytest.fixture
def demo_settings(tmp_path: Path, demo_servers: DemoServers) -> Settings:
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    return make_settings(tmp_path, **env)


@pytest.fixture
def faulty_servers(request: pytest.FixtureRequest) -> Iterator[DemoServers]:
    """Demo servers with the faults given by `@pytest.mark.parametrize(..., indirect=True)`."""
    faults: Faults = getattr(request, "param", Faults())
    servers = start_demo_servers(
        contacts=DEMO_CONTACTS, seed=11, faults=faults, fub_rate_limit=10_000
    )
    yield servers
    servers.stop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        from tests.reliability import record_case

        path, _, name = report.nodeid.partition("::")
        record_case(Path(path).stem, name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.reliability import write_report

    write_report()
