"""Who may act on an alert, what anyone else is told, and what people are called on its card.

The rule the card's buttons (acting.py) and each person's own view of it (alert_view.py) share.
"""

from __future__ import annotations

from bot.store import StoredConcern
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile
from flows.routing import named_people, recipients


def may_act(schools: SchoolDirectory, stored: StoredConcern, aad_object_id: str | None) -> bool:
    """The concern's OWN school's DSL team (or its trust's safeguarding lead) on DSL
    alerts; only the case manager the alert went to on allegations."""
    if not aad_object_id:
        return False
    school = schools.get(stored.concern.school_id)
    route = stored.concern.routing.route
    if route == "dsl_team":
        return school.is_dsl_team_member(aad_object_id) or schools.is_trust_lead(
            aad_object_id, school.id
        )
    wanted = aad_object_id.strip().lower()
    return any(p.aad_object_id == wanted for p in recipients(school, stored.concern))


def refusal_for(
    schools: SchoolDirectory, stored: StoredConcern, aad_object_id: str | None
) -> tuple[str, str]:
    """Why someone may not act, as (audit reason, what they are told): a DSL of another
    school of the deployment is told whose alert it is, nothing more."""
    school = schools.get(stored.concern.school_id)
    if stored.concern.routing.route != "dsl_team":
        return "not_case_manager", "Only the case manager can act on this alert."
    if any(s.id != school.id for s in schools.overseen_by(aad_object_id)):
        return "other_school", (
            f"This alert belongs to {school.name}: only its DSL team can act on it."
        )
    return "not_dsl_team", "Only the DSL team can act on this alert."


def name_of(schools: SchoolDirectory, aad_object_id: str | None, school: SchoolProfile) -> str:
    trust = schools.organisation_of(school.id).trust_safeguarding_leads
    people = (*named_people(school), *trust)
    for person in people:
        if person and person.aad_object_id == aad_object_id:
            return person.name
    return "unknown"
