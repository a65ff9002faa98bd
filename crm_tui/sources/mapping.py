"""Declarative field maps and the coercion of raw payloads into Contact and Deal.

A field map says, for each unified field, where the value sits in the source's payload: a
path (`"first_name"`, `"addresses[0].city"`), alternatives tried in order (a tuple), or a
function of the payload. Users add or override entries in `mappings.toml` in the config dir,
and map payload fields to custom columns of their own (`custom.NAME`), declared with the label
people read and a type (text, number, date, money, list; text when not declared):

    [followupboss.contacts]
    company = "customCompanyName"
    "custom.lender" = "customLender"

    [columns.lender]
    label = "Lender"
    type = "text"

A custom value that cannot be read as its column's type is None; it never fails the record.

One bad record never fails a stream: whatever a payload holds, mapping it either gives a
record or raises InvalidRecord with the reason (the engine quarantines it, the import plan
lists it). The limits a record must keep:
- its payload, as compact JSON, at most `MAX_PAYLOAD_CHARS` (1 MiB) characters
  ("payload larger than 1 MiB"), nested at most 500 levels; a text field longer than
  20,000 characters is cut there;
- every string encodable as UTF-8 (no lone surrogate): SQLite would refuse the whole batch;
- an amount or a probability: a finite number below 1e15 in magnitude with at most 20
  decimal places, written in at most 64 characters (so `1E+999999999`, `1e-999999999` and
  integers past 64 bits are refused, never passed on to Decimal arithmetic or to an
  INTEGER column); a probability between 0 and 100.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_tui import jsoncodec
from crm_tui.custom_columns import (
    COLUMN_TYPES,
    CUSTOM_PREFIX,
    NO_CUSTOM,
    Column,
    is_column_name,
)
from crm_tui.formats import read_amount
from crm_tui.models import (
    CONTACT_EDITABLE,
    CUSTOM_FIELD,
    DEAL_EDITABLE,
    Contact,
    Deal,
    Record,
    RecordKind,
    record_id,
)
from crm_tui.sources.errors import InvalidRecord
from crm_tui.text import INVISIBLE, LINE_BREAKS, clean, strip_controls
from crm_tui.timefmt import UTC_STAMP
from crm_tui.tomlfile import read_toml, where

Getter = Callable[[Mapping[str, Any]], Any]
FieldSpec = str | tuple[str, ...] | Getter
FieldMap = dict[str, FieldSpec]
Overrides = Mapping[str, Mapping[str, Mapping[str, str]]]  # source -> stream -> field -> path
Columns = Mapping[str, Column]  # custom column name -> its declaration

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[\d{1,6}\])*")
_NOT_MAPPED = frozenset({"id", "source", "user_id", "raw", CUSTOM_FIELD})
#: The unified fields a user's map may set, per stream (custom columns besides).
TARGETS: dict[RecordKind, frozenset[str]] = {
    "contacts": frozenset(Contact.__dataclass_fields__) - _NOT_MAPPED,
    "deals": frozenset(Deal.__dataclass_fields__) - _NOT_MAPPED,
}
#: Where the column declarations sit in mappings.toml, beside the sources.
COLUMNS_TABLE = "columns"
_MAX_NESTING = 500  # below the recursion limit json itself runs into


@functools.lru_cache(maxsize=1024)
def _path_parts(path: str) -> tuple[tuple[str, str], ...]:
    return tuple(_PATH_PART.findall(path))


def is_mapping(value: Any) -> bool:
    """Decoded JSON is plain dicts: they skip the slower abstract-class check."""
    return type(value) is dict or isinstance(value, Mapping)


def get_path(raw: Any, path: str) -> Any:
    """`a.b[0].c` into nested dicts and lists; None where anything is missing."""
    value = raw
    for key, index in _path_parts(path):
        if key:
            if not is_mapping(value):
                return None
            value = value.get(key)
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        if value is None:
            return None
    return value


def compile_spec(spec: FieldSpec) -> Getter:
    """A field spec as one function of the payload, decided once per map, not per record."""
    if callable(spec):
        return spec
    if isinstance(spec, tuple):
        getters = [compile_spec(s) for s in spec]

        def first(raw: Mapping[str, Any]) -> Any:
            for get in getters:
                value = get(raw)
                if value not in (None, ""):
                    return value
            return None

        return first
    if not any(c in spec for c in ".["):
        return lambda raw: raw.get(spec)
    parts = _path_parts(spec)
    if len(parts) == 2 and parts[0][0] and parts[1][0]:
        # `properties.firstname`: HubSpot reads every field so; two plain lookups
        outer, inner = parts[0][0], parts[1][0]

        def nested(raw: Mapping[str, Any]) -> Any:
            if spec in raw:
                return raw[spec]
            value = raw.get(outer)
            return value.get(inner) if type(value) is dict else get_path(raw, spec)

        return nested
    return lambda raw: raw[spec] if spec in raw else get_path(raw, spec)


# -- getters several vendors need ------------------------------------------------------------

_YES = (True, 1, "1", "true")


def primary(list_key: str, flag: str = "isPrimary") -> Getter:
    """The primary entry's `value` in a list like `emails: [{value, isPrimary}]` (Follow Up
    Boss's `isPrimary`, Pipedrive's `primary`): the one flagged primary, else the first
    that is not marked bad, else the first."""

    def get(raw: Mapping[str, Any]) -> Any:
        items = raw.get(list_key)
        if not isinstance(items, list):
            return None
        entries = [i for i in items if is_mapping(i) and i.get("value")]
        for entry in entries:
            if entry.get(flag) in _YES:
                return entry.get("value")
        for entry in entries:
            if str(entry.get("status", "")).lower() not in ("not valid", "bad"):
                return entry.get("value")
        return entries[0].get("value") if entries else None

    return get


def epoch_ms(path: str, *, date_only: bool = False) -> Getter:
    """A time written as milliseconds since 1970 (Lofty's), as a number or a string of 11
    to 13 digits (1973 to 2286), as ISO text for the usual coercion; anything else (such as
    a compact "20240101120000") is passed on unchanged."""
    get = compile_spec(path)

    def convert(raw: Mapping[str, Any]) -> Any:
        value = get(raw)
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isdigit()
            and 11 <= len(value) <= 13
        ):
            value = int(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return value
        try:
            moment = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return moment.date().isoformat() if date_only else moment.strftime(UTC_STAMP)

    return convert


def names_of(list_key: str, key: str) -> Getter:
    """`[{tagName: "buyer"}, ...]` as `["buyer", ...]` (Lofty's tags)."""

    def get(raw: Mapping[str, Any]) -> Any:
        items = raw.get(list_key)
        if not isinstance(items, list):
            return None
        return [i.get(key) for i in items if is_mapping(i)]

    return get


def compile_map(field_map: FieldMap) -> dict[str, Getter]:
    return {target: compile_spec(spec) for target, spec in field_map.items()}


def is_path(text: str) -> bool:
    """`a.b[0].c`: names (anything but `.`, `[` and `]`) joined by dots, list indexes."""
    return len(text) <= 500 and text.isprintable() and _PATH.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Mappings:
    """What `mappings.toml` says: paths over the built-in maps, and the custom columns
    (those declared under `[columns]`, then those only mapped, as text)."""

    overrides: Overrides = field(default_factory=dict)
    columns: Columns = field(default_factory=dict)


def load_mappings(path: Path) -> Mappings:
    """`mappings.toml` read; every problem in it is one ValueError naming the file and
    line of each."""
    mappings, problems = _read_mappings(path)
    if problems:
        raise ValueError("; ".join(problems))
    return mappings


def load_overrides(path: Path) -> Overrides:
    """`mappings.toml`'s paths: {source: {stream: {field: path}}}."""
    return load_mappings(path).overrides


def check_mappings(path: Path) -> list[str]:
    """Every problem in `mappings.toml` (none when it is absent), one line each."""
    return _read_mappings(path)[1]


def target_problem(stream: str, target: str, spec: object) -> str | None:
    """Why `target = spec` cannot stand in a stream's table, or None."""
    targets = TARGETS.get(stream)  # type: ignore[call-overload]
    if targets is None:
        return "stream must be contacts or deals"
    if target.startswith(CUSTOM_PREFIX):
        name = target.removeprefix(CUSTOM_PREFIX)
        if not is_column_name(name):
            return f"{target}: a custom column's name is a letter, then letters, digits or _"
    elif target not in targets:
        return f"{target}: unknown field (a custom column is custom.NAME)"
    if not isinstance(spec, str) or not is_path(spec):
        return f"{target}: not a path such as customLender or addresses[0].city"
    return None


def column_problem(name: str, table: object) -> str | None:
    """Why `[columns.NAME]` is wrong, or None. Keys other than label and type are left
    alone (a note, or what a later version reads)."""
    if not is_column_name(name):
        return f"[columns.{name}]: a custom column's name is a letter, then letters, digits or _"
    if not isinstance(table, dict):
        return f"[columns.{name}] must be a table with label and type"
    label, kind = table.get("label", name), table.get("type", "text")
    if not isinstance(label, str) or not label.strip() or not label.isprintable():
        return f"[columns.{name}] label: not a name people can read"
    if kind not in COLUMN_TYPES:
        return f"[columns.{name}] type: {kind!r} is not one of {', '.join(COLUMN_TYPES)}"
    return None


def _stream_fields(fields: dict[str, object]) -> dict[str, object]:
    """A stream's table with `custom.x = "p"` written unquoted (a dotted key: a table
    `custom` inside it) read as the quoted `"custom.x" = "p"`."""
    nested = fields.get(CUSTOM_FIELD)
    if not isinstance(nested, dict):
        return fields
    flat = {k: v for k, v in fields.items() if k != CUSTOM_FIELD}
    flat.update((CUSTOM_PREFIX + name, spec) for name, spec in nested.items())
    return flat


def _read_mappings(path: Path) -> tuple[Mappings, list[str]]:
    data, text, problems = read_toml(path)
    return _mappings_of(data, text, path, problems)


def mappings_from_text(text: str, path: Path) -> tuple[Mappings, list[str]]:
    """What `text` would say as the file at `path` (its problems name that file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Mappings(), [f"{path}: {exc}"]
    return _mappings_of(data, text, path, [])


def _mappings_of(
    data: dict[str, Any], text: str, path: Path, problems: list[str]
) -> tuple[Mappings, list[str]]:
    from crm_tui.sources.registry import SOURCE_NAMES  # the connectors import this module

    result: dict[str, dict[str, dict[str, str]]] = {}
    columns: dict[str, Column] = {}

    def problem(keys: tuple[str, ...], message: str) -> None:
        problems.append(f"{where(path, text, keys)}: {message}")

    declared = data.get(COLUMNS_TABLE, {})
    if not isinstance(declared, dict):
        problem((COLUMNS_TABLE,), "[columns] must hold one table per custom column")
        declared = {}
    for name, table in declared.items():
        if (wrong := column_problem(name, table)) is not None:
            problem((COLUMNS_TABLE, name), wrong)
            continue
        columns[name] = Column(name, table.get("label", name).strip(), table.get("type", "text"))
    for source, streams in data.items():
        if source == COLUMNS_TABLE:
            continue
        if source not in SOURCE_NAMES:
            problem(
                (source,), f"unknown source {source!r}; known sources: {', '.join(SOURCE_NAMES)}"
            )
            continue
        if not isinstance(streams, dict):
            problem((source,), f"[{source}] must be a table of streams")
            continue
        for stream, fields in streams.items():
            if stream not in TARGETS or not isinstance(fields, dict):
                problem((source, stream), f"[{source}.{stream}]: stream must be contacts or deals")
                continue
            fields = _stream_fields(fields)
            for target, spec in fields.items():
                if (wrong := target_problem(stream, target, spec)) is not None:
                    problem((source, stream, target), f"[{source}.{stream}] {wrong}")
                elif target.startswith(CUSTOM_PREFIX):
                    name = target.removeprefix(CUSTOM_PREFIX)
                    columns.setdefault(name, Column.implied(name))
            result.setdefault(source, {})[stream] = dict(fields)  # type: ignore[arg-type]
    return Mappings(result, columns), problems


def source_maps(
    source: str, field_maps: Mapping[RecordKind, FieldMap], overrides: Overrides
) -> dict[RecordKind, FieldMap]:
    """A source's field maps with the user's `mappings.toml` entries for it on top. A sync
    and a file import of the same source both build their maps here, so they map alike."""
    custom = overrides.get(source, {})
    return {
        kind: {**field_maps.get(kind, {}), **custom.get(kind, {})} for kind in ("contacts", "deals")
    }


# -- coercion ----------------------------------------------------------------------------


def _clean_payload(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_NESTING:
        raise InvalidRecord(f"payload nested deeper than {_MAX_NESTING} levels")
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, Mapping):
        return {strip_controls(str(k)): _clean_payload(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_payload(v, depth + 1) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # not JSON
    return value


# JSON escapes C0 controls as \u00XX (\b and \f in short); DEL, C1, bidi and zero-width
# characters and U+2028/U+2029 stay literal with orjson, but another encoder may escape them.
# Any of them means "clean first".
_ESCAPED_CONTROL = re.compile(
    r"\\u00(?:[01][0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])|\\[bf]"
    f"|[\x7f-\x9f{INVISIBLE}{LINE_BREAKS}]"
)


def _may_hold_control(text: str) -> bool:
    """A prefilter for the pattern above, at memchr speed: the regex costs 4 µs a payload.
    Every escape starts with a backslash, and most payloads have none (50 ns to know); every
    literal one is DEL or beyond ASCII."""
    if "\\" in text and ("\\u" in text or "\\b" in text or "\\f" in text):
        return True
    return "\x7f" in text or not text.isascii()


MAX_PAYLOAD_CHARS = 1024 * 1024


def raw_json(raw: Any) -> str:
    """The payload as compact JSON without control characters. Most payloads have none, so
    they are serialised once and checked, rather than walked field by field. (NaN and
    infinity come out as null.) Raises InvalidRecord for a payload too large to keep or
    holding text that cannot be stored."""
    try:
        text = jsoncodec.dumps(raw)
    except ValueError as exc:  # a lone surrogate; an integer too long to write
        raise InvalidRecord(f"payload cannot be stored: {exc}") from None
    if len(text) > MAX_PAYLOAD_CHARS:
        raise InvalidRecord(f"payload larger than {MAX_PAYLOAD_CHARS // 2**20} MiB")
    if not _may_hold_control(text) or not _ESCAPED_CONTROL.search(text):
        return text
    return jsoncodec.dumps(_clean_payload(raw))


def remote_id_of(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise InvalidRecord("missing id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int):
        raise InvalidRecord(f"id has the wrong type ({type(value).__name__})")
    text = clean(value)
    if not text:
        raise InvalidRecord("missing id")
    if len(text) > 200:
        raise InvalidRecord("id longer than 200 characters")
    return text


def to_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return ()
    tags = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("name")
        text = clean(item)
        if text and text not in tags:
            tags.append(text)
    return tuple(tags)


def to_amount(value: Any, field: str = "amount") -> Decimal | None:
    try:
        return read_amount(value)
    except ValueError as exc:
        raise InvalidRecord(f"{field}: {exc}") from None


def to_probability(value: Any) -> int | None:
    amount = to_amount(value, "probability")
    if amount is None:
        return None
    if not 0 <= amount <= 100:
        raise InvalidRecord("probability: must be between 0 and 100")
    return int(amount)


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%d-%b-%Y", "%b %d, %Y")


def to_date(value: Any, field: str = "close_date") -> str | None:
    """An ISO date, from the formats CRMs and spreadsheets write."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{field}: not a date ({type(value).__name__})")
    text = value.strip()[:40]
    if not text:
        return None
    if len(text) >= 10 and text[4] == "-":
        try:
            return date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise InvalidRecord(f"{field}: not a date: {text!r}")


_CANONICAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def to_timestamp(value: Any) -> str | None:
    """A UTC ISO timestamp, or None: remote times are informative, never worth a quarantine."""
    if not isinstance(value, str) or not value.strip():
        return None
    if _CANONICAL_TIME.fullmatch(value):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(UTC_STAMP)


# -- custom columns ----------------------------------------------------------------------

#: A custom column without a value in this payload: left out of the record's `custom`.
ABSENT: Any = object()


def _custom_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str | list | tuple):
        return to_tags(value)
    if isinstance(value, int | float | Decimal):  # one number alone: a list of one
        return (_text(value),)  # type: ignore[return-value]
    return None


