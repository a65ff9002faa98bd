"""Writing settings into a `.env` file: the lines it has are kept (comments, order, other
settings), a setting already there is replaced where it stands, a new one is appended. The
file is private (0600) from its first byte, and replaced in one rename."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+,=-]*$")


def quoted(value: str) -> str:
    """A value as python-dotenv reads it back unchanged."""
    if _PLAIN.match(value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def merged(text: str, values: Mapping[str, str]) -> str:
    """`text` with each of `values` set: replaced on its first line, later repeats dropped
    (dotenv's last one would win over the new value), new ones appended."""
    wanted = {k.upper(): v for k, v in values.items()}
    done: set[str] = set()
    lines = []
    for line in text.splitlines():
        found = _ASSIGNMENT.match(line)
        key = found.group(1).upper() if found else None
        if key in wanted:
            if key not in done:
                lines.append(f"{key}={quoted(wanted[key])}")
                done.add(key)
            continue
        lines.append(line)
    new = [f"{key}={quoted(value)}" for key, value in wanted.items() if key not in done]
    if new and lines and lines[-1].strip():
        lines.append("")
    return "\n".join([*lines, *new]) + "\n"


def save_settings(path: Path, values: Mapping[str, str]) -> None:
    """Set `values` in the .env file at `path` (made, with its folder, if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    fd, temp = tempfile.mkstemp(prefix=".env.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(merged(text, values))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
