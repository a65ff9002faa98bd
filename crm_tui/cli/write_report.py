"""How a write ended, told: one line of what became of it and what happens next, the
conflict's three versions, a dry run's request; exit 4 (refused) or 6 (conflict) when a
person must act."""

from __future__ import annotations

import json
from typing import Any

from crm_tui.cli.command import Reply
from crm_tui.cli.errors import EXIT_CONFLICT, EXIT_REMOTE
from crm_tui.cli.marks import record_marks
from crm_tui.cli.output import say, table
from crm_tui.cli.runtime import Runtime
from crm_tui.cli.written import Written
from crm_tui.config import DISPLAY_NAMES
from crm_tui.store.outbox import OutboxEntry
from crm_tui.text import single_line
from crm_tui.writeback.shown import shown_value

#: The states a person must act on, and the exit code each ends a command with.
_EXITS = {"failed": EXIT_REMOTE, "conflict": EXIT_CONFLICT}
_NEXT_RUN = "it goes out on the next crm-tui sync or crm-tui outbox send, or from the open app"


def display_name(source: str) -> str:
    return DISPLAY_NAMES.get(source, source)


def _message(outcome: Written) -> str:
    """One line: what became of the write, and what happens next."""
    entry = outcome.entry
    assert entry is not None
    vendor, error = display_name(entry.source), entry.error or ""
    # an entry the send did not reach waits for the reason an earlier one stopped it
    reasons = (e.error for e in outcome.finished if e.state in ("pending", "unsure") and e.error)
    error = error or next(reasons, "")
    if entry.state == "pending":
        if outcome.blocker is not None:
            b = outcome.blocker
            return (
                f"saved; waits behind outbox {b.id} ({b.state}) of the same record:"
                f" settle, retry or drop that first (crm-tui outbox)"
            )
        if outcome.queued or not error:
            return f"saved; {_NEXT_RUN}"
        return f"saved; {vendor} could not be reached ({error}); {_NEXT_RUN}"
    return {
        "done": f"{vendor} has it" + (f" ({entry.answer})" if entry.answer else ""),
        "unsure": f"sent, but the answer was lost ({error}); {vendor} is read back before"
        " it is sent again, on the next run",
        "failed": f"{vendor} refused it: {error}",
        "conflict": f"changed at {vendor} since it was read; nothing was sent",
        "dropped": _dropped(outcome),
        "sending": "another process is sending it now",
    }[entry.state]


def _dropped(outcome: Written) -> str:
    entry = outcome.entry
    assert entry is not None
    if entry.action != "update":
        return "dropped; it is not sent"
    if outcome.pending:
        return "dropped; the record still shows the values of other waiting edits"
    return f"dropped; the record shows {display_name(entry.source)}'s values again"


def _hint(entry: OutboxEntry) -> str:
    if entry.state == "conflict":
        return (
            f"settle it: crm-tui outbox settle {entry.id} --mine FIELD (send yours) or"
            f" --theirs FIELD (keep the vendor's), or crm-tui outbox drop {entry.id}"
        )
    return f"fix the cause, then crm-tui outbox retry {entry.id}; or crm-tui outbox drop {entry.id}"


def _versions(entry: OutboxEntry) -> list[dict[str, Any]]:
    """A conflict's three versions, field by field: what the person saw, what the vendor has
    now, what the person wants; `conflict` marks the fields changed at the vendor."""
    from crm_tui.writeback.values import conflicts

    theirs = entry.theirs or {}
    changed = set(conflicts(entry.base, entry.wanted, theirs))
    return [
        {
            "field": name,
            "before": entry.base.get(name),
            "theirs": theirs.get(name),
            "mine": mine,
            "conflict": name in changed,
        }
        for name, mine in entry.wanted.items()
    ]


def target(entry: OutboxEntry) -> str:
    return entry.record_id or f"new lead at {display_name(entry.source)}"


def _entry_payload(rt: Runtime, outcome: Written) -> dict[str, Any]:
    entry = outcome.entry
    assert entry is not None
    payload: dict[str, Any] = {
        "success": entry.state not in _EXITS,
        "state": entry.state,
        "message": _message(outcome),
        "entry": entry.to_json(),
        "outbox": [e.to_json() for e in outcome.finished],
    }
    if outcome.record is not None:
        payload["record"] = record_marks(rt.unloaded_store).json(outcome.record.to_json())
    if outcome.blocker is not None:
        payload["blocked_by"] = outcome.blocker.id
    if entry.state == "conflict":
        payload["conflict"] = _versions(entry)
    if entry.state in _EXITS:
        payload["error"] = "Conflict" if entry.state == "conflict" else "Refused by the vendor"
        payload["details"] = single_line(f"{payload['message']}; {_hint(entry)}")
    return payload


def _version_row(version: dict[str, Any]) -> tuple[str, ...]:
    shown = (shown_value(version[k], 10_000) for k in ("before", "theirs", "mine"))
    return (version["field"], *shown, "changed at the vendor" if version["conflict"] else "")


def _print_entry(rt: Runtime, outcome: Written, payload: dict[str, Any]) -> None:
    entry = outcome.entry
    assert entry is not None
    say(rt, f"{target(entry)}: {entry.state} (outbox {entry.id}): {payload['message']}")
    if entry.state == "conflict":
        rows = [_version_row(v) for v in payload["conflict"]]
        table(rows, ("FIELD", "BEFORE", "THEIRS", "MINE", ""))
    if entry.state in _EXITS:
        say(rt, f"error: {payload['error']}: {_hint(entry)}", err=True)


def report(rt: Runtime, outcome: Written) -> Reply:
    """How the write ended; exit 4 (refused) or 6 (conflict) when a person must act."""
    if outcome.preview is not None:
        return _preview(rt, outcome)
    if outcome.entry is None:
        return _unchanged(rt, outcome)
    payload = _entry_payload(rt, outcome)
    code = _EXITS.get(outcome.entry.state, 0)
    return Reply(payload, lambda: _print_entry(rt, outcome, payload), code)


def _unchanged(rt: Runtime, outcome: Written) -> Reply:
    """An edit that changes nothing: no entry, exit 0 (the record is as wanted)."""
    record = outcome.record
    assert record is not None
    payload = {
        "success": True,
        "state": "unchanged",
        "message": outcome.unchanged,
        "entry": None,
        "outbox": [],
        "record": record_marks(rt.unloaded_store).json(record.to_json()),
    }
    return Reply(payload, lambda: say(rt, f"{record.id}: {outcome.unchanged}"))


def _preview(rt: Runtime, outcome: Written) -> Reply:
    """A dry run: the request as it would leave, header values masked, nothing saved."""
    assert outcome.preview is not None
    request = outcome.preview.to_json()
    payload: dict[str, Any] = {"success": True, "dryRun": True, "request": request}
    if outcome.record is not None:
        payload["record"] = outcome.record.to_json()

    def human() -> None:
        import httpx

        url = httpx.URL(request["url"], params=request["params"] or None)
        say(rt, "dry run: nothing saved, nothing sent")
        say(rt, f"{request['method']} {url}")
        for name, value in request["headers"].items():
            say(rt, f"{name}: {value}")
        say(rt, "")
        for line in json.dumps(request["body"], indent=2, ensure_ascii=False).splitlines():
            say(rt, line)

    # masked as the human lines are: a dry run must never show a secret
    return Reply(payload, human, masked=True)
