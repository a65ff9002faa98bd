"""The outbox: edits of vendor records, saved before they are sent, kept after as their audit.

An edit is a row from the moment a person saves it. A process sends it only after claiming
it (`pending` -> `sending`, one transaction, so two processes never both send it) and marks
it `sent_at` in a committed transaction just before the request leaves: a process killed
before that mark never sent it (the row goes back to `pending`); one killed after it may
have (the row becomes `unsure`, and the vendor is read before anything is sent again). The
vendor's answer ends it: `done`, `failed` (the vendor's reason), `conflict` (the record
changed at the vendor since the person saw it: the three versions wait for a choice). A
person may `drop` what is not done. Every state change logs the record in `changes`, so
every open app re-reads its pending mark.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Literal

from crm_tui.models import RecordKind, utc_now
from crm_tui.store.damage import damage_named
from crm_tui.store.leases import OWNER_COLUMNS, alive, owner_of
from crm_tui.store.owners import Owner

Action = Literal["update", "create", "note"]
State = Literal["pending", "sending", "unsure", "done", "failed", "conflict", "dropped"]
#: Not finished: shown on the record, blocking later edits of it.
OPEN_STATES: tuple[State, ...] = ("pending", "sending", "unsure", "failed", "conflict")
#: Still on their way: the record shows the values they send.
SENDING_STATES: tuple[State, ...] = ("pending", "sending", "unsure")
_COLUMNS = (
    "id, user_id, source, stream, action, record_id, remote_id, base, wanted, theirs, state,"
    " attempts, error, answer, author, created_at, updated_at, sent_at, done_at"
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One edit. `base` holds the edited fields as the person saw them, `wanted` what they
    want, `theirs` the vendor's values when it changed them meanwhile (a conflict)."""

    id: int
    user_id: str
    source: str
    stream: RecordKind
    action: Action
    record_id: str | None  # the cache id; None for a lead not created yet
    remote_id: str | None
    base: dict[str, Any]
    wanted: dict[str, Any]
    theirs: dict[str, Any] | None
    state: State
    attempts: int
    error: str | None
    answer: str | None  # the vendor's answer, one line
    author: str
    created_at: str
    updated_at: str
    sent_at: str | None
    done_at: str | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "stream": self.stream,
            "action": self.action,
            "record_id": self.record_id,
            "remote_id": self.remote_id,
            "state": self.state,
            "before": self.base,
            "after": self.wanted,
            "theirs": self.theirs,
            "attempts": self.attempts,
            "error": self.error,
            "answer": self.answer,
            "author": self.author,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "sent_at": self.sent_at,
            "done_at": self.done_at,
        }


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    (eid, user, source, stream, action, rid, remote, base, wanted, theirs, *rest) = row
    return OutboxEntry(
        eid,
        user,
        source,
        stream,
        action,
        rid,
        remote,
        json.loads(base),
        json.loads(wanted),
        json.loads(theirs) if theirs else None,
        *rest,
    )


def _dumps(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False)


