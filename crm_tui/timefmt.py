"""Times: the one format crm-tui stores a moment in, and human times for the screens: "5 min
ago", "in 3 min", and exact local times for focus and detail views."""

from __future__ import annotations

from datetime import UTC, datetime

#: How every moment crm-tui records is written (synced, run, next run, rate limited until):
#: UTC to the second, `2026-11-27T08:30:00Z`, so that stamps sort as text. For `strftime` on
#: a UTC datetime.
UTC_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def parse_utc(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def relative(stamp: str | None, now: datetime | None = None) -> str:
    when = parse_utc(stamp)
    if when is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        text = "just now" if not future else "in a moment"
        return text
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = round(seconds / size)
            label = f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''}"
            return f"in {label}" if future else f"{label} ago"
    return "in 1 min" if future else "1 min ago"  # 45-59 s: a minute, give or take


def exact(stamp: str | None) -> str:
    when = parse_utc(stamp)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if when else "never"