def _custom_text(value: Any) -> str | None:
    if isinstance(value, Decimal):
        return _text(str(value))
    return None if isinstance(value, Mapping | list | tuple) else _text(value)


_CUSTOM_COERCIONS: dict[str, Callable[[Any], Any]] = {
    "text": _custom_text,
    "number": lambda value: to_amount(value, "number"),
    "money": lambda value: to_amount(value, "money"),
    "date": lambda value: to_date(value, "date"),
    "list": _custom_list,
}


def coerce_custom(column_type: str, value: Any) -> Any:
    """A payload's value as a custom column of `column_type` holds it (see custom_columns):
    ABSENT for no value (None, blank text, an empty list or object), None for a value that
    is not of the type. Never raises: a bad custom value never fails its record."""
    if value is None or value == "" or value == [] or value == {}:
        return ABSENT
    if isinstance(value, str) and clean(value) is None:
        return ABSENT
    try:
        coerced = _CUSTOM_COERCIONS.get(column_type, _custom_text)(value)
    except (InvalidRecord, TypeError, ValueError, ArithmeticError, RecursionError, UnicodeError):
        return None
    return None if coerced == () else coerced


#: A record's fields in the order RecordBuilder gives them, which must be its dataclass's
#: (a test checks them against dataclasses.fields()): the ids, the mapped fields, then what
#: the sync sets. Built positionally: keyword arguments would slow this hot loop measurably.
_IDS = ("id", "source", "remote_id", "user_id")
_SYNCED = ("remote_created", "remote_updated", "synced_at", "deleted", "raw", CUSTOM_FIELD)
LAYOUT: dict[RecordKind, tuple[str, ...]] = {
    "contacts": (*_IDS, *CONTACT_EDITABLE, *_SYNCED),
    "deals": (*_IDS, *DEAL_EDITABLE, *_SYNCED),
}


