"""A whole demo session: simulators up, CSVs written, settings pointing at both."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_tui.config import CONFIG_DIR_ENV, Settings
from crm_tui.demo.churn import Churn
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.demo.csvfiles import write_demo_csvs
from crm_tui.demo.servers import DemoServers, Faults, start_demo_servers


@dataclass
class DemoSession:
    servers: DemoServers
    settings: Settings
    data_dir: Path
    owns_data_dir: bool
    config_before: str | None = None  # CRM_CONFIG_DIR as it was before the session

    @property
    def config_dir(self) -> Path:
        """The demo's own config dir (its mappings.toml): a person's real one is left be."""
        return self.data_dir / "config"

    @property
    def env_file(self) -> Path:
        """The session's settings as a .env file: the CLI works on the demo with
        `--env-file` while it runs."""
        return self.data_dir / "demo.env"

    def start_churn(self, rate: float = 0.2, webhook_url: str | None = None) -> Churn:
        """Let the demo's records change live (`rate` changes a second; 0.2 lets a person
        watch them), posting signed FUB and HubSpot webhooks to `webhook_url` if given."""
        return self.servers.start_churn(rate, webhook_url)

    def stop_churn(self) -> None:
        self.servers.stop_churn()

    def close(self) -> None:
        self.servers.stop()
        if self.config_before is None:
            os.environ.pop(CONFIG_DIR_ENV, None)
        else:
            os.environ[CONFIG_DIR_ENV] = self.config_before
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> DemoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_demo(
    data_dir: Path | None = None,
    contacts: int = 2000,
    seed: int = 7,
    faults: Faults | None = None,
    clock: DemoClock = FIXED,
    **overrides: Any,
) -> DemoSession:
    """Start the simulators and build Settings that use them and a throwaway data dir.
    `clock` places the generated dates: `crm-tui --demo` dates them to its day
    (`DemoClock.today()`); the default is the fixed window tests compare."""
    servers = start_demo_servers(contacts=contacts, seed=seed, faults=faults, clock=clock)
    owns = data_dir is None
    try:
        folder = Path(tempfile.mkdtemp(prefix="crm-tui-demo-")) if data_dir is None else data_dir
        files = write_demo_csvs(folder / "imports", contacts, seed, clock)
        values: dict[str, Any] = {key.lower(): value for key, value in servers.env().items()}
        values.update(
            crm_data_dir=folder,
            brivity_transactions_csv=files["brivity_transactions"],
            topproducer_import_dir=files["topproducer_contacts"].parent,
        )
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        session = DemoSession(servers, settings, folder, owns, os.environ.get(CONFIG_DIR_ENV))
        os.environ[CONFIG_DIR_ENV] = str(session.config_dir)
        _write_env_file(session.env_file, {**values, CONFIG_DIR_ENV: session.config_dir})
    except BaseException:
        servers.stop()
        raise
    return session


def _write_env_file(path: Path, values: dict[str, Any]) -> None:
    lines = [f"{name.upper()}={value}" for name, value in values.items() if value is not None]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# crm-tui --demo: the CLI works on the demo with --env-file THIS\n")
        handle.write("\n".join(lines) + "\n")
