"""What a source's records hold, from the payloads already cached: each field's path, the
JSON types seen, how many records fill it, a few sample values, and what it is mapped to.

Plain data, no request and no Textual: the Mapping screen and `crm-tui fields` show it.
Paths are those a field map takes (`a.b`, `addresses[0].city`): a list is listed itself
and, when it holds objects, through its first one. At most `SAMPLE` records are read,
evenly spread over the stream; past that the fill rates are estimates (`estimated`).

Sample values are CRM text: controls, bidi and zero-width characters gone, one line, at
most 40 characters; markup in them stays literal text, for a screen that shows it with
markup off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_tui import jsoncodec
from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.formats import field_label
from crm_tui.models import CONTACT_FIELDS, DEAL_FIELDS, RecordKind
from crm_tui.sources.kit import VendorField
from crm_tui.sources.mapping import TARGETS, Columns, FieldMap, FieldSpec
from crm_tui.text import single_line

#: Records read at most; a larger stream is sampled evenly and its fill rates estimated.
SAMPLE = 5_000
SAMPLES_PER_FIELD = 3
SAMPLE_CHARS = 40
#: Hostile payloads (a million keys, nesting a thousand deep) stop being walked here.
MAX_DEPTH = 8
MAX_FIELDS = 1_000
COMPUTED = "(computed)"
_JSON_TYPES = {str: "string", bool: "boolean", int: "number", float: "number"}


@dataclass(frozen=True, slots=True)
class FieldInfo:
    path: str
    types: tuple[str, ...]  # JSON types seen: string, number, boolean, object, array, null
    filled: int  # sampled records with a value (not null, blank, [] or {})
    fill_rate: float  # filled / sampled records
    samples: tuple[str, ...]  # distinct values, cleaned and cut (see the module's note)
    mapped_to: tuple[str, ...]  # unified fields and custom.NAME columns read from it
    vendor_label: str | None = None  # the vendor's name for it, from its field metadata

    def fill_text(self, estimated: bool = False) -> str:
        """ "37%", "~37%" from a sample, "<1%" for a field a few records hold (0% would
        read as none), and ">99%" for one all but a few hold (100% would read as all)."""
        if self.filled and self.fill_rate < 0.005:
            shown = "<1%"
        elif 0.995 <= self.fill_rate < 1:
            shown = ">99%"
        else:
            shown = f"{self.fill_rate:.0%}"
        return f"~{shown}" if estimated and self.filled else shown

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "types": list(self.types),
            "filled": self.filled,
            "fillRate": round(self.fill_rate, 4),
            "samples": list(self.samples),
            "mappedTo": list(self.mapped_to),
            "vendorLabel": self.vendor_label,
        }


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A unified field or custom column of the stream, and where its value comes from."""

    name: str  # `company`, `custom.lender`
    label: str
    spec: str  # a path, alternatives joined by ` | `, COMPUTED, or "" (not mapped)
    paths: tuple[str, ...]  # the paths among them
    origin: str  # "mappings.toml", "built-in" or "" (not mapped)
    type: str | None = None  # a custom column's type

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.name,
            "label": self.label,
            "spec": self.spec,
            "paths": list(self.paths),
            "origin": self.origin,
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class Discovery:
    source: str
    stream: RecordKind
    total: int  # records the stream holds
    sampled: int  # records read
    fields: tuple[FieldInfo, ...]
    targets: tuple[TargetInfo, ...]

    @property
    def estimated(self) -> bool:
        return self.sampled < self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "stream": self.stream,
            "total": self.total,
            "sampled": self.sampled,
            "estimated": self.estimated,
            "fields": [f.to_json() for f in self.fields],
            "targets": [t.to_json() for t in self.targets],
        }


@dataclass(slots=True)
class _Seen:
    types: dict[str, None] = field(default_factory=dict)
    filled: int = 0
    samples: dict[str, None] = field(default_factory=dict)


