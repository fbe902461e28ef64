# Generated walks over the answer paths of every flow, through the dialog session (switches
# between flows included): whenever a report carries an urgent flag, its alert already exists;
# later answers update that alert; the confirm completes it; an allegation's early alert never
# goes out before we know who it is about. Each path saves and reloads the state every turn.
#
# Coverage: every answer of every step is taken under every combination it can be reached
# with of the things the rule depends on - the urgent flags raised, the route, whether the alert has
# gone, whether the adult concerned is known - and every branch is followed to its end. (Every
# concrete path would be tens of thousands in `nudes` alone; two paths that agree on all of
# these cannot differ on this rule.)
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from dialogs.replies import Event
from dialogs.session import Session
from flows.catalogue import catalogue
from flows.concern import URGENT_FLAGS
from flows.definition import Step
from tests.flowkit import NOW, REPORTER, context, school

FLOWS = catalogue()
MAX_VISITS = 2  # a step asked again ("not yet - phone now") is walked twice, then moves on
SUBJECT_STEPS = {"subject_role", "subject_name"}


@dataclass
class Turn:
    """One answer and what it left behind."""

    flow: str
    step: str
    answer: Any
    events: list[Event]
    concern_id: str | None
    flags: frozenset[str]
    route: str | None
    answered: frozenset[str]  # step ids answered in the live flow


@dataclass
class Path:
    turns: list[Turn] = field(default_factory=list)

    def describe(self) -> str:
        return " -> ".join(f"{t.flow}.{t.step}={t.answer!r}" for t in self.turns)


def answers_for(step: Step) -> list[Any]:
    if step.kind == "choice":
        return [choice.value for choice in step.choices]
    if step.kind == "yes_no":
        return ["yes", "no"]
    return {"info": ["ok"], "datetime": ["now"], "number": [str(step.minimum or 1)]}.get(
        step.kind, [f"sample {step.id}"]
    )


def _turn(state: dict[str, Any], value: dict[str, Any] | None, at: int, ids: list[int]):
    def new_id() -> str:
        ids[0] += 1
        return f"concern-{ids[0]}"

    session = Session(school(), REPORTER, json.loads(json.dumps(state)), new_id=new_id)
    result = session.handle(None, value, now=NOW + timedelta(minutes=at))
    return json.loads(json.dumps(result.state)), result.events


def _live(state: dict[str, Any]) -> tuple[frozenset[str], str | None, frozenset[str]]:
    if state.get("mode") not in {"flow", "summary"}:
        return frozenset(), None, frozenset()
    flow_state = state["flow"]
    with FLOWS[flow_state["flow"]].attach(flow_state, context()) as run:
        return frozenset(run.flags()), run.route(), frozenset(flow_state["history"])


def generate(flow_id: str) -> Iterator[Path]:
    """Every path from the start of `flow_id` to its confirm (or its end)."""
    ids = [0]
    state, _ = _turn({}, {"action": "start", "flow": flow_id}, 0, ids)
    yield from _walk(state, Path(), ids, {}, set())


def _walk(
    state: dict[str, Any],
    path: Path,
    ids: list[int],
    visits: dict[str, int],
    covered: set[tuple[Any, ...]],
) -> Iterator[Path]:
    turn = len(path.turns) + 1
    if state.get("mode") == "summary":
        after, events = _turn(state, {"action": "confirm"}, turn, ids)
        flags, route, answered = _live(state)
        confirm = Turn("-", "confirm", "send", events, state["concern_id"], flags, route, answered)
        yield Path([*path.turns, confirm])
        return
    if state.get("mode") != "flow":
        yield path
        return
    flow_id, step_id = state["flow"]["flow"], state["flow"]["step"]
    step = FLOWS[flow_id].definition.step(step_id)
    key = f"{flow_id}.{step_id}"
    flags, route, answered = _live(state)
    decided = frozenset(s for s in answered if _decides(FLOWS[flow_id].definition.step(s)))
    context_now = (key, flags & URGENT_FLAGS, route, bool(state.get("raised")), decided)
    options = answers_for(step)
    if visits.get(key, 0) >= MAX_VISITS:  # asked again and again: take a way on
        options = [a for a in options if not _loops(step, a)]
    fresh = [a for a in options if (*context_now, a) not in covered]
    covered.update((*context_now, a) for a in fresh)
    for answer in fresh or options[:1]:
        value = {"action": "answer", "step": step_id, "value": answer}
        after, events = _turn(state, value, turn, ids)
        flags, route, answered = _live(after)
        record = Turn(
            flow_id, step_id, answer, events, after.get("concern_id"), flags, route, answered
        )
        seen = {**visits, key: visits.get(key, 0) + 1}
        yield from _walk(after, Path([*path.turns, record]), ids, seen, covered)


