"""Shared helpers for the flow tests: a fixed clock, the example schools, and `walk`.

`walk` drives a compiled flow turn by turn the way the conversation layer does: attach the
saved state, show the prompt, answer, take a snapshot - and between EVERY turn the state is
turned into JSON text and back, so every test also exercises save/resume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flows.calendar import working_days_for
from flows.catalogue import catalogue
from flows.concern import Concern, Reporter
from flows.engine import CompiledFlow, FlowContext, Outcome, Prompt
from flows.profile import SchoolProfile, example_profiles_dir, load_organisation

LONDON = ZoneInfo("Europe/London")
# Wednesday 18 November 2026, 10:00 in London: a term-time school morning.
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=LONDON)
TICK = timedelta(minutes=1)  # each answer is given one minute after the one before
REPORTER = Reporter(name="Sam Teacher", aad_object_id="aad-reporter-1", role="teacher")
CONCERN_ID = "c-test-1"
PROFILE_FILES = sorted(
    p for p in example_profiles_dir().glob("*.yaml") if p.name != "national.yaml"
)


@cache
def all_schools() -> tuple[SchoolProfile, ...]:
    """Every school in every example profile (national.yaml is only a base layer)."""
    return tuple(s for path in PROFILE_FILES for s in load_organisation(path).schools)


def school(school_id: str = "buttsbury-junior") -> SchoolProfile:
    for profile in all_schools():
        if profile.id == school_id:
            return profile
    raise KeyError(school_id)


def context(profile: SchoolProfile | None = None) -> FlowContext:
    profile = profile or school()
    return FlowContext(profile=profile, reporter=REPORTER, calendar=working_days_for(profile))


def json_round_trip(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a storage layer does to the state between turns."""
    return json.loads(json.dumps(state))


@dataclass
class Walk:
    """Everything a walk produced, in order."""

    state: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    # ("prompt", step_id, text) and ("say", step_id, text) in the order the user saw them
    transcript: list[tuple[str, str, str]] = field(default_factory=list)
    concern: Concern | None = None

    @property
    def asked(self) -> list[str]:
        return [p.step_id for p in self.prompts]

    @property
    def step(self) -> str:
        return self.state["step"]

    def prompt_for(self, step_id: str) -> Prompt:
        return next(p for p in self.prompts if p.step_id == step_id)

    def outcome_of(self, step_id: str) -> Outcome:
        """The outcome of the (first) answer to `step_id`."""
        return self.outcomes[self.asked.index(step_id)]

    def said(self) -> str:
        return "\n".join(text for kind, _, text in self.transcript if kind == "say")

    def __iter__(self):  # `state, outcomes, concern = walk(...)`
        return iter((self.state, self.outcomes, self.concern))


def _next_answer(answers: Any, step_id: str, used: dict[str, int]) -> Any:
    if isinstance(answers, Mapping):
        if step_id not in answers:
            raise LookupError(f"walk: no answer given for step {step_id!r}")
        value = answers[step_id]
        if isinstance(value, tuple):  # successive answers when the step is asked again
            value = value[used.get(step_id, 0)]
        used[step_id] = used.get(step_id, 0) + 1
        return value
    index = used.get("", 0)
    used[""] = index + 1
    return answers[index]


def walk(
    flow_id: str,
    answers: Mapping[str, Any] | Sequence[Any],
    profile: SchoolProfile | None = None,
    now: datetime = NOW,
    *,
    state: Mapping[str, Any] | None = None,
    turn: int = 0,
    limit: int | None = None,
    flows: Mapping[str, CompiledFlow] | None = None,
    prefill: Mapping[str, Any] | None = None,
) -> Walk:
    """Answer `flow_id` until it ends, the answers run out, or `limit` answers were given.

    `answers` is either a list (one per question, in order) or a mapping step id -> answer
    (a tuple gives successive answers to a step that is asked again). Answer n (counting
    from `turn`) is given at `now + n minutes`; the concern is read one tick after the last.
    """
    flows = flows or catalogue()
    flow = flows[flow_id]
    ctx = context(profile)
    if state is None:
        state = flow.new_state(now + turn * TICK, prefill=prefill)
        if prefill:
            with flow.attach(json_round_trip(state), ctx) as run:
                run.skip_prefilled()
                state = run.snapshot()
    result = Walk(state=json_round_trip(state))
    # answers already used (when resuming): one per step in the history so far
    used: dict[str, int] = {"": turn}
    for step_id in state["history"]:
        used[step_id] = used.get(step_id, 0) + 1
    total = len(answers) if not isinstance(answers, Mapping) else None
    given = 0
    while limit is None or given < limit:
        if total is not None and given >= total:
            break
        with flow.attach(json_round_trip(result.state), ctx) as run:
            if run.finished:
                break
            prompt = run.prompt()
            if isinstance(answers, Mapping) and prompt.step_id not in answers:
                break  # the caller stops here (e.g. to resume later)
            answer = _next_answer(answers, prompt.step_id, used)
            result.prompts.append(prompt)
            result.transcript.append(("prompt", prompt.step_id, prompt.text))
            outcome = run.answer(answer, now + (turn + given) * TICK)
            result.outcomes.append(outcome)
            result.transcript.extend(("say", prompt.step_id, text) for text in outcome.say)
            result.state = json_round_trip(run.snapshot())
        given += 1
    with flow.attach(json_round_trip(result.state), ctx) as run:
        result.concern = run.concern(CONCERN_ID, now + (turn + given) * TICK)
    return result


