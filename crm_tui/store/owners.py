"""Who holds a lease or an unfinished generation, and whether that process is still alive.

crm-tui is many processes on one data dir (the app, `sync --watch`, scripts), later many
hosts on one database. Every writer registers itself as an owner row and beats a heartbeat
while it holds anything. Another process judges it dead:
- on the same machine (same boot, same PID namespace), at once, when its process is gone or
  its PID now belongs to a process started at another time (PIDs are reused);
- anywhere else, when its heartbeat is older than LEASE_TTL: a paused laptop or a host
  that lost power cannot be asked.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, replace
from functools import cache

#: How often a process that holds a lease or an unfinished generation says it is alive.
HEARTBEAT_SECONDS = 5.0
#: How long a silent owner on another machine is presumed alive. Six missed heartbeats: a
#: process busy on a slow disk must not lose its lease, a dead host must not block for long.
LEASE_TTL_SECONDS = 30.0


@cache
def _machine() -> str:
    """This boot of this machine, and this PID namespace: where PIDs mean the same thing.
    Two containers on one host share the boot id but not the namespace."""
    if sys.platform != "linux":
        return socket.gethostname()
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{boot}/{namespace}"


def _stat(pid: int) -> list[bytes]:
    """/proc/PID/stat from field 3 on ([] where unknown)."""
    if sys.platform != "linux":
        return []
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    return stat[stat.rfind(b")") + 2 :].split()


def start_time(pid: int) -> str:
    """When a process started, in clock ticks since boot ("" where unknown): a PID that
    now names a younger process is not the one that took the lease."""
    fields = _stat(pid)
    return fields[19].decode() if len(fields) > 19 else ""


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


#: Owner ids this process made: alive for as long as it runs, whatever its PID says.
_MINE: set[str] = set()


@dataclass(frozen=True, slots=True)
class Owner:
    """One writer: a process (and, in tests, one Database object of it)."""

    id: str
    host: str
    machine: str
    pid: int
    started: str

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        owner = cls(uuid.uuid4().hex, socket.gethostname(), _machine(), pid, start_time(pid))
        _MINE.add(owner.id)
        return owner

    def of_role(self, role: str) -> Owner:
        """This owner, its id under a team database's login role: the database lets a
        role create owner ids under its own name only, so no member can take another's."""
        owner = replace(self, id=f"{role}/{self.id}")
        _MINE.add(owner.id)
        return owner

    def describe(self) -> str:
        here = self.machine == _machine()
        return f"process {self.pid}" + ("" if here else f" on {self.host}")


def is_alive(owner: Owner, heartbeat_at: float, now: float | None = None) -> bool:
    if owner.id in _MINE:
        return True
    if owner.machine == _machine():
        # Our own PID too: a killed container's PID 1, in a namespace whose number came
        # back, is told from this process by its start time.
        if not pid_exists(owner.pid):
            return False
        fields = _stat(owner.pid)
        if not fields:  # no /proc here: the PID's existence is all we can know
            return not owner.started
        # a zombie (killed, not yet reaped by its parent) will never commit
        return fields[0] != b"Z" and fields[19].decode() == owner.started
    return (now if now is not None else time.time()) - heartbeat_at < LEASE_TTL_SECONDS
