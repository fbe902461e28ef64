"""Generated walks over the flow graphs: every answer path of an allegation, and a covering set
of every choice elsewhere, following switches between flows the way the conversation does.

Where a run is on an allegation route (or in a flow whose route is not the DSL team), every
combination of choices is walked, and the adult's name is tried as each person the profile
names and as a stranger. On the DSL route each choice is walked at least once for every set
of flags it can be reached with, so every switch into an allegation is taken with every
flag set that can precede it (URGENT, POLICE-NOW...).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flows.catalogue import catalogue
from flows.concern import Concern
from flows.definition import Step
from flows.engine import CARRIED_FLAGS, CompiledFlow
from flows.graph import DSL_ROUTE, edges
from flows.guards import GUARDS
from flows.routing import ROLES_NAMING_PEOPLE, named_people
from tests.flowkit import CONCERN_ID, NOW, TICK, context

STRANGER = "Mr Example"
# Flags that change how an allegation is delivered (when, and what the card says it is), or
# that a switch must carry (POLICE-NOW): walked in every combination. Other flags (SEND...)
# are only shown, so each answer raising them is walked once.
DELIVERY_FLAGS = frozenset({"URGENT", "POLICE-NOW", "ACCUSED-IS-DSL", "LOW-LEVEL-CONCERN"})
# Step ids and answer values the named guards read (they are written as literals in
# flows/guards.py); over-inclusive is safe - it only walks more.
GUARDED_STEPS = frozenset(
    step_id
    for guard in GUARDS.values()
    for step_id in re.findall(r"[\"']([a-z_0-9]+)[\"']", inspect.getsource(guard))
)


@dataclass(frozen=True)
class Shown:
    """One thing the reporter saw, with the route the report was on when they saw it."""

    flow: str
    step: str
    route: str
    kind: str  # rules | prompt | help | say | choice
    text: str


@dataclass
class Path:
    answers: list[tuple[str, str, Any]] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)
    concern: Concern | None = None
    # (flow state, concern id) part-way through an allegation: what a stalled notice would see
    partial_states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flows(self) -> list[str]:
        return list(dict.fromkeys(flow for flow, _, _ in self.answers))


def candidates(step: Step, profile: Any, sealed: bool, flow: Any = None) -> list[Any]:
    """The answers worth trying at a step. Choices that do exactly the same thing (same
    effects, not read by any guard, and - for the adult's role - the same people named) are
    one answer: the first stands for the others, whose labels are still shown and checked."""
    return [value for value, _ in _candidates(step, profile, sealed, flow)]


def _delivery(effect: Any, flow: Any, step: Step) -> tuple[Any, ...]:
    """What of an answer's effect can change who is told what later. (What it says at once
    is checked on the branch that walks it.) Where it goes next counts only when that opens
    decisions the other way does not reach."""
    flags = frozenset(effect.flags) & DELIVERY_FLAGS
    ahead = _decisions_from(flow, effect.next) if flow is not None and effect.next else None
    default = _decisions_from(flow, step.next[-1].dest) if flow is not None and step.next else None
    nxt = effect.next if ahead != default else None
    return (effect.route, effect.switch_to, nxt, effect.deadlines, flags)


_DECISIONS: dict[tuple[str, str], frozenset[str]] = {}


def _decisions_from(flow: Any, start: str) -> frozenset[str]:
    """Steps reachable from `start` where an answer changes the route, switches, raises a
    delivery flag, or is read by a guard."""
    key = (flow.id, start)
    if key not in _DECISIONS:
        index = {s.id: s for s in flow.steps}
        seen, todo = set(), [start]
        while todo:
            sid = todo.pop()
            if sid in seen or sid not in index:
                continue
            seen.add(sid)
            todo.extend(dest for _, dest in edges(index[sid]))
        _DECISIONS[key] = frozenset(
            sid
            for sid in seen
            if sid in index
            and (
                sid in GUARDED_STEPS
                or any(
                    c.effect.route or c.effect.switch_to or set(c.effect.flags) & DELIVERY_FLAGS
                    for c in index[sid].choices
                )
            )
        )
    return _DECISIONS[key]


def _candidates(step: Step, profile: Any, sealed: bool, flow: Any = None) -> list[tuple[Any, Any]]:
    """(answer, what it does for delivery) for the distinct answers at a step."""
    if step.kind in {"choice", "yes_no"}:
        seen: dict[Any, tuple[Any, Any]] = {}
        read_by_a_guard = step.id in GUARDED_STEPS
        for choice in step.choices:
            value = choice.value if step.kind == "choice" else choice.value == "yes"
            who = value if step.records == "subject_role" and value in ROLES_NAMING_PEOPLE else ""
            # a guard may tell them apart later: only by a value it names (or yes from no)
            named = step.kind == "yes_no" or str(value) in GUARDED_STEPS
            same = value if read_by_a_guard and named else ""
            seen.setdefault(
                (choice.effect, who, same),
                (value, (_delivery(choice.effect, flow, step), who, same)),
            )
        return list(seen.values())
    if step.kind == "info":
        return [("ok", None)]
    if step.kind == "datetime":
        return [("now", None)]
    if step.kind == "number":
        return [(str(step.minimum or 1), None)]
    if step.records == "subject_name" and sealed:
        # one name per place a person holds in the profile (the DSL and a deputy DSL both
        # stand for "someone on the DSL team")
        places = {}
        for person in named_people(profile):
            if any(_places(profile, person)):  # holding no role, they are like a stranger
                places.setdefault(_places(profile, person), person.name)
        return [(name, name) for name in (STRANGER, *places.values())]
    return [(f"sample {step.id}", None)]


def _places(profile: Any, person: Any) -> tuple[bool, ...]:
    me = person.aad_object_id
    return (
        me in {p.aad_object_id for p in profile.dsl_team()},
        me == profile.headteacher.aad_object_id,
        me in {p.aad_object_id for p in profile.case_managers},
        profile.deputy_head is not None and me == profile.deputy_head.aad_object_id,
        me == profile.chair_of_governors.aad_object_id,
    )


def generate(
    flow_id: str, profile: Any, flows: dict[str, CompiledFlow] | None = None
) -> Iterator[Path]:
    flows = flows or catalogue()
    covered: set[tuple[Any, ...]] = set()
    ctx = context(profile)
    start = flows[flow_id].new_state(NOW)
    with flows[flow_id].attach(start, ctx) as run:
        rules = [
            Shown(flow_id, run.state, flows[flow_id].definition.route, "rules", r)
            for r in run.prompt().rules
        ]
    yield from _walk(flows, ctx, profile, flow_id, start, Path(shown=rules), covered, 0)


def _walk(
    flows: dict[str, CompiledFlow],
    ctx: Any,
    profile: Any,
    flow_id: str,
    state: dict[str, Any],
    path: Path,
    covered: set[tuple[Any, ...]],
    turn: int,
    thin: bool = False,
    switched: bool = False,
) -> Iterator[Path]:
    """`thin`: a branch walked only to cover an answer - it goes on by first answers.
    `switched`: entered from another flow - who the adult is was walked in full when the
    allegation flow was walked on its own, so here only a stranger is walked in full."""
    flow = flows[flow_id]
    with flow.attach(_copy(state), ctx) as run:
        if run.finished:
            path.concern = run.concern(CONCERN_ID, NOW + turn * TICK)
            yield path
            return
        route = run.route()
        sealed = route != DSL_ROUTE or flow.definition.route != DSL_ROUTE
        step = run.step
        prompt = run.prompt()
        flags = frozenset(run.flags()) & DELIVERY_FLAGS
        found = _candidates(step, profile, sealed, flow.definition)
        options = [value for value, _ in found]
        first = _answer(run, flow_id, step, route, prompt, options[0])
    shown = [Shown(flow_id, step.id, route, "prompt", prompt.text)]
    if prompt.help:
        shown.append(Shown(flow_id, step.id, route, "help", prompt.help))
    shown.extend(Shown(flow_id, step.id, route, "choice", label) for _, label in prompt.choices)
    thin_ones: set[str] = set()
    if thin:
        options = options[:1]
    elif sealed:  # every answer that changes delivery; the others once each, thinly
        full: dict[Any, Any] = {}
        for value, does in found:
            if switched and step.records == "subject_name" and value != STRANGER:
                continue
            full.setdefault(does, value)
        rest = [v for v in options if v not in full.values()]
        fresh = [v for v in rest if (flow_id, step.id, str(v)) not in covered]
        covered.update((flow_id, step.id, str(v)) for v in fresh)
        thin_ones = {str(v) for v in fresh}
        options = [*full.values(), *fresh]
    else:  # cover each choice once per flag set; the first choice stands for the rest
        fresh = [a for a in options if (flow_id, step.id, str(a), flags) not in covered]
        covered.update((flow_id, step.id, str(a), flags) for a in fresh)
        options = fresh or options[:1]
    for answer in options:
        thin_here = thin or str(answer) in thin_ones
        if answer == options[0] and first[0] == answer:
            result = first
        else:
            with flow.attach(_copy(state), ctx) as run:
                result = _answer(run, flow_id, step, route, prompt, answer)
        _, said, new_state, target, carry = result
        branch = Path(
            answers=[*path.answers, (flow_id, step.id, answer)],
            shown=[*path.shown, *shown, *said],
            partial_states=list(path.partial_states),
        )
        if flow.definition.route != DSL_ROUTE and not target:
            branch.partial_states.append(new_state)
        if target:
            carried = frozenset(carry[CARRIED_FLAGS]["value"]) & DELIVERY_FLAGS
            entry = (target, carried, frozenset(carry))
            if entry in covered:  # this way into the flow was walked in full already
                continue
            covered.add(entry)
            yield from _switch(flows, ctx, profile, target, carry, branch, covered, turn + 1)
        else:
            yield from _walk(
                flows,
                ctx,
                profile,
                flow_id,
                new_state,
                branch,
                covered,
                turn + 1,
                thin_here,
                switched,
            )


def _answer(run: Any, flow_id: str, step: Step, route: str, prompt: Any, answer: Any) -> tuple:
    outcome = run.answer(answer, NOW + len(run.data["history"]) * TICK)
    target = outcome.switch_to
    said_route = catalogue()[target].definition.route if target else run.route()
    said = [Shown(flow_id, step.id, said_route, "say", t) for t in outcome.say]
    carry = run.carry_over() if target else None
    return answer, said, _copy(run.snapshot()), target, carry


def _switch(
    flows: dict[str, CompiledFlow],
    ctx: Any,
    profile: Any,
    target: str,
    carry: Any,
    path: Path,
    covered: set[tuple[Any, ...]],
    turn: int,
) -> Iterator[Path]:
    flow = flows[target]
    state = flow.new_state(NOW + turn * TICK, json.loads(json.dumps(carry)))
    with flow.attach(state, ctx) as run:
        run.skip_prefilled()  # kept answers are applied quietly, as the session does
        state = run.snapshot()
    yield from _walk(flows, ctx, profile, target, state, path, covered, turn, switched=True)


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))
