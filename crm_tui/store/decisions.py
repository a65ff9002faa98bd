"""What people decided about duplicates, kept per user: clusters that are not one person,
and every merge with what it replaced, so each one can be undone later, from any process.

Each decision is one row written in its own transaction: two processes deciding at once
both land, and a decision never depends on a cache another process may be rewriting.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from crm_tui.models import utc_now

#: A possible cluster's id starts so (crm_tui.dedup.clusters.POSSIBLE_PREFIX).
POSSIBLE_PREFIX = "q"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A person said these records are not one person."""

    members: frozenset[str]
    cluster_id: str
    rejected_at: str


@dataclass(frozen=True, slots=True)
class MergeEntry:
    """One merge into the local CRM, as it can be undone."""

    id: int
    cluster_id: str
    local_id: str
    created: bool  # the merge made the local contact; undoing it removes it
    previous_json: str | None  # else the local row it replaced, as stored
    members: tuple[str, ...]
    merged_at: str
    undone_at: str | None

    @property
    def previous(self) -> dict[str, Any] | None:
        """Decoded only when an undo needs it: the app reads the journal at every refresh."""
        return None if self.previous_json is None else json.loads(self.previous_json)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cluster": self.cluster_id,
            "local_id": self.local_id,
            "created": self.created,
            "members": list(self.members),
            "merged_at": self.merged_at,
            "undone_at": self.undone_at,
        }


def _members_key(members: Iterable[str]) -> str:
    return json.dumps(sorted(set(members)))


class DecisionStore:
    """Mixed into `Database`, whose connection, lock and transactions it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def reject(self, user_id: str, cluster_id: str, members: Iterable[str]) -> Rejection:
        now = utc_now()
        key = _members_key(members)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO dedup_rejections (user_id, members, cluster_id, rejected_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, members) DO UPDATE"
                " SET cluster_id = excluded.cluster_id, rejected_at = excluded.rejected_at",
                (user_id, key, cluster_id, now),
            )
        return Rejection(frozenset(json.loads(key)), cluster_id, now)

    def unreject(self, user_id: str, members: Iterable[str], possible: bool = False) -> int:
        """Take back every rejection that keeps these members apart (the cluster may have
        lost a member since it was rejected): those of the same kind holding them all.
        Returns how many."""
        wanted = set(members)
        gone = [
            _members_key(r.members)
            for r in self.rejections(user_id)
            if r.members >= wanted and r.cluster_id.startswith(POSSIBLE_PREFIX) == possible
        ]
        with self.transaction() as conn:
            conn.executemany(
                "DELETE FROM dedup_rejections WHERE user_id = ? AND members = ?",
                [(user_id, key) for key in gone],
            )
        return len(gone)

    def decisions_stamp(self, user_id: str) -> tuple[object, ...]:
        """Changes whenever a decision is made or taken back (a rejection, a merge or its
        undo): a cheap "must the review be sorted again?"."""
        with self._lock:
            rejected = self._conn.execute(
                "SELECT count(*), max(rejected_at) FROM dedup_rejections WHERE user_id = ?",
                (user_id,),
            ).fetchone()
            merged = self._conn.execute(
                "SELECT max(id), count(undone_at) FROM merges WHERE user_id = ?", (user_id,)
            ).fetchone()
        return (*rejected, *merged)

    def rejections(self, user_id: str) -> list[Rejection]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT members, cluster_id, rejected_at FROM dedup_rejections"
                " WHERE user_id = ? ORDER BY rejected_at DESC",
                (user_id,),
            ).fetchall()
        return [Rejection(frozenset(json.loads(m)), c, at) for m, c, at in rows]

    def add_merges(
        self,
        user_id: str,
        merges: Iterable[tuple[str, str, dict[str, Any] | None, Iterable[str]]],
    ) -> list[int]:
        """Journal merges, each (cluster id, local id, the local row it replaced or None
        when it made it, the cluster's members), in one transaction; their ids."""
        now = utc_now()
        ids = []
        with self.transaction() as conn:
            for cluster_id, local_id, previous, members in merges:
                cursor = conn.execute(
                    "INSERT INTO merges (user_id, cluster_id, local_id, created, previous,"
                    " members, merged_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user_id,
                        cluster_id,
                        local_id,
                        int(previous is None),
                        None if previous is None else json.dumps(previous, default=str),
                        _members_key(members),
                        now,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def mark_merge_undone(self, user_id: str, merge_id: int) -> bool:
        """False when it was undone already (by another process, say)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE merges SET undone_at = ? WHERE user_id = ? AND id = ?"
                " AND undone_at IS NULL",
                (utc_now(), user_id, merge_id),
            )
            return cursor.rowcount > 0

    def newer_merge(self, user_id: str, local_id: str, merge_id: int) -> int | None:
        """A merge after `merge_id`, still in force, that changed the same local contact."""
        with self._lock:
            row = self._conn.execute(
                "SELECT MIN(id) FROM merges WHERE user_id = ? AND local_id = ? AND id > ?"
                " AND undone_at IS NULL",
                (user_id, local_id, merge_id),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def merge_entry(self, user_id: str, merge_id: int) -> MergeEntry | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM merges WHERE user_id = ? AND id = ?",  # noqa: S608
                (user_id, merge_id),
            ).fetchone()
        return None if row is None else _entry(row)

    def merges(self, user_id: str, include_undone: bool = False) -> list[MergeEntry]:
        """Newest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM merges"  # noqa: S608 (a constant)
                " WHERE user_id = ? AND (? OR undone_at IS NULL) ORDER BY id DESC",
                (user_id, include_undone),
            ).fetchall()
        return [_entry(row) for row in rows]


_ENTRY_COLUMNS = "id, cluster_id, local_id, created, previous, members, merged_at, undone_at"


def _entry(row: tuple[Any, ...]) -> MergeEntry:
    rid, cluster, local, created, previous, members, at, undone = row
    return MergeEntry(
        rid,
        cluster,
        local,
        bool(created),
        previous,
        tuple(json.loads(members)),
        at,
        undone,
    )
