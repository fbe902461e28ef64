"""Scripted walks through every shipped flow: flags, routing, deadlines, switches, save/resume
and the child's words kept verbatim. Every walk saves and reloads its state between turns."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from flows.catalogue import catalogue, compile_all, load_definitions
from flows.concern import Concern
from flows.profile import SchoolProfile
from tests.flowkit import (
    LONDON,
    NOW,
    PLAIN,
    TICK,
    Walk,
    context,
    json_round_trip,
    plain,
    school,
    straight_walk,
    walk,
)

FLOW_IDS = sorted(PLAIN)
HERA = "kings-road-primary"  # a HERA trust school: fgm_police_before_dsl is true


def with_emergency_number(profile: SchoolProfile, number: str) -> SchoolProfile:
    """The same school with a different emergency number, to prove where 999 comes from."""
    contacts = tuple(
        dataclasses.replace(c, number=number) if c.id == "emergency" else c
        for c in profile.contacts
    )
    return dataclasses.replace(profile, contacts=contacts)


def deadline(concern: Concern, deadline_id: str) -> datetime:
    (found,) = [d for d in concern.deadlines if d.id == deadline_id]
    return datetime.fromisoformat(found.due_at).astimezone(LONDON)


def deadline_ids(concern: Concern) -> set[str]:
    return {d.id for d in concern.deadlines}


def actions(concern: Concern) -> dict[str, str]:
    return {a.label: a.value for a in concern.actions_taken}


def test_every_plain_walk_finishes() -> None:
    for flow_id in FLOW_IDS:
        w = walk(flow_id, plain(flow_id))
        assert w.step == "done", flow_id
        assert w.concern is not None and w.concern.status == "final"
        assert w.outcomes[-1].finished


# -- immediate danger comes first, everywhere ------------------------------------------------


@pytest.mark.parametrize("flow_id", FLOW_IDS)
def test_immediate_danger_is_asked_first_and_yes_says_phone_first(flow_id: str) -> None:
    profile = with_emergency_number(school(), "112")
    w = walk(flow_id, plain(flow_id, immediate_danger="yes"), profile=profile)
    # A missing child's alert goes on the first answer (which child); 999 is asked next.
    first = 1 if flow_id == "missing_child" else 0
    assert w.asked[first] == "immediate_danger"
    outcome = w.outcomes[first]
    assert any("112" in text for text in outcome.say), outcome.say
    assert not any("999" in text for text in outcome.say)
    # the instruction to phone is shown before the next question
    say_at = w.transcript.index(("say", "immediate_danger", outcome.say[0]))
    next_prompt_at = next(
        i for i, (kind, step, _) in enumerate(w.transcript) if kind == "prompt" and i > say_at - 1
    )
    assert say_at < next_prompt_at
    assert w.asked[first + 1] == "emergency_called"
    assert {"URGENT", "CALL-999"} <= set(w.concern.flags)
    assert w.concern.priority == "urgent"
    assert "Emergency services called at" in actions(w.concern)


@pytest.mark.parametrize("flow_id", FLOW_IDS)
def test_no_immediate_danger_is_not_urgent(flow_id: str) -> None:
    w = walk(flow_id, plain(flow_id))
    assert "emergency_called" not in w.asked
    assert not {"URGENT", "CALL-999"} & set(w.concern.flags)
    assert w.outcomes[w.asked.index("immediate_danger")].say == []


# -- nudes -----------------------------------------------------------------------------------


def test_nudes_hard_rules_come_before_the_first_question_only() -> None:
    w = walk("nudes", plain("nudes"))
    first = w.prompts[0]
    assert first.step_id == "immediate_danger"
    rules = " ".join(first.rules).lower()
    for words in ("never view", "share", "delete"):
        assert words in rules
    assert all(p.rules == () for p in w.prompts[1:])


@pytest.mark.parametrize(
    ("step", "extra_flags"),
    [
        ("under_13", {"UNDER-13"}),
        ("adult_involved", {"ADULT-INVOLVED"}),
        ("coercion", set()),
        ("consent_concern", set()),
    ],
)
def test_nudes_red_flags_mean_police_now(step: str, extra_flags: set[str]) -> None:
    w = walk("nudes", plain("nudes", **{step: "yes"}))
    assert w.step == "done"
    assert {"POLICE-NOW", *extra_flags} <= set(w.concern.flags)
    assert "URGENT" not in w.concern.flags


def test_nudes_without_red_flags_is_not_police_now() -> None:
    w = walk("nudes", plain("nudes", under_13="not_known", coercion="not_known"))
    assert "POLICE-NOW" not in w.concern.flags
    assert "IMAGE-SEEN" not in w.concern.flags


@pytest.mark.parametrize(
    "answers",
    [{"how_known": "seen_by_accident"}, {"anyone_viewed": "yes"}],
    ids=["saw-it-by-accident", "staff-viewed"],
)
def test_nudes_image_seen(answers: dict[str, str]) -> None:
    w = walk("nudes", plain("nudes", **answers))
    assert "IMAGE-SEEN" in w.concern.flags
    if "how_known" in answers:
        assert "DSL" in " ".join(w.outcome_of("how_known").say)


# -- FGM -------------------------------------------------------------------------------------


def fgm(**overrides: Any) -> dict[str, Any]:
    return plain("fgm", **overrides)


def test_fgm_teacher_told_by_girl_has_the_personal_duty() -> None:
    w = walk("fgm", fgm())
    c = w.concern
    assert "PERSONAL-DUTY" in c.flags
    assert "personal_duty" in w.asked and "dsl_route" not in w.asked
    assert {"police_called", "police_called_at", "police_reference"} <= set(w.asked)
    assert c.police_reference == "ESX-2026-4711"
    done = actions(c)
    assert done["Police phoned (mandatory duty)"] == "Yes"
    assert done["Police phoned at"] == "Wed 18 Nov 2026 09:40"
    assert c.routing.route == "dsl_team"
    # outer limit: the close of the next working day (Thursday, at the end of school); both
    # count from when she told the teacher (09:15), not from when the report was sent
    assert deadline(c, "fgm_police_report") == datetime(2026, 11, 19, 15, 30, tzinfo=LONDON)
    assert deadline(c, "fgm_legal_maximum") == datetime(2026, 12, 18, 9, 15, tzinfo=LONDON)
    assert next(d for d in c.deadlines if d.id == "fgm_police_report").owner == "reporter"


def test_fgm_police_report_deadline_skips_the_weekend() -> None:
    friday = datetime(2026, 11, 20, 11, 0, tzinfo=LONDON)
    c = walk("fgm", fgm(occurred_at="10:00", police_called_at="10:30"), now=friday).concern
    assert deadline(c, "fgm_police_report") == datetime(2026, 11, 23, 15, 30, tzinfo=LONDON)


def test_fgm_duty_text_follows_the_school_rule() -> None:
    ordinary = walk("fgm", fgm(), profile=school("buttsbury-junior"))
    assert not school("buttsbury-junior").rules.fgm_police_before_dsl
    text = ordinary.prompt_for("personal_duty").text
    assert "tell the DSL as well" in text and "BEFORE" not in text

    hera = walk("fgm", fgm(), profile=school(HERA))
    assert school(HERA).rules.fgm_police_before_dsl
    text = hera.prompt_for("personal_duty").text
    assert "BEFORE you tell the DSL" in text and "as well" not in text
    assert "101" in text  # the police number, from the profile


def test_fgm_duty_not_yet_phoned_sets_the_reminder() -> None:
    w = walk("fgm", fgm(police_called="no"))
    assert "police_reference" not in w.asked
    assert "101" in " ".join(w.outcome_of("police_called").say)
    assert w.concern.police_reference is None
    assert {"fgm_police_report", "fgm_legal_maximum"} <= deadline_ids(w.concern)


def assert_not_the_duty(w: Walk) -> None:
    assert "PERSONAL-DUTY" not in w.concern.flags
    assert "personal_duty" not in w.asked and "police_called" not in w.asked
    assert "dsl_route" in w.asked
    assert not {"fgm_police_report", "fgm_legal_maximum"} & deadline_ids(w.concern)
    assert w.concern.routing.route == "dsl_team"
    assert "DSL" in w.prompt_for("dsl_route").text


def test_fgm_support_staff_go_to_the_dsl_and_are_never_told_it_does_not_apply() -> None:
    w = walk("fgm", fgm(is_teacher="no"))
    assert_not_the_duty(w)
    text = w.prompt_for("dsl_route").text
    assert "does not apply" not in text
    assert "TA or HLTA" in text and "not sure, phone 101 yourself" in text


def test_fgm_at_risk_is_not_the_duty_even_for_a_teacher() -> None:
    w = walk("fgm", fgm(how_known="at_risk", leaving_soon="no"))
    assert "leaving_soon" in w.asked
    assert_not_the_duty(w)
    assert "at risk" in w.prompt_for("dsl_route").text
    assert not {"URGENT", "POLICE-NOW"} & set(w.concern.flags)


def test_fgm_at_risk_and_leaving_soon_is_an_emergency() -> None:
    w = walk("fgm", fgm(how_known="at_risk", leaving_soon="yes"))
    assert {"URGENT", "CALL-999", "POLICE-NOW"} <= set(w.concern.flags)
    assert "999" in " ".join(w.outcome_of("leaving_soon").say)
    assert "PERSONAL-DUTY" not in w.concern.flags


def test_fgm_someone_else_told_is_not_the_duty() -> None:
    w = walk("fgm", fgm(how_known="someone_else"))
    assert_not_the_duty(w)
    assert "someone else told you" in w.prompt_for("dsl_route").text


def test_fgm_eighteen_or_over_is_not_the_duty() -> None:
    w = walk("fgm", fgm(under_18="no", child_age="18"))
    assert_not_the_duty(w)
    assert "18 or over" in w.prompt_for("dsl_route").text


@pytest.mark.parametrize("how", ["girl_told", "saw_signs"])
def test_fgm_not_sure_of_age_counts_as_under_18(how: str) -> None:
    w = walk("fgm", fgm(how_known=how, under_18="not_sure"))
    assert "PERSONAL-DUTY" in w.concern.flags
    assert "personal_duty" in w.asked
    assert "under 18" in " ".join(w.outcome_of("under_18").say)


# -- disclosure ------------------------------------------------------------------------------


def switch_and_continue(
    source: Walk, target: str, answers: dict[str, Any], turn: int
) -> tuple[Walk, dict[str, Any]]:
    with catalogue()[source.concern.type].attach(source.state, context()) as run:
        prefill = run.carry_over()
    prefill = json_round_trip(prefill)
    return walk(target, answers, prefill=prefill, turn=turn), prefill


def test_disclosure_about_staff_switches_to_the_allegation_flow() -> None:
    w = walk("disclosure", plain("disclosure", abuser_relationship="staff"))
    assert w.outcomes[-1].switch_to == "allegation"
    assert w.step == "switched"
    assert w.asked[-1] == "abuser_relationship"
    assert "headteacher" in " ".join(w.outcomes[-1].say)

    answers = {k: v for k, v in plain("allegation").items() if k != "immediate_danger"}
    allegation, prefill = switch_and_continue(w, "allegation", answers, len(w.asked))
    assert "immediate_danger" in prefill
    assert "immediate_danger" not in allegation.asked
    assert allegation.asked[0] == "subject_role"
    assert allegation.step == "done"
    assert allegation.concern.routing.route == "headteacher"
    assert allegation.concern.type == "allegation"


def test_a_switch_keeps_the_emergency_answers() -> None:
    w = walk("disclosure", plain("disclosure", immediate_danger="yes", abuser_relationship="staff"))
    answers = {
        k: v
        for k, v in plain("allegation").items()
        if k not in {"immediate_danger", "emergency_called"}
    }
    allegation, _ = switch_and_continue(w, "allegation", answers, len(w.asked))
    assert allegation.asked[0] == "subject_role"
    assert {"URGENT", "CALL-999"} <= set(allegation.concern.flags)
    assert "Emergency services called at" in actions(allegation.concern)
    # the kept answers are not said again
    assert all("999" not in " ".join(o.say) for o in allegation.outcomes)


def test_disclosure_about_another_child_switches_to_child_on_child() -> None:
    w = walk("disclosure", plain("disclosure", abuser_relationship="child"))
    assert w.outcomes[-1].switch_to == "child_on_child"
    answers = {k: v for k, v in plain("child_on_child").items() if k != "immediate_danger"}
    coc, _ = switch_and_continue(w, "child_on_child", answers, len(w.asked))
    assert "immediate_danger" not in coc.asked
    assert coc.step == "done"


@pytest.mark.parametrize("who", ["family", "other_adult", "unknown"])
def test_disclosure_about_anyone_else_stays_with_the_dsl(who: str) -> None:
    w = walk("disclosure", plain("disclosure", abuser_relationship=who))
    assert all(o.switch_to is None for o in w.outcomes)
    assert w.step == "done"
    assert w.concern.routing.route == "dsl_team"
    c = w.concern
    assert (c.child_name, c.child_year, c.location) == ("Alex Smith", "Year 4", "Classroom 4B")
    assert c.words == "my dad hit me with a belt"
    assert c.occurred_at == "Wed 18 Nov 2026 09:30"
    assert c.people_present is None


def test_disclosure_going_home_to_the_alleged_abuser_is_urgent() -> None:
    w = walk("disclosure", plain("disclosure", going_home="yes"))
    assert {"URGENT", "GOING-HOME-TO-ALLEGED-ABUSER"} <= set(w.concern.flags)
    assert "CALL-999" not in w.concern.flags
    assert "URGENT" in " ".join(w.outcome_of("going_home").say)


def test_disclosure_siblings_at_risk() -> None:
    w = walk("disclosure", plain("disclosure", siblings="yes"))
    assert "OTHER-CHILDREN-AT-RISK" in w.concern.flags
    assert "URGENT" not in w.concern.flags


def test_disclosure_dsl_not_told_in_person_says_go_and_find_them() -> None:
    w = walk("disclosure", plain("disclosure", dsl_told_in_person="no"))
    said = " ".join(w.outcomes[-1].say)
    assert school().dsl.name in said


# -- allegations against staff ---------------------------------------------------------------

ROLES = [c.value for c in catalogue()["allegation"].definition.step("subject_role").choices]
EXPECTED_ROUTE = {"headteacher": "chair_of_governors"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("conflict", ["no", "yes"])
@pytest.mark.parametrize("harm", ["harmed", "low_level"])
def test_allegations_never_go_to_the_dsl_channel(role: str, conflict: str, harm: str) -> None:
    answers = plain("allegation", subject_role=role, harm_test=harm)
    answers.update(conflict_of_interest=conflict, low_level_conflict=conflict)
    w = walk("allegation", answers)
    c = w.concern
    assert c.routing.route != "dsl_team"
    assert c.is_allegation
    if conflict == "yes":  # the LADO takes allegations; a low-level concern goes to the chair
        expected = "lado" if harm == "harmed" else "chair_of_governors"
    else:
        expected = EXPECTED_ROUTE.get(role, "headteacher")
    assert c.routing.route == expected
    assert "Confidential to the case manager" in c.routing.reason or expected == "lado"
    labels = dict(w.prompt_for("subject_role").choices)
    assert c.subject_role == labels[role]


def test_the_harm_test_comes_before_the_conflict_of_interest_question() -> None:
    harmed = walk("allegation", plain("allegation", harm_test="harmed"))
    assert harmed.asked.index("harm_test") < harmed.asked.index("conflict_of_interest")
    assert "low_level_conflict" not in harmed.asked
    low = walk("allegation", plain("allegation"))
    assert low.asked.index("harm_test") < low.asked.index("low_level_conflict")
    assert "conflict_of_interest" not in low.asked  # never "straight to the LADO"


def test_a_low_level_concern_is_recorded_as_one_on_the_card() -> None:
    low = walk("allegation", plain("allegation", harm_test="low_level")).concern
    assert "LOW-LEVEL-CONCERN" in low.flags
    assert "Recorded as a low-level concern" in low.routing.reason
    harmed = walk("allegation", plain("allegation", harm_test="harmed")).concern
    assert "LOW-LEVEL-CONCERN" not in harmed.flags
    assert "low-level" not in harmed.routing.reason


def test_allegation_routes_explicitly() -> None:
    assert walk("allegation", plain("allegation")).concern.routing.route == "headteacher"
    head = walk("allegation", plain("allegation", subject_role="headteacher")).concern
    assert head.routing.route == "chair_of_governors"
    lado = walk("allegation", plain("allegation", harm_test="harmed", conflict_of_interest="yes"))
    assert lado.concern.routing.route == "lado"
    assert "LADO" in " ".join(lado.outcome_of("conflict_of_interest").say)
    assert "03330 139 797" in " ".join(lado.outcome_of("conflict_of_interest").say)


def test_allegation_about_a_dsl_member_says_so() -> None:
    c = walk("allegation", plain("allegation", subject_role="dsl_member")).concern
    assert "ACCUSED-IS-DSL" in c.flags
    assert "member of the DSL team" in c.routing.reason
    assert c.routing.route == "headteacher"
    other = walk("allegation", plain("allegation")).concern
    assert "ACCUSED-IS-DSL" not in other.flags
    assert "DSL team" not in other.routing.reason


@pytest.mark.parametrize(
    "limb", ["harmed", "offence", "risk_to_children", "unsuitable", "not_sure"]
)
def test_the_harm_test_sets_the_lado_deadline(limb: str) -> None:
    c = walk("allegation", plain("allegation", harm_test=limb)).concern
    assert "lado_one_working_day" in deadline_ids(c)
    raised = datetime.fromisoformat(c.raised_at).astimezone(LONDON)
    # a Wednesday morning -> the same time on Thursday
    assert deadline(c, "lado_one_working_day") == raised + timedelta(days=1)
    assert deadline(c, "lado_one_working_day").date() == datetime(2026, 11, 19).date()


def test_a_low_level_concern_has_no_lado_deadline() -> None:
    c = walk("allegation", plain("allegation", harm_test="low_level")).concern
    assert "lado_one_working_day" not in deadline_ids(c)
    assert c.routing.route == "headteacher"


def test_lado_deadline_over_a_bank_holiday_weekend() -> None:
    friday = datetime(2026, 8, 28, 16, 30, tzinfo=LONDON)  # Monday 31 August is a bank holiday
    c = walk("allegation", plain("allegation", harm_test="harmed"), now=friday).concern
    raised = datetime.fromisoformat(c.raised_at).astimezone(LONDON)
    assert raised.date() == friday.date()
    due = deadline(c, "lado_one_working_day")
    assert due.date() == datetime(2026, 9, 1).date()  # Tuesday
    assert due.time() == raised.time()
    assert due.strftime("%A") == "Tuesday"


# -- missing child ---------------------------------------------------------------------------


def test_missing_child_alert_goes_out_on_the_first_answer() -> None:
    w = walk("missing_child", plain("missing_child"))
    assert w.asked[:2] == ["child_name", "immediate_danger"]  # which child, then 999
    assert w.outcomes[0].raised  # seed 004 App. C: "must be addressed immediately"
    assert not any(o.raised for o in w.outcomes[1:])
    assert all(o.updated for o in w.outcomes[1:])
    rules = " ".join(w.prompts[0].rules)
    assert rules.startswith("Raise the alarm and start searching now - then record here.")
    # every later step is a timeline entry with the time it was recorded
    c = w.concern
    assert c.raised_at == NOW.isoformat()
    expected = [(NOW + i * TICK).isoformat() for i in range(1, len(w.asked))]
    assert [a.at for a in c.timeline] == expected


def test_missing_child_concern_is_live_while_the_search_goes_on() -> None:
    partial = walk("missing_child", plain("missing_child"), limit=6)
    assert partial.asked[-1] == "description"
    assert partial.step == "search_premises"
    c = partial.concern
    assert c.status == "raised"
    assert (c.child_name, c.observations) == ("Leo Jones", "Small, red coat, blue school jumper")
    assert c.location == "Playground, seen by Mrs Hill"
    # no seed gives a number of minutes: without a school setting there is no invented deadline
    assert school().rules.missing_minutes_before_police is None
    assert "missing_police_threshold" not in deadline_ids(c)


def test_a_school_police_time_counts_from_when_the_child_was_last_seen() -> None:
    profile = dataclasses.replace(
        school(), rules=dataclasses.replace(school().rules, missing_minutes_before_police=20)
    )
    w = walk("missing_child", plain("missing_child", last_seen_at="09:40"), profile=profile)
    last_seen = NOW.replace(hour=9, minute=40)
    assert deadline(w.concern, "missing_police_threshold") == last_seen + timedelta(minutes=20)
    help_text = w.prompt_for("police_report").help or ""
    assert "20 minutes after the child was last seen" in help_text


def test_without_a_school_time_staff_report_as_soon_as_the_checks_fail() -> None:
    w = walk("missing_child", plain("missing_child"))
    help_text = " ".join((w.prompt_for("police_report").help or "").split())
    assert "report to the police as soon as these checks fail - your school has not set a time" in (
        help_text.lower()
    )


@pytest.mark.parametrize(
    ("school_id", "force", "chat"),
    [("buttsbury-junior", "Essex Police", True), ("griffin-primary", "the police", False)],
)
def test_missing_child_words_come_from_the_profile(school_id: str, force: str, chat: bool) -> None:
    answers = plain(
        "missing_child",
        found_yet="found",
        found_at="now",
        police_told_found="told",
        return_observations="skip",
    )
    w = walk("missing_child", answers, profile=school(school_id))
    shown = " ".join(p.text for p in w.prompts) + w.concern.dsl_decision
    assert force in w.prompt_for("police_report").text
    assert ("missing chat" in shown) is chat
    assert ("Essex" in shown) is (school_id != "griffin-primary")


@pytest.mark.parametrize("where", ["search_premises", "contact_child", "contact_parents"])
def test_missing_child_found_during_the_search(where: str) -> None:
    answers = plain(
        "missing_child",
        **{where: "found"},
        found_at="now",
        police_told_found="not_called",
        return_observations="Quiet, new trainers",
    )
    w = walk("missing_child", answers)
    assert w.step == "done"
    assert w.asked[w.asked.index(where) + 1] == "found_at"
    assert "police_report" not in w.asked
    assert w.concern.police_reference is None
    assert "Found or returned at" in actions(w.concern)


def test_missing_child_not_found_is_reported_to_the_police() -> None:
    w = walk("missing_child", plain("missing_child"))
    assert w.asked[w.asked.index("contact_parents") + 1] == "police_report"
    prompt = w.prompt_for("police_report")
    assert "101" in prompt.text and "999" in prompt.text
    assert w.concern.police_reference == "INC-0042"
    assert actions(w.concern)["Reported missing to the police"] == (
        "Reported on the non-emergency number"
    )
    assert "INC-0042" in " ".join(w.outcome_of("found_yet").say)


def test_missing_child_police_not_yet_asks_again() -> None:
    answers = plain("missing_child", police_report=("not_yet", "called_999"))
    w = walk("missing_child", answers)
    assert w.asked.count("police_report") == 2
    first = w.asked.index("police_report")
    assert w.asked[first + 1] == "police_report"
    assert w.outcomes[first].say
    assert w.step == "done"
    assert "POLICE-NOW" in w.concern.flags
    assert w.concern.police_reference == "INC-0042"


def test_missing_child_found_after_the_police_report() -> None:
    answers = plain(
        "missing_child",
        found_yet="found",
        found_at="now",
        police_told_found="told",
        return_observations="skip",
    )
    w = walk("missing_child", answers)
    assert w.asked[-5:] == [
        "found_yet",
        "found_at",
        "police_told_found",
        "return_observations",
        "child_status",
    ]
    assert actions(w.concern)["Police told the child is found"] == "Police told"


# -- child-on-child --------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["rape", "assault_by_penetration", "sexual_assault"])
def test_child_on_child_sexual_offences_go_to_the_police(what: str) -> None:
    w = walk("child_on_child", plain("child_on_child", what_happened=what))
    assert "POLICE-NOW" in w.concern.flags
    assert w.asked[w.asked.index("what_happened") + 2] == "police_rule"  # after school_adult
    assert "police" in w.prompt_for("police_rule").text


@pytest.mark.parametrize("what", ["bullying", "physical", "sexual_harassment", "online"])
def test_child_on_child_other_harm_is_not_police_now(what: str) -> None:
    w = walk("child_on_child", plain("child_on_child", what_happened=what))
    assert "POLICE-NOW" not in w.concern.flags
    assert "police_rule" not in w.asked
    assert w.concern.routing.route == "dsl_team"


def test_child_on_child_not_kept_apart_is_urgent() -> None:
    w = walk("child_on_child", plain("child_on_child", kept_apart="no"))
    assert "URGENT" in w.concern.flags
    assert "URGENT" not in walk("child_on_child", plain("child_on_child")).concern.flags


# -- welfare ---------------------------------------------------------------------------------


def test_welfare_plain_walk() -> None:
    w = walk("welfare", plain("welfare"))
    c = w.concern
    assert w.step == "done"
    assert c.status == "final" and c.finished_at is not None
    assert c.routing.route == "dsl_team" and not c.is_allegation
    assert c.flags == []
    assert c.child_name == "Kim" and c.observations == "Very hungry, same clothes all week"
    assert c.words is None
    assert actions(c)["DSL already told in person"] == "Yes"
    assert c.sources and all(c.sources)


def test_welfare_written_record_deadline_follows_the_school() -> None:
    hours = school("griffin-primary").rules.written_record_hours
    assert hours
    c = walk("welfare", plain("welfare"), profile=school("griffin-primary")).concern
    # counted from when it happened (the occurred_at answer), not from when it was reported
    happened = datetime.fromisoformat(c.raised_at).astimezone(LONDON).replace(hour=8, minute=45)
    assert deadline(c, "written_record") == happened + timedelta(hours=hours)
    if not school().rules.written_record_hours:
        assert "written_record" not in deadline_ids(walk("welfare", plain("welfare")).concern)


# -- save / resume ---------------------------------------------------------------------------

SCENARIOS = [
    *[(flow_id, plain(flow_id)) for flow_id in FLOW_IDS],
    *[(flow_id, plain(flow_id, immediate_danger="yes")) for flow_id in FLOW_IDS],
    ("fgm", fgm(is_teacher="no")),
    ("fgm", fgm(how_known="at_risk", leaving_soon="yes")),
    ("allegation", plain("allegation", subject_role="headteacher", harm_test="harmed")),
    ("missing_child", plain("missing_child", police_report=("not_yet", "called_101"))),
    ("nudes", plain("nudes", how_known="seen_by_accident", adult_involved="yes")),
]


@pytest.mark.parametrize(
    ("flow_id", "answers"), SCENARIOS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(SCENARIOS)]
)
def test_stopping_anywhere_and_resuming_gives_the_same_concern(
    flow_id: str, answers: dict[str, Any]
) -> None:
    expected = straight_walk(flow_id, answers)
    full = walk(flow_id, answers)
    assert full.concern.to_dict() == expected.to_dict()
    for k in range(len(full.asked) + 1):
        first = walk(flow_id, answers, limit=k)
        saved = json.dumps(first.state)
        fresh = compile_all(load_definitions())  # as after a restart
        rest = walk(flow_id, answers, state=json.loads(saved), turn=k, flows=fresh)
        assert first.asked + rest.asked == full.asked, k
        assert rest.concern.to_dict() == expected.to_dict(), f"stopped after {k} answers"


# -- the child's words, verbatim -------------------------------------------------------------

AWKWARD = (
    '  She said "he\'s \\ mean" and {{ x }} {% if %} **really** <b>hurt</b> me\n'
    "\tthen: 'don't tell' 👍🏽 ✓ é  "
)
WORDS_FLOWS = [f for f in FLOW_IDS if "words" in PLAIN[f]]


@pytest.mark.parametrize("flow_id", WORDS_FLOWS)
def test_the_childs_words_are_kept_byte_for_byte(flow_id: str) -> None:
    w = walk(flow_id, plain(flow_id, words=AWKWARD))
    assert w.step == "done"
    c = w.concern
    assert c.words == AWKWARD
    assert c.words.encode("utf-8") == AWKWARD.encode("utf-8")
    again = Concern.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.words == AWKWARD
    assert again == c


def test_fgm_non_teacher_in_a_school_whose_policy_says_all_staff_report_to_police() -> None:
    """Seed 003 (Hull): every member of staff reports FGM to the police; elsewhere the
    non-teacher's route is the DSL only."""
    griffin = school("griffin-primary")
    assert griffin.rules.fgm_all_staff_report_to_police
    answers = {"is_teacher": "no"}
    told_all = walk("fgm", plain("fgm", **answers), profile=griffin)
    assert "dsl_route" in told_all.asked
    route_text = next(p.text for p in told_all.prompts if p.step_id == "dsl_route")
    assert "every member of staff to report FGM to the police" in route_text
    assert "PERSONAL-DUTY" not in told_all.concern.flags
    elsewhere = walk("fgm", plain("fgm", **answers))
    other_text = next(p.text for p in elsewhere.prompts if p.step_id == "dsl_route")
    assert "every member of staff" not in other_text


