"""Fault points for the reliability tests, where the code calls `fault_point(name)`:
- `CRM_CRASH_AT=<name>`: the process kills itself with SIGKILL there: no cleanup, no
  atexit, no rollback, as a power cut would leave it;
- `CRM_PAUSE_AT=<name>` with `CRM_PAUSE_FILE=<path>`: the process creates the file and
  waits there until the file is gone (a minute at most), so that a test can start another
  process at exactly that point. It pauses the first time only.
Unset (always, outside the tests), a point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_paused: set[str] = set()


def fault_point(name: str) -> None:
    if os.environ.get("CRM_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("CRM_PAUSE_AT") == name and name not in _paused:
        _paused.add(name)
        barrier = Path(os.environ["CRM_PAUSE_FILE"])
        barrier.touch()
        deadline = time.monotonic() + 60
        while barrier.exists() and time.monotonic() < deadline:
            time.sleep(0.005)  # processes released together go on together
