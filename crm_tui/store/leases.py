"""One writer per stream across processes, and the generations that writers leave behind.

A lease on (user, source, stream) is a row taken in a write transaction: whoever inserts it
first holds the stream until it releases it or dies (see `owners`). A generation being
written is registered as pending under its owner, so that a commit can tell the rows it
replaces (the previous generation, and those of owners that died) from rows somebody alive
is still writing (an import in progress). A commit checks, in its own transaction, that its
lease is still held: a process presumed dead and then woken up cannot commit over the one
that took its stream.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from crm_tui.models import RecordKind, utc_now
from crm_tui.store.errors import LeaseLost, StoreError
from crm_tui.store.owners import HEARTBEAT_SECONDS, Owner, is_alive


@dataclass(frozen=True, slots=True)
class Lease:
    user_id: str
    source: str
    stream: str
    token: str


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease somebody else wants."""

    owner: Owner
    purpose: str
    acquired_at: str

    def describe(self) -> str:
        return f"{self.short()} (since {self.acquired_at})"

    def short(self) -> str:
        return f"the {self.purpose} in {self.owner.describe()}"


OWNER_COLUMNS = "o.id, o.host, o.machine, o.pid, o.started, o.heartbeat_at"
#: An owner row nothing names any more: no lease, no generation being written, no open run.
UNUSED = (
    "id NOT IN (SELECT owner FROM leases)"
    " AND id NOT IN (SELECT owner FROM pending_generations)"
    " AND id NOT IN (SELECT owner FROM sync_runs WHERE ended_at IS NULL AND owner IS NOT NULL)"
    " AND id NOT IN (SELECT claimed_by FROM outbox WHERE claimed_by IS NOT NULL)"
)
INTERRUPTED = "interrupted"


def owner_of(row: tuple[Any, ...]) -> tuple[Owner, float] | None:
    """An owner and its heartbeat from a LEFT JOIN's columns; None when the row is gone."""
    if row[0] is None:
        return None
    return Owner(row[0], row[1], row[2], int(row[3]), row[4]), float(row[5])


def alive(found: tuple[Owner, float] | None) -> bool:
    return found is not None and is_alive(*found)


