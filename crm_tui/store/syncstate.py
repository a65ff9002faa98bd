"""What a sync remembers between runs, per stream: its watermark (the vendor's latest
updated time it has seen) and when it last read the stream in full; and per source, the
rate budget the vendor's headers reported last, for every process to show.

A watermark moves only inside the transaction that commits the records it covers, so a
sync that fails or is cancelled leaves it where the last good one put it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from crm_tui.models import RateReading, utc_now
from crm_tui.store.damage import damage_named


@dataclass(frozen=True, slots=True)
class Bookmark:
    watermark: str | None = None  # a UTC ISO time ("2026-11-26T20:33:06Z")
    full_at: str | None = None  # when the stream was last read in full


class SyncStateStore:
    """Mixed into `Database`, whose connection and lock it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    @damage_named
    def bookmark(self, user_id: str, source: str, stream: str) -> Bookmark:
        with self._lock:
            row = self._conn.execute(
                "SELECT value, full_at FROM bookmarks"
                " WHERE user_id = ? AND source = ? AND stream = ?",
                (user_id, source, stream),
            ).fetchone()
        if row is None:
            return Bookmark()
        return Bookmark(row[0] or None, row[1])

    @staticmethod
    def move_bookmark(
        conn: sqlite3.Connection,
        user_id: str,
        source: str,
        stream: str,
        watermark: str | None,
        full: bool,
    ) -> None:
        """Inside the commit's transaction. A full read sets the watermark to what it saw
        (and the time of the read); an incremental one only ever moves it forward."""
        now = utc_now()
        if full:
            conn.execute(
                "INSERT INTO bookmarks (user_id, source, stream, value, updated_at, full_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, source, stream) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at,"
                " full_at = excluded.full_at",
                (user_id, source, stream, watermark or "", now, now),
            )
        elif watermark is not None:
            conn.execute(
                "UPDATE bookmarks SET value = ?, updated_at = ?"
                " WHERE user_id = ? AND source = ? AND stream = ? AND value < ?",
                (watermark, now, user_id, source, stream, watermark),
            )

    def save_rate(self, user_id: str, source: str, reading: RateReading) -> None:
        with self.transaction() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO rate_budgets (user_id, source, request_limit, remaining,"
                " window_seconds, daily_remaining, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, source) DO UPDATE SET"
                " request_limit = excluded.request_limit, remaining = excluded.remaining,"
                " window_seconds = excluded.window_seconds,"
                " daily_remaining = excluded.daily_remaining, observed_at = excluded.observed_at",
                (
                    user_id,
                    source,
                    reading.limit,
                    reading.remaining,
                    reading.window,
                    reading.daily_remaining,
                    reading.observed_at,
                ),
            )

    @damage_named
    def rates(self, user_id: str) -> dict[str, RateReading]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT source, request_limit, remaining, window_seconds, daily_remaining,"
                " observed_at FROM rate_budgets WHERE user_id = ?",
                (user_id,),
            ).fetchall()
        return {source: RateReading(*rest) for source, *rest in rows}