def straight_walk(
    flow_id: str,
    answers: Mapping[str, Any],
    profile: SchoolProfile | None = None,
    now: datetime = NOW,
) -> Concern:
    """The same walk without saving: one run attached for the whole conversation."""
    flow = catalogue()[flow_id]
    with flow.attach(flow.new_state(now), context(profile)) as run:
        used: dict[str, int] = {}
        given = 0
        while not run.finished and run.step.id in answers:
            run.answer(_next_answer(answers, run.step.id, used), now + given * TICK)
            given += 1
        return run.concern(CONCERN_ID, now + given * TICK)


def current_prompt(flow_id: str, state: Mapping[str, Any], profile: SchoolProfile | None = None):
    with catalogue()[flow_id].attach(json_round_trip(state), context(profile)) as run:
        return run.prompt()


# A plain path through every flow: no red flags, nobody in danger.
PLAIN: dict[str, dict[str, Any]] = {
    "disclosure": {
        "immediate_danger": "no",
        "abuser_relationship": "family",
        "child_name": "Alex Smith",
        "child_year": "Year 4",
        "child_status": "none",
        "occurred_at": "09:30",
        "location": "Classroom 4B",
        "people_present": "skip",
        "words": "my dad hit me with a belt",
        "observations": "A bruise on the left forearm",
        "injury_seen": "no",
        "going_home": "no",
        "siblings": "no",
        "what_you_did": "Listened and told the DSL",
        "dsl_told_in_person": "yes",
    },
    "nudes": {
        "immediate_danger": "no",
        "how_known": "child_told",
        "child_name": "Jo Bloggs, Year 9",
        "child_status": "none",
        "adult_involved": "no",
        "under_13": "no",
        "coercion": "no",
        "consent_concern": "no",
        "platform": "Snapchat",
        "how_widely": "Two friends, as told",
        "occurred_at": "yesterday 15:20",
        "device": "handed_to_dsl",
        "device_location": "DSL office safe",
        "anyone_viewed": "no",
        "what_you_did": "Reassured them and came to report",
        "dsl_told_in_person": "no",
    },
    "fgm": {
        "immediate_danger": "no",
        "how_known": "girl_told",
        "is_teacher": "yes",
        "under_18": "yes",
        "personal_duty": "ok",
        "dsl_route": "ok",
        "child_name": "Amina",
        "child_year": "Year 8",
        "child_status": "none",
        "child_age": "12",
        "occurred_at": "09:15",
        "words": "they cut me in the summer",
        "observations": "skip",
        "police_called": "yes",
        "police_called_at": "09:40",
        "police_reference": "ESX-2026-4711",
        "what_you_did": "Phoned the police",
        "dsl_told_in_person": "yes",
    },
    "missing_child": {
        "immediate_danger": "no",
        "child_name": "Leo Jones",
        "child_year": "Year 3",
        "last_seen_at": "09:40",
        "last_seen_where": "Playground, seen by Mrs Hill",
        "description": "Small, red coat, blue school jumper",
        "search_premises": "not_found",
        "contact_child": "no_details",
        "contact_parents": "no_answer",
        "police_report": "called_101",
        "incident_number": "INC-0042",
        "parents_told": "yes",
        "social_worker": "none",
        "found_yet": "still_missing",
        "child_status": "none",
    },
    "absence": {
        "immediate_danger": "no",
        "child_name": "Mia Brown",
        "child_year": "Year 6",
        "first_day_absent": "now",
        "first_day_calls": "no_answer",
        "child_status": "none",
        "missing_before": "no",
        "other_checks": "not_yet",
        "days_absent": "1",
        "what_you_did": "Called both contacts, no answer",
        "dsl_told_in_person": "yes",
    },
    "allegation": {
        "immediate_danger": "no",
        "subject_role": "teacher",
        "subject_name": "Mr Example",
        "harm_test": "low_level",
        "conflict_of_interest": "no",
        "low_level_conflict": "no",
        "child_name": "skip",
        "child_year": "skip",
        "child_status": "not_known",
        "occurred_at": "08:50",
        "location": "Corridor",
        "account": "Photographed pupils on his own phone",
        "injury_seen": "no",
        "words": "skip",
        "people_present": "skip",
        "what_you_did": "Came straight to report",
    },
    "child_on_child": {
        "immediate_danger": "no",
        "what_happened": "bullying",
        "school_adult": "no",
        "police_rule": "ok",
        "child_name": "Ria",
        "child_year": "Year 5",
        "child_status": "none",
        "other_children": "Tom, Year 5",
        "occurred_at": "09:00",
        "location": "Playground",
        "words": "he keeps calling me names",
        "observations": "skip",
        "injury_seen": "no",
        "kept_apart": "yes",
        "what_you_did": "Separated them",
        "dsl_told_in_person": "yes",
    },
    "welfare": {
        "immediate_danger": "no",
        "school_adult": "no",
        "concern_kind": "neglect",
        "child_name": "Kim",
        "child_year": "Year 2",
        "child_status": "none",
        "occurred_at": "08:45",
        "location": "Breakfast club",
        "observations": "Very hungry, same clothes all week",
        "injury_seen": "no",
        "words": "skip",
        "people_present": "skip",
        "what_you_did": "Gave breakfast",
        "dsl_told_in_person": "yes",
    },
}


def plain(flow_id: str, **overrides: Any) -> dict[str, Any]:
    """The plain answers for a flow with some changed (and any extra steps answered)."""
    return {**PLAIN[flow_id], "emergency_called": "now", **overrides}


DEFINITIONS_DIR = Path(__file__).resolve().parent.parent / "flows" / "definitions"
