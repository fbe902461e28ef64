"""The shipped flow files: sound graphs, cited sources, texts that render for every school,
and no phone number written into a flow (numbers come from the school's contact directory)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.catalogue import compile_all, definitions_dir, load_definitions
from flows.deadlines import DEADLINES
from flows.definition import FINAL_STATES, FlowDefinition, Step
from flows.graph import check_graph, edges, is_end
from flows.guards import GUARDS
from flows.procedure_text import render, template_context
from flows.profile import SchoolProfile
from tests.flowkit import all_schools

DEFINITIONS = load_definitions()
FLOWS = sorted(DEFINITIONS.values(), key=lambda d: d.id)
FLOW_FILES = sorted(definitions_dir().glob("*.yaml"))
EXPECTED = {
    "absence",
    "disclosure",
    "nudes",
    "fgm",
    "missing_child",
    "allegation",
    "child_on_child",
    "welfare",
}

# A phone number is any run of three or more digits (999 and 101 included).
PHONE_LIKE = re.compile(r"\d{3,}")
# An ISO date given as an example of what to type ('2026-11-20 09:15') is not a number.
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Raw-YAML lines that are identifiers or citations, never shown as instructions to dial.
NOT_SHOWN = re.compile(r"^\s*(?:-\s*)?(?:source|flags|value)\s*:")


def phone_like(text: str) -> list[str]:
    return PHONE_LIKE.findall(ISO_DATE.sub("", text))


def by_id(flow: FlowDefinition) -> str:
    return flow.id


def _says(step: Step) -> Iterator[str]:
    for effect in (step.effect, *(c.effect for c in step.choices)):
        if effect.say:
            yield effect.say


def texts(flow: FlowDefinition) -> Iterator[tuple[str, str]]:
    """(where, template) for every text a flow shows: prompts, help, says, rules, labels."""
    yield "dsl_decision", flow.dsl_decision
    for i, rule in enumerate(flow.rules):
        yield f"rules[{i}]", rule.text
    for step in flow.steps:
        yield f"{step.id}.prompt", step.prompt
        yield f"{step.id}.label", step.label
        if step.help:
            yield f"{step.id}.help", step.help
        for i, say in enumerate(_says(step)):
            yield f"{step.id}.say[{i}]", say
        for choice in step.choices:
            yield f"{step.id}.choice[{choice.value}].label", choice.label


def _raw_value(step: Step, choice_value: str | None) -> Any:
    if step.kind == "yes_no":
        return choice_value == "yes"
    if step.kind == "choice":
        return choice_value
    if step.kind == "number":
        return step.minimum or 1
    return f"sample {step.id}"


def value_sets(flow: FlowDefinition) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(answers, values) to render with: a base with every step answered, then one variant
    per choice of every step a template branches on (`values.<step>`), so every `{% if %}`
    branch is rendered at least once."""
    base_choice = {s.id: (s.choices[0].value if s.choices else None) for s in flow.steps}
    branched = {m for _, t in texts(flow) for m in re.findall(r"values\.(\w+)", t)}
    variants: list[dict[str, str | None]] = [base_choice]
    for step_id in sorted(branched):
        step = flow.step(step_id)
        for choice in step.choices:
            variants.append({**base_choice, step_id: choice.value})
    out = []
    for chosen in variants:
        values = {s.id: _raw_value(s, chosen[s.id]) for s in flow.steps}
        answers = {
            s.id: (s.choice(chosen[s.id]).label if s.choices else str(values[s.id]))
            for s in flow.steps
        }
        out.append((answers, values))
    return out


def test_the_expected_flows_ship() -> None:
    assert set(DEFINITIONS) == EXPECTED


@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_graph_checks_pass(flow: FlowDefinition) -> None:
    check_graph(flow, GUARDS, DEADLINES, frozenset(DEFINITIONS))
    compile_all({flow.id: flow, **{k: v for k, v in DEFINITIONS.items() if k != flow.id}})


@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_every_step_is_reachable_and_every_path_ends(flow: FlowDefinition) -> None:
    """Independently of check_graph: walk the edges from the first step."""
    graph = {step.id: [dest for _, dest in edges(step)] for step in flow.steps}
    seen, todo = {flow.initial}, [flow.initial]
    while todo:
        for nxt in graph.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert {s.id for s in flow.steps} <= seen
    assert seen & set(FINAL_STATES), "no path reaches done/exit"
    ids = {s.id for s in flow.steps}
    for dest in seen:
        assert dest in ids or is_end(dest), f"{flow.id}: edge to unknown {dest!r}"
    # from every step some end is still reachable (no dead-end loops)
    for step in flow.steps:
        reach, todo = {step.id}, [step.id]
        while todo:
            for nxt in graph.get(todo.pop(), []):
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        assert any(is_end(s) for s in reach), f"{flow.id}: {step.id} never ends"


