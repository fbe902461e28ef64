"""FGM: the personal duty reaches everyone doing teaching work, opens with 'phone the police
now', the DSL is alerted only after that prompt where the school says police first, and the
deadlines run from when it was learned and never move later over school closure days."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest

from flows.catalogue import catalogue
from tests.allpaths import every_path
from tests.flowkit import LONDON, NOW, all_schools, plain, school, walk
from tests.shared import SEEDS

HERA = "kings-road-primary"
DUTY_ROLES = ("yes", "teaching", "not_sure")


def fgm(**overrides):
    return plain("fgm", **overrides)


def deadline(concern, deadline_id: str) -> datetime:
    due = next(d for d in concern.deadlines if d.id == deadline_id).due_at
    return datetime.fromisoformat(due).astimezone(LONDON)


@pytest.mark.parametrize("how", ["saw_signs", "girl_told"])
def test_a_teaching_assistant_covering_a_class_has_the_personal_duty(how: str) -> None:
    w = walk("fgm", fgm(is_teacher="teaching", how_known=how))
    assert "PERSONAL-DUTY" in w.concern.flags
    assert "personal_duty" in w.asked and "dsl_route" not in w.asked
    assert {"police_called", "police_reference"} <= set(w.asked)
    text = w.prompt_for("personal_duty").text
    assert text.startswith("Phone the police on 101 NOW")
    role = dict(w.prompt_for("is_teacher").choices)["teaching"]
    assert "teaching assistant" in role.lower() and "HLTA" in role


def test_not_sure_whether_the_duty_covers_you_means_report_personally_and_tell_the_dsl() -> None:
    w = walk("fgm", fgm(is_teacher="not_sure"))
    assert "PERSONAL-DUTY" in w.concern.flags
    said = " ".join(w.outcome_of("is_teacher").say)
    assert "report to the police yourself and tell the DSL" in said


@pytest.mark.parametrize("school_id", [s.id for s in all_schools()])
def test_no_fgm_path_tells_anyone_the_duty_does_not_apply_to_them(school_id: str) -> None:
    walked = list(every_path("fgm", school(school_id), NOW, keep=("is_teacher",)))
    duty = 0
    for path in walked:
        for _, text in path.seen:
            assert "not apply to you" not in text.lower(), text
        answers = dict(path.answers)
        if (
            answers.get("is_teacher") in DUTY_ROLES
            and answers.get("how_known") in ("girl_told", "saw_signs")
            and answers.get("under_18") in ("yes", "not_sure")
        ):
            duty += 1
            steps = [step for step, _ in path.seen]
            assert "personal_duty" in steps and "dsl_route" not in steps, path.answers
    assert duty  # the walk reached the duty


def test_the_duty_prompt_opens_with_phone_the_police_now_and_limits_are_outer_only() -> None:
    for profile in all_schools():
        text = walk("fgm", fgm(), profile=profile).prompt_for("personal_duty").text
        police = profile.contact("police").number
        assert text.startswith(f"Phone the police on {police} NOW"), profile.id
        assert "only the outer limit" in text and "one month the legal maximum" in text


@pytest.mark.parametrize(
    "school_id", [s.id for s in all_schools() if s.rules.fgm_police_before_dsl]
)
def test_police_first_schools_alert_the_dsl_only_after_the_police_prompt(school_id: str) -> None:
    paths = list(every_path("fgm", school(school_id), NOW, keep=("is_teacher", "immediate_danger")))
    checked = 0
    for path in paths:
        steps = [step for step, _ in path.seen]
        answers = dict(path.answers)
        if "personal_duty" not in steps or answers.get("immediate_danger") == "yes":
            continue  # immediate danger: 999 and the DSL at once, whatever the school rule
        order = [step for step, _ in path.answers]
        if path.raised_by is not None:  # never before the police prompt and its answer
            assert order.index(path.raised_by) > order.index("personal_duty"), path.raised_by
            assert order.index(path.raised_by) >= order.index("police_called")
        if path.end == "done":  # a whole path (not one merged into an earlier walk)
            checked += 1
            assert path.raised_by == "police_called", path.answers
    assert checked
    text = walk("fgm", fgm(), profile=school(school_id)).prompt_for("personal_duty").text
    assert "BEFORE you tell the DSL" in text


def test_the_fgm_deadline_never_moves_later_over_school_closure_days() -> None:
    profile = school("buttsbury-junior")
    closed = dataclasses.replace(
        profile, closure_days=frozenset({date(2026, 11, 19), date(2026, 11, 20)})
    )
    # Wednesday 18 Nov, learned 09:15; Thursday and Friday are INSET days
    open_ = walk("fgm", fgm(), profile=profile).concern
    shut = walk("fgm", fgm(), profile=closed).concern
    expected = datetime(2026, 11, 19, 15, 30, tzinfo=LONDON)  # Thursday, closure or not
    assert deadline(open_, "fgm_police_report") == expected
    assert deadline(shut, "fgm_police_report") == expected


def test_the_fgm_deadlines_count_from_when_it_was_learned_not_from_the_report() -> None:
    c = walk("fgm", fgm(occurred_at="yesterday 15:20")).concern
    learned = datetime(2026, 11, 17, 15, 20, tzinfo=LONDON)
    assert deadline(c, "fgm_legal_maximum") == learned.replace(month=12)
    assert deadline(c, "fgm_police_report") == datetime(2026, 11, 18, 15, 30, tzinfo=LONDON)


def test_written_record_counts_from_when_it_happened_for_fgm_and_missing_child() -> None:
    griffin = school("griffin-primary")
    hours = timedelta(hours=griffin.rules.written_record_hours)
    c = walk("fgm", fgm(occurred_at="09:15"), profile=griffin).concern
    assert deadline(c, "written_record") == datetime(2026, 11, 18, 9, 15, tzinfo=LONDON) + hours
    m = walk("missing_child", plain("missing_child"), profile=griffin).concern
    seen = datetime(2026, 11, 18, 9, 40, tzinfo=LONDON)  # last seen at 09:40
    assert deadline(m, "written_record") == seen + hours
    # a school that sets no hours gets no written-record deadline
    essex = walk("fgm", fgm(), profile=school("buttsbury-junior")).concern
    assert "written_record" not in {d.id for d in essex.deadlines}


def test_hull_tracks_the_written_referral_after_a_phone_referral() -> None:
    griffin = school("griffin-primary")
    c = walk("welfare", plain("welfare"), profile=griffin).concern
    written = next(d for d in c.deadlines if d.id == "written_referral")
    assert written.owner == "dsl_team"
    raised = datetime.fromisoformat(c.raised_at)
    assert datetime.fromisoformat(written.due_at) == raised + timedelta(hours=48)
    essex = walk("welfare", plain("welfare"), profile=school("buttsbury-junior")).concern
    assert "written_referral" not in {d.id for d in essex.deadlines}
    allegation_ids = {
        d.id for d in walk("allegation", plain("allegation"), profile=griffin).concern.deadlines
    }
    assert "written_referral" not in allegation_ids  # not the DSL's route


def test_the_tell_explain_describe_rule_is_not_credited_to_a_seed_that_lacks_it() -> None:
    seeds = {
        p.name[:3]: " ".join(p.read_text(encoding="utf-8").lower().split())
        for p in SEEDS.glob("*.txt")
    }
    for flow in catalogue().values():
        for rule in flow.definition.rules:
            if "tell me" not in rule.text.lower():
                continue
            assert "tell me" not in " ".join(seeds.values())  # no seed says it
            assert "seed" not in rule.source.lower().replace("seed policies", ""), rule.source
