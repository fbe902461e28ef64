"""The procedure's own words: prompt templates rendered for a school, and the contact lines in
them (every area's number; never a dead end where a number is missing).

Templates are reviewed procedure text; answers reach them as data, never as template source.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2

from flows.routing import case_managers, describe


def _render_env() -> jinja2.Environment:
    # Templates are reviewed procedure text; answers are passed in as data, never as template
    # source, so a child's words containing `{{ }}` are never evaluated.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


_ENV = _render_env()


def contact_line(profile: Any, contact_id: str) -> str:
    """A contact for procedure text: every area's number where the child's area decides it,
    and never a dead end - no number means 999 / 101 / the NSPCC, not 'ask the DSL'."""
    shown = profile.contacts_for(contact_id)
    if len(shown) > 1:
        return "; ".join(
            f"{c.name} if the child lives in {c.area}: {c.number}"
            if c.number and c.area
            else f"{c.name}: {c.number}"
            for c in shown
            if c.number
        ) or contact_line_single(profile, shown[0])
    return contact_line_single(profile, shown[0])


def contact_line_single(profile: Any, contact: Any) -> str:
    if contact.number:
        return f"{contact.name}: {contact.number}"
    return f"{contact.name} ({profile.no_number_fallback()})"


def template_context(
    profile: Any,
    answers: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    *,
    in_school_hours: bool = True,
) -> dict[str, Any]:
    """What a prompt may use: the school, its rules and contacts, answers shown and raw, and
    the turn's one decision on whether it is school hours (`in_school_hours`)."""
    return {
        "school": profile,
        "in_school_hours": in_school_hours,
        "rules": profile.rules,
        "answers": dict(answers or {}),
        "values": dict(values or {}),
        "contact": lambda contact_id: contact_line(profile, contact_id),
        "number": lambda contact_id: profile.contact(contact_id).number or "(number not set)",
        # who an allegation about staff goes to (the headteacher, and any other case manager)
        "case_managers": describe(case_managers(profile, "headteacher")),
    }


def decision_context(profile: Any) -> dict[str, Any]:
    """For the text the DSL (or case manager) reads on the alert: a contact without a number
    says so plainly - the staff fallback ("if you cannot reach the DSL...") is not for them."""
    return {
        **template_context(profile),
        "contact": lambda contact_id: _decision_contact(profile, contact_id),
    }


def _decision_contact(profile: Any, contact_id: str) -> str:
    shown = profile.contacts_for(contact_id)
    numbered = [c for c in shown if c.number]
    if not numbered:
        return f"{shown[0].name} - no number in the school's policy"
    if len(shown) == 1:
        return f"{shown[0].name}: {shown[0].number}"
    return "; ".join(
        f"{c.name} if the child lives in {c.area}: {c.number}"
        if c.area
        else f"{c.name}: {c.number}"
        for c in numbered
    )


@functools.lru_cache(maxsize=4096)
def _compiled(template: str) -> jinja2.Template:
    # Prompt texts are a fixed set (the flow files): each is compiled once, not every turn.
    return _ENV.from_string(template)


def render(template: str, context: Mapping[str, Any]) -> str:
    return _compiled(template).render(context).strip()
