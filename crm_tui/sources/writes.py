"""What a source lets crm-tui change, as plain data, and the request a change becomes.

A connector declares, per stream, how a record is updated (method, path, and for each
unified field where its value goes in the body), whether new leads can be created and notes
added, and where the vendor lists the values a field may take. The outbox sender
(`crm_tui/writeback`) reads these declarations; the form and the CLI offer only what is
declared. A field writer is built from the record as the vendor has it now (read just before
sending), so a list the vendor replaces whole (Follow Up Boss's phones) keeps its other
entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from crm_tui.models import RecordKind
from crm_tui.sources.mapping import get_path, is_mapping

#: A unified value as the outbox keeps it: text, a list of tags, None (clear the field).
Value = str | int | list[str] | None
_YES = (True, 1, "1", "true")


@dataclass(slots=True)
class Draft:
    """A request being built: what is sent, before a client sends it."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    #: What writers share while building it (the parts of a name sent whole); not sent.
    scratch: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "params": self.params, "body": self.body}


class Writer(Protocol):
    """Puts one unified value into a draft; `current` is the vendor's record as read now."""

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None: ...


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    """`a.b` in nested dicts, made as needed."""
    *outer, last = path.split(".")
    for key in outer:
        body = body.setdefault(key, {})
    body[last] = value


@dataclass(frozen=True, slots=True)
class At:
    """The value at a dotted path. `kind` converts it ("number": an amount as a JSON
    number; "integer"); `cleared` is what clears it (null, or HubSpot's "")."""

    path: str
    kind: Literal["text", "number", "integer"] = "text"
    cleared: Any = None

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        if value is None or value == "":
            set_path(draft.body, self.path, self.cleared)
        elif self.kind == "number":
            amount = Decimal(str(value))
            set_path(
                draft.body,
                self.path,
                int(amount) if amount == amount.to_integral() else float(amount),
            )
        elif self.kind == "integer":
            set_path(draft.body, self.path, int(str(value)))
        else:
            set_path(draft.body, self.path, value)


@dataclass(frozen=True, slots=True)
class PrimaryItem:
    """A list of `{value, <flag>}` objects that the vendor replaces whole (Follow Up Boss's
    emails and phones, Pipedrive's): the current list with its primary entry's value
    changed (added first, flagged, when there is none; removed when cleared)."""

    key: str
    flag: str = "isPrimary"
    yes: Any = 1
    path: str | None = None  # where it goes in the body, when not at `key`

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        found = current.get(self.key)
        items = [dict(i) for i in found if is_mapping(i)] if isinstance(found, list) else []
        at = next((n for n, i in enumerate(items) if i.get(self.flag) in _YES), 0)
        if value is None or value == "":
            del items[at : at + 1]
        elif items:
            items[at]["value"] = value
        else:
            items = [{"value": value, self.flag: self.yes}]
        set_path(draft.body, self.path or self.key, items)


@dataclass(frozen=True, slots=True)
class FirstString:
    """A list of plain strings whose first is the one shown (Lofty's emails, phones)."""

    key: str

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        found = current.get(self.key)
        items = [i for i in found if isinstance(i, str)] if isinstance(found, list) else []
        if value is None or value == "":
            items = items[1:]
        elif items:
            items[0] = str(value)
        else:
            items = [str(value)]
        draft.body[self.key] = items


@dataclass(frozen=True, slots=True)
class Tags:
    """A tag list the vendor replaces whole, or adds to with `merge_param=true` (Follow Up
    Boss): only the new tags are sent, merged, unless one was removed."""

    key: str = "tags"
    merge_param: str | None = None

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        wanted = [str(t) for t in value] if isinstance(value, list) else []
        found = current.get(self.key)
        now = [str(t) for t in found] if isinstance(found, list) else []
        if self.merge_param and set(now) <= set(wanted):
            draft.params[self.merge_param] = "true"
            draft.body[self.key] = [t for t in wanted if t not in now]
        else:
            draft.body[self.key] = wanted


@dataclass(frozen=True, slots=True)
class NamePart:
    """One part of a name the vendor takes whole (Pipedrive v2's `name`): the other part
    as the record has it now, or as the same edit changes it."""

    part: Literal["first", "last"]
    key: str = "name"
    first: str = "first_name"
    last: str = "last_name"

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        parts = draft.scratch.setdefault(
            self.key,
            {"first": current.get(self.first) or "", "last": current.get(self.last) or ""},
        )
        parts[self.part] = str(value or "")
        draft.body[self.key] = " ".join(str(p) for p in (parts["first"], parts["last"]) if p)


