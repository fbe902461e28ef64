"""Compile a flow definition into a `transitions` machine and run staff through it, purely."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from transitions import Machine

from flows.answers import InvalidAnswer, format_time, parse_answer
from flows.calendar import WorkingDays
from flows.concern import URGENT_FLAGS, Concern, Reporter
from flows.deadlines import DEADLINES
from flows.definition import FINAL_STATES, Effect, FlowDefinition, Step
from flows.graph import SWITCH as SWITCHED
from flows.graph import check_graph, reachable
from flows.guards import GUARDS, Facts
from flows.procedure_text import render, template_context
from flows.record import concern_of

TRIGGER = "proceed"
# In a switch's kept answers: the flags the first flow raised (e.g. POLICE-NOW when an adult
# at the school sent a nude image) stay raised in the flow switched to.
CARRIED_FLAGS = "_carried_flags"
DSL_TEAM = "dsl_team"
# Answers that decide who an allegation is about, and so who may receive it.
_SUBJECT_FIELDS = frozenset({"subject_role", "subject_name"})


@dataclass(frozen=True)
class FlowContext:
    """Everything a run needs from outside: the school, who is reporting, and whether it is
    school hours - decided once per turn by the caller (flows/ has no clock), so no two
    messages of one turn can disagree about it."""

    profile: Any  # flows.profile.SchoolProfile
    reporter: Reporter
    calendar: WorkingDays
    in_school_hours: bool = True


@dataclass(frozen=True)
class Prompt:
    """A step as the staff member sees it, channel-neutral."""

    step_id: str
    kind: str
    text: str
    help: str | None
    choices: tuple[tuple[str, str], ...]
    optional: bool
    rules: tuple[str, ...] = ()  # hard rules, shown with the first question only


@dataclass
class Outcome:
    """What answering a step did, for the conversation layer to act on."""

    say: list[str] = field(default_factory=list)
    raised: bool = False  # the concern should go out now (first time), before the form ends
    updated: bool = False  # an already-raised concern has a new timestamped entry
    finished: bool = False
    exited: bool = False
    switch_to: str | None = None


class CompiledFlow:
    """One flow, checked and compiled once; runs attach to its machine one at a time."""

    def __init__(self, definition: FlowDefinition, known_flows: frozenset[str] = frozenset()):
        check_graph(definition, GUARDS, DEADLINES, known_flows)
        self.definition = definition
        self.machine = Machine(
            model=None,
            states=[step.id for step in definition.steps] + [*FINAL_STATES, SWITCHED],
            transitions=self._transitions(),
            initial=definition.initial,
            auto_transitions=False,
            send_event=True,
        )
        # Per step: can a later answer still change who receives the report or who it is
        # about? Until it cannot, an allegation's early alert waits (issue 7 s1/s2).
        self.recipients_open = {
            step.id: any(
                _decides_recipients(definition.step(i)) for i in reachable(definition, step.id)
            )
            for step in definition.steps
        }

    @property
    def id(self) -> str:
        return self.definition.id

    def _transitions(self) -> list[dict[str, Any]]:
        transitions: list[dict[str, Any]] = []
        for step in self.definition.steps:
            for choice in step.choices:
                dest = SWITCHED if choice.effect.switch_to else choice.effect.next
                if dest:
                    transitions.append(
                        {
                            "trigger": TRIGGER,
                            "source": step.id,
                            "dest": dest,
                            "conditions": [_chose(step.id, choice.value)],
                        }
                    )
            if step.effect.switch_to:
                transitions.append({"trigger": TRIGGER, "source": step.id, "dest": SWITCHED})
            for branch in step.next:
                transitions.append(
                    {
                        "trigger": TRIGGER,
                        "source": step.id,
                        "dest": branch.dest,
                        "conditions": [_named(name) for name in branch.conditions],
                        "unless": [_named(name) for name in branch.unless],
                    }
                )
        return transitions

    def new_state(
        self,
        now: datetime,
        prefill: Mapping[str, Any] | None = None,
        opening_words: str | None = None,
    ) -> dict[str, Any]:
        """A fresh run's state: JSON-serialisable, saved between turns by the caller.
        `opening_words`: what the staff member typed before the report began (theirs)."""
        prefill = dict(prefill or {})
        carried = prefill.pop(CARRIED_FLAGS, None) or {}
        return {
            "flow": self.id,
            "step": self.definition.initial,
            "answers": {},
            "answered_at": {},
            "history": [],
            "started_at": now.isoformat(),
            "raised_at": None,
            "raised_step": None,
            "prefill": prefill,
            "carried_flags": list(carried.get("value") or []),
            "opening_words": opening_words,
        }

    @contextmanager
    def attach(self, state: Mapping[str, Any], context: FlowContext) -> Iterator[FlowRun]:
        """Attach a run (restored from `state`) to the machine for the length of one turn."""
        if state.get("flow") != self.id:
            raise ValueError(f"state belongs to flow {state.get('flow')!r}, not {self.id!r}")
        run = FlowRun(self, context, state)
        # Not `machine.add_model`: that writes ~2 methods per step onto the run every turn
        # (a third of a turn's flow time). The run needs only its state and the one trigger;
        # the machine's own Event moves it, with the same conditions and callbacks.
        self.machine.set_state(state["step"], model=run)
        yield run


def _chose(step_id: str, value: str):
    def condition(event: Any) -> bool:
        return _choice_key(event.model.data["answers"].get(step_id)) == value

    condition.__name__ = f"chose_{value}"
    return condition


def _named(name: str):
    guard = GUARDS[name]

    def condition(event: Any) -> bool:
        return guard(event.model.facts())

    condition.__name__ = name
    return condition


class FlowRun:
    """One staff member's place in one flow. `data` is the whole saved state."""

    state: str  # set by transitions

    def __init__(self, flow: CompiledFlow, context: FlowContext, data: Mapping[str, Any]):
        self.flow = flow
        self._proceed = flow.machine.events[TRIGGER]
        self.context = context
        self.data: dict[str, Any] = {
            **data,
            "answers": dict(data["answers"]),
            "answered_at": dict(data["answered_at"]),
            "history": list(data["history"]),
            "prefill": dict(data.get("prefill") or {}),
        }

    # -- reading the state -------------------------------------------------------------

    @property
    def definition(self) -> FlowDefinition:
        return self.flow.definition

    @property
    def step(self) -> Step:
        return self.definition.step(self.state)

    @property
    def finished(self) -> bool:
        return self.state in (*FINAL_STATES, SWITCHED)

    @property
    def raised(self) -> bool:
        return self.data["raised_at"] is not None

    def snapshot(self) -> dict[str, Any]:
        return {**self.data, "step": self.state}

    def path(self) -> Iterator[tuple[Step, Any]]:
        for step_id in self.data["history"]:
            yield self.definition.step(step_id), self.data["answers"][step_id]

    def effects(self) -> Iterator[Effect]:
        for step, value in self.path():
            yield from _effects_of(step, value)

    def flags(self) -> list[str]:
        raised: list[str] = list(self.data.get("carried_flags") or [])
        for effect in self.effects():
            raised.extend(flag for flag in effect.flags if flag not in raised)
        return raised

    def route(self) -> str:
        route = self.definition.route
        for effect in self.effects():
            route = effect.route or route
        return route

    def facts(self) -> Facts:
        return Facts(self.data["answers"], frozenset(self.flags()), self.context.profile.rules)

    def display(self, step: Step, value: Any) -> str:
        if value is None:
            return "(skipped)"
        if step.choices:
            return step.choice(_choice_key(value)).label
        if step.kind == "datetime":
            return format_time(datetime.fromisoformat(value))
        return str(value)

    def answers_for_display(self) -> dict[str, str]:
        return {step.id: self.display(step, value) for step, value in self.path()}

    def _template_context(self) -> dict[str, Any]:
        return template_context(
            self.context.profile,
            self.answers_for_display(),
            self.data["answers"],
            in_school_hours=self.context.in_school_hours,
        )

    def prompt(self) -> Prompt:
        step = self.step
        context = self._template_context()
        rules: tuple[str, ...] = ()
        if not self.data["history"]:
            rules = tuple(render(rule.text, context) for rule in self.definition.rules)
        return Prompt(
            step_id=step.id,
            kind=step.kind,
            text=render(step.prompt, context),
            help=render(step.help, context) if step.help else None,
            choices=tuple((c.value, c.label) for c in step.choices),
            optional=step.optional,
            rules=rules,
        )

    # -- changing the state ------------------------------------------------------------

    def answer(self, raw: Any, now: datetime) -> Outcome:
        """Record an answer to the current step and move on; InvalidAnswer leaves all unchanged."""
        if self.finished:
            raise InvalidAnswer("This report is already complete.")
        now = now.astimezone(self.context.profile.timezone)
        step = self.step
        value = parse_answer(step, raw, now, self.context.profile.timezone)
        outcome = Outcome(updated=self.raised)
        self._record(step, value, now, outcome)
        self._advance(now, outcome)
        return outcome

    def accepts(self, raw: Any, now: datetime) -> bool:
        """Would `raw` be a valid answer to the current step? Changes nothing."""
        tz = self.context.profile.timezone
        try:
            parse_answer(self.step, raw, now.astimezone(tz), tz)
        except InvalidAnswer:
            return False
        return not self.finished

    def _record(
        self, step: Step, value: Any, now: datetime, outcome: Outcome, quiet: bool = False
    ) -> None:
        self.data["answers"][step.id] = value
        self.data["answered_at"][step.id] = now.isoformat()
        self.data["history"].append(step.id)
        context = self._template_context()
        for effect in _effects_of(step, value):
            if effect.say and not quiet:
                outcome.say.append(render(effect.say, context))
            if effect.switch_to:
                outcome.switch_to = effect.switch_to

    def _advance(self, now: datetime, outcome: Outcome) -> None:
        if not self._proceed.trigger(self):
            raise RuntimeError(f"flow {self.flow.id}: no way on from {self.state}")
        self.skip_prefilled(outcome)

    def skip_prefilled(self, outcome: Outcome | None = None) -> Outcome:
        """Apply kept answers (from the flow we switched from, or a correction) without asking."""
        outcome = outcome or Outcome()
        while not self.finished and self.state in self.data["prefill"]:
            kept = self.data["prefill"].pop(self.state)
            self._record(
                self.step, kept["value"], datetime.fromisoformat(kept["at"]), outcome, quiet=True
            )
            self._proceed.trigger(self)
        if self.finished:
            # Kept answers the new path never reached are from an abandoned path: drop them.
            self.data["prefill"] = {}
        self._raise_if_due(outcome)
        outcome.finished = self.state == "done"
        outcome.exited = self.state == "exit"
        return outcome

    def alert_due(self) -> bool:
        """Should the alert go out now, before the report is finished? When a step says so
        (a missing child: at once), or an urgent flag is up (URGENT, CALL-999, POLICE-NOW,
        GOING-HOME-TO-ALLEGED-ABUSER) - on the DSL route at once; on an allegation route only
        once no later answer can change who it is about or who receives it, because the
        person it would go to may be the adult concerned."""
        answered = (self.definition.step(step_id) for step_id in self.data["history"])
        if any(step.raise_concern for step in answered):
            return True
        if not set(self.flags()) & URGENT_FLAGS:
            return False
        if self.route() == DSL_TEAM and self.definition.route == DSL_TEAM:
            return True
        return self.finished or not self.flow.recipients_open[self.state]

    def _raise_if_due(self, outcome: Outcome) -> None:
        if self.raised or self.state in {"exit", SWITCHED} or not self.data["history"]:
            return  # after a switch, the flow switched to decides
        if self.alert_due():
            times = self.data["answered_at"]
            self.data["raised_at"] = max(times.values(), key=datetime.fromisoformat)
            self.data["raised_step"] = self.data["history"][-1]
            outcome.raised = True
            outcome.updated = False

    def back(self) -> bool:
        """Return to the previous question, forgetting the answer given there."""
        if not self.data["history"]:
            return False
        step_id = self.data["history"].pop()
        self.data["answers"].pop(step_id, None)
        self.data["answered_at"].pop(step_id, None)
        # Going back over the step that raised the alert does not un-send it: raised_at stays.
        self.flow.machine.set_state(step_id, model=self)
        return True

    def correct(self, step_id: str) -> None:
        """Re-ask an earlier step. Later answers are kept and reused where the path is the same,
        so only the changed question (and any new ones it leads to) is asked."""
        if step_id not in self.data["history"]:
            raise KeyError(step_id)
        later: dict[str, Any] = {}
        while self.data["history"][-1] != step_id:
            later[self.data["history"][-1]] = self._kept(self.data["history"][-1])
            self.back()
        self.back()
        self.data["prefill"] = later

    def carry_over(self) -> dict[str, Any]:
        """Answers another flow may reuse after a switch (same step id, same meaning), and
        the flags raised so far."""
        kept = {step_id: self._kept(step_id) for step_id in self.data["history"]}
        kept[CARRIED_FLAGS] = {"value": self.flags(), "at": self.data["started_at"]}
        return kept

    def _kept(self, step_id: str) -> dict[str, Any]:
        return {"value": self.data["answers"][step_id], "at": self.data["answered_at"][step_id]}

    # -- the record --------------------------------------------------------------------

    def concern(self, concern_id: str, now: datetime) -> Concern:
        """The Concern as it stands: final when the flow is done, else 'raised' so far."""
        return concern_of(self, concern_id, now)


def _effects_of(step: Step, value: Any) -> list[Effect]:
    """The step's own effect, then the chosen answer's."""
    if step.choices and value is not None:
        return [step.effect, step.choice(_choice_key(value)).effect]
    return [step.effect]


def _decides_recipients(step: Step) -> bool:
    effects = [step.effect, *(choice.effect for choice in step.choices)]
    return step.records in _SUBJECT_FIELDS or any(e.route or e.switch_to for e in effects)


def _choice_key(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


__all__ = [
    "CompiledFlow",
    "FlowContext",
    "FlowRun",
    "InvalidAnswer",
    "Outcome",
    "Prompt",
]
