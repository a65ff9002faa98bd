"""The local CRM's rows: each a JSON payload under an id no other local record ever had.

Ids come from a per-user sequence, not from the largest id in use, so an id a person
deleted is never handed to a new record (a merge journal or an undo naming `local:120`
always means the record it meant). The source records a merged contact links are kept in
`local_links` too, written in the same transaction as the row, so "is this record merged
already?" is one indexed query from any process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from crm_tui.models import KINDS, RecordKind
from crm_tui.store.damage import damage_named

#: The payload key holding the source record ids a merged local contact links.
LINKS_FIELD = "linked_records"
_META = ("id", "created_at", "updated_at")
#: A row by id whatever its kind, the kinds (KINDS) named: a lookup on the whole primary key
#: (user, kind, id), not a walk through every local row of the user.
BY_ID = (
    "SELECT kind, id, payload, created_at, updated_at FROM local_records"
    " WHERE user_id = ? AND kind IN (?, ?) AND id = ?"
)


def _row(rid: int, payload: str, created: str, updated: str) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(payload)
    item.update(id=rid, created_at=created, updated_at=updated)
    return item


class LocalRecordStore:
    """Mixed into `Database`, whose connection, lock and transactions it uses."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    @damage_named
    def local_records(self, user_id: str, kind: RecordKind) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, payload, created_at, updated_at FROM local_records"
                " WHERE user_id = ? AND kind = ? ORDER BY id",
                (user_id, kind),
            ).fetchall()
        return [_row(*row) for row in rows]

    @damage_named
    def local_record(self, user_id: str, record_id: int) -> tuple[RecordKind, dict[str, Any]]:
        """One row by id, with its kind; KeyError when there is none."""
        with self._lock:
            found = self._conn.execute(BY_ID, (user_id, *KINDS, record_id)).fetchone()
        if found is None:
            raise KeyError(f"no local record local:{record_id}")
        return found[0], _row(*found[1:])

    def linking_locals(self, user_id: str, record_ids: Iterable[str]) -> dict[str, set[int]]:
        """Source record id -> the local contacts that link it (merged it)."""
        wanted = list(dict.fromkeys(record_ids))
        found: dict[str, set[int]] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for record, local in self._conn.execute(
                    "SELECT record_id, local_id FROM local_links"  # noqa: S608 (marks only)
                    f" WHERE user_id = ? AND record_id IN ({marks})",
                    (user_id, *chunk),
                ):
                    found.setdefault(record, set()).add(local)
        return found

    def _write_links(
        self, conn: sqlite3.Connection, user_id: str, local_id: int, payload: dict[str, Any]
    ) -> None:
        conn.execute(
            "DELETE FROM local_links WHERE user_id = ? AND local_id = ?", (user_id, local_id)
        )
        links = payload.get(LINKS_FIELD) or ()
        conn.executemany(
            "INSERT INTO local_links (user_id, record_id, local_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(user_id, str(link), local_id) for link in links],
        )

    def add_local_records(
        self, user_id: str, kind: RecordKind, payloads: Sequence[dict[str, Any]], now: str
    ) -> list[int]:
        """New local records in one transaction (a bulk merge makes thousands); their ids,
        unique across contacts and deals so `local:7` names one record."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT (SELECT last FROM local_sequence WHERE user_id = ?),"
                " (SELECT MAX(id) FROM local_records WHERE user_id = ?)",
                (user_id, user_id),
            ).fetchone()
            first = max(int(row[0] or 0), int(row[1] or 0)) + 1
            ids = list(range(first, first + len(payloads)))
            conn.execute(
                "INSERT INTO local_sequence (user_id, last) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET last = excluded.last",
                (user_id, first + len(payloads) - 1),
            )
            conn.executemany(
                "INSERT INTO local_records (user_id, kind, id, payload, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (user_id, kind, new_id, json.dumps(payload, default=str), now, now)
                    for new_id, payload in zip(ids, payloads, strict=True)
                ],
            )
            for new_id, payload in zip(ids, payloads, strict=True):
                if payload.get(LINKS_FIELD):
                    self._write_links(conn, user_id, new_id, payload)
        return ids

    def save_local_record(
        self,
        user_id: str,
        kind: RecordKind,
        payload: dict[str, Any],
        now: str,
        record_id: int | None = None,
    ) -> int:
        if record_id is None:
            return self.add_local_records(user_id, kind, [payload], now)[0]
        with self.transaction() as conn:
            updated = conn.execute(
                "UPDATE local_records SET payload = ?, updated_at = ?"
                " WHERE user_id = ? AND kind = ? AND id = ?",
                (json.dumps(payload, default=str), now, user_id, kind, record_id),
            )
            if updated.rowcount == 0:
                raise KeyError(f"no local {kind[:-1]} with id {record_id}")
            self._write_links(conn, user_id, record_id, payload)
        return record_id

    def restore_local_record(self, user_id: str, kind: RecordKind, row: dict[str, Any]) -> None:
        """Put a local record back exactly as it was, under its old id (undo)."""
        payload = {k: v for k, v in row.items() if k not in _META}
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO local_records (user_id, kind, id, payload, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, kind, id) DO UPDATE"
                " SET payload = excluded.payload, created_at = excluded.created_at,"
                " updated_at = excluded.updated_at",
                (
                    user_id,
                    kind,
                    row["id"],
                    json.dumps(payload, default=str),
                    row["created_at"],
                    row["updated_at"],
                ),
            )
            self._write_links(conn, user_id, row["id"], payload)

    def delete_local_record(self, user_id: str, kind: RecordKind, record_id: int) -> bool:
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM local_records WHERE user_id = ? AND kind = ? AND id = ?",
                (user_id, kind, record_id),
            )
            conn.execute(
                "DELETE FROM local_links WHERE user_id = ? AND local_id = ?",
                (user_id, record_id),
            )
            return cursor.rowcount > 0
