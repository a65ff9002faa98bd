"""Errors of the data dir and the database. Each names the file, says what is wrong and what
to do; the CLI prints `error` and `details` and exits with `exit_code`."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    exit_code = 1

    def __init__(self, error: str, details: str = "", path: Path | None = None) -> None:
        super().__init__(f"{error}: {details}" if details else error)
        self.error = error
        self.details = details
        self.path = path


class DataDirRefused(StoreError):
    """A data dir (or database file) that is unsafe to use: world-writable, another user's,
    a symbolic link where a file should be."""

    exit_code = 3


class DatabaseReadOnly(StoreError):
    """A write was asked of a database this process may only read."""

    exit_code = 3


class DatabaseDamaged(StoreError):
    """The database fails SQLite's checks, or lost its write-ahead log after a crash."""

    exit_code = 1


class DatabaseBusy(StoreError):
    """Another process has the database open, and what was asked (a repair) would pull the
    file from under it."""

    exit_code = 5


class StreamBusy(StoreError):
    """Another process holds the stream's lease and the caller would not wait."""

    exit_code = 5


class LeaseLost(StoreError):
    """This process's lease was taken over (its heartbeat stopped long enough for another
    process to judge it dead); its work is dropped, never committed."""

    exit_code = 4
