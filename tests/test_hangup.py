"""The app leaves when its terminal goes away without a SIGHUP, instead of spinning."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from crm_tui.hangup import hung_up


def test_a_closed_terminal_reads_as_hung_up_and_an_open_one_does_not():
    master, slave = pty.openpty()
    try:
        assert not hung_up(slave)
        os.close(master)
        assert hung_up(slave)
    finally:
        os.close(slave)


def test_the_app_exits_when_its_terminal_goes_away(tmp_path):
    """The real app on a real pseudo-terminal; the terminal's other end closes, and no
    SIGHUP is sent (the process runs in a session of its own, as under a killed tmux)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "CRM_DATA_DIR": str(tmp_path), "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_tui"],
        stdin=slave,
        stdout=slave,
        stderr=slave,  # Textual draws on stderr
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 20
        seen = b""
        # poll, not select: a test process may hold descriptors past select's 1024
        waiting = select.poll()
        waiting.register(master, select.POLLIN)
        while b"Sync all" not in seen and time.monotonic() < deadline:
            if waiting.poll(500):
                seen += os.read(master, 65536)
        assert b"Sync all" in seen, f"the app did not draw its first screen: {seen[-300:]!r}"
        assert process.poll() is None
        os.close(master)
        assert process.wait(timeout=10) == 128 + signal.SIGHUP
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
