"""Settings for a test's own data dir, and crm-tui run as a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crm_tui.config import Settings

DEMO_CONTACTS = 260  # three FUB pages and change: paging is exercised, runs stay fast


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    values.setdefault("crm_data_dir", tmp_path / "data")
    values.setdefault("crm_user_id", "alice")
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
