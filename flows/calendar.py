"""Working days for safeguarding deadlines: weekdays that are not bank holidays or closure days."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays

if TYPE_CHECKING:  # profile imports this module; only the type is needed here
    from flows.profile import SchoolProfile

LONDON = ZoneInfo("Europe/London")


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (pass the time in from the edge)")


class WorkingDays:
    """Monday to Friday, minus England and Wales bank holidays and the school's closure days."""

    def __init__(
        self,
        closure_days: Iterable[date] = (),
        subdiv: str = "ENG",
        tz: ZoneInfo = LONDON,
    ) -> None:
        self._closures = frozenset(closure_days)
        self._bank_holidays = holidays.country_holidays("GB", subdiv=subdiv)
        self.tz = tz

    def is_bank_holiday(self, d: date) -> bool:
        return d in self._bank_holidays

    def is_working_day(self, d: date) -> bool:
        return d.weekday() < 5 and not self.is_bank_holiday(d) and d not in self._closures

    def next_working_day(self, d: date) -> date:
        nxt = d + timedelta(days=1)
        while not self.is_working_day(nxt):
            nxt += timedelta(days=1)
        return nxt

    def previous_working_day(self, d: date) -> date:
        prev = d - timedelta(days=1)
        while not self.is_working_day(prev):
            prev -= timedelta(days=1)
        return prev

    def add_working_days(self, d: date, n: int) -> date:
        """n working days after d (n < 0 counts back); n == 0 returns d unchanged."""
        step = self.next_working_day if n >= 0 else self.previous_working_day
        for _ in range(abs(n)):
            d = step(d)
        return d

    def end_of_next_working_day(self, at: datetime, close: time) -> datetime:
        """'By the close of the next working day' after `at`, in the school's timezone."""
        _require_aware(at)
        local = at.astimezone(self.tz)
        return datetime.combine(self.next_working_day(local.date()), close, tzinfo=self.tz)

    def within_one_working_day(self, at: datetime) -> datetime:
        """Same clock time on the next working day (Fri 16:30, bank holiday Mon -> Tue 16:30)."""
        _require_aware(at)
        local = at.astimezone(self.tz)
        nxt = self.next_working_day(local.date())
        return datetime.combine(nxt, local.time().replace(tzinfo=None), tzinfo=self.tz)


def working_days_for(profile: SchoolProfile, *, include_closures: bool = True) -> WorkingDays:
    """The school's working days. include_closures=False gives the local authority's working
    days (the LADO works on INSET days), which is the shorter, safer deadline for LADO contact."""
    closures = profile.closure_days if include_closures else ()
    return _working_days(frozenset(closures), profile.timezone)


@functools.lru_cache(maxsize=64)
def _working_days(closures: frozenset[date], tz: ZoneInfo) -> WorkingDays:
    # The bank-holiday calendar is built once per school, not on every turn.
    return WorkingDays(closures, tz=tz)
