"""Issue 7 s5: what the seed policies require that no flow covered - proved over every path.

Paths are generated, not picked: `all_paths` answers every shipped flow with every choice
at every step whose answer can change the path or the flags, so an invariant checked here
holds for every way a reporter can go through a flow (see `_branching`).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from dialogs.triage import suggest
from flows import guards
from flows.catalogue import catalogue
from flows.concern import Concern
from flows.definition import Step
from flows.graph import edges
from tests.flowkit import CONCERN_ID, NOW, TICK, all_schools, context, plain, school, walk

CHILD_FLOWS = sorted(
    flow_id
    for flow_id, flow in catalogue().items()
    if any(step.id == "child_name" for step in flow.definition.steps)
)
BODY_MAP = [
    "body_map_side",
    "body_map_region",
    "body_map_laterality",
    "body_map_size",
    "body_map_colour",
    "body_map_shape",
    "body_map_notes",
]
# Step ids a guard reads: their answers can change the path even without an effect.
GUARD_READS = set(re.findall(r'(?:said_yes|chose)\("(\w+)"', inspect.getsource(guards)))


# -- every path, generated -------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    flow_id: str
    answers: tuple[tuple[str, Any], ...]  # (step id, answer) in the order asked
    end: str  # done | exit | switched
    concern: Concern

    def answer(self, step_id: str) -> Any:
        return dict(self.answers).get(step_id)

    @property
    def asked(self) -> list[str]:
        return [step_id for step_id, _ in self.answers]


@dataclass(frozen=True)
class Answered:
    """One answer given somewhere in the exploration, with the flags right after it."""

    flow_id: str
    step_id: str
    value: Any
    flags: frozenset[str]
    before: tuple[tuple[str, Any], ...]  # the answers that led here


@dataclass(frozen=True)
class Exploration:
    paths: tuple[Path, ...]
    answered: tuple[Answered, ...]


def _branching(step: Step) -> bool:
    """A step whose answer may change the path or the record: try every answer. Any other
    choice (a body-map colour, say) has no effect and no guard reads it, so one will do."""
    if step.kind == "yes_no" or step.id in GUARD_READS:
        return True
    return any(
        c.effect.flags or c.effect.next or c.effect.switch_to or c.effect.route
        for c in step.choices
    )


def _answers(step: Step) -> list[Any]:
    if step.kind == "yes_no":
        return ["yes", "no"]
    if step.kind == "choice":
        values = [c.value for c in step.choices]
        return values if _branching(step) else values[:1]
    if step.kind == "info":
        return ["ok"]
    if step.kind == "datetime":
        return ["now"]
    if step.kind == "number":
        return [str(step.minimum or 10)]
    return ["Typed answer"]


@cache
def explore(flow_id: str) -> Exploration:
    """Every answer at every reachable point of a flow, depth first.

    Two partial paths standing at the same step with the same steps asked, the same flags,
    the same route, the same answers to the steps guards read and the same earlier answers
    to this step have the same futures (flags only ever accumulate), so the second is not
    expanded again: every answer is still tried at every distinct point. A step asked
    again (missing child's 'not yet') is tried with each other answer, never in a loop."""
    flow = catalogue()[flow_id]
    ctx = context(school())
    paths: list[Path] = []
    answered: list[Answered] = []
    expanded: set[Any] = set()

    def go(state: dict[str, Any], answers: tuple[tuple[str, Any], ...]) -> None:
        with flow.attach(state, ctx) as run:
            if run.finished:
                end = run.state if run.state in ("done", "exit") else "switched"
                paths.append(Path(flow_id, answers, end, run.concern(CONCERN_ID, NOW)))
                return
            step = run.step
            given = run.data["answers"]
            seen = tuple(value for step_id, value in answers if step_id == step.id)
            signature = (
                step.id,
                frozenset(run.data["history"]),
                frozenset(run.flags()),
                run.route(),
                tuple(sorted((k, repr(v)) for k, v in given.items() if k in GUARD_READS)),
                seen,
            )
        if signature in expanded:
            return
        expanded.add(signature)
        for value in _answers(step):
            if value in seen:
                continue  # asked again: only a different answer can lead anywhere new
            with flow.attach(state, ctx) as run:
                run.answer(value, NOW + len(answers) * TICK)
                after = run.snapshot()
                flags = frozenset(run.flags())
            answered.append(Answered(flow_id, step.id, value, flags, answers))
            go(after, (*answers, (step.id, value)))

    go(flow.new_state(NOW), ())
    return Exploration(tuple(paths), tuple(answered))


def all_paths(flow_id: str) -> tuple[Path, ...]:
    return explore(flow_id).paths


def test_the_path_generator_reaches_every_step_and_every_end() -> None:
    for flow_id, flow in catalogue().items():
        paths = all_paths(flow_id)
        asked = {step_id for p in paths for step_id in p.asked}
        assert asked == {s.id for s in flow.definition.steps}, flow_id
        assert any(p.end == "done" for p in paths), flow_id


# -- every child flow asks: social worker / looked after / SEND ------------------------------


def test_every_child_flow_is_known() -> None:
    assert set(CHILD_FLOWS) == set(catalogue()) and len(CHILD_FLOWS) == 8


@pytest.mark.parametrize("flow_id", CHILD_FLOWS)
def test_no_route_to_the_summary_avoids_the_child_status_question(flow_id: str) -> None:
    """On the graph (every edge, guards ignored - a superset of the real paths): without the
    child_status step, `done` cannot be reached."""
    definition = catalogue()[flow_id].definition
    graph = {s.id: [dest for _, dest in edges(s)] for s in definition.steps}
    seen, todo = {definition.initial}, [definition.initial]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt != "child_status" and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert "done" not in seen, f"{flow_id}: a path reaches the summary without child_status"


@pytest.mark.parametrize("flow_id", CHILD_FLOWS)
def test_every_generated_path_to_the_summary_asks_child_status(flow_id: str) -> None:
    labels = {
        c.value: c.label for c in catalogue()[flow_id].definition.step("child_status").choices
    }
    for path in all_paths(flow_id):
        if path.end != "done":
            continue
        assert "child_status" in path.asked, path.asked
        shown = {d.label: d.value for d in path.concern.details}
        assert shown["Social worker / looked after / SEND"] == labels[path.answer("child_status")]


@pytest.mark.parametrize(
    ("answer", "flags"),
    [
        ("looked_after", {"LOOKED-AFTER"}),
        ("looked_after_send", {"LOOKED-AFTER", "SEND"}),
        ("social_worker", {"SOCIAL-WORKER"}),
        ("social_worker_send", {"SOCIAL-WORKER", "SEND"}),
        ("send", {"SEND"}),
        ("none", set()),
        ("not_known", set()),
    ],
)
def test_child_status_flags_what_the_dsl_must_know(answer: str, flags: set[str]) -> None:
    marks = {"LOOKED-AFTER", "SOCIAL-WORKER", "SEND"}
    for flow_id in CHILD_FLOWS:
        concern = walk(flow_id, plain(flow_id, child_status=answer)).concern
        assert concern.status == "final", flow_id
        assert set(concern.flags) & marks == flags, flow_id


# -- the body map ----------------------------------------------------------------------------

INJURY_FLOWS = ["allegation", "child_on_child", "disclosure", "welfare"]
INJURY = {
    "injury_seen": "yes",
    "body_map_side": "back",
    "body_map_region": "upper arm",
    "body_map_laterality": "left",
    "body_map_size": "palm",
    "body_map_colour": "blue_purple",
    "body_map_shape": "pattern",
    "body_map_notes": "A second, smaller mark on the right wrist.",
}


def test_the_body_map_is_in_every_flow_where_injuries_are_recorded() -> None:
    has = sorted(f for f, c in catalogue().items() if "injury_seen" in c.definition._index)
    assert has == INJURY_FLOWS


@pytest.mark.parametrize("flow_id", INJURY_FLOWS)
def test_an_injury_seen_is_recorded_on_the_body_map(flow_id: str) -> None:
    w = walk(flow_id, plain(flow_id, **INJURY))
    assert w.step == "done"
    at = w.asked.index("injury_seen")
    assert w.asked[at + 1 : at + 1 + len(BODY_MAP)] == BODY_MAP
    shown = {d.label: d.value for d in w.concern.details}
    assert shown["Injury or mark seen"] == "Yes"
    assert shown["Body map: front or back"] == "Back of the body"
    assert shown["Body map: where"] == "Upper arm"
    assert shown["Body map: side"] == "The child's left"
    assert shown["Body map: size"] == "Up to the size of the child's palm"
    assert shown["Body map: colour"] == "Blue or purple"
    assert shown["Body map: shape"].startswith("A pattern or outline")
    assert shown["Body map: other marks and anything else seen"] == INJURY["body_map_notes"]
    # No photograph is ever asked for: every body-map question is a choice or words.
    kinds = {catalogue()[flow_id].definition.step(s).kind for s in BODY_MAP}
    assert kinds == {"choice", "text"}


@pytest.mark.parametrize("flow_id", INJURY_FLOWS)
def test_every_path_with_an_injury_walks_the_whole_body_map(flow_id: str) -> None:
    for path in all_paths(flow_id):
        if path.answer("injury_seen") is None:
            continue
        asked = path.asked
        at = asked.index("injury_seen")
        if path.answer("injury_seen") == "yes":
            assert asked[at + 1 : at + 1 + len(BODY_MAP)] == BODY_MAP
        else:
            assert not set(BODY_MAP) & set(asked)


def test_no_injury_means_no_body_map() -> None:
    w = walk("disclosure", plain("disclosure"))
    assert "injury_seen" in w.asked and not set(BODY_MAP) & set(w.asked)
    assert not any(d.label.startswith("Body map") for d in w.concern.details)


# -- welfare: weapons, suicide risk, exploitation, radicalisation, grooming, forced marriage ---

# For each answer: the flags every path that gives it must carry.
REQUIRED_FLAGS: dict[tuple[str, str], set[str]] = {
    ("weapon", "now"): {"URGENT", "CALL-999", "POLICE-NOW", "WEAPON"},
    ("weapon", "before"): {"WEAPON"},
    ("suicide_risk", "injured"): {"URGENT", "CALL-999", "SUICIDE-RISK"},
    ("suicide_risk", "suicidal"): {"URGENT", "SUICIDE-RISK"},
    ("suicide_risk", "not_sure"): {"URGENT", "SUICIDE-RISK"},
    ("leaving_country", "yes"): {"URGENT", "CALL-999", "POLICE-NOW"},
    ("radicalisation_risk", "yes"): {"URGENT", "CALL-999", "POLICE-NOW"},
    ("exploitation_now", "yes"): {"URGENT", "POLICE-NOW"},
    ("grooming_asked", "meeting"): {"URGENT", "POLICE-NOW"},
    ("grooming_asked", "images"): {"POLICE-NOW"},
    ("grooming_asked", "threats"): {"POLICE-NOW"},
}


def test_weapons_and_suicide_risk_raise_their_flags_on_every_path() -> None:
    reached: dict[tuple[str, str], set[str]] = {key: set() for key in REQUIRED_FLAGS}
    for flow_id in sorted(catalogue()):
        for given in explore(flow_id).answered:
            required = REQUIRED_FLAGS.get((given.step_id, given.value))
            if required is None:
                continue
            reached[(given.step_id, given.value)].add(str(dict(given.before).get("concern_kind")))
            missing = required - given.flags
            assert not missing, (
                f"{flow_id} {given.before}: {given.step_id}={given.value} lacks {missing}"
            )
    # Every answer above is reachable, and a weapon is asked about on both routes to it.
    assert all(reached.values()), reached
    assert reached[("weapon", "now")] == {"exploitation", "serious_violence"}
    # Flags only accumulate: the finished report carries them too.
    for path in all_paths("welfare"):
        for step_id, value in path.answers:
            assert REQUIRED_FLAGS.get((step_id, value), set()) <= set(path.concern.flags)
            if "URGENT" in REQUIRED_FLAGS.get((step_id, value), set()):
                assert path.concern.priority == "urgent"


def test_no_path_raises_weapon_or_suicide_risk_without_the_answer() -> None:
    for flow_id in sorted(catalogue()):
        for path in all_paths(flow_id):
            flags = set(path.concern.flags)
            if "WEAPON" in flags:
                assert path.answer("weapon") in {"now", "before"}
            if "SUICIDE-RISK" in flags:
                assert path.answer("suicide_risk") in {"injured", "suicidal", "not_sure"}


def welfare(**answers: Any) -> dict[str, Any]:
    return plain("welfare", **answers)


@pytest.mark.parametrize(
    ("kind", "step", "answer"),
    [
        ("serious_violence", "weapon", "now"),
        ("self_harm", "suicide_risk", "injured"),
        ("forced_marriage", "leaving_country", "yes"),
        ("radicalisation", "radicalisation_risk", "yes"),
    ],
)
def test_the_emergency_answers_say_phone_the_emergency_number_from_the_profile(
    kind: str, step: str, answer: str
) -> None:
    extra = {"exploitation_now": "no"} if kind == "exploitation" else {}
    w = walk("welfare", welfare(concern_kind=kind, **{step: answer}, **extra))
    assert w.step == "done"
    said = " ".join(w.outcome_of(step).say)
    assert school().contact("emergency").number in said
    # said before the next question is shown
    at = w.transcript.index(("say", step, w.outcome_of(step).say[0]))
    assert w.transcript[at + 1][0] == "prompt"


def test_suicide_talk_is_immediate_danger_without_an_ambulance() -> None:
    w = walk("welfare", welfare(concern_kind="self_harm", suicide_risk="suicidal"))
    assert {"URGENT", "SUICIDE-RISK"} <= set(w.concern.flags)
    assert "CALL-999" not in w.concern.flags
    assert "do not leave the child alone" in " ".join(w.outcome_of("suicide_risk").say)


def test_low_mood_without_suicide_talk_is_not_urgent() -> None:
    c = walk("welfare", welfare(concern_kind="self_harm", suicide_risk="low_mood")).concern
    assert c.flags == [] and c.priority == "normal"


def test_welfare_immediate_danger_question_names_self_harm_and_suicide() -> None:
    w = walk("welfare", welfare())
    first = w.prompt_for("immediate_danger").text
    assert "suicide" in first and "self-harm" in first
    # ... and only welfare's: the shared question elsewhere is unchanged
    assert "suicide" not in walk("nudes", plain("nudes")).prompt_for("immediate_danger").text


def test_forced_marriage_names_the_unit_with_a_cited_number() -> None:
    w = walk("welfare", welfare(concern_kind="forced_marriage", leaving_country="no"))
    said = " ".join(w.outcome_of("concern_kind").say)
    assert "Forced Marriage Unit" in said and "www.gov.uk/guidance/forced-marriage" in said
    assert "Do not contact the family" in said
    assert not {"URGENT", "CALL-999"} & set(w.concern.flags)
    for profile in all_schools():
        fmu = profile.contact("forced_marriage_unit")
        # Not in the seeds or PROCEDURES.md: cited to public pages that quote it.
        assert fmu.number == "020 7008 0151"
        assert fmu.source.startswith("https://") and "020 7008 0151" in fmu.source
        assert "www.gov.uk/guidance/forced-marriage" in fmu.source
        assert fmu.last_verified


def test_forced_marriage_and_leaving_soon_is_the_same_emergency_as_fgm() -> None:
    fm = walk("welfare", welfare(concern_kind="forced_marriage", leaving_country="yes"))
    fgm = walk("fgm", plain("fgm", how_known="at_risk", leaving_soon="yes"))
    emergency = {"URGENT", "CALL-999", "POLICE-NOW"}
    assert emergency <= set(fm.concern.flags) and emergency <= set(fgm.concern.flags)
    assert "Forced Marriage Protection Order" in " ".join(fm.outcome_of("leaving_country").say)


def test_online_grooming_images_are_never_to_be_viewed() -> None:
    w = walk("welfare", welfare(concern_kind="online_grooming", grooming_asked="images"))
    said = " ".join(w.outcome_of("grooming_asked").say)
    assert "Never view" in said
    assert "POLICE-NOW" in w.concern.flags


# -- triage words ----------------------------------------------------------------------------

DEFINITIONS = [flow.definition for flow in catalogue().values()]


@pytest.mark.parametrize(
    "text",
    [
        "I think she is suicidal",
        "he said he wants to kill himself",
        "she talked about wanting to end her life",
        "worried about self-harm, cuts on her arms",
        "her parents are planning a forced marriage",
        "she is being forced to marry her cousin",
        "honour based abuse in the family",
        "a pupil brought a knife into school",
        "he has a weapon in his bag",
        "I think he is involved in county lines",
        "someone is grooming him on a game",
        "a man he met online wants to meet him",
        "he is being radicalised",
        "extremist views in class",
    ],
)
def test_triage_words_offer_the_welfare_procedure_first(text: str) -> None:
    assert suggest(text, DEFINITIONS)[:1] == ["welfare"], suggest(text, DEFINITIONS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a child told me she is being forced to marry", {"disclosure", "welfare"}),
        ("she is going abroad for a ceremony, forced marriage or cutting", {"fgm", "welfare"}),
        ("an older boy is grooming her and asked for nudes", {"nudes", "welfare"}),
    ],
)
def test_triage_offers_every_procedure_that_may_apply(text: str, expected: set[str]) -> None:
    assert expected <= set(suggest(text, DEFINITIONS))