@dataclass(frozen=True, slots=True)
class Items:
    """A list of `{value}` objects made afresh (a new lead's emails at Follow Up Boss)."""

    path: str

    def __call__(self, draft: Draft, value: Value, current: Mapping[str, Any]) -> None:
        if value not in (None, ""):
            set_path(draft.body, self.path, [{"value": value}])


@dataclass(frozen=True, slots=True)
class Option:
    """One value a field may take: what a person sees, what the vendor is sent, and the
    list it belongs to (a pipeline's id) where a record may only take its own list's."""

    label: str
    value: Any
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Choices:
    """Where the vendor lists the values a field may take: a GET path (with `params`) and
    the keys down to the list (a key whose value is a list is walked into every item:
    `pipelines`, then each pipeline's `stages`); `label` is what a person sees and types,
    `value` (None: the label) what the vendor is sent; `stored` says which of the two a
    mapped record holds. With `within`, a record takes only the values of the group its
    payload names under that key (a Follow Up Boss deal, its pipeline's stages: the same
    stage name in two pipelines is two stages), the group being the first level's `group`."""

    path: str
    at: tuple[str, ...]
    label: str = "name"
    value: str | None = None
    stored: Literal["label", "value"] = "label"
    params: Mapping[str, str] = field(default_factory=dict)
    within: str | None = None
    group: str = "id"

    def options(self, listed: Sequence[Option], record: Mapping[str, Any] | None) -> dict[str, Any]:
        """label -> value for `record` (its group's only, with `within`); a label naming
        two different values is left out: it must be given by its value."""
        group = record.get(self.within) if self.within and record is not None else None
        mine = [o for o in listed if group is None or o.group == str(group)]
        options: dict[str, Any] = {}
        twice: set[str] = set()
        for option in mine:
            if options.setdefault(option.label, option.value) != option.value:
                twice.add(option.label)
        return {k: v for k, v in options.items() if k not in twice}

    def stored_form(self, options: Mapping[str, Any], text: str) -> str | None:
        """`text` (a label or a value, in any case) as a mapped record holds it; None when
        the vendor does not list it."""
        wanted = text.casefold()
        for label, value in options.items():
            if wanted in (label.casefold(), str(value).casefold()):
                return label if self.stored == "label" else str(value)
        return None

    def read(self, body: Any) -> list[Option]:
        """Every value listed in the vendor's answer."""
        level: list[tuple[Any, str | None]] = [(body, None)]
        for depth, key in enumerate(self.at):
            nxt: list[tuple[Any, str | None]] = []
            for item, group in level:
                found = item.get(key) if is_mapping(item) else None
                for child in found if isinstance(found, list) else [found] if found else []:
                    mark = group
                    if self.within and depth == 0 and is_mapping(child):
                        mark = str(child.get(self.group))
                    nxt.append((child, mark))
            level = nxt
        return [
            Option(
                str(item[self.label]),
                item.get(self.value) if self.value else item[self.label],
                group,
            )
            for item, group in level
            if is_mapping(item) and item.get(self.label) not in (None, "")
        ]


@dataclass(frozen=True, slots=True)
class CustomFields:
    """The vendor takes writes of its custom fields where a record holds them: a custom
    column mapped from one plain payload path that `paths` matches (a whole path, no
    alternatives, no list index) is writable, its value set at that same path in the body.
    `numbers`: how a number or money column's value is sent (a JSON number, or the text
    every HubSpot property takes); `cleared`: what clears one (null, HubSpot's "")."""

    paths: str  # a regular expression, matched against the whole path
    numbers: Literal["number", "text"] = "number"
    cleared: Any = None

    def writer(self, path: str, column_type: str) -> Writer | None:
        """How a column of `column_type` read from `path` is written; None when it is not
        (another path, or a list, whose form each vendor spells its own way)."""
        if column_type == "list" or re.fullmatch(self.paths, path) is None:
            return None
        number = column_type in ("number", "money") and self.numbers == "number"
        return At(path, "number" if number else "text", self.cleared)


