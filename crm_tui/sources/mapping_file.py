"""Changing `mappings.toml` from the program (the Mapping screen, `crm-tui map`): one mapping
or one column declaration set or removed, and everything else in the file as it was:
comments, order, other keys. The file stays the source of truth and stays hand-editable.

Every change is checked before it is written: the entry itself (a known source and stream,
a unified field or `custom.NAME`, a path, a column type), then the whole file as it would
read, then the caller's `check` (the Mapping service refuses a map the re-map of the cached
records would lose records by, or refuse). A refusal is MappingRefused with one line saying
why, and the file is left untouched. A problem the file has already (a hand edit) is not
the change's: it is the ConfigError every reader of the file raises (exit 3), naming the
line to fix. A save holds a lock beside the file from its read to its rename, so two
processes saving at once both land; the rename means a reader sees the old file or the new
one. A symlinked file is written where it points, and CRLF line endings stay CRLF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from crm_tui.custom_columns import CUSTOM_PREFIX, Column
from crm_tui.filewrite import locked, mode_of, read_text, replace_text, written_path
from crm_tui.models import CUSTOM_FIELD
from crm_tui.sources.mapping import (
    COLUMNS_TABLE,
    Mappings,
    column_problem,
    load_mappings,
    mappings_from_text,
    target_problem,
)

MAPPINGS_FILE = "mappings.toml"
Check = Callable[[Mappings], None]
# What tomlkit reads a TOML table as: a table (`[a.b]`, or one of dotted keys), an inline
# table, or a proxy over the parts of one written in several places.
_TableLike = Table | InlineTable | OutOfOrderTableProxy
# A change edits the document in place and returns the new tables to add at its end, as
# text: tomlkit would put one after the previous table's trailing comments, which belong to
# the table that follows them.
_Change = Callable[[TOMLDocument], list[str]]


class MappingRefused(ValueError):
    """A change of mappings.toml refused, and why, in one line; nothing was written."""


@dataclass(frozen=True, slots=True)
class Saved:
    """One save as it was written: `undo()` puts the file back as it was before it."""

    path: Path  # the file written (a symlink's target)
    before: str | None  # its text before the save, line endings and all; None: no file
    after: str  # its text as the save wrote it

    def undo(self) -> bool:
        """The file as it was before this save, comments and all; False (and the file left
        alone) when it changed since: another save landed after this one."""
        with locked(self.path):
            try:
                now: str | None = read_text(self.path)
            except FileNotFoundError:
                now = None
            if now != self.after:
                return False
            if self.before is None:
                self.path.unlink()
            else:
                replace_text(self.path, self.before, mode_of(self.path))
        return True


def mappings_path() -> Path:
    from crm_tui.config import config_dir

    return config_dir() / MAPPINGS_FILE


def read_mappings(path: Path | None = None) -> Mappings:
    """`mappings.toml` (at `path`, else where it lives) as it is now: a ConfigError (exit 3
    in the CLI) naming the file and line of each problem in it. Everything that reads the
    file for use (the sync, an import, the Mapping service) reads it so."""
    try:
        return load_mappings(path or mappings_path())
    except ValueError as exc:  # a problem in the file, or text that is not UTF-8
        raise _file_problem(str(exc)) from None


def _file_problem(problem: str) -> Exception:
    from crm_tui.config import ConfigError  # the config imports the connectors, which import us

    return ConfigError(f"{MAPPINGS_FILE}: {problem}")


def save_mapping(
    path: Path,
    source: str,
    stream: str,
    target: str,
    spec: str,
    column: Column | None = None,
    check: Check | None = None,
    saved: list[Saved] | None = None,
) -> Mappings:
    """Map `target` (a unified field, or `custom.NAME`) of `source`'s `stream` to the
    payload path `spec`; with `column`, declare that custom column too. Returns what the
    file now says; `saved` (if given) is appended the save, to undo it."""
    _check_stream(source, stream)
    if (wrong := target_problem(stream, target, spec)) is not None:
        raise MappingRefused(wrong)
    if column is not None:
        if target != CUSTOM_PREFIX + column.name:
            raise MappingRefused(f"{target}: the column declared is custom.{column.name}")
        _check_column(column)

    def change(doc: TOMLDocument) -> list[str]:
        added = _set_in_table(doc, (source, stream), target, spec)
        return added + (_set_column(doc, column) if column is not None else [])

    def landed(mappings: Mappings) -> None:
        if mappings.overrides.get(source, {}).get(stream, {}).get(target) != spec:
            raise MappingRefused(f"{path}: [{source}.{stream}] is written in a way to edit by hand")
        if check is not None:
            check(mappings)

    return _edit(path, change, landed, saved)


def remove_mapping(
    path: Path,
    source: str,
    stream: str,
    target: str,
    check: Check | None = None,
    saved: list[Saved] | None = None,
) -> Mappings:
    """Take `target` out of `source`'s `stream` table (the built-in map applies again). A
    custom column's declaration stays: other maps may fill it (see `remove_column`)."""
    _check_stream(source, stream)

    def change(doc: TOMLDocument) -> list[str]:
        table = _table(doc, (source, stream))
        if table is None or not _remove_key(table, target):
            raise MappingRefused(f"{MAPPINGS_FILE} does not map {target} of {source} {stream}")
        if not _holds_anything(table):
            _drop(doc, (source, stream))
        return []

    return _edit(path, change, check, saved)