@pytest.mark.parametrize("school_id", ["buttsbury-junior", HERA])
def test_allegation_immediate_danger_names_the_case_managers_not_the_dsl(school_id: str) -> None:
    profile = school(school_id)
    w = walk("allegation", plain("allegation", immediate_danger="yes"), profile=profile)
    said = " ".join(w.outcome_of("immediate_danger").say)
    assert profile.headteacher.name in said
    assert profile.chair_of_governors.name in said  # when it is about the head
    assert "Do not tell the adult concerned" in said
    assert "DSL" not in said and profile.dsl.name not in said
    assert all(p.name in said for p in profile.case_managers)


# -- children missing education (unexplained absence) ------------------------------------------


def test_absence_deadlines_count_school_days_from_the_first_day_missed() -> None:
    # first missed on Monday 16 Nov 2026; the report is made on Wednesday 18 Nov
    answers = plain("absence", first_day_absent="2026-11-16 08:40")
    buttsbury = walk("absence", answers)
    assert deadline_ids(buttsbury.concern) == {"absence_la_ten_days"}  # no local checklist
    ten = deadline(buttsbury.concern, "absence_la_ten_days")
    assert (ten.date().isoformat(), ten.strftime("%H:%M")) == ("2026-11-27", "15:30")
    hera = walk("absence", answers, profile=school(HERA))  # seed 001: MECES by day 6 and 10
    assert deadline_ids(hera.concern) == {"absence_la_ten_days", "absence_checklist"}
    assert deadline(hera.concern, "absence_checklist").date().isoformat() == "2026-11-23"
    assert "MECES" in (hera.prompt_for("days_absent").help or "")


def test_an_explained_absence_ends_without_sending_anything() -> None:
    w = walk("absence", plain("absence", first_day_calls="explained", reason_worries="no"))
    assert w.step == "exit"
    assert "Nothing needs sending" in w.said()


def test_a_carer_who_does_not_know_where_the_child_is_makes_it_police_now() -> None:
    w = walk("absence", plain("absence", first_day_calls="carer_does_not_know"))
    assert {"URGENT", "POLICE-NOW"} <= set(w.concern.flags)
    assert w.outcome_of("first_day_calls").raised  # the alert goes at once
    assert "101" in w.said()
