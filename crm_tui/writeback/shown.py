"""Outbox entries as a person reads them: the line a record shows while its edit is open, the
notices after a send, Status's count, the three versions of a conflict, an audit row.

Plain strings, no Textual: the screens render them as Text objects (never markup), since
every value here came from a person or a vendor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crm_tui.config import DISPLAY_NAMES
from crm_tui.formats import field_label
from crm_tui.store.outbox import OutboxEntry, State
from crm_tui.text import single_line
from crm_tui.timefmt import exact, parse_utc
from crm_tui.writeback.values import same

#: What a write is called beside a sync run (the Audit screen's "What" column).
KIND_OF_ACTION = {"update": "edit", "note": "note", "create": "lead"}
Tone = Literal["pending", "failed", "conflict"]
Severity = Literal["information", "warning", "error"]
Notice = tuple[str, Severity]
#: A field's value cut to this many characters in a one-line summary.
VALUE_WIDTH = 40
#: Before the name of a record in a list while an edit of it waits to be sent.
PENDING_MARK = "✎ "
#: Open states that the drain sends (a "sending" one of a dead process is recovered first).
WAITING: tuple[State, ...] = ("pending", "sending", "unsure")


def vendor(source: str) -> str:
    return DISPLAY_NAMES.get(source, source)


def shown_value(value: Any, limit: int = VALUE_WIDTH) -> str:
    """A field's value on one line: tags joined, nothing as "(empty)", long text cut."""
    if value in (None, "", []):
        return "(empty)"
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = single_line(text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(field: str) -> str:
    return field_label(field).lower()


def changes(entry: OutboxEntry, limit: int = VALUE_WIDTH) -> str:
    """What an entry sets: "stage → Active Client, tags → buyer, seller", or a note's text."""
    if entry.action == "note":
        return f"note: {shown_value(entry.wanted.get('note'), limit)}"
    return ", ".join(f"{_name(n)} → {shown_value(v, limit)}" for n, v in entry.wanted.items())


def before_after(entry: OutboxEntry, limit: int = VALUE_WIDTH) -> str:
    """The audit's one-line record of a change: "stage Lead → Active Client"."""
    if entry.action != "update":
        return changes(entry, limit)
    return ", ".join(
        f"{_name(n)} {shown_value(entry.base.get(n), limit)} → {shown_value(v, limit)}"
        for n, v in entry.wanted.items()
    )


# -- on the record ------------------------------------------------------------------------------


def record_mark(entry: OutboxEntry) -> tuple[str, Tone]:
    """The line a record shows while an edit of it is open, and its tone."""
    where = vendor(entry.source)
    what = changes(entry)
    if entry.state == "failed":
        reason = entry.error or f"{where} refused it"
        return f"Failed: {reason} ({what}): retry or drop it from Status (o)", "failed"
    if entry.state == "conflict":
        return f"Conflict: changed at {where} — press c to resolve ({what})", "conflict"
    waiting = {
        "sending": "sending now",
        "unsure": "sent, not confirmed yet: checked before it is sent again",
    }.get(entry.state, "waiting to send")
    if entry.state == "pending" and entry.error:
        waiting = f"waiting to send: {entry.error}"
    return f"Pending: {what} ({waiting})", "pending"


# -- after a send ---------------------------------------------------------------------------


def drain_notice(entry: OutboxEntry) -> Notice | None:
    """What to tell the person once an entry was sent or stopped; None for one that simply
    waits for the next run."""
    where, kind = vendor(entry.source), KIND_OF_ACTION[entry.action]
    if entry.state == "done":
        return _sent_notice([entry])
    if entry.state == "failed":
        return f"{where} refused the {kind}: {entry.error or 'no reason given'}", "error"
    if entry.state == "conflict":
        return f"Changed at {where} meanwhile: resolve it (c on the record, o on Status)", "warning"
    if entry.state == "unsure":
        return f"{where} may not have the {kind}: it is looked for before sending again", "warning"
    if entry.error:
        return f"{where} cannot be reached: the {kind} waits ({entry.error})", "warning"
    return None


def drain_notices(entries: Iterable[OutboxEntry], *, quiet: bool = False) -> list[Notice]:
    """One notice per entry, but one per source for many sent at once (after the network
    came back) and one per source that could not be reached. `quiet` (a drain nobody asked
    for): nothing about edits that simply still wait."""
    notices: list[Notice] = []
    sent: dict[str, list[OutboxEntry]] = {}
    unreachable: set[str] = set()
    for entry in entries:
        if entry.state == "done":
            sent.setdefault(entry.source, []).append(entry)
            continue
        if entry.state == "pending":
            if quiet or entry.source in unreachable:
                continue
            unreachable.add(entry.source)
        notice = drain_notice(entry)
        if notice is not None:
            notices.append(notice)
    told: list[Notice] = [_sent_notice(done) for done in sent.values()]
    return [*told, *notices]


def _sent_notice(done: list[OutboxEntry]) -> Notice:
    if len(done) == 1:
        return f"Sent to {vendor(done[0].source)}: {changes(done[0], 30)}", "information"
    return f"Sent {len(done)} changes to {vendor(done[0].source)}", "information"


def open_line(counts: Mapping[str, int]) -> str:
    """Status's line about the outbox ("" when nothing is open)."""
    parts = []
    waiting = sum(counts.get(s, 0) for s in WAITING)
    if waiting:
        parts.append(f"{waiting} waiting to send")
    if counts.get("failed"):
        parts.append(f"{counts['failed']} refused")
    if counts.get("conflict"):
        parts.append(f"{counts['conflict']} changed at the CRM meanwhile (to resolve)")
    return f"Outbox: {', '.join(parts)} · o opens it" if parts else ""


def anything_waits(counts: Mapping[str, int]) -> bool:
    return any(counts.get(s, 0) for s in WAITING)


# -- a conflict ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Versions:
    """One field of a conflict: what the person saw, what the vendor has now, what they
    want; `changed`: the vendor changed it since they saw it."""

    field: str
    label: str
    saw: str
    theirs: str
    mine: str
    changed: bool


def three_versions(entry: OutboxEntry) -> list[Versions]:
    theirs = entry.theirs or {}
    rows = []
    for name, wanted in entry.wanted.items():
        base, now = entry.base.get(name), theirs.get(name)
        rows.append(
            Versions(
                name,
                field_label(name),
                shown_value(base, 200),
                shown_value(now, 200),
                shown_value(wanted, 200),
                not same(name, base, now),
            )
        )
    return rows


# -- the audit ----------------------------------------------------------------------------------


def _took(entry: OutboxEntry) -> str:
    start, end = parse_utc(entry.created_at), parse_utc(entry.done_at)
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.0f} s"