def save_column(path: Path, column: Column) -> Mappings:
    """Declare a custom column, or change its label or type (its other keys stay)."""
    _check_column(column)
    return _edit(path, lambda doc: _set_column(doc, column), None)


def remove_column(path: Path, name: str) -> Mappings:
    """Take `[columns.NAME]` out, its other keys and the comments inside it with it (those
    above its header stay); a column still mapped somewhere stays, as text."""

    def change(doc: TOMLDocument) -> list[str]:
        if _table(doc, (COLUMNS_TABLE, name)) is None:
            raise MappingRefused(f"{MAPPINGS_FILE} declares no column {name!r}")
        _drop(doc, (COLUMNS_TABLE, name))
        return []

    return _edit(path, change, None)


# -- checks --------------------------------------------------------------------------------


def _check_stream(source: str, stream: str) -> None:
    from crm_tui.sources.registry import SOURCE_NAMES

    if source not in SOURCE_NAMES:
        raise MappingRefused(f"unknown source {source!r}; known: {', '.join(SOURCE_NAMES)}")
    if stream not in ("contacts", "deals"):
        raise MappingRefused(f"unknown stream {stream!r}: contacts or deals")


def _check_column(column: Column) -> None:
    wrong = column_problem(column.name, {"label": column.label, "type": column.type})
    if wrong is not None:
        raise MappingRefused(wrong)


# -- the edit ------------------------------------------------------------------------------


def _edit(
    path: Path, change: _Change, check: Check | None, saved: list[Saved] | None = None
) -> Mappings:
    path = written_path(path)  # a dotfile manager's symlink stays one
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with locked(path):
        try:
            before: str | None = read_text(path)
        except FileNotFoundError:
            before = None
        except (OSError, UnicodeDecodeError) as exc:
            raise _file_problem(f"{path}: cannot be read: {exc}") from None
        crlf = before is not None and "\r\n" in before  # written back with its line endings
        text = (before or "").replace("\r\n", "\n")
        _, problems = mappings_from_text(text, path)
        if problems:  # the file's own, not this change's: the person must fix it first
            raise _file_problem("; ".join(problems))
        try:
            doc = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise _file_problem(f"{path}: {exc}") from None
        added = change(doc)
        new = _ending_as(text, _appended(tomlkit.dumps(doc), added))
        mappings, problems = mappings_from_text(new, path)
        if problems:
            raise MappingRefused(problems[0])
        if check is not None:
            check(mappings)
        after = new.replace("\n", "\r\n") if crlf else new
        replace_text(path, after, mode_of(path))
        if saved is not None:
            saved.append(Saved(path, before, after))
        return mappings


