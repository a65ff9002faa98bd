"""crm-tui's own folders and files on disk: private, regular, never a link.

crm-tui never chmods a folder it did not create, refuses a folder that others could write
to, and never follows a symbolic link onto one of its files (the database, the log).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from crm_tui.filekinds import kind_of


class FileError(Exception):
    """Something wrong with one of crm-tui's files or folders. Each names the file, says what
    is wrong and what to do; the CLI prints `error` and `details` and exits with
    `exit_code`. The store's errors are of this kind (`store.errors.StoreError`)."""

    exit_code = 1

    def __init__(self, error: str, details: str = "", path: Path | None = None) -> None:
        super().__init__(f"{error}: {details}" if details else error)
        self.error = error
        self.details = details
        self.path = path


class DataDirRefused(FileError):
    """A folder (or file) that is unsafe to use: world-writable, another user's, a symbolic
    link where a file should be."""

    exit_code = 3


def secure_dir(path: Path, what: str = "data dir") -> None:
    """Make sure `path` is a folder only this user can write to. Missing folders (and missing
    parents) are created 0700; an existing one is checked, never chmodded: it may be a
    shared folder that others rely on."""
    _make_private_dirs(path, what)
    problems = check_dir(path)
    if problems:
        raise DataDirRefused(f"Refusing the {what} {path}", "; ".join(problems), path)


def _make_private_dirs(path: Path, what: str) -> None:
    """Create `path` and its missing parents, each 0700 whatever the umask (os.makedirs'
    mode does not reach the parents, and the umask can take bits off any of them)."""
    try:
        for folder in reversed(_missing_folders(path)):
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                continue  # another process made it first: not ours to chmod
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise DataDirRefused(
            f"Cannot create the {what} {path}",
            f"{exc.filename or path}: {exc.strerror or exc}; choose a folder you can write"
            " to (CRM_DATA_DIR or --data-dir)",
            path,
        ) from None


def _missing_folders(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist, nearest first (a dangling link exists)."""
    missing: list[Path] = []
    probe = path
    while not (probe.exists() or probe.is_symlink()) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    return missing


def check_dir(path: Path) -> list[str]:
    """What makes `path` unsafe to keep crm-tui's files in (symbolic links followed): writable
    by every user, or another user's. A folder that does not exist yet is fine."""
    try:
        real = path.resolve(strict=True)
        info = real.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return [f"{path} is a symbolic link to a folder that does not exist"]
        return []
    except (OSError, RuntimeError) as exc:
        return [f"{path} cannot be checked: {getattr(exc, 'strerror', None) or exc}"]
    shown = str(path) if real == path else f"{path} (a link to {real})"
    if not stat.S_ISDIR(info.st_mode):
        return [f"{shown} is not a folder"]
    problems = []
    if info.st_mode & stat.S_IWOTH:
        problems.append(
            f"{shown} is writable by every user (mode {stat.S_IMODE(info.st_mode):04o}), so"
            " anyone could replace the database; use a folder only you can write to, such"
            " as a new folder inside it (crm-tui creates it 0700)"
        )
    if info.st_uid != os.geteuid():
        problems.append(
            f"{shown} belongs to another user (uid {info.st_uid}; you are {os.geteuid()});"
            " use a folder of your own"
        )
    return problems


def check_file(path: Path) -> str | None:
    """Why `path` may not be used as one of crm-tui's files (it is a symbolic link, which
    could point the database or log at any file, or not a regular file), or None."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    what = kind_of(info.st_mode)
    if what is None:
        return None
    if stat.S_ISLNK(info.st_mode):
        return (
            f"{path} is {what}; crm-tui uses only a regular file there"
            " (move the real file into its place)"
        )
    return f"{path} is {what}, not a regular file; move it away"


def refuse_unsafe_file(path: Path) -> None:
    problem = check_file(path)
    if problem is not None:
        raise DataDirRefused(f"Refusing {path.name}", problem, path)


def secure_file(path: Path) -> None:
    """Create (if needed) a regular file readable by its owner only, whatever the umask.
    A symbolic link or anything but a regular file is refused, even one swapped in after
    the check (O_NOFOLLOW, then fstat on what was opened)."""
    refuse_unsafe_file(path)
    flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_unsafe_file(path)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataDirRefused(f"Refusing {path.name}", f"{path} is not a regular file", path)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
