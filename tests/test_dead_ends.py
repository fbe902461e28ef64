"""No path leaves a frightened adult with 'ask the DSL' when the DSL is the one they cannot
reach: generated over every flow, every answer path and every example school, in school hours
and out of hours (when the DSL is not at work)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

import pytest

from dialogs import contacts
from flows.catalogue import catalogue
from tests.allpaths import Path, every_path
from tests.flowkit import LONDON, all_schools, plain, school, walk

IN_HOURS = datetime(2026, 11, 18, 10, 0, tzinfo=LONDON)  # Wednesday, term time
OUT_OF_HOURS = datetime(2026, 11, 21, 22, 30, tzinfo=LONDON)  # Saturday night
DEAD_END = "ask the dsl"


@cache
def paths(flow_id: str, school_id: str, when: datetime) -> tuple[Path, ...]:
    return tuple(every_path(flow_id, school(school_id), when, keep=("dsl_told_in_person",)))


def _after_dsl_unavailable(path: Path) -> list[tuple[str, str]]:
    """What was shown from the answer 'no, I have not told the DSL in person' onwards."""
    answers = dict(path.answers)
    if answers.get("dsl_told_in_person") is not False and answers.get("dsl_told_in_person") not in (
        "no",
    ):
        return []
    start = next(i for i, (step, _) in enumerate(path.seen) if step == "dsl_told_in_person")
    return list(path.seen[start:])


CASES = [(f, s.id) for f in sorted(catalogue()) for s in all_schools()]


@pytest.mark.parametrize(("flow_id", "school_id"), CASES)
def test_no_path_where_the_dsl_is_unavailable_says_ask_the_dsl(
    flow_id: str, school_id: str
) -> None:
    walked = paths(flow_id, school_id, IN_HOURS)
    assert walked
    unavailable = 0
    for path in walked:
        tail = _after_dsl_unavailable(path)
        unavailable += bool(tail)
        for step, text in tail:
            assert DEAD_END not in text.lower(), (flow_id, school_id, step, text)
    # out of hours the DSL is not at work: nothing on any path may send them back to the DSL
    for path in paths(flow_id, school_id, OUT_OF_HOURS):
        for step, text in path.seen:
            assert DEAD_END not in text.lower(), (flow_id, school_id, step, text)


def test_the_walk_reaches_the_dsl_unavailable_answer_in_every_dsl_flow() -> None:
    """Guards the test above against walking nothing: the common 'not told the DSL' answer is
    reached, and it then names a number that exists for a school without a social care one."""
    for flow_id, flow in sorted(catalogue().items()):
        steps = {s.id for s in flow.definition.steps}
        if "dsl_told_in_person" not in steps:
            continue
        tails = [
            t
            for p in paths(flow_id, "buttsbury-junior", IN_HOURS)
            if (t := _after_dsl_unavailable(p))
        ]
        assert tails, flow_id
        said = " ".join(text for t in tails for _, text in t)
        assert "999" in said and "101" in said and "0808 800 5000" in said, flow_id


@pytest.mark.parametrize("school_id", [s.id for s in all_schools()])
def test_out_of_hours_and_contact_replies_never_say_ask_the_dsl(school_id: str) -> None:
    profile = school(school_id)
    replies = [
        contacts.out_of_hours(profile, OUT_OF_HOURS),
        contacts.directory(profile, OUT_OF_HOURS),
    ]
    for query in ("social care", "out of hours", "lado", "police", "nspcc", "dsl"):
        found = contacts.lookup(profile, query, OUT_OF_HOURS)
        if found:
            replies.append(found)
    for reply in replies:
        text = " ".join([reply.text, *(f"{v.number} {v.purpose}" for v in reply.contacts)])
        assert DEAD_END not in text.lower(), (school_id, reply.title)


def test_a_non_dsl_who_refers_in_hull_is_shown_the_consent_rule() -> None:
    griffin = [
        p for p in paths("disclosure", "griffin-primary", IN_HOURS) if _after_dsl_unavailable(p)
    ]
    said = " ".join(text for p in griffin for _, text in _after_dsl_unavailable(p))
    assert "If you refer yourself: Before making a referral, parents/carers must be told" in said
    assert "immediate danger" in said and "record why" in said
    assert "(01482) 448879" in said and "(01482) 395500" in said  # both areas, labelled
    essex = [
        p for p in paths("disclosure", "buttsbury-junior", IN_HOURS) if _after_dsl_unavailable(p)
    ]
    assert "If you refer yourself" not in " ".join(t for p in essex for _, t in p.seen)


def test_hull_child_on_child_involves_the_head_of_school_and_deputy_and_police() -> None:
    griffin = walk("child_on_child", plain("child_on_child"), profile=school("griffin-primary"))
    decision = griffin.concern.dsl_decision
    assert "Head of School and Deputy" in decision
    assert "criminal act" in decision and "police" in decision
    essex = walk("child_on_child", plain("child_on_child"), profile=school("buttsbury-junior"))
    assert "Head of School" not in essex.concern.dsl_decision