def _appended(text: str, tables: list[str]) -> str:
    """New tables after the file's text, a blank line before each."""
    for table in tables:
        if text and not text.endswith("\n"):
            text += "\n"
        text += ("\n" if text.strip() and not text.endswith("\n\n") else "") + table
    return text


def _ending_as(old: str, new: str) -> str:
    """`new` ending in as many newlines as `old` did (one at least): a table added and
    then removed leaves the file as it was, to the byte."""
    if not new.strip():
        return ""
    trailing = len(old) - len(old.rstrip("\n"))
    return new.rstrip("\n") + "\n" * max(trailing, 1)


def _table(doc: TOMLDocument, keys: tuple[str, str]) -> _TableLike | None:
    outer = doc.get(keys[0])
    inner = outer.get(keys[1]) if isinstance(outer, _TableLike) else None
    return inner if isinstance(inner, _TableLike) else None


def _set_in_table(doc: TOMLDocument, keys: tuple[str, str], key: str, value: str) -> list[str]:
    """`key = value` in the table `keys`: where it stands, after the table's last key, or
    in a new table for the end of the file (returned)."""
    table = _table(doc, keys)
    if table is None:
        return [f"[{keys[0]}.{keys[1]}]\n" + tomlkit.dumps({key: value})]
    nested = table.get(CUSTOM_FIELD)
    name = key.removeprefix(CUSTOM_PREFIX)
    if key.startswith(CUSTOM_PREFIX) and isinstance(nested, _TableLike) and name in nested:
        nested[name] = value  # written `custom.lender = ...`: changed where it stands
        return []
    if key in table or not isinstance(table, Table):
        table[key] = value  # in place: its comment stays
        return []
    last = _last_key(table.value)
    if last is None:
        table.add(key, value)
    else:
        table.value._insert_after(last, key, value)  # before the table's trailing comments
    return []


def _last_key(body: Container) -> Any:
    """The table's last key written as `key = value` (a header sub-table's lines are its
    own), or None."""
    for key, item in reversed(body.body):
        if key is not None and (not isinstance(item, Table) or key.is_dotted()):
            return key
    return None


def _set_column(doc: TOMLDocument, column: Column) -> list[str]:
    keys = (COLUMNS_TABLE, column.name)
    values = {"label": column.label, "type": column.type}
    if _table(doc, keys) is None:
        return [f"[{COLUMNS_TABLE}.{column.name}]\n" + tomlkit.dumps(values)]
    for key, value in values.items():
        _set_in_table(doc, keys, key, value)
    return []


def _remove_key(table: _TableLike, key: str) -> bool:
    if key in table:
        del table[key]
        return True
    nested = table.get(CUSTOM_FIELD)
    name = key.removeprefix(CUSTOM_PREFIX)
    if key.startswith(CUSTOM_PREFIX) and isinstance(nested, _TableLike) and name in nested:
        del nested[name]
        if not nested:
            del table[CUSTOM_FIELD]
        return True
    return False


def _holds_anything(table: _TableLike) -> bool:
    """Keys, or comments a person wrote there (those are never dropped)."""
    if len(table):
        return True
    if not isinstance(table, Table):
        return False
    notes = (item.as_string().strip() for key, item in table.value.body if key is None)
    return bool(table.trivia.comment) or any(notes)


def _drop(doc: TOMLDocument, keys: tuple[str, str]) -> None:
    """An emptied table goes, and its parent too when nothing else is left in it."""
    outer = doc[keys[0]]
    del outer[keys[1]]  # type: ignore[union-attr]
    if isinstance(outer, _TableLike) and not _holds_anything(outer):
        del doc[keys[0]]
