"""The webhook inbox: every accepted webhook as a row, durable before the sender hears 2xx.

States: `new` (received), `working` (claimed by a worker), `done`, `failed` (retried after a
backoff; `attempts` counts the failures, `error` says the last one, `tried_at` when) and
`dead` (gave up).

While a row is `working`, `claimed_by` names the claim (which process and worker) and
`heartbeat_at` its last heartbeat. A claim whose process is gone (same machine) or whose
heartbeat is older than the lease TTL (another host) is dead, and its rows are claimed
again. Only one live worker
drains a user's inbox at a time, so events are applied in the order they arrived.

Every value is a parameter; the only SQL built from text is a run of `?` marks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from crm_tui.store.db import Database
from crm_tui.store.owners import Owner, is_alive

STATES = ("new", "working", "done", "failed", "dead")

#: Tokens of the workers running in this process: a claim naming one of them is alive.
_ACTIVE_WORKERS: set[str] = set()


def stamp(at: float | None = None) -> str:
    """A UTC time with milliseconds; one format, so stamps also compare as text."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_stamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@cache
def _this_process() -> Owner:
    return Owner.this_process()


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on the rows it is applying."""

    owner: Owner = field(default_factory=_this_process)
    worker: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def marker(self) -> str:
        o = self.owner
        holder = {"id": o.id, "host": o.host, "machine": o.machine, "pid": o.pid}
        return json.dumps({"claim": {**holder, "started": o.started, "worker": self.worker}})


def claim_alive(marker: str | None, heartbeat: float | None, now: float) -> bool:
    """Whether the worker that wrote `marker` may still be applying its rows."""
    try:
        held = json.loads(marker or "")["claim"]
        owner = Owner(held["id"], held["host"], held["machine"], int(held["pid"]), held["started"])
        worker = str(held["worker"])
    except (ValueError, KeyError, TypeError):
        owner, worker = None, ""
    if owner is not None and owner.id == _this_process().id:
        return worker in _ACTIVE_WORKERS
    if owner is None:  # not a claim we wrote: trust the heartbeat alone
        return heartbeat is not None and now - heartbeat < 30.0
    return is_alive(owner, heartbeat or 0.0, now)


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    source: str
    event: str
    payload: str
    attempts: int


def _marks(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


class WebhookInbox:
    """The inbox and refusal counts of one user, over the shared database."""

    def __init__(self, db: Database, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    # -- the receiver ----------------------------------------------------------------------

    def add(self, source: str, event: str, payload: str, now: float | None = None) -> int:
        """Store one accepted webhook; committed when this returns."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO webhook_inbox (user_id, source, event, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.user_id, source, event, payload, stamp(now)),
            )
            return int(cursor.lastrowid or 0)

    def refuse(self, source: str, reason: str, now: float | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO webhook_refusals (source, reason, count, last_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (source, reason) DO UPDATE SET count = webhook_refusals.count + 1,"
                " last_at = excluded.last_at",
                (source, reason, stamp(now)),
            )

    # -- the worker ------------------------------------------------------------------------

    def claim(
        self,
        claim: Claim,
        limit: int,
        retry_after: Callable[[int], float],
        now: float | None = None,
    ) -> list[InboxRow]:
        """Up to `limit` rows to apply, oldest first, marked `working` under `claim` in one
        transaction; none while another live worker holds rows (events stay in order)."""
        at = time.time() if now is None else now
        with self.db.transaction() as conn:
            held = conn.execute(
                "SELECT id, claimed_by, heartbeat_at FROM webhook_inbox WHERE user_id = ?"
                " AND state = 'working'",
                (self.user_id,),
            ).fetchall()
            if any(claim_alive(m, parse_stamp(beat), at) for _, m, beat in held):
                return []
            failed = conn.execute(
                "SELECT id, attempts, tried_at FROM webhook_inbox WHERE user_id = ?"
                " AND state = 'failed'",
                (self.user_id,),
            ).fetchall()
            due = [i for i, n, last in failed if (parse_stamp(last) or 0) + retry_after(n) <= at]
            fresh = conn.execute(
                "SELECT id FROM webhook_inbox WHERE user_id = ? AND state = 'new'"
                " ORDER BY id LIMIT ?",
                (self.user_id, limit),
            ).fetchall()
            ids = sorted({i for i, *_ in held} | set(due) | {i for (i,) in fresh})[:limit]
            if not ids:
                return []
            rows = conn.execute(
                "SELECT id, source, event, payload, attempts FROM webhook_inbox"  # noqa: S608
                f" WHERE user_id = ? AND id IN ({_marks(ids)}) ORDER BY id",
                (self.user_id, *ids),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_inbox SET state = 'working', claimed_by = ?, heartbeat_at = ?"
                " WHERE user_id = ? AND id = ?",
                [(claim.marker, stamp(at), self.user_id, i) for i in ids],
            )
        return [InboxRow(*row) for row in rows]

    def heartbeat(self, claim: Claim, ids: Iterable[int], now: float | None = None) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE webhook_inbox SET heartbeat_at = ? WHERE user_id = ? AND id = ?"
                " AND state = 'working' AND claimed_by = ?",
                [(stamp(now), self.user_id, i, claim.marker) for i in ids],
            )

    def finish(self, claim: Claim, ids: Iterable[int], now: float | None = None) -> None:
        """Rows applied: done. A row whose claim another worker took over is left alone."""
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE webhook_inbox SET state = 'done', error = NULL, done_at = ?,"
                " claimed_by = NULL, heartbeat_at = NULL"
                " WHERE user_id = ? AND id = ? AND state = 'working' AND claimed_by = ?",
                [(stamp(now), self.user_id, i, claim.marker) for i in ids],
            )

    def fail(
        self,
        claim: Claim,
        errors: Mapping[int, str],
        max_attempts: int,
        now: float | None = None,
    ) -> None:
        """Rows that could not be applied: one more attempt counted, then `failed` (retried
        later) or `dead` once `max_attempts` failed. `errors` must hold no secret."""
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE webhook_inbox SET attempts = attempts + 1, error = ?, tried_at = ?,"
                " claimed_by = NULL, heartbeat_at = NULL,"
                " state = CASE WHEN attempts + 1 >= ? THEN 'dead' ELSE 'failed' END"
                " WHERE user_id = ? AND id = ? AND state = 'working' AND claimed_by = ?",
                [
                    (error, stamp(now), max_attempts, self.user_id, i, claim.marker)
                    for i, error in errors.items()
                ],
            )

    def release(self, claim: Claim, ids: Iterable[int]) -> None:
        """Give rows back unapplied (the worker was stopped): claimable at once again."""
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE webhook_inbox SET claimed_by = NULL, heartbeat_at = NULL,"
                " state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'new' END"
                " WHERE user_id = ? AND id = ? AND state = 'working' AND claimed_by = ?",
                [(self.user_id, i, claim.marker) for i in ids],
            )

    def prune(self, before: float) -> int:
        """Drop `done` rows finished before `before` (dead ones stay, for a person to read)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM webhook_inbox WHERE user_id = ? AND state = 'done' AND done_at < ?",
                (self.user_id, stamp(before)),
            )
            return cursor.rowcount

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows by source, then by state (every state present, zero or not)."""
        with self.db._lock:
            found = self.db._conn.execute(
                "SELECT source, state, COUNT(*) FROM webhook_inbox WHERE user_id = ?"
                " GROUP BY source, state",
                (self.user_id,),
            ).fetchall()
        result: dict[str, dict[str, int]] = {}
        for source, state, count in found:
            result.setdefault(source, dict.fromkeys(STATES, 0))[state] = count
        return result

    def refusals(self) -> list[dict[str, Any]]:
        with self.db._lock:
            found = self.db._conn.execute(
                "SELECT source, reason, count, last_at FROM webhook_refusals"
                " ORDER BY source, reason"
            ).fetchall()
        return [{"source": s, "reason": r, "count": c, "last_at": at} for s, r, c, at in found]

    def troubled(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest failed and dead rows, newest first (their text is the vendor's and
        ours: callers show it with `single_line`)."""
        with self.db._lock:
            found = self.db._conn.execute(
                "SELECT id, source, event, state, attempts, error, received_at FROM webhook_inbox"
                " WHERE user_id = ? AND state IN ('failed', 'dead') ORDER BY id DESC LIMIT ?",
                (self.user_id, limit),
            ).fetchall()
        keys = ("id", "source", "event", "state", "attempts", "error", "received_at")
        return [dict(zip(keys, row, strict=True)) for row in found]

    def payload(self, row_id: int) -> str | None:
        with self.db._lock:
            found = self.db._conn.execute(
                "SELECT payload FROM webhook_inbox WHERE user_id = ? AND id = ?",
                (self.user_id, row_id),
            ).fetchone()
        return None if found is None else str(found[0])