def _loops(step: Step, answer: Any) -> bool:
    return step.kind == "choice" and step.choice(answer).effect.next == step.id


def _decides(step: Step) -> bool:
    """A step whose answer may change who receives the report or who it is about."""
    effects = [step.effect, *(c.effect for c in step.choices)]
    return step.records in SUBJECT_STEPS or any(e.route or e.switch_to for e in effects)


def _decides_recipients(turn: Turn) -> bool:
    return turn.flow != "-" and _decides(FLOWS[turn.flow].definition.step(turn.step))


def check(path: Path) -> None:
    raised: dict[str, str] = {}  # concern id -> its route when the alert went out
    where = path.describe()
    # On an allegation route the alert may go only once every answer on this path that
    # decides who it is about or who receives it has been given.
    settled_from = max(
        (i for i, t in enumerate(path.turns) if t.route != "dsl_team" and _decides_recipients(t)),
        default=-1,
    )
    for index, turn in enumerate(path.turns):
        for event in turn.events:
            concern = event.concern
            route = concern.routing.route
            if event.kind == "concern_raised":
                assert concern.id not in raised, f"a second alert for one report: {where}"
                assert concern.status == "raised"
                if route != "dsl_team":  # never before we know who it is about, and who gets it
                    assert index >= settled_from, f"allegation alert too early: {where}"
                raised[concern.id] = route
            elif event.kind in {"concern_updated", "report_abandoned", "report_moved"}:
                assert concern.id in raised, f"{event.kind} without an alert: {where}"
                assert raised[concern.id] == route or event.kind == "report_moved", where
            elif event.kind == "concern_final" and concern.id in raised:
                # the confirm completes that same concern, for the same people
                assert raised[concern.id] == route, where
        urgent = turn.flags & URGENT_FLAGS
        if not urgent or turn.concern_id is None:
            continue
        if turn.route == "dsl_team" or index >= settled_from:
            # the alert exists by this very turn (the brief asks: by the next one)
            assert turn.concern_id in raised, f"{sorted(urgent)} raised but no alert: {where}"


@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_whenever_an_urgent_flag_is_up_its_alert_already_exists(flow_id: str) -> None:
    paths = 0
    urgent_paths = 0
    for path in generate(flow_id):
        check(path)
        paths += 1
        urgent_paths += any(t.flags & URGENT_FLAGS for t in path.turns)
    assert paths > 1 and urgent_paths > 0, (paths, urgent_paths)


def test_the_walk_catches_an_alert_that_waits_for_the_confirm(monkeypatch) -> None:
    """The check is not vacuous: with early alerts switched off it fails."""
    from flows import engine

    monkeypatch.setattr(engine.FlowRun, "alert_due", lambda self: False)
    with pytest.raises(AssertionError, match="raised but no alert"):
        for path in generate("welfare"):
            check(path)


def test_a_missing_child_alert_exists_after_the_first_answer_on_every_path() -> None:
    for path in generate("missing_child"):
        kinds = [e.kind for e in path.turns[0].events]
        assert kinds == ["concern_raised"], path.describe()


def test_the_walk_catches_an_allegation_alert_before_we_know_who_it_is_about(monkeypatch) -> None:
    """With the wait for the adult's identity switched off, the sealing check fails."""
    flow = FLOWS["allegation"]
    monkeypatch.setattr(flow, "recipients_open", dict.fromkeys(flow.recipients_open, False))
    with pytest.raises(AssertionError, match="allegation alert too early"):
        for path in generate("allegation"):
            check(path)