class OutboxStore:
    """Mixed into `Database`, whose connection, lock, owner and transactions it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    owner: Owner
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _hold: Callable[[sqlite3.Connection], None]
    _unhold: Callable[[sqlite3.Connection], None]
    log_changes: Callable[..., None]

    def _logged(self, conn: sqlite3.Connection, entry: OutboxEntry) -> None:
        if entry.record_id is not None:
            self.log_changes(conn, entry.user_id, entry.stream, entry.source, [entry.record_id])

    def _get(self, conn: sqlite3.Connection, entry_id: int) -> OutboxEntry | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if row else None

    # -- saving an edit ----------------------------------------------------------------------

    def add_edit(
        self,
        user_id: str,
        source: str,
        stream: RecordKind,
        action: Action,
        record_id: str | None,
        remote_id: str | None,
        base: Mapping[str, Any],
        wanted: Mapping[str, Any],
        author: str,
    ) -> OutboxEntry:
        """Save an edit. A change of a record whose earlier edit has not been claimed yet is
        folded into it (one request, the first `base` of each field kept)."""
        now = utc_now()
        with self.transaction() as conn:
            waiting = None
            if action == "update" and record_id is not None:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE user_id = ? AND record_id = ?"
                    " AND action = 'update' AND state = 'pending' ORDER BY id DESC LIMIT 1",
                    (user_id, record_id),
                ).fetchone()
                waiting = _entry(row) if row else None
            if waiting is not None:
                merged_base = {**base, **waiting.base}
                merged = {**waiting.wanted, **wanted}
                conn.execute(
                    "UPDATE outbox SET base = ?, wanted = ?, updated_at = ? WHERE id = ?",
                    (_dumps(merged_base), _dumps(merged), now, waiting.id),
                )
                entry_id = waiting.id
            else:
                cursor = conn.execute(
                    "INSERT INTO outbox (user_id, source, stream, action, record_id, remote_id,"
                    " base, wanted, state, author, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (
                        user_id,
                        source,
                        stream,
                        action,
                        record_id,
                        remote_id,
                        _dumps(base),
                        _dumps(wanted),
                        author,
                        now,
                        now,
                    ),
                )
                entry_id = int(cursor.lastrowid or 0)
            entry = self._get(conn, entry_id)
            assert entry is not None
            self._logged(conn, entry)
            return entry

    # -- reading -----------------------------------------------------------------------------

    @damage_named
    def outbox(
        self,
        user_id: str,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 1000,
        record_id: str | None = None,
    ) -> list[OutboxEntry]:
        """Entries newest first, optionally only in `states`, of `source`, of one record."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE user_id = ?"
        args: list[Any] = [user_id]
        wanted = list(states or ())
        if wanted:
            sql += f" AND state IN ({', '.join('?' * len(wanted))})"
            args += wanted
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        if record_id is not None:
            sql += " AND record_id = ?"
            args.append(record_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [_entry(r) for r in self._conn.execute(sql, args).fetchall()]

    @damage_named
    def outbox_counts(self, user_id: str) -> dict[State, int]:
        """How many entries are in each open state (what the app's Status shows)."""
        marks = ", ".join(f"'{s}'" for s in OPEN_STATES)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT state, COUNT(*) FROM outbox WHERE user_id = ? AND state IN ({marks})"
                " GROUP BY state",
                (user_id,),
            ).fetchall()
        return {state: count for state, count in rows}

    @damage_named
    def outbox_entry(self, user_id: str, entry_id: int) -> OutboxEntry | None:
        with self._lock:
            entry = self._get(self._conn, entry_id)
        return entry if entry is not None and entry.user_id == user_id else None

    @damage_named
    def pending_values(self, user_id: str) -> tuple[int, dict[str, dict[str, Any]]]:
        """record id -> the values its unsent edits set, oldest edit first (what the cache
        shows until the vendor confirms them), with the change log's newest entry read in
        the same snapshot: every outbox change logs one, so of two readings the one with
        the higher stamp is the newer."""
        marks = ", ".join(f"'{s}'" for s in SENDING_STATES)
        with self._lock, self._reading():  # type: ignore[attr-defined]
            stamp = self._newest()  # type: ignore[attr-defined]
            rows = self._conn.execute(
                "SELECT record_id, wanted FROM outbox WHERE user_id = ? AND action = 'update'"
                f" AND record_id IS NOT NULL AND state IN ({marks}) ORDER BY id",
                (user_id,),
            ).fetchall()
        values: dict[str, dict[str, Any]] = {}
        for record_id, wanted in rows:
            values.setdefault(record_id, {}).update(json.loads(wanted))
        return stamp, values

    # -- sending -----------------------------------------------------------------------------

    def recover_outbox(self, user_id: str) -> int:
        """Entries claimed by processes that are gone: never sent -> `pending`; perhaps sent
        -> `unsure` (read back before sending again). Returns how many."""
        with self._lock:
            if not self._conn.execute(
                "SELECT 1 FROM outbox WHERE user_id = ? AND state = 'sending' LIMIT 1", (user_id,)
            ).fetchone():
                return 0
        with self.transaction() as conn:
            rows = conn.execute(
                f"SELECT x.id, x.sent_at, {OWNER_COLUMNS} FROM outbox x"
                " LEFT JOIN owners o ON o.id = x.claimed_by"
                " WHERE x.user_id = ? AND x.state = 'sending'",
                (user_id,),
            ).fetchall()
            gone = [(eid, sent) for eid, sent, *owner in rows if not alive(owner_of(tuple(owner)))]
            for entry_id, sent_at in gone:
                state = "pending" if sent_at is None else "unsure"
                conn.execute(
                    "UPDATE outbox SET state = ?, claimed_by = NULL, updated_at = ? WHERE id = ?",
                    (state, utc_now(), entry_id),
                )
                entry = self._get(conn, entry_id)
                assert entry is not None
                self._logged(conn, entry)
            return len(gone)

    def claim_edit(self, user_id: str, source: str) -> OutboxEntry | None:
        """The oldest entry of `source` ready to send (pending or unsure, with no earlier
        unfinished edit of the same record), now `sending` under this process."""
        marks = ", ".join(f"'{s}'" for s in OPEN_STATES)
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox x WHERE user_id = ? AND source = ?"
                " AND state IN ('pending', 'unsure') AND NOT EXISTS ("
                "  SELECT 1 FROM outbox y WHERE y.user_id = x.user_id"
                "  AND y.record_id = x.record_id AND y.id < x.id"
                f"  AND y.state IN ({marks})) ORDER BY id LIMIT 1",
                (user_id, source),
            ).fetchone()
            if row is None:
                return None
            entry = _entry(row)
            conn.execute(
                "UPDATE outbox SET state = 'sending', claimed_by = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                (self.owner.id, utc_now(), entry.id),
            )
            self._hold(conn)  # last: a failure before it rolls back and leaks no hold
            claimed = self._get(conn, entry.id)
            assert claimed is not None
            # sent_at survives every later state: an entry perhaps sent by an earlier try
            # is read back before anything is sent again
            return claimed if claimed.sent_at is None else _as_unsure(claimed)

    def mark_sent(self, entry_id: int, base: Mapping[str, Any] | None = None) -> bool:
        """Committed before the request leaves: from here a crash means "perhaps sent".
        `base` records what the vendor had just before (the notes a read-back must not
        mistake for this one). False when this process no longer holds the claim (presumed
        dead and taken over): it must not send."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET sent_at = ?, base = COALESCE(?, base)"
                " WHERE id = ? AND claimed_by = ? AND state = 'sending'",
                (utc_now(), _dumps(base) if base is not None else None, entry_id, self.owner.id),
            )
            return cursor.rowcount == 1

    def finish_edit(
        self,
        entry_id: int,
        state: State,
        *,
        error: str | None = None,
        answer: str | None = None,
        theirs: Mapping[str, Any] | None = None,
        remote_id: str | None = None,
        record_id: str | None = None,
    ) -> OutboxEntry | None:
        """End this process's claim: `done`, `failed`, `conflict`, or back to `pending` (to
        be tried again later: the vendor was unreachable), which is `unsure` when a try may
        have reached the vendor. A refusal (`failed`) means nothing was applied: a retry the
        person asks for after it sends afresh."""
        now = utc_now()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET"
                " state = CASE WHEN ? = 'pending' AND sent_at IS NOT NULL THEN 'unsure' ELSE ? END,"
                " sent_at = CASE WHEN ? = 'failed' THEN NULL ELSE sent_at END,"
                " error = ?, answer = COALESCE(?, answer),"
                " theirs = COALESCE(?, theirs), remote_id = COALESCE(?, remote_id),"
                " record_id = COALESCE(?, record_id), claimed_by = NULL, updated_at = ?,"
                " done_at = CASE WHEN ? = 'done' THEN ? END WHERE id = ? AND claimed_by = ?",
                (
                    state,
                    state,
                    state,
                    error,
                    answer,
                    _dumps(theirs) if theirs is not None else None,
                    remote_id,
                    record_id,
                    now,
                    state,
                    now,
                    entry_id,
                    self.owner.id,
                ),
            )
            self._unhold(conn)
            entry = self._get(conn, entry_id)
            if entry is not None:
                self._logged(conn, entry)
            return entry

    def release_edit(self, entry_id: int) -> None:
        """Give a claim back unfinished (the send was cancelled, or failed unexpectedly):
        `unsure` if the request may have left, else `pending`."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = CASE WHEN sent_at IS NULL THEN 'pending'"
                " ELSE 'unsure' END, claimed_by = NULL, updated_at = ?"
                " WHERE id = ? AND claimed_by = ? AND state = 'sending'",
                (utc_now(), entry_id, self.owner.id),
            )
            self._unhold(conn)
            entry = self._get(conn, entry_id)
            if entry is not None:
                self._logged(conn, entry)

    # -- a person's decisions ----------------------------------------------------------------

    def decide_edit(
        self,
        user_id: str,
        entry_id: int,
        state: Literal["pending", "dropped"],
        *,
        base: Mapping[str, Any] | None = None,
        wanted: Mapping[str, Any] | None = None,
    ) -> OutboxEntry | None:
        """Retry (`pending`, optionally re-based on the vendor's values or with changed
        values; `unsure` while a try may have reached the vendor) or drop an entry that is
        not being sent and not done. None when it is."""
        with self.transaction() as conn:
            entry = self._get(conn, entry_id)
            if entry is None or entry.user_id != user_id:
                return None
            if entry.state not in ("pending", "failed", "conflict", "unsure"):
                return None
            conn.execute(
                "UPDATE outbox SET state = CASE WHEN ? = 'pending' AND sent_at IS NOT NULL"
                " THEN 'unsure' ELSE ? END, base = ?, wanted = ?, error = NULL,"
                " theirs = CASE WHEN ? = 'dropped' THEN theirs END, updated_at = ?"
                " WHERE id = ?",
                (
                    state,
                    state,
                    _dumps(base if base is not None else entry.base),
                    _dumps(wanted if wanted is not None else entry.wanted),
                    state,
                    utc_now(),
                    entry_id,
                ),
            )
            changed = self._get(conn, entry_id)
            assert changed is not None
            self._logged(conn, changed)
            return changed


def _as_unsure(entry: OutboxEntry) -> OutboxEntry:
    return replace(entry, state="unsure")
