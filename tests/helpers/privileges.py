"""Child processes that file modes apply to, even when the tests run as root (CI does).

Root ignores file modes, so a test of a read-only database needs a child without that
power. The usual way is to become an unprivileged user (65534) in the child; where that user
cannot even run this Python (a pyenv build under /root, mode 0700), the child stays root but
drops the capabilities that override file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
CAP_FOWNER) from its bounding set before exec, so the new program never has them.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

NOBODY = 65534
_PR_CAPBSET_DROP = 24
_FILE_MODE_CAPABILITIES = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child should not load it


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _drop_file_mode_capabilities() -> None:
    for capability in _FILE_MODE_CAPABILITIES:
        if _LIBC.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@dataclass(frozen=True)
class Unprivileged:
    """How to start a child that file modes apply to, and who must own its files."""

    preexec: Callable[[], None] | None
    owner: int
    how: str

    def own(self, *paths: Path) -> None:
        """Give `paths` (and everything under folders among them) to the child's user."""
        for path in paths:
            os.chown(path, self.owner, self.owner, follow_symlinks=False)
            if path.is_dir() and not path.is_symlink():
                for root, dirs, files in os.walk(path):
                    for name in dirs + files:
                        os.chown(Path(root, name), self.owner, self.owner, follow_symlinks=False)


def _modes_apply(preexec: Callable[[], None]) -> bool:
    """The child runs this Python, and cannot write a file whose mode says it may not."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        probe = Path(folder, "probe")
        probe.write_text("x")
        os.chmod(probe, 0o444)
        code = f"open({str(probe)!r}, 'a')"
        try:
            child = subprocess.run(
                [sys.executable, "-c", code],
                preexec_fn=preexec,
                capture_output=True,
                text=True,
                cwd="/",
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return "PermissionError" in child.stderr


@functools.cache
def _choose() -> Unprivileged | None:
    if os.geteuid() != 0:
        return Unprivileged(None, os.geteuid(), "not root")
    if _modes_apply(_become_nobody):
        return Unprivileged(_become_nobody, NOBODY, "uid 65534")
    if _modes_apply(_drop_file_mode_capabilities):
        return Unprivileged(_drop_file_mode_capabilities, 0, "root without file-mode capabilities")
    return None


def unprivileged() -> Unprivileged:
    chosen = _choose()
    if chosen is None:
        pytest.skip("root, and no way here to start a child that file modes apply to")
    return chosen
