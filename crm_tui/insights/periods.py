"""Months and weeks around "now", which is always given (tests and snapshots fix it)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta


def today_of(now: date | datetime) -> date:
    """The calendar day `now` falls on, in local time when it carries a zone: a team lead
    in Austin at 7 pm on the 30th still sees the 30th's month."""
    if isinstance(now, datetime):
        return (now.astimezone() if now.tzinfo else now).date()
    return now


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def months_around(now: date | datetime, past: int = 12, ahead: int = 6) -> tuple[str, ...]:
    """`past` months ending with the current one, then `ahead` more: "YYYY-MM" keys, oldest
    first (past=12, ahead=6 in November 2026: 2025-12 .. 2027-05)."""
    today = today_of(now)
    first = today.year * 12 + today.month - 1 - (past - 1)
    return tuple(_month_at(n) for n in range(first, first + past + ahead))


def _month_at(count: int) -> str:
    """The key of month number `count` (year * 12 + month - 1)."""
    year, month = divmod(count, 12)
    return month_key(year, month + 1)


def month_label(key: str) -> str:
    """ "2026-12" as "Dec"; the year is in the chart's title and the table."""
    return calendar.month_abbr[int(key[5:7])]


def week_start(day: date) -> date:
    """The Monday of the (ISO) week holding `day`."""
    return day - timedelta(days=day.weekday())


def weeks_until(now: date | datetime, count: int = 26) -> tuple[date, ...]:
    """The Mondays of the last `count` weeks, the current week last."""
    last = week_start(today_of(now))
    return tuple(last - timedelta(weeks=n) for n in range(count - 1, -1, -1))
