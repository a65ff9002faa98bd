"""A mapped array's bytes read from its file by offset (pread), through a bounded set of
files the process keeps open.

Touching a mapping maps the page cache's whole folio around the bytes read: on kernels with
large folios that is up to megabytes per record, all counted in the process's resident
memory, where a record read here and there (a search's hits, a screenful) needs a few
hundred bytes. At most OPEN_FILES files stay open for the next read, whatever the number of
streams opened; one closed meanwhile and since removed or replaced (artifacts are never
changed, only removed) is read through its mapping, which still holds the file it mapped.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

OPEN_FILES = 32


class _OpenFiles:
    """Open descriptors by (path, inode), the least recently read closed past the limit.
    Reads hold the lock: a descriptor is never closed under another thread's read."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._fds: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def pread(self, path: str, inode: int, size: int, offset: int) -> bytes:
        """Raises FileNotFoundError when `path` is no longer the file of `inode`."""
        key = (path, inode)
        with self._lock:
            fd = self._fds.get(key)
            if fd is None:
                fd = self._open(path, inode)
                self._fds[key] = fd
                if len(self._fds) > self._limit:
                    os.close(self._fds.popitem(last=False)[1])
            else:
                self._fds.move_to_end(key)
            return os.pread(fd, size, offset)

    @staticmethod
    def _open(path: str, inode: int) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        if os.fstat(fd).st_ino != inode:
            os.close(fd)
            raise FileNotFoundError(path)
        return fd

    def held(self) -> int:
        return len(self._fds)


_FILES = _OpenFiles(OPEN_FILES)


def open_files() -> int:
    """How many files the reads keep open now (at most OPEN_FILES)."""
    return _FILES.held()


class MappedBytes:
    """The bytes of an array mapped from a file, read by offset from the file."""

    __slots__ = ("_inode", "_offset", "_path", "_view")

    def __init__(self, path: str, inode: int, offset: int, view: memoryview) -> None:
        self._path, self._inode, self._offset, self._view = path, inode, offset, view

    @classmethod
    def of(cls, array: np.ndarray) -> MappedBytes | None:
        """For an array mapped from a file (an opened artifact's); None for one in memory
        or whose file is gone already (the mapping serves alone)."""
        if not isinstance(array, np.memmap) or array.filename is None:
            return None
        try:
            inode = os.stat(array.filename).st_ino
        except OSError:
            return None
        return cls(array.filename, inode, array.offset, memoryview(array))

    def read(self, start: int, end: int) -> bytes:
        """Bytes `start:end` of the array; fewer when the file was cut short since."""
        try:
            return _FILES.pread(self._path, self._inode, end - start, self._offset + start)
        except FileNotFoundError:  # removed or replaced since: the mapping still holds it
            return bytes(self._view[start:end])
