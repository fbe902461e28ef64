"""Who an allegation about staff may reach: the school's case managers, never the adult it is about.

Pure: the school profile and the answers in, people out. Every sender (the alert, reminders,
escalation, deadline and stalled-report notices) asks `recipients`, so the rule lives here once.
The subject is matched by identity (the profile's people), not only by the role picked: the
accused DSL may also be the deputy head, the "teacher" named may be the head.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ALLEGATION_ROUTES = ("headteacher", "chair_of_governors", "lado")
# `subject_role` answers that say who, among the profile's people, the adult may be.
ROLES_NAMING_PEOPLE = frozenset({"dsl_member", "deputy_head", "headteacher"})
_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "sir", "dame", "prof", "the"}


def _tokens(name: str) -> frozenset[str]:
    words = re.findall(r"[a-z0-9']+", name.lower())
    return frozenset(w for w in words if w not in _TITLES and len(w) > 1)


def _same_person(typed: str, person: Any) -> bool:
    """'Mrs Robinson', 'Ann' or 'Ann Robinson (Y3)' may all mean Ann Robinson. A false match
    only takes someone off the list (the safer mistake), so any overlap of words counts when
    every word on one side is on the other."""
    said, known = _tokens(typed), _tokens(person.name)
    return bool(said and known) and (said <= known or known <= said)


def named_people(profile: Any) -> tuple[Any, ...]:
    """Everyone the profile names: who might receive an allegation, or be its subject."""
    people = [
        *profile.dsl_team(),
        profile.headteacher,
        *profile.case_managers,
        profile.deputy_head,
        profile.chair_of_governors,
        profile.safeguarding_governor,
    ]
    return tuple(_unique(p for p in people if p is not None))


def subject_people(profile: Any, role: str | None, name: str | None) -> tuple[Any, ...]:
    """The profile's people who are, or may be, the adult an allegation is about.

    By role: 'dsl_member' is whichever DSL team member the name matches - or, when the name
    matches none, the whole DSL team (we cannot tell which, so none of them may receive it);
    'deputy_head' and 'headteacher' are those people. By name: anyone the profile names."""
    found: list[Any] = []
    if role == "dsl_member":
        team = profile.dsl_team()
        named = [p for p in team if name and _same_person(name, p)]
        found.extend(named or team)
    elif role == "deputy_head" and profile.deputy_head is not None:
        found.append(profile.deputy_head)
    elif role == "headteacher":
        found.append(profile.headteacher)
    if name:
        found.extend(p for p in named_people(profile) if _same_person(name, p))
    return tuple(_unique(found))


def effective_route(profile: Any, route: str, subject_ids: Iterable[str]) -> str:
    """The flow's route, moved up when its case manager is the subject: the head -> the chair
    (seed 001 s10: "where the concern involves the Executive Headteacher ... the Chair");
    the chair -> the LADO directly (nobody in school is left to receive it)."""
    subjects = set(subject_ids)
    if route == "headteacher" and profile.headteacher.aad_object_id in subjects:
        route = "chair_of_governors"
    if route == "chair_of_governors" and profile.chair_of_governors.aad_object_id in subjects:
        route = "lado"
    return route


def case_managers(profile: Any, route: str, subject_ids: Iterable[str] = ()) -> tuple[Any, ...]:
    """Who receives an allegation on `route`: everyone the school names for it, less anyone
    who may be its subject. The LADO route has nobody in school."""
    subjects = set(subject_ids)
    if route == "headteacher":
        people: tuple[Any, ...] = (profile.headteacher, *profile.case_managers)
    elif route == "chair_of_governors":
        people = (profile.chair_of_governors,)
    else:
        people = ()
    return tuple(p for p in _unique(people) if p.aad_object_id not in subjects)


def recipients(profile: Any, concern: Any) -> tuple[Any, ...]:
    """The people an allegation's alert, reminders and notices may go to (empty for DSL
    concerns, which go to the DSL channel, and for the LADO route)."""
    if concern.routing.route == "dsl_team":
        return ()
    return case_managers(profile, concern.routing.route, concern.subject_ids)


def deputy_for(profile: Any, concern: Any) -> Any | None:
    """Who is told when the case manager has not acknowledged: the deputy head (seed 001:
    "or the Deputy Head of School in their absence") - unless they may be the subject."""
    deputy = profile.deputy_head
    if concern.routing.route != "headteacher" or deputy is None:
        return None
    taken = {p.aad_object_id for p in recipients(profile, concern)}
    if deputy.aad_object_id in set(concern.subject_ids) | taken:
        return None
    return deputy


def describe(people: Iterable[Any]) -> str:
    names = [p.name for p in people]
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _unique(people: Iterable[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for p in people:
        if p.aad_object_id not in seen:
            seen.add(p.aad_object_id)
            out.append(p)
    return out
