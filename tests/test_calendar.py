"""Working days: bank holidays, closure days and the 'one working day' deadlines."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from flows.calendar import WorkingDays, working_days_for
from flows.profile import example_profiles_dir, load_organisation

LONDON = ZoneInfo("Europe/London")


def test_friday_before_late_august_bank_holiday_rolls_to_tuesday() -> None:
    days = WorkingDays()
    raised = datetime(2025, 8, 22, 16, 30, tzinfo=LONDON)  # Friday; Monday 25th is a bank holiday
    assert days.within_one_working_day(raised) == datetime(2025, 8, 26, 16, 30, tzinfo=LONDON)
    assert days.end_of_next_working_day(raised, time(17, 0)) == datetime(
        2025, 8, 26, 17, 0, tzinfo=LONDON
    )
    assert not days.is_working_day(date(2025, 8, 25))


def test_weekday_morning_deadline_is_the_next_day() -> None:
    days = WorkingDays()
    raised = datetime(2025, 6, 3, 9, 15, tzinfo=LONDON)  # Tuesday
    assert days.within_one_working_day(raised) == datetime(2025, 6, 4, 9, 15, tzinfo=LONDON)
    assert days.end_of_next_working_day(raised, time(17, 0)) == datetime(
        2025, 6, 4, 17, 0, tzinfo=LONDON
    )


def test_utc_input_is_read_in_london_time() -> None:
    # 23:30 UTC on Thursday 5 June is 00:30 Friday in London, so the next working day is Monday
    raised = datetime(2025, 6, 5, 23, 30, tzinfo=ZoneInfo("UTC"))
    assert WorkingDays().within_one_working_day(raised) == datetime(
        2025, 6, 9, 0, 30, tzinfo=LONDON
    )


def test_christmas_and_closure_days_are_skipped() -> None:
    days = WorkingDays(closure_days=[date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31)])
    # Wed 24 Dec -> 25, 26 bank holidays, weekend, 29-31 closed, 1 Jan bank holiday -> Fri 2 Jan
    assert days.next_working_day(date(2025, 12, 24)) == date(2026, 1, 2)
    assert WorkingDays().next_working_day(date(2025, 12, 24)) == date(2025, 12, 29)
    assert days.add_working_days(date(2025, 12, 23), 2) == date(2026, 1, 2)
    assert days.add_working_days(date(2026, 1, 2), -1) == date(2025, 12, 24)
    assert days.add_working_days(date(2025, 12, 27), 0) == date(2025, 12, 27)


def test_weekends_are_not_working_days() -> None:
    days = WorkingDays()
    assert not days.is_working_day(date(2025, 6, 7))
    assert not days.is_working_day(date(2025, 6, 8))
    assert days.is_working_day(date(2025, 6, 9))
    assert days.next_working_day(date(2025, 6, 6)) == date(2025, 6, 9)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkingDays().within_one_working_day(datetime(2025, 6, 3, 9, 0))


def test_working_days_for_a_profile_uses_its_closure_days() -> None:
    school = load_organisation(example_profiles_dir() / "griffin-primary.yaml").school()
    school = type(school)(**{**school.__dict__, "closure_days": frozenset({date(2025, 6, 4)})})
    assert not working_days_for(school).is_working_day(date(2025, 6, 4))
    # the local authority (LADO) still works on a school closure day
    assert working_days_for(school, include_closures=False).is_working_day(date(2025, 6, 4))


def test_in_school_hours_on_a_shipped_profile() -> None:
    school = load_organisation(example_profiles_dir() / "griffin-primary.yaml").school()
    assert school.in_school_hours(datetime(2025, 6, 3, 10, 0, tzinfo=LONDON))
    assert not school.in_school_hours(datetime(2025, 6, 3, 7, 0, tzinfo=LONDON))
    assert not school.in_school_hours(datetime(2025, 6, 3, 18, 0, tzinfo=LONDON))
    assert not school.in_school_hours(datetime(2025, 6, 8, 10, 0, tzinfo=LONDON))  # Sunday
    assert not school.in_school_hours(datetime(2025, 12, 25, 10, 0, tzinfo=LONDON))
