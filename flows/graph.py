"""Check a flow's graph when it is compiled: names exist, every step reachable, no dead ends."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator, Mapping

from flows.definition import FINAL_STATES, FlowDefinition, FlowDefinitionError, Step

SWITCH = "switched"
DSL_ROUTE = "dsl_team"
# Words that point someone at the DSL team, in the template text (before rendering, so a
# `{{ school.dsl.name }}` counts too). Choice labels are not checked: "the DSL or a deputy
# DSL" is who an allegation may be about, not where it goes.
NAMES_DSL_TEAM = re.compile(
    r"\bD?DSLs?\b|designated safeguarding|safeguarding lead|school\.(?:dsl|deputies)\b"
    r"|dsl_(?:team|channel)",
    re.IGNORECASE,
)


def edges(step: Step) -> list[tuple[str, str]]:
    """(label, destination) pairs leaving a step, in the order they are tried.
    A switch to another flow is the destination 'switched:<flow id>'."""
    out: list[tuple[str, str]] = []
    for choice in step.choices:
        if choice.effect.switch_to:
            out.append((choice.label, f"{SWITCH}:{choice.effect.switch_to}"))
        elif choice.effect.next:
            out.append((choice.label, choice.effect.next))
    if step.effect.switch_to:
        out.append(("", f"{SWITCH}:{step.effect.switch_to}"))
    for branch in step.next:
        guards = [*branch.conditions, *(f"not {name}" for name in branch.unless)]
        out.append((" and ".join(guards), branch.dest))
    return out


def is_end(state: str) -> bool:
    return state in FINAL_STATES or state.startswith(SWITCH)


def _always_moves_on(step: Step) -> bool:
    """True when some transition fires whatever the answer (no trap states)."""
    if step.effect.switch_to or any(not (b.conditions or b.unless) for b in step.next):
        return True
    return bool(step.choices) and all(c.effect.next or c.effect.switch_to for c in step.choices)


def _walk(start: str, graph: Mapping[str, Iterable[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def check_graph(
    flow: FlowDefinition,
    guards: Container[str],
    deadlines: Container[str],
    known_flows: Container[str],
) -> None:
    """Raise one FlowDefinitionError listing every culprit, or return None."""
    problems: list[str] = []
    ids = [step.id for step in flow.steps]
    states = set(ids) | set(FINAL_STATES)

    def problem(where: str, what: str) -> None:
        problems.append(f"{flow.path}: {where}: {what}")

    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        problem("flow.steps", f"duplicate step ids {duplicates}")
    for name in flow.deadlines:
        if name not in deadlines:
            problem("flow.deadlines", f"unknown deadline {name!r}")

    for step in flow.steps:
        where = f"step '{step.id}'"
        effects = [step.effect, *(c.effect for c in step.choices)]
        for effect in effects:
            if effect.next and effect.next not in states:
                problem(where, f"goes to unknown step {effect.next!r}")
            if effect.switch_to and effect.switch_to not in known_flows:
                problem(where, f"switches to unknown flow {effect.switch_to!r}")
            for name in effect.deadlines:
                if name not in deadlines:
                    problem(where, f"unknown deadline {name!r}")
        for branch in step.next:
            if branch.dest not in states:
                problem(where, f"goes to unknown step {branch.dest!r}")
            for name in (*branch.conditions, *branch.unless):
                if name not in guards:
                    problem(where, f"unknown guard {name!r} (add it to flows/guards.py)")
        unguarded = [i for i, b in enumerate(step.next) if not (b.conditions or b.unless)]
        if unguarded and unguarded[0] != len(step.next) - 1:
            problem(where, "the unguarded fallback must be the last branch (later ones never run)")
        if not _always_moves_on(step):
            problem(where, "has no way on for some answers: add an unguarded `next` last")

    graph = {step.id: [dest for _, dest in edges(step)] for step in flow.steps}
    if flow.steps:
        reachable = _walk(flow.initial, graph)
        unreachable = [i for i in ids if i not in reachable]
        if unreachable:
            problem("flow.steps", f"these steps cannot be reached: {unreachable}")
        stuck = [i for i in ids if not any(map(is_end, _walk(i, graph)))]
        if stuck:
            problem("flow.steps", f"these steps never reach an end (done/exit): {stuck}")

    for where, route, text in _texts_by_route(flow):
        found = NAMES_DSL_TEAM.search(text) if route != DSL_ROUTE else None
        if found:
            problem(
                where,
                f"names the DSL team ({found.group(0)!r}) on the {route!r} route: an "
                "allegation must never be sent or directed to the DSL team. Give this flow "
                "its own wording (override a shared step's text in the flow file).",
            )

    if problems:
        raise FlowDefinitionError("\n".join(problems))


# Rough seconds a step takes on a phone: a tap, a picked time, or typing a sentence.
SECONDS_BY_KIND = {"yes_no": 8, "choice": 10, "info": 8, "number": 12, "datetime": 12, "text": 35}


def shortest_to_done(flow: FlowDefinition, step_id: str) -> list[str]:
    """Step ids from `step_id` (included) to `done` along the fewest questions: what is left
    if nothing else comes up. A flow that can only exit or switch counts those as ends."""
    graph = {step.id: [dest for _, dest in edges(step)] for step in flow.steps}
    for goal in (lambda s: s == "done", is_end):
        came_from: dict[str, str | None] = {step_id: None}
        todo = [step_id]
        while todo:
            current, todo = todo[0], todo[1:]
            if goal(current):
                path: list[str] = []
                while came_from[current] is not None:
                    current = came_from[current]  # type: ignore[assignment]
                    path.append(current)
                return path[::-1]
            for nxt in graph.get(current, ()):
                if nxt not in came_from:
                    came_from[nxt] = current
                    todo.append(nxt)
    return [step_id]


def progress(flow: FlowDefinition, step_id: str, answered: int) -> tuple[int, int, int]:
    """(this question's number, questions in all, seconds left) for a run at `step_id`."""
    left = shortest_to_done(flow, step_id)
    seconds = sum(SECONDS_BY_KIND.get(flow.step(s).kind, 20) for s in left)
    return answered + 1, answered + len(left), seconds


def routes_at_steps(flow: FlowDefinition) -> dict[str, set[str]]:
    """Every route a run may be on when it reaches each step (choices may change the route)."""
    at: dict[str, set[str]] = {step.id: set() for step in flow.steps}
    if not flow.steps:
        return at
    index = {step.id: step for step in flow.steps}
    todo = [(flow.initial, flow.route)]
    while todo:
        step_id, route = todo.pop()
        if step_id not in index or route in at[step_id]:
            continue
        at[step_id].add(route)
        step = index[step_id]
        after_step = step.effect.route or route
        afters = {c.effect.route or after_step for c in step.choices} or {after_step}
        for choice in step.choices:
            if choice.effect.next:
                todo.append((choice.effect.next, choice.effect.route or after_step))
        for branch in step.next:
            todo.extend((branch.dest, after) for after in afters)
    return at


def _texts_by_route(flow: FlowDefinition) -> Iterator[tuple[str, str, str]]:
    """(where, route, template text) for every text a reporter or recipient may be shown."""
    for i, rule in enumerate(flow.rules):
        yield f"rules[{i}]", flow.route, rule.text
    yield "flow.dsl_decision", flow.route, flow.dsl_decision
    routes = routes_at_steps(flow)
    for step in flow.steps:
        for route in sorted(routes[step.id]):
            where = f"step '{step.id}'"
            for key in ("prompt", "help", "label"):
                yield f"{where}.{key}", route, getattr(step, key) or ""
            after_step = step.effect.route or route
            if step.effect.say:
                yield f"{where}.say", after_step, step.effect.say
            for choice in step.choices:
                if choice.effect.say:
                    after = choice.effect.route or after_step
                    yield f"{where}.{choice.value}.say", after, choice.effect.say


def reachable(flow: FlowDefinition, start: str) -> set[str]:
    """Step ids that can still be asked from `start` (itself included), within this flow."""
    graph = {step.id: [dest for _, dest in edges(step)] for step in flow.steps}
    return {state for state in _walk(start, graph) if state in graph}
