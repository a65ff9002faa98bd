"""Writing settings into a `.env` file: the lines it has are kept (comments, order, other
settings), a setting already there is replaced where it stands, a new one is appended. The
file is private (0600) from its first byte, and replaced in one rename."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv.parser import parse_stream

from crm_tui.filewrite import locked, replace_text, written_path

_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,=-]*")


def quoted(value: str) -> str:
    """A value as python-dotenv reads it back unchanged (it decodes backslashes even inside
    single quotes: those are used only for values without one)."""
    if _PLAIN.fullmatch(value):  # not match(...$): $ also matches before a final newline
        return value
    if "'" not in value and "\\" not in value and "\n" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def merged(text: str, values: Mapping[str, str]) -> str:
    """`text` with each of `values` set: replaced on its first assignment, later repeats
    dropped (dotenv's last one would win over the new value), new ones appended. The file
    is read by dotenv's own parser, so a line inside a quoted multi-line value is never
    taken for an assignment."""
    wanted = {k.upper(): v for k, v in values.items()}
    done: set[str] = set()
    out = []
    for binding in parse_stream(io.StringIO(text)):
        key = binding.key.upper() if binding.key else None
        if key not in wanted:
            out.append(binding.original.string)
            continue
        if key not in done:  # the blank lines and comments dotenv folded into it stay
            lead = binding.original.string[
                : len(binding.original.string) - len(binding.original.string.lstrip("\n"))
            ]
            out.append(f"{lead}{key}={quoted(wanted[key])}\n")
            done.add(key)
    body = "".join(out)
    if body and not body.endswith("\n"):
        body += "\n"
    new = [f"{key}={quoted(value)}\n" for key, value in wanted.items() if key not in done]
    if new and body.strip() and not body.endswith("\n\n"):
        body += "\n"
    return body + "".join(new)


def save_settings(path: Path, values: Mapping[str, str]) -> None:
    """Set `values` in the .env file at `path` (made, with its folder, if need be); a
    symlinked .env (a dotfile manager's) is written where it points."""
    path = written_path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with locked(path):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        replace_text(path, merged(text, values))