class RejectedRow(dict[str, Any]):
    """A row a file reader could not take apart (an unbalanced quote, an over-long line):
    what there is of it, and why. Mapping it raises InvalidRecord with that reason, so a sync
    quarantines it like any invalid record."""

    __slots__ = ("reason",)

    def __init__(self, reason: str, payload: Mapping[str, Any]) -> None:
        super().__init__(payload)
        self.reason = reason


def _absent(raw: Mapping[str, Any]) -> None:
    return None


class RecordBuilder:
    """One field map compiled for one kind: every getter decided once, and each record built
    positionally (in LAYOUT's order) with no dictionaries in between. A sync maps every
    record it reads; this is the engine's hottest loop. `columns` gives the custom columns'
    types (text where a mapped column is not declared)."""

    def __init__(
        self, kind: RecordKind, field_map: FieldMap, columns: Columns | None = None
    ) -> None:
        getters = compile_map(field_map)
        self.kind = kind
        self._record = Contact if kind == "contacts" else Deal
        columns = columns or {}
        self._types = {name: column.type for name, column in columns.items()}
        # one getter per mapped column; `custom` alone reads a whole object of them (the
        # local CRM keeps its records' custom values so)
        self._custom = tuple(
            (target.removeprefix(CUSTOM_PREFIX), get)
            for target, get in getters.items()
            if target.startswith(CUSTOM_PREFIX)
        )
        self._all_custom = getters.get(CUSTOM_FIELD)
        editable = CONTACT_EDITABLE if kind == "contacts" else DEAL_EDITABLE
        #: (getter, coercion) per mapped field, in LAYOUT's order
        self._fields = tuple((getters.get(name, _absent), _coercion(name)) for name in editable)
        self._id, self._created, self._updated, self._deleted = (
            getters.get(name, _absent)
            for name in ("remote_id", "remote_created", "remote_updated", "deleted")
        )

    def __call__(self, source: str, user_id: str, raw: Any, synced_at: str) -> Record:
        """Map and coerce one payload. Raises InvalidRecord with the reason, never anything
        else."""
        if type(raw) is not dict:  # decoded JSON and CSV rows are: one check for both
            if isinstance(raw, RejectedRow):
                raise InvalidRecord(raw.reason)
            if not is_mapping(raw):
                raise InvalidRecord(f"record is {type(raw).__name__}, not an object")
        try:
            payload = raw_json(raw)  # first: the whole record's limits, before any field
            remote = remote_id_of(self._id(raw))
            # the sync's fields before the mapped ones, as always: where a timestamp and a
            # typed field are both wrong, the same reason is given
            synced = (
                to_timestamp(self._created(raw)),
                to_timestamp(self._updated(raw)),
                synced_at,
                self._deleted(raw) is True,
                payload,
                self._custom_values(raw) if self._custom or self._all_custom else NO_CUSTOM,
            )
            mapped = [coerce(get(raw)) for get, coerce in self._fields]
            return self._record(
                record_id(source, remote), source, remote, user_id, *mapped, *synced
            )
        except InvalidRecord:
            raise
        except RecursionError:
            raise InvalidRecord("payload nested too deeply") from None
        except UnicodeError:
            raise InvalidRecord("text that cannot be encoded as UTF-8 (a lone surrogate)") from None
        except (TypeError, ValueError, ArithmeticError) as exc:  # decimal's errors among them
            raise InvalidRecord(f"cannot map record: {type(exc).__name__}") from None

    def _custom_values(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        types = self._types
        if self._all_custom is not None:
            given = self._all_custom(raw)
            for name, value in given.items() if is_mapping(given) else ():
                if isinstance(name, str) and is_column_name(name):
                    values[name] = coerce_custom(types.get(name, "text"), value)
        for name, get in self._custom:
            values[name] = coerce_custom(types.get(name, "text"), get(raw))
        kept = {name: value for name, value in values.items() if value is not ABSENT}
        return kept or NO_CUSTOM

    def record_id(self, source: str, raw: Any) -> str | None:
        """Only the id a payload maps to (a deletion needs no more); None without one."""
        try:
            return record_id(source, remote_id_of(self._id(raw))) if is_mapping(raw) else None
        except (InvalidRecord, TypeError, ValueError, RecursionError):
            return None


#: Invalid records a stream may hold, whatever their share, before it fails as a whole.
MIN_INVALID = 10
INVALID_SHARE = 0.2


def mapping_gone_wrong(invalid: int, read: int, share: float = INVALID_SHARE) -> bool:
    """A mapping gone wrong, not a few bad records: more than `share` of the records
    invalid, and either at least MIN_INVALID of them or nothing valid at all. One bad record
    among two is quarantined; the other lands. (A sync and a re-map decide alike.)"""
    if not read or invalid / read <= share:
        return False
    return invalid >= MIN_INVALID or invalid == read


def build_record(
    kind: RecordKind,
    source: str,
    user_id: str,
    field_map: FieldMap,
    raw: Any,
    synced_at: str,
    columns: Columns | None = None,
) -> Record:
    """One payload mapped with a map used once; loops build a RecordBuilder instead."""
    return RecordBuilder(kind, field_map, columns)(source, user_id, raw, synced_at)


_MAX_FIELD = 20_000


def _text(value: Any) -> str | None:
    text = clean(value)
    if text is not None and len(text) > _MAX_FIELD:
        text = text[:_MAX_FIELD]
    return text


def _email(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else text


def _currency(value: Any) -> str:
    return (_text(value) or "USD").upper()[:3]


def _coercion(name: str) -> Callable[[Any], Any]:
    """How a mapped field's value is coerced: as text, unless the field has a type."""
    typed: dict[str, Callable[[Any], Any]] = {
        "email": _email,
        "tags": to_tags,
        "amount": to_amount,
        "currency": _currency,
        "probability": to_probability,
        "close_date": to_date,
    }
    return typed.get(name, _text)
