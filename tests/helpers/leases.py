"""Another process's traces planted in a database: a dead owner and the lease it held."""

from __future__ import annotations

import subprocess
import sys

from crm_tui.models import Contact
from crm_tui.store import Database
from crm_tui.store.owners import Owner, start_time


def contact(n: int, name: str = "Ann", source: str = "brivity") -> Contact:
    return Contact(
        id=f"{source}:{n}", source=source, remote_id=str(n), user_id="alice", first_name=name
    )


def dead_process() -> tuple[int, str]:
    """The PID and start time of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = start_time(child.pid)
    child.wait()
    return child.pid, started


def plant_owner(db: Database, owner: Owner, heartbeat_at: float) -> None:
    db._conn.execute(
        "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (owner.id, owner.host, owner.machine, owner.pid, owner.started, heartbeat_at),
    )


def plant_lease(db: Database, owner: Owner, generation_rows: int = 0) -> int:
    """Another process's lease on brivity contacts, with a generation it had begun."""
    db._conn.execute(
        "INSERT INTO leases (user_id, source, stream, token, owner, purpose, acquired_at)"
        " VALUES ('alice', 'brivity', 'contacts', 'theirs', ?, 'sync', 'then')",
        (owner.id,),
    )
    generation = db._conn.execute("INSERT INTO generations DEFAULT VALUES").lastrowid
    db._conn.execute(
        "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
        " VALUES (?, 'alice', 'contacts', 'brivity', ?)",
        (generation, owner.id),
    )
    db.stage("contacts", generation, [contact(100 + i) for i in range(generation_rows)])
    return generation