def write_row(entry: OutboxEntry, label: str) -> dict[str, str]:
    """A write in the Audit's columns: the same as a sync run's where they mean the same."""
    outcome = entry.error or entry.answer or ""
    details = f"{label}: {before_after(entry, 24)}"
    return {
        "Started": exact(entry.created_at),
        "What": KIND_OF_ACTION[entry.action],
        "Source": vendor(entry.source),
        "Stream": entry.stream,
        "Outcome": entry.state,
        "Took": _took(entry),
        "Read": "",
        "Written": "",
        "Quarantined": "",
        "Duplicates": "",
        "Retries": str(max(entry.attempts - 1, 0)),
        "Details": f"{details} · by {entry.author}" + (f" · {outcome}" if outcome else ""),
    }


def write_details(entry: OutboxEntry, label: str) -> list[str]:
    """Everything about one write, line by line (the Audit's and the Outbox's detail)."""
    where, kind = vendor(entry.source), KIND_OF_ACTION[entry.action]
    lines = [
        f"{kind.capitalize()} {entry.id} of {label} in {where}: {entry.state}",
        f"By {entry.author} · saved {exact(entry.created_at)} · tries {entry.attempts}",
    ]
    if entry.sent_at:
        lines.append(f"Sent {exact(entry.sent_at)}")
    if entry.done_at:
        lines.append(f"Done {exact(entry.done_at)}")
    for name, wanted in entry.wanted.items():
        before = shown_value(entry.base.get(name), 200) if entry.action == "update" else ""
        line = f"  {field_label(name)}: " + (f"{before} → " if before else "")
        line += shown_value(wanted, 200)
        if entry.theirs is not None and name in entry.theirs:
            line += f"   (now at {where}: {shown_value(entry.theirs[name], 200)})"
        lines.append(line)
    if entry.answer:
        lines.append(f"{where} answered: {single_line(entry.answer)}")
    if entry.error:
        lines.append(f"Error: {single_line(entry.error)}")
    return lines


def by_time(
    runs: Sequence[dict[str, Any]], writes: Sequence[OutboxEntry]
) -> list[dict[str, Any] | OutboxEntry]:
    """Sync runs and writes in one list, newest first (both keep UTC ISO stamps, which
    sort as text). Stamps are to the second: in the same second a write goes first, as one
    made during a sync usually is saved after the sync started."""

    def when(item: dict[str, Any] | OutboxEntry) -> tuple[str, bool]:
        if isinstance(item, OutboxEntry):
            return item.created_at, True
        return item.get("started_at") or "", False

    return sorted([*runs, *writes], key=when, reverse=True)


Decision = Literal["retry", "drop", "settle"]


def decision_notice(entry: OutboxEntry | None, decision: Decision) -> Notice:
    """What a person's retry, drop or resolution did."""
    if entry is None:
        return "That change is being sent or is finished already: nothing to decide", "warning"
    where, kind = vendor(entry.source), KIND_OF_ACTION[entry.action]
    if entry.state == "dropped" and decision == "settle":
        return f"Kept {where}'s values: the {kind} is dropped", "information"
    if entry.state == "dropped":
        text = f"Dropped the {kind}: {where} keeps what it has"
        if entry.action == "update":
            text += "; the record shows its values again"
        return text, "information"
    if decision == "settle":
        return f"Sending your values to {where}…", "information"
    return f"Sending the {kind} to {where} again…", "information"


def record_label(record: Any, entry: OutboxEntry) -> str:
    """The record an entry is about, by name when the cache has it."""
    name = getattr(record, "name", None) if record is not None else None
    return single_line(name) if name else (entry.record_id or "a new lead")
