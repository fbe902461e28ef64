"""What the conversation says back, channel-neutral: bot/ renders cards, the console text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flows.concern import Concern
from flows.engine import Prompt
from flows.routing import case_managers, describe


@dataclass(frozen=True)
class Option:
    """A button: `value` is what a card submits, `label` what the staff member sees."""

    value: str
    label: str
    style: str = "default"  # default | positive | destructive
    submit: dict[str, Any] | None = None  # what the button sends, when not the reply's own


@dataclass(frozen=True)
class ContactView:
    name: str
    number: str | None
    tel: str | None
    email: str | None
    purpose: str
    hours: str
    open_now: bool
    last_verified: str


@dataclass(frozen=True)
class Reply:
    """One message to the staff member.

    kind: text | question | summary | contacts | menu | confirm | alert_notice
    `submit` is the card data a button/input sends back (echoed by `Session.handle`).
    """

    kind: str
    text: str
    title: str | None = None
    rules: tuple[str, ...] = ()
    help: str | None = None
    options: tuple[Option, ...] = ()
    input: str | None = None  # text | datetime | number: a typed answer is expected
    optional: bool = False
    facts: tuple[tuple[str, str], ...] = ()
    contacts: tuple[ContactView, ...] = ()
    submit: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False
    progress: str | None = None  # "Question 5 of 13 - about 2 minutes left"
    today: str | None = None  # ISO date, the default of a date picker


@dataclass(frozen=True)
class Event:
    """Something the edge must do: raise, update or finalise a concern (write it first)."""

    # concern_raised (an early alert) | concern_updated | concern_final | report_abandoned
    # (the reporter cancelled after an early alert) | report_moved (switched to a procedure
    # for other recipients after an early alert: the old card gets no more detail)
    kind: str
    concern: Concern


@dataclass
class TurnResult:
    replies: list[Reply]
    events: list[Event]
    state: dict[str, Any]
    # What this turn answered, as (label, answer as shown): the card that asked it is
    # replaced by these read-only lines.
    answered: list[tuple[str, str]] = field(default_factory=list)


def question(prompt: Prompt, progress_line: str | None = None, today: str | None = None) -> Reply:
    """The card (or console text) asking a flow's current question."""
    inputs = {"text": "text", "datetime": "datetime", "number": "number"}
    options = tuple(Option(value, label) for value, label in prompt.choices)
    if prompt.kind == "info":
        options = (Option("ok", "OK - carry on", "positive"),)
    return Reply(
        kind="question",
        text=prompt.text,
        rules=prompt.rules,
        help=prompt.help,
        options=options,
        input=inputs.get(prompt.kind),
        optional=prompt.optional,
        submit={"action": "answer", "step": prompt.step_id},
        progress=progress_line,
        today=today if prompt.kind == "datetime" else None,
    )


def recipient(profile: Any, route: str, subject_ids: Iterable[str] = ()) -> str:
    """Who a report on `route` goes to, in words; an allegation never names its subject."""
    if route == "dsl_team":
        return f"the DSL team ({profile.dsl.name} and deputies)"
    if route == "lado":
        return "nobody in school: report it to the LADO yourself"
    people = case_managers(profile, route, subject_ids)
    if route == "chair_of_governors":
        return f"the {profile.chair_title.lower()} ({describe(people)}) only"
    if len(people) == 1 and people[0] == profile.headteacher:
        return f"the headteacher ({profile.headteacher.name}) only"
    return f"the case managers for allegations ({describe(people)}) only"
