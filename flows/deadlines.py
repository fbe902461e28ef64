"""Deadlines a procedure sets, computed from when the concern was raised - or, for duties that
run from the event itself, from when it happened or was learned of - and the school calendar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flows.calendar import WorkingDays, working_days_for


@dataclass(frozen=True)
class DeadlineRule:
    label: str
    owner: str  # a role: reporter, case_manager, dsl_team
    source: str
    due: Callable[[datetime, WorkingDays, Any], datetime | None]
    # "occurred": counted from when it happened / was learned of (the answer recorded as
    # occurred_at), or the report if that is earlier; "raised": from when the report was raised.
    counts_from: str = "raised"


def _written_record(at: datetime, _: WorkingDays, profile: Any) -> datetime | None:
    hours = profile.rules.written_record_hours
    return at + timedelta(hours=hours) if hours else None


def _written_referral(at: datetime, _: WorkingDays, profile: Any) -> datetime | None:
    hours = profile.rules.written_referral_hours
    return at + timedelta(hours=hours) if hours else None


def _fgm_outer_limit(at: datetime, _days: WorkingDays, profile: Any) -> datetime:
    # School closure days (INSET, holidays) never push the police report later: the duty is
    # the teacher's and the police work every day, so only weekends and bank holidays count.
    police_days = working_days_for(profile, include_closures=False)
    return police_days.end_of_next_working_day(at, profile.school_end)


def _add_one_month(at: datetime) -> datetime:
    month = at.month % 12 + 1
    year = at.year + (at.month == 12)
    day = at.day
    while True:  # 31 Jan -> 28/29 Feb: the last day of the shorter month
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _school_day(at: datetime, days: WorkingDays, profile: Any, day: int | None) -> datetime | None:
    """The end of the `day`-th school day counting the day of `at` as day 1."""
    if not day:
        return None
    first = at.astimezone(days.tz).date()
    if not days.is_working_day(first):
        first = days.next_working_day(first)
    return datetime.combine(days.add_working_days(first, day - 1), profile.school_end, days.tz)


def _missing_police(at: datetime, _: WorkingDays, profile: Any) -> datetime | None:
    minutes = profile.rules.missing_minutes_before_police
    return at + timedelta(minutes=minutes) if minutes else None


DEADLINES: dict[str, DeadlineRule] = {
    "lado_one_working_day": DeadlineRule(
        label="The case manager informs the LADO",
        owner="case_manager",
        source="KCSIE Part four; seed policies section 10",
        # The LADO works on school closure days: only bank holidays and weekends are skipped.
        due=lambda at, _days, profile: working_days_for(
            profile, include_closures=False
        ).within_one_working_day(at),
    ),
    "fgm_police_report": DeadlineRule(
        label=(
            "Teacher reports FGM personally to the police - immediately; this is only the "
            "outer limit (close of the next working day)"
        ),
        owner="reporter",
        source=(
            "Seeds 001 s4 and 003 'FGM' (immediately); Home Office, Mandatory reporting of "
            "FGM: procedural information (outer limit)"
        ),
        due=_fgm_outer_limit,
        counts_from="occurred",
    ),
    "fgm_legal_maximum": DeadlineRule(
        label="Legal maximum for the FGM police report (one month)",
        owner="reporter",
        source="FGM Act 2003 s5B",
        due=lambda at, _days, _profile: _add_one_month(at),
        counts_from="occurred",
    ),
    "written_record": DeadlineRule(
        label="Written account on the school's recording system",
        owner="reporter",
        source="Seed 003 section 7 'Managing a disclosure' (written account within 24 hours)",
        due=_written_record,
        counts_from="occurred",
    ),
    "written_referral": DeadlineRule(
        label="A phone referral to children's social care is followed by a written one",
        owner="dsl_team",
        source="Seed 003 section 8 (written referral within 48 hours of a telephone referral)",
        # counted from the report: the phone referral comes after it, so this is never late
        due=_written_referral,
    ),
    # Only where the school sets a number (no seed does): counted from when last seen.
    "missing_police_threshold": DeadlineRule(
        label="Report to the police if the child is still not found (the school's own time "
        "limit, from when the child was last seen)",
        owner="dsl_team",
        source="School profile rules.missing_minutes_before_police; seed 004 Appendix C",
        due=_missing_police,
        counts_from="occurred",
    ),
    "absence_la_ten_days": DeadlineRule(
        label="Tell the local authority if the child is still absent without permission after "
        "10 school days in a row",
        owner="dsl_team",
        source="Seed 000 and seed 001 'Children missing from education'; DfE Children missing "
        "education (2024)",
        due=lambda at, days, profile: _school_day(at, days, profile, 10),
        counts_from="occurred",
    ),
    "absence_checklist": DeadlineRule(
        label="Complete the local authority's missing pupil checklist if the child is still "
        "absent (the school's policy)",
        owner="dsl_team",
        source="Seed 001 'Children missing from education' (the MECES checklist by day 6)",
        due=lambda at, days, profile: _school_day(
            at, days, profile, profile.rules.absence_checklist_day
        ),
        counts_from="occurred",
    ),
}
