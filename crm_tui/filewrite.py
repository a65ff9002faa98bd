"""Saving a user's own file (`.env`, `mappings.toml`): one writer at a time across
processes, and the new text in place in one rename, so a reader sees the old file or the
new one, never half of it."""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `path` for a read-modify-write: two apps saving at once would each drop the
    other's change. The lock is a file beside it (`.NAME.lock`), since `path` itself is
    replaced by a rename."""
    with open(path.with_name(f".{path.name}.lock"), "a", encoding="utf-8") as lock:
        os.chmod(lock.name, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def written_path(path: Path) -> Path:
    """Where a save of `path` lands: a symlink's target (a dotfile manager's link stays a
    link), else `path` itself."""
    return path.resolve() if path.is_symlink() else path


def read_text(path: Path) -> str:
    """A user's file as it is, line endings and all (CRLF stays CRLF)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def mode_of(path: Path, default: int = 0o600) -> int:
    """The permission bits a replacement of `path` keeps: the file's own, or `default`."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return default


def replace_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to a temporary file beside `path` (private from its first byte), flush
    it to the disk, then rename it over `path`."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
