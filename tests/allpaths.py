"""Generate every answer path through a flow (each choice of every choice / yes-no step; one
typical answer for free text, times and numbers) and what the staff member saw on it.

Two paths that reach the same step with the same answers to every step a template or guard
reads (and the same flags, if a guard reads flags) show the same text from there on, so the
second is not walked again (without this, flows with many independent yes/no questions have
thousands of paths that differ only in answers nothing downstream reads)."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flows import guards
from flows.catalogue import catalogue
from flows.profile import SchoolProfile
from tests.flowkit import context

_TYPED = {"text": "words as typed", "datetime": "now", "number": "10", "info": "ok"}


@dataclass(frozen=True)
class Path:
    flow_id: str
    answers: tuple[tuple[str, Any], ...]
    seen: tuple[tuple[str, str], ...]  # (step id, text) for every prompt, rule and say
    end: str  # the final state, or "switch:<flow>"
    raised_by: str | None = None  # the step whose answer sent the alert first


def _candidates(prompt: Any) -> list[Any]:
    if prompt.choices:
        return [value for value, _ in prompt.choices]
    if prompt.kind in _TYPED:
        return [_TYPED[prompt.kind]]
    return ["words as typed"]


def _read_steps(flow: Any) -> set[str]:
    """Step ids whose answers some template or guard may read."""
    d = flow.definition
    texts = [d.dsl_decision, *(r.text for r in d.rules)]
    for step in d.steps:
        texts += [step.prompt, step.help or ""]
        texts += [e.say or "" for e in (step.effect, *(c.effect for c in step.choices))]
    texts.append(inspect.getsource(guards))
    blob = "\n".join(texts)
    return {s.id for s in d.steps if re.search(rf"\b{re.escape(s.id)}\b", blob)}


def every_path(
    flow_id: str, profile: SchoolProfile, now: datetime, keep: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Every path; `keep` names steps whose answer must never be merged away (a test that
    looks at what follows a given answer)."""
    flow = catalogue()[flow_id]
    ctx = context(profile)
    read = sorted(_read_steps(flow) | set(keep))
    flags_matter = "facts.flags" in inspect.getsource(guards)
    visited: set[str] = set()

    def go(
        state: dict[str, Any], answers: tuple, seen: tuple, tick: int, raised: str | None = None
    ) -> Iterator[Path]:
        with flow.attach(json.loads(json.dumps(state)), ctx) as run:
            if run.finished:
                yield Path(flow_id, answers, seen, run.state, raised)
                return
            given = state["answers"]
            key = json.dumps(
                [
                    run.state,
                    run.flags() if flags_matter else None,
                    [given.get(k, "-") for k in read],
                ],
                default=str,
            )
            if key in visited:  # what follows was walked already; what led here was not
                yield Path(flow_id, answers, seen, f"merged:{run.state}", raised)
                return
            visited.add(key)
            prompt = run.prompt()
            shown = (
                *seen,
                *((prompt.step_id, r) for r in prompt.rules),
                (prompt.step_id, prompt.text),
                *(((prompt.step_id, prompt.help),) if prompt.help else ()),
            )
            options = _candidates(prompt)
        for value in options:
            with flow.attach(json.loads(json.dumps(state)), ctx) as run:
                outcome = run.answer(value, now + timedelta(minutes=tick))
                after = (*shown, *((prompt.step_id, s) for s in outcome.say))
                taken = (*answers, (prompt.step_id, value))
                if outcome.switch_to:
                    yield Path(flow_id, taken, after, f"switch:{outcome.switch_to}", raised)
                    continue
                snapshot = run.snapshot()
                now_raised = raised or (prompt.step_id if outcome.raised else None)
            yield from go(snapshot, taken, after, tick + 1, now_raised)

    yield from go(flow.new_state(now), (), (), 0)
