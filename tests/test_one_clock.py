# One clock: whether it is school hours is decided once per turn, and no two messages of one
# report contradict each other about it ("It is outside school hours" then "before the end of
# the school day"). Generated walks through the dialog session over every flow, at the
# boundary times - just before and just after the end of the school day, before it starts, a
# closure day - and a report that runs across the end of the day.
#
# Coverage (tests/sessionwalks.py): every answer of every step, in every flow a switch leads
# to, is taken at least once per time, within a report that began with the menu press - so
# every message a step can say is seen beside the notice its report started with.
from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest

from dialogs.text import reply_text
from tests import sessionwalks
from tests.flowkit import LONDON, school
from tests.sessionwalks import EVERY_ANSWER, FLOWS

SCHOOL = school("buttsbury-junior")  # Monday to Friday, 08:30 to 15:30
MONDAY = date(2026, 11, 23)
# What a message claims about the time of day. A new text that says "school hours" in other
# words belongs here too (the liveness test below keeps both lists matching something).
IN_HOURS = re.compile(r"before the end of the school day|decides today|in school hours now", re.I)
OUT_OF_HOURS = re.compile(r"outside school hours|out of school hours", re.I)


def at(hour: int, minute: int, second: int = 0, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=LONDON)


# (name, school, start, in school hours for the whole walk?) - each answer one second later
TIMES = {
    "just before the end of the day": (SCHOOL, at(15, 29), True),
    "at the end of the day": (SCHOOL, at(15, 30), False),
    "just after the end of the day": (SCHOOL, at(15, 31), False),
    "just before the day starts": (SCHOOL, at(8, 28), False),
    "a closure day": (replace(SCHOOL, closure_days=frozenset({MONDAY})), at(10, 0), False),
    "a bank holiday": (SCHOOL, at(10, 0, day=date(2026, 12, 25)), False),
}


def walks(flow_id: str, profile: Any, start: datetime, covered: set | None = None):
    """Each report's messages as text (cards' text too), turn by turn."""
    for turns in sessionwalks.walks(flow_id, profile, start, covered):
        yield [[reply_text(reply) for reply in said] for said in turns]


def claims(text: str) -> set[str]:
    found = set()
    if IN_HOURS.search(text):
        found.add("in school hours")
    if OUT_OF_HOURS.search(text):
        found.add("outside school hours")
    return found


def contradictions(turns: list[list[str]]) -> list[str]:
    """What one report said that another of its messages contradicts."""
    problems = []
    for number, said in enumerate(turns):
        within = set().union(*map(claims, said)) if said else set()
        if len(within) > 1:
            problems.append(f"turn {number} says both: {said}")
    told = [(n, claim) for n, said in enumerate(turns) for t in said for claim in claims(t)]
    if len({claim for _, claim in told}) > 1:
        problems.append(f"the report says both: {told}")
    return problems


@pytest.mark.parametrize("when", TIMES)
@pytest.mark.parametrize("flow_id", FLOWS)
def test_no_report_contradicts_itself_about_school_hours(flow_id: str, when: str) -> None:
    profile, start, in_hours = TIMES[when]
    assert profile.in_school_hours(start) is in_hours  # the boundary is where we think
    covered: set = set()
    for turns in walks(flow_id, profile, start, covered):
        assert not contradictions(turns), contradictions(turns)
        said = {claim for turn in turns for text in turn for claim in claims(text)}
        # The clock's one decision is what the messages say, never the other way round.
        assert said <= {"in school hours" if in_hours else "outside school hours"}, said
    mine = {answer for answer in EVERY_ANSWER if answer[0] == flow_id}
    assert mine <= covered, f"answers never taken: {sorted(mine - covered)}"


def test_a_report_running_across_the_end_of_the_day_never_goes_back_to_school_hours() -> None:
    """Started at 15:29:45, one answer a second: each turn is consistent, and once told it is
    outside school hours nobody is told 'before the end of the school day'."""
    for flow_id in FLOWS:
        for turns in walks(flow_id, SCHOOL, at(15, 29, 45)):
            per_turn = [set().union(*map(claims, said)) if said else set() for said in turns]
            assert all(len(c) <= 1 for c in per_turn), turns
            first_out = next(
                (n for n, c in enumerate(per_turn) if "outside school hours" in c), None
            )
            if first_out is not None:
                assert not any("in school hours" in c for c in per_turn[first_out:]), turns


def test_the_claims_are_alive_and_the_check_catches_the_old_contradiction() -> None:
    """Both phrase lists match what the flows say, and the check fails on the message pair
    staff met at 15:32 and 15:33 before there was one clock."""
    before, after = {}, {}
    for _label, seen, (profile, start, _) in (
        ("before", before, TIMES["just before the end of the day"]),
        ("after", after, TIMES["just after the end of the day"]),
    ):
        for turns in walks("disclosure", profile, start):
            for said in turns:
                for text in said:
                    for claim in claims(text):
                        seen[claim] = text
    assert "in school hours" in before and "outside school hours" in after
    old = [
        ["== It is outside school hours ==\nIf a child is in immediate danger, phone 999 now."],
        ["The DSL needs this before the end of the school day: this report is marked URGENT."],
    ]
    assert contradictions(old)
    assert contradictions([[*old[0], *old[1]]])
