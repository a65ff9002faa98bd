"""What a stream's committed rows are, as a small value: the stamp an artifact built from
them (a search segment, duplicate keys) is saved under, and what changed since.

A stream's rows are its current generation plus its imported generations; a commit that
replaces the stream moves those, and a commit that changes records leaves rows in the change
log. So an artifact saved with a stamp is still the stream's when its generations match,
once the records changed since its `seq` are laid over it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field

from crm_tui.models import RecordKind
from crm_tui.store.damage import damage_named


@dataclass(frozen=True, slots=True)
class StreamStamp:
    """Which rows a stream held when read: its generation, its imports' generations (in
    order), and the change log's newest entry then."""

    generation: int
    imports: tuple[int, ...]
    seq: int

    def same_rows(self, other: StreamStamp) -> bool:
        """The same generations: `other` differs from this only by the changes after `seq`."""
        return (self.generation, self.imports) == (other.generation, other.imports)

    @property
    def name(self) -> str:
        """A folder name, unique per stamp."""
        imports = "-".join(str(g) for g in self.imports) or "0"
        return f"g{self.generation}-i{imports}-s{self.seq}"


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What changed in one stream after a stamp's `seq`. `whole`: more than records did (the
    stream was replaced or cleared, or the log no longer reaches that far back)."""

    whole: bool
    ids: frozenset[str] = field(default_factory=frozenset)
    newest: int = 0


class StampStore:
    """Mixed into `Database`, whose connection and lock it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    @damage_named
    def stream_stamp(self, user_id: str, kind: RecordKind, source: str) -> StreamStamp:
        """The stream's stamp now, read in one snapshot. Read it before reading the rows an
        artifact is built from: a commit between the two then shows as a change after it."""
        with self._lock, self._reading():  # type: ignore[attr-defined]
            return self._stamp(user_id, kind, source)

    def _stamp(self, user_id: str, kind: RecordKind, source: str) -> StreamStamp:
        row = self._conn.execute(
            "SELECT generation FROM stream_generations"
            " WHERE user_id = ? AND kind = ? AND source = ?",
            (user_id, kind, source),
        ).fetchone()
        imports = self._conn.execute(
            "SELECT generation FROM imports WHERE user_id = ? AND kind = ? AND source = ?"
            " ORDER BY generation",
            (user_id, kind, source),
        ).fetchall()
        return StreamStamp(
            int(row[0]) if row else 0,
            tuple(int(g) for (g,) in imports),
            self._newest(),  # type: ignore[attr-defined]
        )

    @damage_named
    def stream_delta(
        self, user_id: str, kind: RecordKind, stamp: StreamStamp, source: str
    ) -> StreamDelta:
        """What changed in the stream since `stamp` was read, by any process (this one too)."""
        with self._lock, self._reading():  # type: ignore[attr-defined]
            now = self._stamp(user_id, kind, source)
            if not now.same_rows(stamp):
                return StreamDelta(True, newest=now.seq)
            if now.seq == stamp.seq:
                return StreamDelta(False, newest=now.seq)
            if self._gap(user_id, stamp.seq, now.seq) is not None:  # type: ignore[attr-defined]
                return StreamDelta(True, newest=now.seq)  # trimmed: what went is unknown
            rows = self._conn.execute(
                "SELECT source, record_id FROM changes WHERE seq > ? AND seq <= ?"
                " AND user_id = ? AND kind = ? AND (source = ? OR source IS NULL)",
                (stamp.seq, now.seq, user_id, kind, source),
            ).fetchall()
        if any(record_id is None for _, record_id in rows):
            return StreamDelta(True, newest=now.seq)
        return StreamDelta(False, frozenset(record_id for _, record_id in rows), now.seq)
