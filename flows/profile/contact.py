"""A contact in a school's directory: its number(s), its opening hours, and how those hours
are phrased to staff."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Hours:
    always: bool
    days: frozenset[int]  # 0 = Monday
    start: time | None
    end: time | None
    tz: ZoneInfo = field(default=ZoneInfo("Europe/London"))
    known: bool = True  # False: the source policy gives no hours
    # Further (days, start, end) spans when the hours differ by day (NSPCC: weekends shorter).
    more: tuple[tuple[frozenset[int], time, time], ...] = ()
    # What the policy says when it gives no clock times ("out of office hours only").
    label: str | None = None

    def spans(self) -> tuple[tuple[frozenset[int], time, time], ...]:
        if self.start is None or self.end is None:
            return self.more
        return ((self.days, self.start, self.end), *self.more)

    def is_open(self, at: datetime) -> bool:
        """Unknown hours count as open: the bot must never tell staff not to try a number."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("datetime must be timezone-aware")
        if self.always or not self.known:
            return True
        local = at.astimezone(self.tz)
        clock = local.time().replace(tzinfo=None)
        return any(
            local.weekday() in days and start <= clock < end for days, start, end in self.spans()
        )


@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    number: str | None
    email: str | None
    hours: Hours
    out_of_hours: bool
    purpose: str
    keywords: tuple[str, ...]
    last_verified: date
    source: str
    quote: str | None = None  # the seed policy's line the number is copied from, verbatim
    email_warning: str | None = None  # shown with the e-mail address: it may not work
    area: str | None = None  # the local authority a local number serves (Hull, East Riding)
    role: str | None = None  # the same service as this contact id, for another area

    def is_open(self, at: datetime) -> bool:
        return self.hours.is_open(at)

    def tel_uri(self) -> str | None:
        """'tel:' link for the first number written ('(01482) 396998 or ...' -> tel:01482396998)."""
        if not self.number:
            return None
        first = re.split(r"/| or ", self.number)[0]
        digits = re.sub(r"[^0-9]", "", first)
        plus = "+" if first.strip().startswith("+") else ""
        return f"tel:{plus}{digits}"


def _hours_phrase(contact: Contact) -> str:
    hours = contact.hours
    if hours.always:
        return "24 hours"
    if hours.label:
        return hours.label
    if not hours.known:
        return "hours not given"
    parts = []
    for days, start, end in hours.spans():
        ordered = sorted(days)
        names = [DAY_NAMES[d].capitalize() for d in ordered]
        span = (
            f"{names[0]}-{names[-1]}"
            if len(names) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1))
            else ", ".join(names)
        )
        parts.append(f"{span} {start:%H:%M}-{end:%H:%M}")
    return "; ".join(parts)


hours_phrase = _hours_phrase
