"""The flow engine: answers are checked and parsed, back/correct, and bad flow files are refused
at compile time with a message naming the file and the step."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.catalogue import catalogue, definitions_dir
from flows.definition import FlowDefinitionError, parse_flow, safe_load
from flows.engine import CompiledFlow, FlowRun, InvalidAnswer
from tests.flowkit import LONDON, NOW, context, current_prompt, plain, walk

FIXTURES = Path(__file__).parent / "flow_fixtures"
FIXTURE_FILES = sorted(FIXTURES.glob("*.yaml"))
COMMON = safe_load((definitions_dir() / "_common.yaml").read_text(encoding="utf-8"))["steps"]
KNOWN = frozenset(catalogue())


def at_step(flow_id: str, step_id: str, **overrides: Any) -> dict[str, Any]:
    """The saved state of a plain walk that has stopped at `step_id`."""
    answers = {k: v for k, v in plain(flow_id, **overrides).items() if k != step_id}
    w = walk(flow_id, answers)
    assert w.step == step_id
    return w.state


def answer(flow_id: str, state: dict[str, Any], raw: Any, now: datetime = NOW) -> FlowRun:
    """Answer once and return the run (detached; its data is the new state)."""
    with catalogue()[flow_id].attach(state, context()) as run:
        run.answer(raw, now)
    return run


def refused(flow_id: str, state: dict[str, Any], raw: Any, now: datetime = NOW) -> str:
    """Answer once, expecting InvalidAnswer; check nothing changed; return the message."""
    before = copy.deepcopy(state)
    with catalogue()[flow_id].attach(state, context()) as run:
        with pytest.raises(InvalidAnswer) as info:
            run.answer(raw, now)
        assert run.snapshot() == before, "a refused answer must change nothing"
    assert state == before
    return str(info.value)


# -- invalid answers -------------------------------------------------------------------------


def test_yes_no_refuses_other_words() -> None:
    state = at_step("disclosure", "immediate_danger")
    assert refused("disclosure", state, "maybe") == "Please answer yes or no."


@pytest.mark.parametrize("raw", ["yes", "Y", "Yeah.", "yep!", True])
def test_yes_no_accepts_yes(raw: Any) -> None:
    run = answer("disclosure", at_step("disclosure", "immediate_danger"), raw)
    assert run.data["answers"]["immediate_danger"] is True


@pytest.mark.parametrize("raw", ["no", "N", "NOPE", False])
def test_yes_no_accepts_no(raw: Any) -> None:
    run = answer("disclosure", at_step("disclosure", "immediate_danger"), raw)
    assert run.data["answers"]["immediate_danger"] is False


def test_a_choice_refuses_an_unknown_answer_and_lists_the_options() -> None:
    message = refused("welfare", at_step("welfare", "concern_kind"), "purple")
    assert message.startswith("Please choose one of: 1. Neglect")
    assert "6. Radicalisation or extremist views (Prevent)" in message


def test_number_refuses_words_and_out_of_range() -> None:
    state = at_step("fgm", "child_age")
    assert "whole number" in refused("fgm", state, "twelve")
    assert refused("fgm", state, "1") == "Please type a number from 2 to 25."
    assert refused("fgm", state, "26") == "Please type a number from 2 to 25."
    assert answer("fgm", state, " 12 ").data["answers"]["child_age"] == 12


def test_text_refuses_blank_unless_optional() -> None:
    state = at_step("welfare", "child_name")
    assert refused("welfare", state, "   ") == "Please type your answer."
    optional = at_step("welfare", "people_present")
    run = answer("welfare", optional, "skip")
    assert run.data["answers"]["people_present"] is None


def test_datetime_refuses_nonsense_with_examples() -> None:
    message = refused("welfare", at_step("welfare", "occurred_at"), "after lunch")
    assert "14:05" in message and "yesterday 15:20" in message


def test_a_finished_flow_refuses_more_answers() -> None:
    state = walk("welfare", plain("welfare")).state
    assert refused("welfare", state, "more") == "This report is already complete."


# -- datetimes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("now", datetime(2026, 11, 18, 10, 0, tzinfo=LONDON)),
        ("Just now", datetime(2026, 11, 18, 10, 0, tzinfo=LONDON)),
        ("09:05", datetime(2026, 11, 18, 9, 5, tzinfo=LONDON)),
        ("9.05", datetime(2026, 11, 18, 9, 5, tzinfo=LONDON)),
        ("today at 08:30", datetime(2026, 11, 18, 8, 30, tzinfo=LONDON)),
        ("yesterday 15:20", datetime(2026, 11, 17, 15, 20, tzinfo=LONDON)),
        ("2026-11-16 09:15", datetime(2026, 11, 16, 9, 15, tzinfo=LONDON)),
        ("2026-11-16T09:15:00+00:00", datetime(2026, 11, 16, 9, 15, tzinfo=LONDON)),
    ],
)
def test_datetime_answers(raw: str, expected: datetime) -> None:
    now = NOW.replace(second=30)
    state = at_step("welfare", "occurred_at")
    run = answer("welfare", state, raw, now)
    got = datetime.fromisoformat(run.data["answers"]["occurred_at"])
    assert got == expected
    assert got.utcoffset() is not None


def test_datetime_in_summer_time_is_london_time() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=LONDON)
    state = walk(
        "welfare",
        {
            "immediate_danger": "no",
            "school_adult": "no",
            "concern_kind": "1",
            "child_name": "K",
            "child_year": "2",
            "child_status": "none",
        },
        now=summer,
    ).state
    run = answer("welfare", state, "11:15", summer)
    assert run.data["answers"]["occurred_at"] == "2026-07-01T11:15:00+01:00"
    run = answer("welfare", state, "2026-06-30 09:00", summer)
    assert run.data["answers"]["occurred_at"] == "2026-06-30T09:00:00+01:00"


def test_datetime_refuses_the_future() -> None:
    state = at_step("welfare", "occurred_at")
    assert "future" in refused("welfare", state, "10:30")
    assert "future" in refused("welfare", state, "23:59")
    # a couple of minutes of clock drift is allowed
    ok = answer("welfare", state, "10:03").data["answers"]["occurred_at"]
    assert ok == "2026-11-18T10:03:00+00:00"


def test_datetime_from_utc_clock_is_shown_in_london_time() -> None:
    utc_now = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    state = at_step("welfare", "occurred_at")
    run = answer("welfare", state, "now", utc_now)
    assert run.data["answers"]["occurred_at"].endswith("+01:00")  # 1 July: BST


# -- choices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("2", "saw_signs"),
        ("saw_signs", "saw_signs"),
        ("Someone else told me (a parent, sister, friend...)", "someone_else"),
        ("  SOMEONE ELSE TOLD ME (A PARENT, SISTER, FRIEND...) ", "someone_else"),
        ("signs", "saw_signs"),
        ("at risk", "at_risk"),
        ("girl", "girl_told"),
    ],
)
def test_choices_accept_number_value_label_and_a_unique_word(raw: str, value: str) -> None:
    run = answer("fgm", at_step("fgm", "how_known"), raw)
    assert run.data["answers"]["how_known"] == value


@pytest.mark.parametrize("raw", ["told", "fgm", "me", "5", "0"])
def test_choices_refuse_ambiguous_or_unknown_words(raw: str) -> None:
    state = at_step("fgm", "how_known")
    assert refused("fgm", state, raw).startswith("Please choose one of:")


# -- back and correct ------------------------------------------------------------------------


def test_back_returns_to_the_previous_step_and_forgets_its_answer() -> None:
    state = at_step("welfare", "child_year")
    with catalogue()["welfare"].attach(state, context()) as run:
        assert run.back() is True
        assert run.state == "child_name"
        assert "child_name" not in run.data["answers"]
        assert run.data["history"][-1] == "concern_kind"
        assert run.prompt().step_id == "child_name"
        saved = run.snapshot()
    assert saved["step"] == "child_name"
    again = walk("welfare", plain("welfare", child_name="Kimberley"), state=saved, turn=3)
    assert again.asked[0] == "child_name"
    assert again.concern.child_name == "Kimberley"


def test_back_at_the_start_does_nothing() -> None:
    state = catalogue()["welfare"].new_state(NOW)
    with catalogue()["welfare"].attach(state, context()) as run:
        assert run.back() is False
        assert run.snapshot() == {**state, "step": "immediate_danger"}


def correct(flow_id: str, state: dict[str, Any], step_id: str) -> dict[str, Any]:
    with catalogue()[flow_id].attach(state, context()) as run:
        run.correct(step_id)
        assert run.state == step_id
        return run.snapshot()


def test_correct_reasks_one_step_and_keeps_the_later_answers() -> None:
    full = walk("welfare", plain("welfare"))
    state = correct("welfare", full.state, "child_name")
    fixed = walk("welfare", {"child_name": "Kimberley Smith"}, state=state, turn=len(full.asked))
    assert fixed.asked == ["child_name"]
    assert fixed.step == "done"
    before, after = full.concern.to_dict(), fixed.concern.to_dict()
    assert after["child_name"] == "Kimberley Smith"
    for key in ("observations", "location", "child_year", "occurred_at", "flags", "routing"):
        assert after[key] == before[key], key
    assert after["actions_taken"] == before["actions_taken"]


def test_correct_of_an_unknown_step_raises() -> None:
    state = walk("welfare", plain("welfare")).state
    with catalogue()["welfare"].attach(state, context()) as run, pytest.raises(KeyError):
        run.correct("emergency_called")


def test_correct_asks_only_the_new_steps_when_the_path_changes() -> None:
    duty = walk("fgm", plain("fgm"))
    assert "PERSONAL-DUTY" in duty.concern.flags
    state = correct("fgm", duty.state, "is_teacher")
    turn = len(duty.asked)
    not_teacher = walk("fgm", {"is_teacher": "no", "dsl_route": "ok"}, state=state, turn=turn)
    assert not_teacher.asked == ["is_teacher", "dsl_route"]
    assert not_teacher.step == "done"
    c = not_teacher.concern
    assert "PERSONAL-DUTY" not in c.flags
    assert c.police_reference is None
    assert c.child_name == "Amina" and c.words == "they cut me in the summer"
    assert not {"fgm_police_report", "fgm_legal_maximum"} & {d.id for d in c.deadlines}

    # and back again: answers from the abandoned duty path are NOT silently reused - the
    # police questions are asked afresh, so a stale police reference can never reappear
    state = correct("fgm", not_teacher.state, "is_teacher")
    back = walk(
        "fgm",
        {"is_teacher": "yes", "personal_duty": "ok", "police_called": "no"},
        state=state,
        turn=turn + 2,
    )
    assert back.asked == ["is_teacher", "personal_duty", "police_called"]
    assert back.concern.police_reference is None
    assert "PERSONAL-DUTY" in back.concern.flags


def test_correct_asks_the_steps_the_new_path_adds() -> None:
    ta = walk("fgm", plain("fgm", is_teacher="no"))
    assert "personal_duty" not in ta.asked
    state = correct("fgm", ta.state, "is_teacher")
    answers = {
        k: plain("fgm")[k]
        for k in (
            "is_teacher",
            "personal_duty",
            "police_called",
            "police_called_at",
            "police_reference",
        )
    }
    teacher = walk("fgm", answers, state=state, turn=len(ta.asked))
    assert teacher.asked == [
        "is_teacher",
        "personal_duty",
        "police_called",
        "police_called_at",
        "police_reference",
    ]
    assert teacher.step == "done"
    assert teacher.concern.police_reference == "ESX-2026-4711"
    assert "PERSONAL-DUTY" in teacher.concern.flags
    assert teacher.concern.child_name == "Amina"


def test_a_reasked_step_is_not_preceded_by_the_rules_again() -> None:
    state = at_step("nudes", "adult_involved")
    assert current_prompt("nudes", state).rules == ()
    with catalogue()["nudes"].attach(state, context()) as run:
        run.back()
        assert run.prompt().rules  # back at the first question: the rules come again


# -- bad flow files --------------------------------------------------------------------------


def _header(path: Path) -> tuple[str, str, str, str]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    what, expect, fix = lines[0], lines[1], lines[2]
    assert what.startswith("# Breaks: "), f"{path.name}: first line says what it breaks"
    assert expect.startswith("# expect: "), f"{path.name}: second line is the message regex"
    assert fix.startswith("# fix: "), f"{path.name}: third line is the fix"
    old, _, new = fix[len("# fix: ") :].rstrip("\n").partition(" =>")
    new = new[1:] if new.startswith(" ") else new
    return (
        expect[len("# expect: ") :].strip(),
        old.replace("\\n", "\n"),
        new.replace("\\n", "\n"),
        "".join(lines[3:]),  # the body: the header itself holds the bad text too
    )


def build(text: str, path: Path) -> CompiledFlow:
    return CompiledFlow(parse_flow(text, str(path), COMMON), KNOWN)


def test_every_kind_of_bad_flow_has_a_fixture() -> None:
    names = {p.stem for p in FIXTURE_FILES}
    assert names >= {
        "unknown_guard",
        "unreachable_step",
        "no_way_on",
        "dead_end_loop",
        "unknown_records",
        "unknown_flag",
        "unknown_route",
        "missing_source",
        "unknown_key",
        "duplicate_step",
        "unguarded_not_last",
        "unknown_next",
        "allegation_inherits_dsl_text",
        "allegation_names_dsl",
    }


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_a_bad_flow_file_is_refused_naming_the_file_and_the_step(path: Path) -> None:
    expect, _, _, text = _header(path)
    with pytest.raises(FlowDefinitionError, match=expect) as info:
        build(text, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_the_fixed_flow_file_compiles(path: Path) -> None:
    _, old, new, text = _header(path)
    assert old in text, f"{path.name}: the fix does not apply"
    fixed = text.replace(old, new, 1)
    flow = build(fixed, path)
    assert flow.definition.steps
    assert flow.definition.path == str(path)


def test_errors_list_every_culprit_at_once() -> None:
    text = (FIXTURES / "unknown_flag.yaml").read_text(encoding="utf-8")
    text = text.replace("kind: yes_no", "kind: yes_no\n    records: shoe_size")
    with pytest.raises(FlowDefinitionError) as info:
        build(text, FIXTURES / "unknown_flag.yaml")
    message = str(info.value)
    assert "unknown flag 'PANIC'" in message and "unknown field 'shoe_size'" in message


def test_yes_and_no_stay_strings_in_flow_files() -> None:
    data = safe_load("a: yes\nb: no\nc: on\nd: true\n")
    assert data == {"a": "yes", "b": "no", "c": "on", "d": True}