@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_every_step_and_rule_cites_a_source(flow: FlowDefinition) -> None:
    assert flow.steps
    for step in flow.steps:
        assert step.source.strip(), f"{flow.id}.{step.id} has no source"
    for rule in flow.rules:
        assert rule.source.strip(), f"{flow.id}: rule {rule.text[:30]!r} has no source"


@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_every_flow_starts_with_immediate_danger(flow: FlowDefinition) -> None:
    # A missing child's alert goes on the first answer (which child), so 999 is asked second.
    first = flow.steps[1 if flow.id == "missing_child" else 0]
    assert (first.id, first.kind) == ("immediate_danger", "yes_no")
    assert {"URGENT", "CALL-999"} <= set(first.choice("yes").effect.flags)


SCHOOLS = all_schools()


@pytest.mark.parametrize("school", SCHOOLS, ids=lambda s: s.id)
@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_every_text_renders_for_every_school(flow: FlowDefinition, school: SchoolProfile) -> None:
    for (answers, values), in_hours in itertools.product(value_sets(flow), (True, False)):
        context = template_context(school, answers, values, in_school_hours=in_hours)
        for where, template in texts(flow):
            try:
                shown = render(template, context)
            except Exception as exc:  # StrictUndefined, unknown contact id, syntax...
                pytest.fail(f"{flow.id} {where} does not render for {school.id}: {exc!r}")
            assert shown, f"{flow.id} {where} renders empty"
            assert "(number not set)" not in shown, f"{flow.id} {where}: no number for {school.id}"
            assert "{{" not in shown and "{%" not in shown


def test_every_branch_of_the_fgm_dsl_route_text_is_rendered() -> None:
    """The value sets reach every `{% if %}` branch (otherwise the render test proves little)."""
    flow = DEFINITIONS["fgm"]
    template = flow.step("dsl_route").prompt
    shown = {
        render(template, template_context(SCHOOLS[0], answers, values))
        for answers, values in value_sets(flow)
    }
    reasons = {"at risk", "anyone doing teaching work", "18 or over", "someone else told you"}
    assert all(any(reason in text for text in shown) for reason in reasons)


@pytest.mark.parametrize("flow", FLOWS, ids=by_id)
def test_no_phone_number_in_flow_texts(flow: FlowDefinition) -> None:
    found = {where: phone_like(text) for where, text in texts(flow) if phone_like(text)}
    assert not found, f"{flow.path}: write numbers as contact()/number(), found {found}"


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_no_phone_number_in_raw_flow_files(path: Path) -> None:
    bad = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if not NOT_SHOWN.match(line) and phone_like(line)
    ]
    assert not bad, "phone numbers must come from the profile's contact directory:\n" + "\n".join(
        bad
    )


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("      Phone 999 NOW (ambulance or police).", True),
        ("    prompt: Have you phoned 101 yet?", True),
        ("      label: LADO on 03330 139 797", True),
        ('    source: "FGM Act 2003 s5B"', False),
        ("      - value: called_101", False),
        ("      flags: [URGENT, CALL-999]", False),
        ("      'yesterday 15:20', '2026-11-20 09:15' or 'now'.", False),
        ("      Phone {{ number('emergency') }} NOW.", False),
    ],
)
def test_the_phone_number_scan_itself(line: str, flagged: bool) -> None:
    assert (not NOT_SHOWN.match(line) and bool(phone_like(line))) is flagged


def test_rendered_emergency_text_uses_the_profile_number() -> None:
    """999 reaches the user only through the contact directory."""
    flow = DEFINITIONS["disclosure"]
    say = flow.steps[0].choice("yes").effect.say
    assert say is not None
    for school in SCHOOLS:
        assert school.contact("emergency").number in render(say, template_context(school))


def test_value_sets_cover_every_choice_of_branched_steps() -> None:
    flow = DEFINITIONS["fgm"]
    seen = {values["how_known"] for _, values in value_sets(flow)}
    assert seen == {c.value for c in flow.step("how_known").choices}
    teacher = {values["is_teacher"] for _, values in value_sets(flow)}
    assert teacher == {c.value for c in flow.step("is_teacher").choices}
