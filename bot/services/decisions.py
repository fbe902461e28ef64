"""The DSL's decisions on a concern: what each one must record, checked at the server.

KCSIE asks that "all concerns, discussions and decisions made, and the reasons for those
decisions" are recorded, including decisions not to refer. Each decision here names the
fields the record needs; the card asks for them (bot/teams/record_cards.py) and `validate`
refuses a decision without them, whatever the client sent. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 2000  # what the card's boxes allow; anything longer did not come from the card

DSL = "dsl_team"
ALLEGATION = "allegation"


@dataclass(frozen=True)
class Field:
    """One thing a decision records. `datetime` fields arrive as `<id>_date` + `<id>_time`."""

    id: str
    label: str
    kind: str = "text"  # text | long | choice | datetime
    required: bool = True
    choices: tuple[str, ...] = ()
    # Required only when another field has this value ("or why not").
    required_if: tuple[str, str] | None = None


@dataclass(frozen=True)
class Decision:
    verb: str  # what the card sends; also the record entry's kind
    button: str  # the card's button
    entry: str  # how the record and the timeline name it
    audit: str  # the audit log's action (ids and states only)
    routes: frozenset[str]  # DSL alerts, allegations (to their case manager), or both
    fields: tuple[Field, ...] = ()
    tells_reporter: bool = True  # the reporter is told (without detail) that someone acted


INFORMED = "Yes - informed"
NOT_INFORMED = "No - not informed"

DECISIONS: dict[str, Decision] = {
    d.verb: d
    for d in (
        Decision(
            "acknowledge",
            "Acknowledge - I'm taking this",
            "Picked up",
            "acknowledged",
            frozenset({DSL, ALLEGATION}),
            tells_reporter=False,  # the reporter is told who picked it up (acting.py)
        ),
        Decision(
            "no_further_action",
            "No further action / monitor",
            "No further action / monitor in school",
            "no_further_action",
            frozenset({DSL}),
            (
                Field(
                    "outcome",
                    "Decision",
                    "choice",
                    choices=("No further action", "Monitor in school"),
                ),
                Field("reason", "Reason (required: why not refer)", "long"),
            ),
        ),
        Decision(
            "early_help",
            "Early help",
            "Early help",
            "early_help",
            frozenset({DSL}),
            (Field("which", "Which early help (e.g. Early Help Assessment, family support)"),),
        ),
        Decision(
            "referred_social_care",
            "Children's social care",
            "Referred to children's social care",
            "referred_social_care",
            frozenset({DSL, ALLEGATION}),  # the LADO may advise a referral
            (
                Field(
                    "how",
                    "How was the referral made?",
                    "choice",
                    choices=("Phone", "Online referral form", "Email", "In person"),
                ),
                Field("when", "When was it made?", "datetime"),
                # Often not given at once: the chase reminder stays until the DSL has one.
                Field("reference", "Reference number (if given yet)", required=False),
                Field("social_worker", "Social worker (if known)", required=False),
            ),
        ),
        Decision(
            "referred_police",
            "Police",
            "Referred to the police",
            "referred_police",
            frozenset({DSL, ALLEGATION}),
            (Field("incident", "Police incident number"),),
        ),
        Decision(
            "referred_lado",
            "LADO",
            "LADO consulted",
            "referred_lado",
            frozenset({ALLEGATION}),
            (
                Field("told", "When was the LADO told?", "datetime"),
                Field("advice", "The LADO's advice", "long"),
            ),
        ),
        Decision(
            "low_level_concern",
            "Low-level concern",
            "Low-level concern recorded",
            "low_level_concern",
            frozenset({ALLEGATION}),
            (Field("reason", "Why it is a low-level concern, not an allegation", "long"),),
        ),
        Decision(
            "parents_informed",
            "Parents / carers",
            "Parents / carers",
            "parents_informed",
            frozenset({DSL, ALLEGATION}),
            (
                Field(
                    "informed",
                    "Were parents / carers informed?",
                    "choice",
                    choices=(INFORMED, NOT_INFORMED),
                ),
                Field("who", "Who was told, by whom (if informed)", required=False),
                Field(
                    "why_not",
                    "Why not (required if not informed)",
                    "long",
                    required=False,
                    required_if=("informed", NOT_INFORMED),
                ),
            ),
        ),
        Decision(
            "add_note",
            "Add note",
            "Note",
            "note",
            frozenset({DSL, ALLEGATION}),
            (Field("note", "Note (kept with the report)", "long"),),
            tells_reporter=False,
        ),
        Decision(
            "close",
            "Close",
            "Closed",
            "closed",
            frozenset({DSL, ALLEGATION}),
            (Field("outcome", "Outcome (required to close)", "long"),),
        ),
    )
}
# Shown behind "Record a decision" on the card, in this order.
CARD_DECISIONS = (
    "no_further_action",
    "early_help",
    "referred_social_care",
    "referred_lado",
    "low_level_concern",
    "referred_police",
    "parents_informed",
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")


def route_kind(route: str) -> str:
    return DSL if route == "dsl_team" else ALLEGATION


def decisions_for(route: str) -> list[Decision]:
    kind = route_kind(route)
    return [DECISIONS[v] for v in CARD_DECISIONS if kind in DECISIONS[v].routes]


def validate(decision: Decision, values: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """(the fields to record, the problems). Nothing is recorded unless problems is empty."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for f in decision.fields:
        if f.kind == "datetime":
            date = _text(values.get(f"{f.id}_date"))
            time = _text(values.get(f"{f.id}_time"))
            value = f"{date} {time[:5]}" if date and time else ""
            if (date or time) and not (_DATE.match(date) and _TIME.match(time)):
                problems.append(f"{f.label} (a date and a time)")
                continue
        else:
            value = _text(values.get(f.id))
        if f.kind == "choice" and value and value not in f.choices:
            problems.append(f"{f.label} (choose one of: {', '.join(f.choices)})")
            continue
        if len(value) > MAX_CHARS:
            problems.append(f"{f.label} (at most {MAX_CHARS} characters)")
            continue
        needed = f.required or (
            f.required_if is not None and _text(values.get(f.required_if[0])) == f.required_if[1]
        )
        if needed and not value:
            problems.append(f.label)
        elif value:
            found[f.id] = value
    return found, problems


def refusal(decision: Decision, problems: list[str]) -> str:
    """The message for a decision sent without what it must record."""
    return f'To record "{decision.entry}", fill in: {"; ".join(problems)}. Nothing was changed.'


def short_label(label: str) -> str:
    """A box's label as a record's label: without the '(required ...)' hints."""
    return label.split(" (")[0].rstrip("?")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