class LeaseStore:
    """Lease and pending-generation bookkeeping; mixed into `Database`, whose connection,
    lock and transactions it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _init_leases(self) -> None:
        self.owner = Owner.this_process()
        self._holding = 0  # leases and pending generations this object has open
        self._heartbeat: threading.Event | None = None

    # -- this process as an owner ----------------------------------------------------------

    def _hold(self, conn: sqlite3.Connection) -> None:
        """Before taking a lease or a generation: this process's owner row, written afresh
        every time (a process that was judged dead and swept comes back as itself)."""
        o = self.owner
        conn.execute(
            "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET host = excluded.host,"
            " machine = excluded.machine, pid = excluded.pid, started = excluded.started,"
            " heartbeat_at = excluded.heartbeat_at",
            (o.id, o.host, o.machine, o.pid, o.started, time.time()),
        )
        if self._holding == 0:
            self._start_heartbeat()
        self._holding += 1

    def _unhold(self, conn: sqlite3.Connection) -> None:
        """After a lease or a generation went: the owner row goes once nothing names it
        (the database decides; the count only starts and stops the heartbeat)."""
        conn.execute(f"DELETE FROM owners WHERE id = ? AND {UNUSED}", (self.owner.id,))
        self._holding = max(0, self._holding - 1)
        if self._holding == 0:
            self._stop_heartbeat()

    def _start_heartbeat(self) -> None:
        stop = self._heartbeat = threading.Event()
        threading.Thread(
            target=self._beat, args=(stop,), name="crm-db-heartbeat", daemon=True
        ).start()

    def _stop_heartbeat(self) -> None:
        # Never joined here: the beat may be waiting for the lock this caller holds.
        if self._heartbeat is not None:
            self._heartbeat.set()
            self._heartbeat = None

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with self._lock:
                    if stop.is_set():
                        return
                    self._conn.execute(
                        "UPDATE owners SET heartbeat_at = ? WHERE id = ?",
                        (time.time(), self.owner.id),
                    )
            # closed, busy past the timeout, a team database's server gone a moment: the
            # next beat tries
            except (sqlite3.Error, StoreError):
                if stop.is_set():
                    return

    def _release_everything(self) -> None:
        """On close: whatever this object still holds goes (its rows are useless now)."""
        self._stop_heartbeat()
        if self._holding == 0:
            return
        with self.transaction() as conn:
            for generation, kind, user_id, source in conn.execute(
                "SELECT generation, kind, user_id, source FROM pending_generations WHERE owner = ?",
                (self.owner.id,),
            ).fetchall():
                self._delete_generation(conn, kind, user_id, source, generation)
            conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner.id,))
            conn.execute(
                "UPDATE sync_runs SET ended_at = ?, outcome = ?, error_message = ?"
                " WHERE owner = ? AND ended_at IS NULL",
                (utc_now(), INTERRUPTED, "the app closed before it finished", self.owner.id),
            )
            conn.execute("DELETE FROM owners WHERE id = ?", (self.owner.id,))
        self._holding = 0

    # -- runs whose process is gone ------------------------------------------------------

    def interrupt_abandoned_runs(self) -> int:
        """Open runs of processes that are gone, marked interrupted (how many). A run of a
        live process is left alone: on this machine its PID is checked; from another host
        it is gone only once its heartbeat is older than the lease TTL. A run from before
        runs named their process counts as gone unless a live process holds a lease on
        that source."""
        with self._lock, self._reading():  # the usual case, none open: no write lock taken
            if (
                self._conn.execute(
                    "SELECT 1 FROM sync_runs WHERE ended_at IS NULL LIMIT 1"
                ).fetchone()
                is None
            ):
                return 0
        with self.transaction() as conn:
            rows = conn.execute(
                f"SELECT r.id, r.user_id, r.source, r.owner, {OWNER_COLUMNS} FROM sync_runs r"
                " LEFT JOIN owners o ON o.id = r.owner WHERE r.ended_at IS NULL"
            ).fetchall()
            if not rows:
                return 0
            leased = {
                (user, source)
                for user, source, *owner in conn.execute(
                    f"SELECT l.user_id, l.source, {OWNER_COLUMNS} FROM leases l"
                    " JOIN owners o ON o.id = l.owner"
                ).fetchall()
                if alive(owner_of(tuple(owner)))
            }
            gone = []
            for run_id, user, source, owner_id, *owner in rows:
                found = owner_of(tuple(owner))
                legacy = owner_id is None
                dead = (user, source) not in leased if legacy else not alive(found)
                if dead:
                    why = "its process ended before it finished"
                    if found is not None:
                        why = f"{found[0].describe()} ended before it finished"
                    gone.append((utc_now(), INTERRUPTED, why, run_id))
            conn.executemany(
                "UPDATE sync_runs SET ended_at = ?, outcome = ?, error_message = ?"
                " WHERE id = ? AND ended_at IS NULL",
                gone,
            )
            if gone:
                conn.execute(f"DELETE FROM owners WHERE {UNUSED}")
            return len(gone)

    # -- leases ----------------------------------------------------------------------------

    def acquire_lease(self, user_id: str, source: str, stream: str, purpose: str) -> Lease | Holder:
        """The stream's lease, or who holds it. A holder found dead is swept away first,
        with every generation it left unfinished."""
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT l.purpose, l.acquired_at, {OWNER_COLUMNS} FROM leases l"
                " LEFT JOIN owners o ON o.id = l.owner"
                " WHERE l.user_id = ? AND l.source = ? AND l.stream = ?",
                (user_id, source, stream),
            ).fetchone()
            if row is not None and alive(found := owner_of(row[2:])):
                assert found is not None
                return Holder(found[0], row[0], row[1])
            self._sweep(conn, user_id, source, stream)  # type: ignore[arg-type]
            lease = Lease(user_id, source, stream, uuid.uuid4().hex)
            self._hold(conn)
            conn.execute(
                "INSERT INTO leases"
                " (user_id, source, stream, token, owner, purpose, acquired_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, source, stream)"
                " DO UPDATE SET token = excluded.token, owner = excluded.owner,"
                " purpose = excluded.purpose, acquired_at = excluded.acquired_at",
                (user_id, source, stream, lease.token, self.owner.id, purpose, utc_now()),
            )
            return lease

    def release_lease(self, lease: Lease) -> None:
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM leases WHERE user_id = ? AND source = ? AND stream = ? AND token = ?",
                (lease.user_id, lease.source, lease.stream, lease.token),
            )
            self._unhold(conn)

    def check_lease(self, conn: sqlite3.Connection, lease: Lease) -> None:
        """Inside a commit's transaction: is this lease still ours?"""
        held = conn.execute(
            "SELECT 1 FROM leases WHERE user_id = ? AND source = ? AND stream = ? AND token = ?",
            (lease.user_id, lease.source, lease.stream, lease.token),
        ).fetchone()
        if held is None:
            raise LeaseLost(
                f"Lost the lease on {lease.source} {lease.stream}",
                "another process took it over while this one was silent; nothing was"
                " committed, the other process's data stands",
            )

    def leases(self, user_id: str) -> list[tuple[str, str, Holder]]:
        """(source, stream, holder) of every lease held by a live owner."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT l.source, l.stream, l.purpose, l.acquired_at, {OWNER_COLUMNS}"
                " FROM leases l LEFT JOIN owners o ON o.id = l.owner WHERE l.user_id = ?",
                (user_id,),
            ).fetchall()
        out = []
        for source, stream, purpose, acquired_at, *owner in rows:
            found = owner_of(tuple(owner))
            if found is not None and alive(found):
                out.append((source, stream, Holder(found[0], purpose, acquired_at)))
        return out

    # -- generations being written ---------------------------------------------------------

    def new_generation(self, user_id: str, source: str, kind: RecordKind) -> int:
        """A generation number never used before by any stream (AUTOINCREMENT never reuses
        one), registered as pending under this process until committed or dropped."""
        with self.transaction() as conn:
            generation = self._draw_generation(conn)
            self._hold(conn)
            conn.execute(
                "INSERT INTO pending_generations (generation, user_id, kind, source, owner)"
                " VALUES (?, ?, ?, ?, ?)",
                (generation, user_id, kind, source, self.owner.id),
            )
        return generation

    @staticmethod
    def _draw_generation(conn: sqlite3.Connection) -> int:
        """The next number: AUTOINCREMENT remembers the highest ever taken, so the table
        keeps only the newest row."""
        generation = conn.execute("INSERT INTO generations DEFAULT VALUES").lastrowid
        assert generation is not None
        conn.execute("DELETE FROM generations WHERE id < ?", (generation,))
        return generation

    def _settle(self, conn: sqlite3.Connection, generation: int) -> bool:
        """A pending generation of ours is being committed or dropped: False when it was
        no longer pending (committed already, or swept by a process that judged this one
        dead), and then it must be neither committed nor dropped."""
        gone = conn.execute(
            "DELETE FROM pending_generations WHERE generation = ? AND owner = ?",
            (generation, self.owner.id),
        ).rowcount
        if gone:
            self._unhold(conn)
        return bool(gone)

    def _settle_or_lose(
        self, conn: sqlite3.Connection, generation: int, source: str, stream: str
    ) -> None:
        """Inside a commit: the generation is still ours to commit, or LeaseLost."""
        if not self._settle(conn, generation):
            raise LeaseLost(
                f"Lost {source} {stream} while writing it",
                "another process judged this one dead and removed what it had written;"
                " nothing was committed",
            )

    def _pending(
        self, conn: sqlite3.Connection, user_id: str, source: str, kind: RecordKind
    ) -> Iterator[tuple[int, bool]]:
        """(generation, owner alive) for every generation being written to a stream."""
        rows = conn.execute(
            f"SELECT p.generation, {OWNER_COLUMNS} FROM pending_generations p"
            " LEFT JOIN owners o ON o.id = p.owner"
            " WHERE p.user_id = ? AND p.kind = ? AND p.source = ?",
            (user_id, kind, source),
        ).fetchall()
        for generation, *owner in rows:
            yield generation, alive(owner_of(tuple(owner)))

    def _sweep(self, conn: sqlite3.Connection, user_id: str, source: str, kind: RecordKind) -> None:
        """Delete what dead owners left of a stream: their rows, their pending entries."""
        for generation, alive in list(self._pending(conn, user_id, source, kind)):
            if not alive:
                self._delete_generation(conn, kind, user_id, source, generation)
        conn.execute(f"DELETE FROM owners WHERE {UNUSED}")

    def _live_pending(
        self, conn: sqlite3.Connection, user_id: str, source: str, kind: RecordKind
    ) -> list[int]:
        return [g for g, alive in self._pending(conn, user_id, source, kind) if alive]

    def _delete_generation(
        self, conn: sqlite3.Connection, kind: str, user_id: str, source: str, generation: int
    ) -> None:
        """A generation's rows, and its pending entry if it has one."""
        conn.execute(
            f"DELETE FROM {_table(kind)} WHERE user_id = ? AND source = ? AND generation = ?",
            (user_id, source, generation),
        )
        conn.execute("DELETE FROM pending_generations WHERE generation = ?", (generation,))


def _table(kind: str) -> str:
    """A record table's name, checked here since kinds read back from the database (a
    pending generation's) reach SQL text."""
    if kind not in ("contacts", "deals"):
        raise ValueError(f"not a record kind: {kind!r}")
    return kind
