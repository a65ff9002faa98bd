"""Errors of the data dir and the database. Each names the file, says what is wrong and what
to do; the CLI prints `error` and `details` and exits with `exit_code`."""

from __future__ import annotations

from crm_tui.files import DataDirRefused, FileError
from crm_tui.models import Failure

#: The store's errors are errors of its files (the data dir, the database): one root with
#: crm_tui/files.py's, so a refused folder is caught as a store error wherever it was found.
StoreError = FileError

__all__ = [
    "DataDirRefused",
    "DatabaseBusy",
    "DatabaseDamaged",
    "DatabaseReadOnly",
    "DatabaseRefused",
    "DatabaseUnavailable",
    "LeaseLost",
    "SchemaMismatch",
    "StoreError",
    "StreamBusy",
]


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
    failure = Failure.BUSY


class LeaseLost(StoreError):
    """This process's lease was taken over (its heartbeat stopped long enough for another
    process to judge it dead); its work is dropped, never committed."""

    exit_code = 4


class DatabaseUnavailable(StoreError):
    """The team database (PostgreSQL) cannot be reached: down, a wrong address, a timeout.
    A remote failure, as a CRM that cannot be reached is."""

    exit_code = 4


class DatabaseRefused(StoreError):
    """The team database refused: a wrong password, or rows that are not this role's."""

    exit_code = 3


class SchemaMismatch(StoreError):
    """The database's schema is newer than this program, or older and this connection may
    not upgrade it."""

    exit_code = 3
