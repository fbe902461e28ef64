"""Deadlines a procedure sets, computed from when the concern was raised and the school calendar."""

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


def _written_record(at: datetime, _: WorkingDays, profile: Any) -> datetime | None:
    hours = profile.rules.written_record_hours
    return at + timedelta(hours=hours) if hours else None


def _add_one_month(at: datetime) -> datetime:
    month = at.month % 12 + 1
    year = at.year + (at.month == 12)
    day = at.day
    while True:  # 31 Jan -> 28/29 Feb: the last day of the shorter month
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


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
        label="Teacher reports FGM personally to the police (best practice)",
        owner="reporter",
        source="Home Office, Mandatory reporting of FGM: procedural information",
        due=lambda at, days, profile: days.end_of_next_working_day(at, profile.school_end),
    ),
    "fgm_legal_maximum": DeadlineRule(
        label="Legal maximum for the FGM police report",
        owner="reporter",
        source="FGM Act 2003 s5B",
        due=lambda at, _days, _profile: _add_one_month(at),
    ),
    "written_record": DeadlineRule(
        label="Written account on the school's recording system",
        owner="reporter",
        source="Seed 003 (Griffin Primary) recording rule",
        due=_written_record,
    ),
    "missing_police_threshold": DeadlineRule(
        label="Report to the police if the child is still not found",
        owner="dsl_team",
        source="Seed 004 Appendix C (Essex missing children protocol); school profile",
        due=lambda at, _days, profile: (
            at + timedelta(minutes=profile.rules.missing_minutes_before_police)
        ),
    ),
}
