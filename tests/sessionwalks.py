"""Generated walks through the dialog session, for tests that check what staff are shown.

From the menu press to Send, through every flow a switch leads to. Every (flow, step,
answer) is taken at least once; a path stops where every answer of its step was taken
before (what follows was walked then) and goes on to Send otherwise. Each turn saves and
reloads the session state as JSON, as the edge does. A turn is its list of replies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from dialogs.replies import Reply
from dialogs.session import Session
from flows.catalogue import catalogue
from tests.flowkit import REPORTER

FLOWS = catalogue()
SECOND = timedelta(seconds=1)  # each answer is given one second after the one before


def answers_for(step: Any) -> list[Any]:
    if step.kind == "choice":
        return [choice.value for choice in step.choices]
    if step.kind == "yes_no":
        return ["yes", "no"]
    return {"info": ["ok"], "datetime": ["now"], "number": [str(step.minimum or 1)]}.get(
        step.kind, [f"sample {step.id}"]
    )


EVERY_ANSWER = {
    (flow_id, step.id, answer)
    for flow_id, flow in FLOWS.items()
    for step in flow.definition.steps
    for answer in answers_for(step)
}


def turn(
    profile: Any, state: dict[str, Any], now: datetime, value: dict | None = None, text: str = ""
) -> tuple[dict[str, Any], list[Reply]]:
    session = Session(profile, REPORTER, json.loads(json.dumps(state)), new_id=lambda: "c-1")
    result = session.handle(text, value, now=now)
    return json.loads(json.dumps(result.state)), result.replies


def walks(
    flow_id: str, profile: Any, start: datetime, covered: set | None = None
) -> Iterator[list[list[Reply]]]:
    """Reports' replies, turn by turn; `covered` collects each (flow, step, answer) taken."""
    covered = set() if covered is None else covered
    state, first = turn(profile, {}, start, {"action": "start", "flow": flow_id})
    yield from _walk(profile, state, [first], start, covered)


def _walk(profile, state, turns, now, covered) -> Iterator[list[list[Reply]]]:
    now += SECOND
    if state.get("mode") == "summary":
        _, said = turn(profile, state, now, {"action": "confirm"})
        yield [*turns, said]
        return
    if state.get("mode") != "flow":
        yield turns
        return
    flow_id, step_id = state["flow"]["flow"], state["flow"]["step"]
    step = FLOWS[flow_id].definition.step(step_id)
    fresh = [a for a in answers_for(step) if (flow_id, step_id, a) not in covered]
    covered.update((flow_id, step_id, a) for a in fresh)
    if not fresh:
        yield turns
        return
    for answer in fresh:
        value = {"action": "answer", "step": step_id, "value": answer}
        after, said = turn(profile, state, now, value)
        yield from _walk(profile, after, [*turns, said], now, covered)
