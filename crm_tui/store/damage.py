"""What a damaged database looks like, found cheaply, and the error that says so.

Opening the database reads a few hundred bytes here (the header, the wal-index); SQLite's
own "malformed" and "not a database" become DatabaseDamaged wherever the store touches the
connection. The full check (`PRAGMA quick_check`, every page) is `crm-tui doctor`'s.
"""

from __future__ import annotations

import functools
import inspect
import os
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_tui.store.errors import DatabaseDamaged
from crm_tui.store.files import sidecar

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
REPAIR_HINT = (
    "Run `crm-tui doctor --repair`: it keeps a copy of the broken file, recovers what it can"
    " and re-syncs the rest."
)
# SQLite's primary codes for a damaged file. "locked", "busy", constraints and the rest are
# not damage, whichever exception class carries them.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def damaged(path: Path, what: str) -> DatabaseDamaged:
    return DatabaseDamaged("The database is damaged", f"{path}: {what}. {REPAIR_HINT}", path)


def is_damage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in _DAMAGE_CODES)
    )


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock: worth a wait, not a repair."""
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    return isinstance(exc, sqlite3.Error) and code & 0xFF in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


# -- the header ----------------------------------------------------------------------------


def page_size_of(head: bytes) -> int:
    size = int.from_bytes(head[16:18], "big")
    return 65536 if size == 1 else size


def header_problem(head: bytes) -> str | None:
    """What is wrong with the first 100 bytes of a database file, if anything."""
    if len(head) < HEADER_SIZE:
        return "file is not a database (shorter than SQLite's 100-byte header)"
    if not head.startswith(SQLITE_MAGIC):
        return "file is not a database (its header is not SQLite's)"
    size = page_size_of(head)
    if size < 512 or size > 65536 or size & (size - 1):
        return f"file is not a database (its header gives a page size of {size})"
    return None


def check_header(path: Path) -> None:
    """A new, empty file passes: SQLite writes the header with the first table."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_SIZE)
    except FileNotFoundError:
        return
    problem = header_problem(head) if head else None
    if problem:
        raise damaged(path, problem)


# -- the write-ahead log -------------------------------------------------------------------

# The wal-index header that starts the -shm (SQLite's wal.c, WalIndexHdr) is written twice,
# in native byte order: version, unused, change counter, isInit, bigEndCksum, page size,
# mxFrame, nPage. The checkpoint info follows both copies; it starts with nBackfill, the
# frames already copied back into the database file.
_WAL_INDEX = struct.Struct("=IIIBBHII")
_WAL_INDEX_COPY = 48
_BACKFILLED = struct.Struct("=I")
_BACKFILLED_AT = 2 * _WAL_INDEX_COPY


def frames_not_checkpointed(shm_head: bytes) -> int:
    """Frames of committed changes that the wal-index says only the -wal holds."""
    if len(shm_head) < _BACKFILLED_AT + _BACKFILLED.size:
        return 0
    if shm_head[:_WAL_INDEX_COPY] != shm_head[_WAL_INDEX_COPY:_BACKFILLED_AT]:
        return 0  # a writer is half-way through updating it: a live database
    _, _, _, initialised, _, _, frames, _ = _WAL_INDEX.unpack_from(shm_head)
    (backfilled,) = _BACKFILLED.unpack_from(shm_head, _BACKFILLED_AT)
    return max(frames - backfilled, 0) if initialised == 1 else 0


def wal_lost(path: Path) -> str | None:
    """Committed changes that lived only in a -wal file that is gone: a crash, then the -wal
    deleted or never copied. SQLite would open the file without them and without a word,
    and rebuild the -shm, so this is read before the first connection."""
    shm, wal = sidecar(path, "-shm"), sidecar(path, "-wal")
    try:
        with shm.open("rb") as f:
            pending = frames_not_checkpointed(f.read(_BACKFILLED_AT + _BACKFILLED.size))
            seen = os.fstat(f.fileno())
    except FileNotFoundError:
        return None
    if not pending or wal.exists():
        return None
    try:
        now = shm.stat()
    except FileNotFoundError:
        return None
    # The last connection to close unlinks the -shm first, then the -wal: a -shm gone or
    # replaced by now (a new file may reuse the inode number, not its ctime) was such a
    # close, not a crash.
    if (now.st_ino, now.st_dev, now.st_ctime_ns) != (seen.st_ino, seen.st_dev, seen.st_ctime_ns):
        return None
    return (
        f"its write-ahead log ({wal.name}) is missing after a crash: {pending} changed"
        " pages committed since the last checkpoint are lost and the file may be inconsistent"
    )


def check_at_open(path: Path) -> None:
    """The cheap checks, before the first connection: the header, a lost write-ahead log."""
    check_header(path)
    problem = wal_lost(path)
    if problem:
        raise damaged(path, problem)


# -- SQLite's errors -----------------------------------------------------------------------


def damage_named(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A method of an object with a `path` (Database) whose "malformed" or "not a database"
    from SQLite becomes DatabaseDamaged naming the file and what to do. Generators too:
    load_records meets a damaged page half-way through its rows."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(self, *args, **kwargs))
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.path, str(exc)) from exc
                raise

        return generator

    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise damaged(self.path, str(exc)) from exc
            raise

    return method
