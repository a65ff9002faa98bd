"""Artifacts: what is computed from a stream's rows (its search segment, its duplicate keys),
saved beside the database as numpy arrays, so that the next start maps them in instead of
computing them again.

An artifact is saved under the stream's stamp (`stamps.StreamStamp`), one folder per stamp:
written under a temporary name and renamed into place, so a reader finds a whole artifact
or none. An artifact is never changed after that: a newer stamp gets a folder of its own,
and older folders go once a newer one is in place (a process that mapped one keeps reading
it; its files live on until it lets go). Anything that does not look exactly as written (a
missing array, another format, a shape that does not match) is not an artifact: the caller
computes it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crm_tui.files import FileError, secure_dir
from crm_tui.models import RecordKind
from crm_tui.store.stamps import StreamStamp

log = logging.getLogger(__name__)

_META = "meta.json"
_SAFE_NAME = re.compile(r"[a-z0-9_]{1,40}")


def root_beside(database: Path) -> Path:
    """Where the artifacts of the streams in `database` live."""
    return database.parent / "artifacts"


def forget_beside(database: Path) -> None:
    """Every artifact of `database`'s streams, gone: its rows changed in a way no stamp
    tells (a repair recovered what it could, under the same generations)."""
    shutil.rmtree(root_beside(database), ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Artifact:
    stamp: StreamStamp
    arrays: Mapping[str, np.ndarray]  # read-only, memory-mapped
    meta: Mapping[str, Any]


class ArtifactShelf:
    """One user's artifacts in `root` (a folder of the data dir)."""

    def __init__(self, root: Path, user_id: str) -> None:
        self.root = root / hashlib.sha256(user_id.encode()).hexdigest()[:16]

    def _folder(self, what: str, kind: RecordKind, source: str) -> Path:
        name = (
            source
            if _SAFE_NAME.fullmatch(source)
            else hashlib.sha256(source.encode()).hexdigest()[:16]
        )
        return self.root / what / f"{kind}.{name}"

    def save(
        self,
        what: str,
        kind: RecordKind,
        source: str,
        stamp: StreamStamp,
        fmt: str,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
    ) -> Path | None:
        """Save `arrays` as `what` of one stream at `stamp`, in format `fmt` (a string that
        changes whenever what the arrays mean does); with `replace`, in place of what is
        saved at that stamp (else another process's equal copy stays). Older stamps'
        folders go. A save that fails (a full disk, a folder refused) is logged and
        returns None: an artifact only saves work, the caller goes on without it."""
        if replace:
            self.discard(what, kind, source, stamp)
        try:
            return self._save(what, kind, source, stamp, fmt, arrays, meta)
        except (OSError, FileError) as exc:  # FileError: a folder refused as unsafe
            log.warning("could not save the %s of %s %s: %s", what, source, kind, exc)
            return None

    def _save(
        self,
        what: str,
        kind: RecordKind,
        source: str,
        stamp: StreamStamp,
        fmt: str,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping[str, Any] | None,
    ) -> Path:
        folder = self._folder(what, kind, source)
        secure_dir(folder, "artifact folder")
        final = folder / stamp.name
        temp = Path(tempfile.mkdtemp(prefix=".new-", dir=folder))  # 0700
        try:
            shapes, sums = {}, {}
            for name, array in arrays.items():
                _check_name(name)
                file = temp / f"{name}.npy"
                with open(os.open(file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
                    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
                shapes[name] = [str(array.dtype), list(array.shape)]
                sums[name] = _file_crc(file)
            body = {
                "format": fmt,
                "stamp": [stamp.generation, list(stamp.imports), stamp.seq],
                "arrays": shapes,
                "crc": sums,
                "meta": dict(meta or {}),
            }
            document = {**body, "check": _json_crc(body)}
            with open(os.open(temp / _META, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
                json.dump(document, out)
            _move_in(temp, final, fmt)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        self._drop_older(folder, stamp)
        return final

    def open(
        self, what: str, kind: RecordKind, source: str, stamp: StreamStamp, fmt: str
    ) -> Artifact | None:
        """The newest artifact saved for the stream's generations as `stamp` names them (its
        own `seq` may be older: the caller lays the changes since over it), or None."""
        folder = self._folder(what, kind, source)
        candidates = []
        for path in _children(folder):
            found = _parse(path.name)
            if found is not None and found.same_rows(stamp) and found.seq <= stamp.seq:
                candidates.append((found.seq, path))
        for _, path in sorted(candidates, reverse=True):
            artifact = _read(path, fmt)
            if artifact is not None:
                return artifact
        return None

    def discard(self, what: str, kind: RecordKind, source: str, stamp: StreamStamp) -> None:
        """Remove the artifact saved at exactly `stamp` (found damaged: a save of the same
        stamp would otherwise keep it, as another process's equal copy). Renamed away
        first, so no reader opens it half removed; a process that mapped it keeps reading."""
        folder = self._folder(what, kind, source)
        doomed = folder / f".old-{stamp.name}-{os.getpid()}"
        try:
            os.rename(folder / stamp.name, doomed)
        except OSError:
            return  # gone already
        shutil.rmtree(doomed, ignore_errors=True)

    def _drop_older(self, folder: Path, stamp: StreamStamp) -> None:
        for path in _children(folder):
            found = _parse(path.name)
            # by seq alone: a slow process saving an older stamp leaves a newer one alone
            older = found is not None and found.seq < stamp.seq
            stale_temp = path.name.startswith(".new-") and _age(path) > 3600
            if older or stale_temp:
                shutil.rmtree(path, ignore_errors=True)

    def clear(self) -> None:
        """Every artifact of this user (the cache was cleared)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _move_in(temp: Path, final: Path, fmt: str) -> None:
    """`temp` renamed to `final`. Where another process saved the same stamp first, theirs
    is as good, in the same format; one in another format (an older version's, which the
    stamp alone does not tell apart) is renamed away and replaced, else every later open
    would rebuild and every save would lose to it."""
    try:
        os.rename(temp, final)
        return
    except OSError:
        if _format_of(final) == fmt:
            shutil.rmtree(temp, ignore_errors=True)
            return
    doomed = final.with_name(f".old-{final.name}-{os.getpid()}")
    try:
        os.rename(final, doomed)
        os.rename(temp, final)
    except OSError:  # a third process's save came in between: it is as new as ours
        shutil.rmtree(temp, ignore_errors=True)
    shutil.rmtree(doomed, ignore_errors=True)


def _format_of(path: Path) -> str | None:
    """The format an artifact's metadata names (None: unreadable, not an artifact)."""
    try:
        with open(path / _META, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document.get("format") if isinstance(document, dict) else None


def _check_name(name: str) -> None:
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"not an artifact array name: {name!r}")


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


_STAMP_NAME = re.compile(r"g(\d+)-i([\d-]+)-s(\d+)")


def _parse(name: str) -> StreamStamp | None:
    match = _STAMP_NAME.fullmatch(name)
    if match is None:
        return None
    generation, imports, seq = match.groups()
    found = tuple(int(g) for g in imports.split("-"))
    return StreamStamp(int(generation), () if found == (0,) else found, int(seq))


def _read(path: Path, fmt: str) -> Artifact | None:
    """The artifact in `path`, its arrays mapped; None (and a log line) if anything is off:
    every file's checksum and the metadata's are checked before anything is used."""
    try:
        with open(path / _META, encoding="utf-8") as handle:
            document = json.load(handle)
        if not isinstance(document, dict) or document.get("format") != fmt:
            return None
        body = {key: value for key, value in document.items() if key != "check"}
        if document.get("check") != _json_crc(body):
            raise ValueError("the metadata's checksum does not match")
        generation, imports, seq = document["stamp"]
        stamp = StreamStamp(int(generation), tuple(int(g) for g in imports), int(seq))
        if stamp.name != path.name:
            raise ValueError("stamp does not match the folder")
        arrays = {}
        for name, (dtype, shape) in _as_dict(document["arrays"]).items():
            _check_name(name)
            file = path / f"{name}.npy"
            if _file_crc(file) != _as_dict(document["crc"]).get(name):
                raise ValueError(f"{name}: the checksum does not match")
            array = _load(file, shape)
            if str(array.dtype) != dtype or list(array.shape) != shape:
                raise ValueError(f"{name}: {array.dtype}{array.shape}, saved as {dtype}{shape}")
            arrays[name] = array
        return Artifact(stamp, arrays, _as_dict(document["meta"]))
    except FileNotFoundError:
        return None  # replaced by a newer one meanwhile
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the artifact %s: %s", path, exc)
        return None


def _as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__} where the metadata holds a mapping")
    return value


def _json_crc(value: Any) -> int:
    return zlib.crc32(json.dumps(value, sort_keys=True).encode())


def _file_crc(path: Path) -> int:
    """A file's CRC-32, read in chunks through the page cache: the arrays' pages are not
    mapped into this process for it (a command stays small)."""
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _load(path: Path, shape: list[int]) -> np.ndarray:
    """An array mapped from its file; an empty one read (there is nothing to map)."""
    if 0 in shape:
        if path.stat().st_size > 4096:  # a header and nothing else
            raise ValueError(f"{path.name}: an empty array in a large file")
        return np.load(path, allow_pickle=False)
    return np.load(path, mmap_mode="r", allow_pickle=False)