@dataclass(frozen=True, slots=True)
class Update:
    """How a stream's records are changed: `method path` (with `{id}`), the writable
    unified fields and their writers, the fields whose values the vendor lists, and where
    the record sits in the answer."""

    method: Literal["PUT", "PATCH"]
    path: str
    fields: Mapping[str, Writer]
    choices: Mapping[str, Choices] = field(default_factory=dict)
    at: tuple[str, ...] = ()
    #: The answer is the whole record (else it is read again after the write: HubSpot
    #: answers with the properties written and a few defaults only).
    answers_whole: bool = True
    #: Custom columns are writable where the vendor takes writes of its custom fields.
    custom: CustomFields | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """How a new lead is created (contacts): `POST path` with `fixed` values, the unified
    fields (and `lead_source`, `message`) and their writers. `deduplicates`: the vendor
    merges a repeat by e-mail or phone, so sending again after a lost answer is safe;
    otherwise the vendor is searched first."""

    path: str
    fields: Mapping[str, Writer]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    at: tuple[str, ...] = ()
    id_at: str = "id"
    deduplicates: bool = False
    required_any: tuple[str, ...] = ("email", "phone")


@dataclass(frozen=True, slots=True)
class Note:
    """How a note is added to a contact (`POST path`), and where a contact's notes are
    listed (to look before sending again after a lost answer)."""

    path: str
    person: str  # the body key naming the contact
    text: str  # the body key of the note's text
    subject: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    listing: str | None = None  # GET path with `{id}` (or a query) listing its notes
    listing_param: str | None = None
    listing_at: tuple[str, ...] = ()
    listing_params: Mapping[str, str] = field(default_factory=dict)  # newest first, a page


@dataclass(frozen=True, slots=True)
class Writes:
    """Everything a source lets crm-tui change."""

    update: Mapping[RecordKind, Update] = field(default_factory=dict)
    create: Create | None = None
    note: Note | None = None

    @property
    def any(self) -> bool:
        return bool(self.update or self.create or self.note)

    def fields(self, stream: RecordKind) -> tuple[str, ...]:
        spec = self.update.get(stream)
        return tuple(spec.fields) if spec else ()


# -- drafts ------------------------------------------------------------------------------------


def unsendable(spec: Update, values: Mapping[str, Value]) -> dict[str, str]:
    """The values a writer cannot put in a request (a probability that is not a number),
    with why: checked when the edit is made, not when it is sent. Values the vendor lists
    are checked against its list instead (a stage's name becomes its id when sent)."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name in spec.choices:
            continue
        try:
            spec.fields[name](Draft("", ""), value, {})
        except (ValueError, TypeError, ArithmeticError):
            errors[name] = "must be a number" if value else "cannot be cleared"
    return errors


def update_draft(
    spec: Update,
    remote_id: str,
    changes: Mapping[str, Value],
    current: Mapping[str, Any],
    choices: Mapping[str, Mapping[str, Any]],
) -> Draft:
    """The request that sets `changes` on the record the vendor has as `current`. A value
    with listed choices is sent as the vendor's own (a stage's id)."""
    from urllib.parse import quote

    draft = Draft(spec.method, spec.path.format(id=quote(remote_id, safe="")))
    for name, value in changes.items():
        spec.fields[name](draft, _chosen(name, value, choices), current)
    return draft


def create_draft(spec: Create, values: Mapping[str, Value]) -> Draft:
    draft = Draft("POST", spec.path, body=_nested_copy(spec.fixed))
    for name, value in values.items():
        if name in spec.fields:
            spec.fields[name](draft, value, {})
    return draft


def note_draft(spec: Note, remote_id: str, text: str, subject: str | None) -> Draft:
    body: dict[str, Any] = {**spec.fixed, spec.person: _id_value(remote_id), spec.text: text}
    if spec.subject and subject:
        body[spec.subject] = subject
    return Draft("POST", spec.path, body=body)


def _chosen(name: str, value: Value, choices: Mapping[str, Mapping[str, Any]]) -> Value:
    options = choices.get(name)
    if not options or not isinstance(value, str):
        return value
    sent = options.get(value)
    return value if sent is None else sent


def _id_value(remote_id: str) -> int | str:
    """A vendor's numeric id goes as a JSON number, as its API documents it."""
    return int(remote_id) if remote_id.isdigit() and len(remote_id) < 16 else remote_id


def _nested_copy(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _nested_copy(v) if is_mapping(v) else v for k, v in values.items()}


def located(body: Any, at: Sequence[str]) -> Any:
    """The record in an answer (`data` for Pipedrive), or None."""
    return get_path(body, ".".join(at)) if at else body