def discover(
    source: str,
    stream: RecordKind,
    payloads: Iterable[str],
    total: int,
    field_map: FieldMap,
    origins: Mapping[str, str],
    columns: Columns,
    vendor: Sequence[VendorField] = (),
) -> Discovery:
    """Fields of `payloads` (stored JSON text, a sample of the stream's `total`) against the
    stream's effective `field_map`, each target's origin given in `origins`."""
    seen: dict[str, _Seen] = {}
    sampled = 0
    for text in payloads:
        try:
            payload = jsoncodec.loads(text)
        except ValueError:
            continue
        sampled += 1
        if isinstance(payload, dict):
            _walk(payload, "", seen, 0)
    targets = _targets(stream, field_map, origins, columns)
    readers: dict[str, list[str]] = {}
    for target in targets:
        for path in target.paths:
            readers.setdefault(path, []).append(target.name)
    # the vendor's metadata is CRM text too: a path it could not be read by is left out
    labels = {v.path: single_line(v.label) for v in vendor if v.path.isprintable()}
    for path in [*readers, *labels]:  # mapped or listed by the vendor, found in no payload
        seen.setdefault(path, _Seen())
    fields = tuple(
        FieldInfo(
            path,
            tuple(s.types),
            s.filled,
            s.filled / sampled if sampled else 0.0,
            tuple(s.samples),
            tuple(readers.get(path, ())),
            labels.get(path),
        )
        for path, s in seen.items()
    )
    return Discovery(source, stream, total, sampled, fields, targets)


def _walk(value: dict[str, Any], prefix: str, seen: dict[str, _Seen], depth: int) -> None:
    for key, item in value.items():
        if not _addressable(key):
            continue
        path = f"{prefix}.{key}" if prefix else key
        found = seen.get(path)
        if found is None:
            if len(seen) >= MAX_FIELDS:
                continue
            found = seen[path] = _Seen()
        found.types[_json_type(item)] = None
        if _filled(item):
            found.filled += 1
            sample = _sample(item)
            if sample and len(found.samples) < SAMPLES_PER_FIELD:
                found.samples[sample] = None
        if depth >= MAX_DEPTH:
            continue
        if isinstance(item, dict):
            _walk(item, path, seen, depth + 1)
        elif isinstance(item, list) and item and isinstance(item[0], dict):
            _walk(item[0], f"{path}[0]", seen, depth + 1)


def _addressable(key: object) -> bool:
    """A key a path can name: text with no `.`, `[` or `]`, nothing unprintable."""
    return (
        isinstance(key, str)
        and bool(key.strip())
        and key.isprintable()
        and not any(c in key for c in ".[]")
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return _JSON_TYPES.get(type(value), "string")


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value != [] and value != {}


def _sample(value: Any) -> str:
    if isinstance(value, dict):
        return ""  # its fields are listed, each with its samples
    if isinstance(value, list):
        if any(isinstance(v, dict | list) for v in value):
            return f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
        text = ", ".join(_scalar(v) for v in value[:10])
    else:
        text = _scalar(value)
    text = " ".join(single_line(text).split())
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)[: SAMPLE_CHARS * 4]


def _targets(
    stream: RecordKind, field_map: FieldMap, origins: Mapping[str, str], columns: Columns
) -> tuple[TargetInfo, ...]:
    order = CONTACT_FIELDS if stream == "contacts" else DEAL_FIELDS
    names = [n for n in order if n in TARGETS[stream]]
    custom = [t for t in field_map if t.startswith(CUSTOM_PREFIX)]
    custom += [CUSTOM_PREFIX + n for n in columns if CUSTOM_PREFIX + n not in field_map]
    out = []
    for name in (*names, *custom):
        spec = field_map.get(name)
        column = columns.get(name.removeprefix(CUSTOM_PREFIX)) if name in custom else None
        out.append(
            TargetInfo(
                name,
                column.label if column else field_label(name.removeprefix(CUSTOM_PREFIX)),
                _describe(spec),
                _paths(spec),
                origins.get(name, "") if spec is not None else "",
                column.type if column else ("text" if name in custom else None),
            )
        )
    return tuple(out)


def _describe(spec: FieldSpec | None) -> str:
    if spec is None:
        return ""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, tuple):
        return " | ".join(_describe(s) for s in spec)
    return COMPUTED


def _paths(spec: FieldSpec | None) -> tuple[str, ...]:
    if isinstance(spec, str):
        return (spec,)
    if isinstance(spec, tuple):
        return tuple(p for s in spec for p in _paths(s))
    return ()
