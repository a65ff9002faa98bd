"""The user's TOML files (mappings.toml, keymap.toml): read without raising, and where a key
sits in the text (tomllib reports no positions for keys, and an error about a setting
should name its line)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """(data, text, problems): an absent file is empty; one that cannot be read or parsed
    is empty with its problem, naming the file."""
    if not path.is_file():
        return {}, "", []
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text, []
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, "", [f"{path}: {exc}"]
    except OSError as exc:
        return {}, "", [f"{path}: {exc.strerror or exc}"]


def _key_pattern(key: str) -> str:
    return rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""


def _dotted(keys: tuple[str, ...]) -> str:
    return r"\s*\.\s*".join(_key_pattern(k) for k in keys)


def _header_line(lines: list[str], keys: tuple[str, ...], deeper: bool) -> int | None:
    # with `deeper`, a header of a table inside it counts: `[fub.contacts]` defines `fub`
    end = r"[\].]" if deeper else r"\]"
    header = re.compile(rf"^\s*\[\s*{_dotted(keys)}\s*{end}")
    return next((i for i, line in enumerate(lines) if header.match(line)), None)


def key_line(text: str, keys: tuple[str, ...]) -> int | None:
    """The 1-based line that defines the key path `keys`: the longest prefix found as a table
    header, then the rest as a key inside that table; else the whole path as a dotted key."""
    lines = text.splitlines()
    for split in range(len(keys), 0, -1):
        start = _header_line(lines, keys[:split], deeper=split == len(keys))
        if start is None:
            continue
        if split == len(keys):
            return start + 1
        key = re.compile(rf"^\s*{_dotted(keys[split:])}\s*[.=]")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
        return start + 1
    key = re.compile(rf"^\s*{_dotted(keys)}\s*[.=]")
    return next((i + 1 for i, line in enumerate(lines) if key.match(line)), None)


def where(path: object, text: str, keys: tuple[str, ...]) -> str:
    """`path, line N` for an error message (just `path` when the line is not found)."""
    line = key_line(text, keys)
    return f"{path}, line {line}" if line else str(path)
