"""The demo's calendar: where its generated dates sit.

By default (`FIXED`) every generator dates its records in a fixed window from 2024-01-01,
so tests, benchmarks and snapshots see the same records on every run. A demo a person looks
at (`crm-tui --demo`) is dated to the day it runs (`DemoClock.until(today)`): every date
moves the same whole number of days, so creations run up to the day before yesterday, and a
later date of a record (a change, an offer, a closing that happened) that would land after
yesterday is pulled back to yesterday, in its order. Only projected or expected closings may
lie ahead. Nothing here is global: the clock is handed to each simulator and generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from crm_tui.demo.changes import BASE_HORIZON

DAY = 86_400
#: The fixed window's first day: every generated date lies on or after it.
EPOCH_DAY = date(2024, 1, 1)
#: Generated creations lie within this many days after the epoch (plus a time of day).
CREATION_DAYS = 900


@dataclass(frozen=True, slots=True)
class DemoClock:
    shift: int = 0  # whole days every generated date moves
    last: date | None = None  # no date but a projected closing after this day, when set

    @classmethod
    def until(cls, today: date) -> DemoClock:
        """The dates of a demo that runs on `today`: nothing after yesterday (bar projected
        closings), the newest creations the day before."""
        last = today - timedelta(days=1)
        newest_created = EPOCH_DAY + timedelta(days=CREATION_DAYS)
        return cls((last - timedelta(days=1) - newest_created).days, last)

    @classmethod
    def today(cls) -> DemoClock:
        """`until` the day it is now (UTC, as the app's Pipeline counts)."""
        return cls.until(datetime.now(UTC).date())

    @property
    def seconds(self) -> int:
        return self.shift * DAY

    @property
    def horizon(self) -> int:
        """Every generated record's times lie before this moment (epoch seconds)."""
        moved = BASE_HORIZON + self.seconds
        if self.last is None:
            return moved
        return min(moved, int(_midnight(self.last + timedelta(days=1)).timestamp()))

    def day(self, when: date) -> date:
        """A creation or a projected date: moved only."""
        return when + timedelta(days=self.shift)

    def past_day(self, when: date) -> date:
        """A date that has happened: moved, then pulled back whole days to the last one."""
        return self.happened(self.day(when))

    def happened(self, moved: date) -> date:
        """A date already moved that has happened: the last day at the latest."""
        return moved if self.last is None else min(moved, self.last)

    def moment(self, when: datetime) -> datetime:
        return when + timedelta(days=self.shift)

    def past(self, when: datetime) -> datetime:
        """A moment that has happened: moved, then `settled`."""
        return self.settled(self.moment(when))

    def settled(self, moved: datetime) -> datetime:
        """A moved moment, the last day at the latest. Moments from the last day's start on
        are squeezed into that day by one increasing function, so two moments keep their
        order (a stage change stays before the update after it)."""
        if self.last is None:
            return moved
        start = _midnight(self.last)
        if moved < start:
            return moved
        beyond = (moved - start).total_seconds()
        return start + timedelta(seconds=DAY * beyond / (beyond + DAY))

    def past_seconds(self, when: int) -> int:
        """`past` of epoch seconds."""
        return int(self.past(datetime.fromtimestamp(when, UTC)).timestamp())


FIXED = DemoClock()


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
