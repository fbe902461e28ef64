"""The typed school profile: the people, DSL channel, escalation timings, local rules and
contacts of a school, and the organisation (one school, or a trust) holding the schools."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flows.calendar import working_days_for
from flows.profile.contact import Contact, _hours_phrase

REQUIRED_CONTACTS = (
    "emergency",
    "police",
    "lado",
    "childrens_social_care",
    "out_of_hours_social_care",
    "nspcc_helpline",
    "nspcc_whistleblowing",
    "childline",
)

# A contact with no number in one of these roles is a dead end for a member of staff who cannot
# reach the DSL: the profile still loads (the seed policy gives no number), but loudly.
SOCIAL_CARE_CONTACTS = ("childrens_social_care", "out_of_hours_social_care")


class ProfileError(ValueError):
    """A profile is invalid; one '<file>: <field>: <problem>' line per problem."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Person:
    name: str
    aad_object_id: str
    email: str | None = None
    phone: str | None = None  # a contact id from the directory, never a raw number


# When a routine (not urgent) alert's channel post @mentions the DSL team. A channel post
# notifies only people who follow the channel or are mentioned; urgent alerts always mention.
MENTION_ROUTINE = ("always", "school_hours", "never")


@dataclass(frozen=True)
class DslChannel:
    team_id: str
    channel_id: str
    name: str
    mention_routine: str = "always"


@dataclass(frozen=True)
class Escalation:
    urgent_minutes: int = 5
    normal_minutes: int = 30
    out_of_hours_urgent_minutes: int = 5
    out_of_hours_normal_minutes: int = 30


@dataclass(frozen=True)
class LocalRules:
    fgm_police_before_dsl: bool = False
    # Seed 003 (Hull): every member of staff, not only teachers, reports FGM to the police.
    fgm_all_staff_report_to_police: bool = False
    recording_system: str | None = None
    written_record_hours: int | None = None
    # Seed 003: a phone referral to children's social care is followed in writing within 48 h.
    written_referral_hours: int | None = None
    # Seed 003 'Consent': shown to a member of staff (not the DSL) who refers to social care.
    referral_consent: str | None = None
    # Seed 003 section 10: who else deals with child-on-child abuse, and the police rule.
    child_on_child_rule: str | None = None
    # Missing child (seed 004 Appendix C). No seed gives a number of minutes before the police
    # are called: without one (null), staff are told to report as soon as the checks fail.
    # A school's own number is counted from the time the child was last seen.
    missing_minutes_before_police: int | None = None
    # Local words in the missing-child procedure, so a Hull school is not told Essex terms.
    missing_police_force: str = "the police"
    missing_return_interview: str = (
        "an independent return interview (the local authority arranges one for a child who "
        "has been missing)"
    )
    # Children missing education (unexplained absence). Every school tells the local
    # authority after 10 school days' continuous unauthorised absence (seed 000; seed 001).
    absence_local_authority: str = "the local authority's children missing education team"
    # Seed 001: a local checklist completed by a given day of absence (Essex MECES: day 6).
    absence_checklist: str | None = None
    absence_checklist_day: int | None = None
    incomplete_report_reminder_minutes: int = 10
    incomplete_report_notice_minutes: int = 30
    # How long a CLOSED concern's record is kept in the bot, in days after it was last changed;
    # the school's records-retention policy decides (the seeds: 25 years after the child's
    # date of birth, or until the file goes to a new school). null: kept, never deleted.
    closed_record_retention_days: int | None = None


