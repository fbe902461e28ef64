"""What a flow run becomes: the Concern the DSL receives, with its routing and deadlines."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flows.concern import Action, Concern, Deadline, Detail, Routing
from flows.deadlines import DEADLINES
from flows.procedure_text import decision_context, render
from flows.routing import effective_route, subject_people

if TYPE_CHECKING:
    from flows.engine import FlowRun


def concern_of(run: FlowRun, concern_id: str, now: datetime) -> Concern:
    """The Concern as it stands: final when the flow is done, else 'raised' so far."""
    definition = run.definition
    profile = run.context.profile
    now = now.astimezone(profile.timezone)
    concern = Concern(
        id=concern_id,
        type=definition.id,
        title=definition.title,
        school_id=profile.id,
        reporter=run.context.reporter,
        status="final" if run.state == "done" else "raised",
        started_at=run.data["started_at"],
        raised_at=run.data["raised_at"] or now.isoformat(),
        finished_at=now.isoformat() if run.state == "done" else None,
        flags=run.flags(),
        dsl_decision=render(definition.dsl_decision, decision_context(profile)),
        # Only once finished: the route is settled by then (see Concern.opening_words).
        opening_words=run.data.get("opening_words") if run.state == "done" else None,
    )
    after_raise = False  # answers after the step that raised the alert are its updates
    sources = {step.source for step, _ in run.path()} | {r.source for r in definition.rules}
    deadline_ids = list(definition.deadlines)
    for step, value in run.path():
        shown = run.display(step, value)
        at = run.data["answered_at"][step.id]
        if step.records:
            setattr(concern, step.records, None if value is None else shown)
        if step.action:
            concern.actions_taken.append(Action(step.label, shown, at))
        elif not step.records and step.kind != "info":
            concern.details.append(Detail(step.id, step.label, shown))
        if after_raise:
            concern.timeline.append(Action(step.label, shown, at))
        after_raise = after_raise or (run.raised and step.id == run.data.get("raised_step"))
    for effect in run.effects():  # the path's effects, step by step, as answered
        deadline_ids.extend(d for d in effect.deadlines if d not in deadline_ids)
    route = run.route()
    if route == "dsl_team" and "written_referral" not in deadline_ids:
        # A school rule for any referral the DSL makes (seed 003: written within 48 hours
        # of a phone referral); it is None - and not shown - where the profile sets none.
        deadline_ids.append("written_referral")
    if route != "dsl_team":
        subjects = subject_people(
            profile, run.data["answers"].get("subject_role"), concern.subject_name
        )
        concern.subject_ids = [p.aad_object_id for p in subjects]
        team = {p.aad_object_id for p in profile.dsl_team()}
        if set(concern.subject_ids) & team and "ACCUSED-IS-DSL" not in concern.flags:
            concern.flags.append("ACCUSED-IS-DSL")  # e.g. the deputy head is a deputy DSL
        route = effective_route(profile, route, concern.subject_ids)
    concern.routing = Routing(route, _route_reason(route, concern.flags))
    concern.sources = sorted(sources)
    base = datetime.fromisoformat(concern.raised_at)
    happened = _happened_at(run)
    for deadline_id in deadline_ids:
        rule = DEADLINES[deadline_id]
        start = min(base, happened) if rule.counts_from == "occurred" and happened else base
        due = rule.due(start, run.context.calendar, profile)
        if due is not None:
            concern.deadlines.append(
                Deadline(deadline_id, rule.label, due.isoformat(), rule.owner, rule.source)
            )
    return concern


def _happened_at(run: FlowRun) -> datetime | None:
    """When it happened or was learned of: the answer recorded as occurred_at."""
    for step, value in run.path():
        if step.records == "occurred_at" and value:
            return datetime.fromisoformat(value)
    return None


def _route_reason(route: str, flags: list[str]) -> str:
    reasons = {
        "dsl_team": "Safeguarding concern about a child: the DSL team decides the next step.",
        "headteacher": "Allegation about an adult working in the school: the headteacher is "
        "case manager. Confidential to the case manager.",
        "chair_of_governors": "Allegation about the headteacher: the chair of governors is "
        "case manager. Confidential to the case manager.",
        "lado": "Conflict of interest (or nobody in school can receive it): report straight "
        "to the LADO.",
    }
    reason = reasons[route]
    if "ACCUSED-IS-DSL" in flags:
        reason += " The adult concerned is a member of the DSL team."
    if "LOW-LEVEL-CONCERN" in flags:
        reason += (
            " Recorded as a low-level concern: the case manager records it under the school's"
            " low-level concerns policy and reviews patterns; the LADO is consulted if it"
            " later meets the harm test."
        )
    return reason
