"""The change log: every write of cached records leaves a row saying what it touched, so an
open app applies another process's commit as the rows that changed, not as a reload of the
whole snapshot.

A row names one record (`record_id`), or a whole stream (`record_id` NULL: a full refresh, an
import, clearing a source), or every stream (`source` NULL: clearing everything). It carries
its writer's owner id, so a process skips its own rows. Rows older than `KEEP_SECONDS` go;
a reader that fell further behind than that (a laptop asleep) sees a gap and reloads all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from crm_tui.models import RecordKind
from crm_tui.store.damage import damage_named
from crm_tui.store.owners import Owner

#: How long change rows are kept: far longer than any open app takes to read them.
KEEP_SECONDS = 3600.0
_TRIM_EVERY = 60.0


@dataclass(slots=True)
class Changes:
    """What other processes changed since a reader's last look."""

    last: int  # the newest change seen: the next look starts after it
    everything: bool = False  # a gap or a clear of all: reload the whole snapshot
    streams: set[tuple[RecordKind, str]] = field(default_factory=set)  # reload these
    ids: dict[tuple[RecordKind, str], set[str]] = field(default_factory=dict)  # re-read these

    @property
    def empty(self) -> bool:
        return not (self.everything or self.streams or self.ids)


class ChangeLogStore:
    """Mixed into `Database`, whose connection, lock and owner it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    owner: Owner
    _trimmed_at: float = 0.0

    def log_changes(
        self,
        conn: sqlite3.Connection,
        user_id: str,
        kind: RecordKind,
        source: str | None,
        ids: Iterable[str] | None = None,
    ) -> None:
        """Inside a write transaction: `ids` of one stream changed, or (None) the whole
        stream, or (`source` None) every stream of `kind`."""
        now = time.time()
        origin = self.owner.id
        if ids is None:
            rows: Iterable[tuple[object, ...]] = [(user_id, kind, source, None, origin, now)]
        else:
            rows = ((user_id, kind, source, i, origin, now) for i in ids)
        conn.executemany(
            "INSERT INTO changes (user_id, kind, source, record_id, origin, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        if now - self._trimmed_at > _TRIM_EVERY:
            self._trimmed_at = now
            self._trim(conn, now - KEEP_SECONDS)

    def _trim(self, conn: sqlite3.Connection, before: float) -> None:
        conn.execute("DELETE FROM changes WHERE at < ?", (before,))

    @damage_named
    def last_change(self) -> int:
        """The newest change ever logged (the counter survives trimming): where a reader
        that has just read everything starts."""
        with self._lock:
            return self._newest()

    def _newest(self) -> int:
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _gap(self, user_id: str, seq: int, newest: int) -> int | None:
        """Whether changes of `user_id` after `seq` may have been trimmed away (then a
        reader cannot tell what it missed): None when not, else where to go on from.
        Sequence numbers are handed out without gaps (a rolled-back insert takes its number
        back), so a first kept row past seq + 1 means some were trimmed."""
        oldest = self._conn.execute("SELECT min(seq) FROM changes").fetchone()[0]
        if newest > seq and (oldest is None or oldest > seq + 1):
            return newest
        return None

    @damage_named
    def changes_since(self, user_id: str, seq: int) -> Changes:
        """Other processes' changes after `seq`, read in one snapshot (a commit landing
        meanwhile is the next look's). A reader some of whose changes were trimmed away
        cannot tell what it missed: `everything`."""
        with self._lock, self._reading():  # type: ignore[attr-defined]
            newest = self._newest()
            gap = self._gap(user_id, seq, newest)
            rows = self._conn.execute(
                "SELECT seq, kind, source, record_id, origin FROM changes"
                " WHERE seq > ? AND seq <= ? AND user_id = ? ORDER BY seq",
                (seq, newest, user_id),
            ).fetchall()
        found = Changes(last=max(seq, newest))
        if gap is not None:  # trimmed: what went is unknown
            found.everything = True
            found.last = max(found.last, gap)
            return found
        mine = self.owner.id
        for _, kind, source, record_id, origin in rows:
            if origin == mine:
                continue
            if source is None:
                found.everything = True
            elif record_id is None:
                found.streams.add((kind, source))
            else:
                found.ids.setdefault((kind, source), set()).add(record_id)
        for key in found.streams:
            found.ids.pop(key, None)  # the whole stream is read again anyway
        return found