@dataclass(frozen=True)
class SchoolProfile:
    id: str
    name: str
    tenant_id: str
    local_authority: str
    timezone: ZoneInfo
    school_days: frozenset[int]
    school_start: time
    school_end: time
    closure_days: frozenset[date]
    dsl: Person
    deputies: tuple[Person, ...]
    headteacher: Person
    deputy_head: Person | None
    chair_of_governors: Person
    chair_title: str
    dsl_channel: DslChannel
    escalation: Escalation
    rules: LocalRules
    contacts: tuple[Contact, ...]
    source_path: str
    safeguarding_governor: Person | None = None
    # Allegations about staff go to the headteacher AND these (seed 001 s10: the Executive
    # Headteacher and the Head of School), never to whichever of them is the subject.
    case_managers: tuple[Person, ...] = ()
    # Who works here, beyond the people named above (`staff:`), so one server for a whole
    # trust knows a reporter's school without asking: Entra object ids and e-mail domains.
    staff_ids: frozenset[str] = frozenset()
    email_domains: tuple[str, ...] = ()

    def named_people(self) -> tuple[Person, ...]:
        """Everyone the profile names for this school, in any role."""
        people = (
            self.dsl,
            *self.deputies,
            self.headteacher,
            self.deputy_head,
            self.chair_of_governors,
            self.safeguarding_governor,
            *self.case_managers,
        )
        return tuple(p for p in people if p is not None)

    def works_here(self, aad_object_id: str | None, email: str | None = None) -> bool:
        """Named in the profile or in its staff list, or (failing an id) by e-mail domain."""
        wanted = (aad_object_id or "").strip().lower()
        if wanted and (
            wanted in self.staff_ids or any(p.aad_object_id == wanted for p in self.named_people())
        ):
            return True
        domain = (email or "").rpartition("@")[2].strip().lower()
        return bool(domain) and domain in self.email_domains

    def contact(self, contact_id: str) -> Contact:
        for c in self.contacts:
            if c.id == contact_id:
                return c
        known = ", ".join(c.id for c in self.contacts)
        raise KeyError(f"school {self.id!r} has no contact {contact_id!r} (known: {known})")

    def contacts_for(self, role: str) -> list[Contact]:
        """The contact `role` and the same service for the school's other areas (Hull, then
        East Riding): which one is right depends on where the child lives."""
        main = self.contact(role)
        return [main, *(c for c in self.contacts if c.role == role and c is not main)]

    def areas(self) -> list[str]:
        """The local authorities the profile has numbers for, in profile order."""
        return list(dict.fromkeys(c.area for c in self.contacts if c.area))

    def no_number_fallback(self) -> str:
        """What to do instead when a contact has no number - never 'ask the DSL': the person
        reading this may be the one who cannot reach the DSL."""
        emergency = self.contact("emergency").number
        police = self.contact("police").number
        nspcc = self.contact("nspcc_helpline")
        return (
            f"No number for this in your school's policy. If you cannot reach the DSL or a "
            f"deputy: phone {emergency} if a child is in danger now; otherwise the police on "
            f"{police}, or the NSPCC helpline {nspcc.number} ({_hours_phrase(nspcc)}; "
            f"e-mail {nspcc.email} at any time)."
        )

    def dsl_team(self) -> tuple[Person, ...]:
        return (self.dsl, *self.deputies)

    def is_dsl_team_member(self, aad_object_id: str) -> bool:
        wanted = aad_object_id.strip().lower()
        return any(p.aad_object_id.lower() == wanted for p in self.dsl_team())

    def in_school_hours(self, at: datetime) -> bool:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("datetime must be timezone-aware")
        local = at.astimezone(self.timezone)
        d = local.date()
        if local.weekday() not in self.school_days or d in self.closure_days:
            return False
        # The cached calendar: the bank holidays are built once per school, not per turn.
        if working_days_for(self).is_bank_holiday(d):
            return False
        return self.school_start <= local.time().replace(tzinfo=None) < self.school_end

    def find_people(self, query: str) -> list[Person]:
        """People a staff member may mean: 'dsl' / 'safeguarding lead' -> the DSL team."""
        q = _norm(query)
        if q in {
            "dsl",
            "ddsl",
            "safeguarding",
            "safeguarding lead",
            "designated safeguarding lead",
        }:
            return list(self.dsl_team())
        if q in {"head", "headteacher", "head teacher"}:
            return [self.headteacher] + ([self.deputy_head] if self.deputy_head else [])
        return [p for p in self.dsl_team() if q and q in p.name.lower()]

    def find_contacts(self, query: str) -> list[Contact]:
        """Directory contacts matching a staff member's words, best first. 'dsl' gives the
        DSL team's own phone contacts (see find_people for the people themselves)."""
        q = _norm(query)
        if not q:
            return []
        scored: list[tuple[int, int, Contact]] = []
        if q in {"dsl", "ddsl", "safeguarding lead", "designated safeguarding lead"}:
            phone_ids = [p.phone for p in self.dsl_team() if p.phone]
            for rank, cid in enumerate(dict.fromkeys(phone_ids)):
                scored.append((1000 - rank, 0, self.contact(cid)))
        words = set(q.split())
        for order, c in enumerate(self.contacts):
            score = 0
            if q.replace(" ", "_") == c.id:
                score = 100
            elif q in c.keywords:
                score = 90
            elif q == c.name.lower():
                score = 80
            elif any(k in q for k in c.keywords if len(k) > 2) or q in c.name.lower():
                score = 50
            else:
                hay = set(" ".join((c.name.lower(), *c.keywords)).split())
                score = 10 * len(words & hay)
            if score and c.out_of_hours and "hours" in q:
                score += 5
            if score:
                scored.append((score, -order, c))
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return list(dict.fromkeys(c for _, _, c in scored))


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    schools: tuple[SchoolProfile, ...]
    source_path: str
    # Loud load-time warnings (a missing social care number): logged, and kept for the CLI.
    warnings: tuple[str, ...] = ()
    # The trust's own safeguarding lead(s) (a Trust DSL): may see and act on every school's
    # concerns in THIS organisation - never another's in the same deployment.
    trust_safeguarding_leads: tuple[Person, ...] = ()

    def school(self, school_id: str | None = None) -> SchoolProfile:
        ids = ", ".join(s.id for s in self.schools)
        if school_id is None:
            if len(self.schools) == 1:
                return self.schools[0]
            raise ProfileError(
                [f"{self.source_path}: schools: several schools, name one of: {ids}"]
            )
        for s in self.schools:
            if s.id == school_id:
                return s
        raise ProfileError(
            [f"{self.source_path}: schools: unknown school {school_id!r}; known: {ids}"]
        )


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())
