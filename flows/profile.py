"""School profiles: load, merge and validate the YAML holding every school-specific fact."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from flows.calendar import working_days_for

log = logging.getLogger(__name__)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
_SOCIAL_CARE_NAMES = {
    "childrens_social_care": "children's social care",
    "out_of_hours_social_care": "out-of-hours children's social care",
}

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# One number, or several written "A or B" (never "A/B": that reads as one long number).
_NUMBER = re.compile(r"^[0-9 ()+-]*[0-9][0-9 ()+-]*(?: or [0-9 ()+-]*[0-9][0-9 ()+-]*)*$")


class ProfileError(ValueError):
    """A profile is invalid; one '<file>: <field>: <problem>' line per problem."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --- YAML loading -------------------------------------------------------------------------

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    """Safe loader where only true/false are booleans (yes/no/on/off stay text), numbers with
    leading zeros or colons stay text (phone numbers, 15:30), and duplicate keys are errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _load_yaml(text: str, path: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader subclasses SafeLoader
    except yaml.YAMLError as exc:
        raise ProfileError([f"{path}: (yaml): {' '.join(str(exc).split())}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError([f"{path}: (top): must be a mapping of keys, got {_kind(data)}"])
    return data


# --- the typed profile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    aad_object_id: str
    email: str | None = None
    phone: str | None = None  # a contact id from the directory, never a raw number


@dataclass(frozen=True)
class Hours:
    always: bool
    days: frozenset[int]  # 0 = Monday
    start: time | None
    end: time | None
    tz: ZoneInfo = field(default=ZoneInfo("Europe/London"))
    known: bool = True  # False: the source policy gives no hours
    # Further (days, start, end) spans when the hours differ by day (NSPCC: weekends shorter).
    more: tuple[tuple[frozenset[int], time, time], ...] = ()
    # What the policy says when it gives no clock times ("out of office hours only").
    label: str | None = None

    def spans(self) -> tuple[tuple[frozenset[int], time, time], ...]:
        if self.start is None or self.end is None:
            return self.more
        return ((self.days, self.start, self.end), *self.more)

    def is_open(self, at: datetime) -> bool:
        """Unknown hours count as open: the bot must never tell staff not to try a number."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("datetime must be timezone-aware")
        if self.always or not self.known:
            return True
        local = at.astimezone(self.tz)
        clock = local.time().replace(tzinfo=None)
        return any(
            local.weekday() in days and start <= clock < end for days, start, end in self.spans()
        )


@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    number: str | None
    email: str | None
    hours: Hours
    out_of_hours: bool
    purpose: str
    keywords: tuple[str, ...]
    last_verified: date
    source: str
    quote: str | None = None  # the seed policy's line the number is copied from, verbatim
    email_warning: str | None = None  # shown with the e-mail address: it may not work
    area: str | None = None  # the local authority a local number serves (Hull, East Riding)
    role: str | None = None  # the same service as this contact id, for another area

    def is_open(self, at: datetime) -> bool:
        return self.hours.is_open(at)

    def tel_uri(self) -> str | None:
        """'tel:' link for the first number written ('(01482) 396998 or ...' -> tel:01482396998)."""
        if not self.number:
            return None
        first = re.split(r"/| or ", self.number)[0]
        digits = re.sub(r"[^0-9]", "", first)
        plus = "+" if first.strip().startswith("+") else ""
        return f"tel:{plus}{digits}"


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


def _hours_phrase(contact: Contact) -> str:
    hours = contact.hours
    if hours.always:
        return "24 hours"
    if hours.label:
        return hours.label
    if not hours.known:
        return "hours not given"
    parts = []
    for days, start, end in hours.spans():
        ordered = sorted(days)
        names = [DAY_NAMES[d].capitalize() for d in ordered]
        span = (
            f"{names[0]}-{names[-1]}"
            if len(names) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1))
            else ", ".join(names)
        )
        parts.append(f"{span} {start:%H:%M}-{end:%H:%M}")
    return "; ".join(parts)


hours_phrase = _hours_phrase


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


# --- parsing and validation ---------------------------------------------------------------

_SCHOOL_KEYS = frozenset(
    {
        "id",
        "name",
        "tenant_id",
        "local_authority",
        "timezone",
        "school_hours",
        "closure_days",
        "people",
        "dsl_channel",
        "escalation",
        "rules",
        "contacts",
        "staff",
    }
)
_ORG_KEYS = _SCHOOL_KEYS | {"extends", "schools", "trust_safeguarding_leads"}
_SECTIONS: dict[str, frozenset[str]] = {
    "school_hours": frozenset({"days", "start", "end"}),
    "people": frozenset(
        {
            "dsl",
            "deputies",
            "headteacher",
            "deputy_head",
            "chair_of_governors",
            "safeguarding_governor",
            "case_managers",
        }
    ),
    "dsl_channel": frozenset({"team_id", "channel_id", "name", "mention_routine"}),
    "staff": frozenset({"aad_object_ids", "email_domains"}),
    "escalation": frozenset(
        {
            "urgent_minutes",
            "normal_minutes",
            "out_of_hours_urgent_minutes",
            "out_of_hours_normal_minutes",
        }
    ),
    "rules": frozenset(
        {
            "fgm_police_before_dsl",
            "fgm_all_staff_report_to_police",
            "recording_system",
            "written_record_hours",
            "written_referral_hours",
            "referral_consent",
            "child_on_child_rule",
            "missing_minutes_before_police",
            "missing_police_force",
            "missing_return_interview",
            "absence_local_authority",
            "absence_checklist",
            "absence_checklist_day",
            "incomplete_report_reminder_minutes",
            "incomplete_report_notice_minutes",
            "closed_record_retention_days",
        }
    ),
}
_OPTIONAL_TEXT_RULES = frozenset(
    {
        "recording_system",
        "referral_consent",
        "child_on_child_rule",
        "missing_police_force",
        "missing_return_interview",
        "absence_local_authority",
        "absence_checklist",
    }
)
# Text rules whose null means "none" (the others keep their wording default when null).
_NULL_MEANS_NONE = frozenset(
    {"recording_system", "referral_consent", "child_on_child_rule", "absence_checklist"}
)
_NULLABLE_NUMBER_RULES = frozenset(
    {
        "written_record_hours",
        "written_referral_hours",
        "missing_minutes_before_police",
        "absence_checklist_day",
        "closed_record_retention_days",
    }
)
_PERSON_KEYS = frozenset({"name", "aad_object_id", "email", "phone"})
_CONTACT_KEYS = frozenset(
    {
        "id",
        "name",
        "number",
        "email",
        "hours",
        "out_of_hours",
        "purpose",
        "keywords",
        "last_verified",
        "source",
        "quote",
        "email_warning",
        "area",
        "role",
    }
)
# Hours a policy states without clock times: unknown to the bot, so never shown as closed.
_HOURS_LABELS = {
    "office hours": "office hours only (times not given in the policy)",
    "out of office hours": "out of office hours only (evenings, nights, weekends, bank holidays)",
}
_HOURS_KEYS = frozenset({"days", "start", "end"})


@dataclass(frozen=True)
class _Src:
    """A raw value and where it was written, so problems name the right file and field."""

    value: Any
    file: str
    field: str


@dataclass(frozen=True)
class _Layer:
    data: Mapping[str, Any]
    file: str
    prefix: str  # "" for a file's top level, "schools.0" for a school entry


def _join(prefix: str, key: str | int) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())


def _mention_routine(ck: _Checker, src: _Src | None) -> str:
    if src is None or src.value is None:
        return "always"
    value = ck.text(src)
    if value is not None and value not in MENTION_ROUTINE:
        ck.bad(src, f"must be one of {', '.join(MENTION_ROUTINE)}, got {value!r}")
    return value if value in MENTION_ROUTINE else "always"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def warn(self, where: tuple[str, str], message: str) -> None:
        line = f"{where[0]}: {where[1]}: WARNING: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    def bad(self, src: _Src | tuple[str, str], message: str) -> None:
        file, fld = (src.file, src.field) if isinstance(src, _Src) else src
        line = f"{file}: {fld}: {message}"
        if line not in self.problems:  # a shared trust key is checked once per school
            self.problems.append(line)

    def keys(
        self, data: Mapping[str, Any], allowed: frozenset[str], file: str, prefix: str
    ) -> None:
        for key in data:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.bad((file, _join(prefix, str(key))), f"unknown key {key!r} (allowed: {hint})")

    def mapping(self, src: _Src, allowed: frozenset[str]) -> dict[str, Any] | None:
        if src.value is None:
            self.bad(src, "required, but missing")
            return None
        if not isinstance(src.value, dict):
            self.bad(src, f"must be a mapping, got {_kind(src.value)}")
            return None
        self.keys(src.value, allowed, src.file, src.field)
        return src.value

    def text(self, src: _Src) -> str | None:
        if not isinstance(src.value, str) or not src.value.strip():
            self.bad(src, f"must be non-empty text, got {_kind(src.value)}")
            return None
        return src.value.strip()

    def optional_text(self, src: _Src) -> str | None:
        return None if src.value is None else self.text(src)

    def pattern(self, src: _Src, rx: re.Pattern[str], what: str) -> str | None:
        value = self.text(src)
        if value is not None and not rx.match(value):
            self.bad(src, f"must be {what}, got {value!r}")
            return None
        return value

    def boolean(self, src: _Src) -> bool | None:
        if not isinstance(src.value, bool):
            self.bad(src, f"must be true or false, got {_kind(src.value)} (yes/no/on/off are text)")
            return None
        return src.value

    def minutes(self, src: _Src, allow_null: bool = False) -> int | None:
        if src.value is None and allow_null:
            return None
        if isinstance(src.value, bool) or not isinstance(src.value, int) or src.value <= 0:
            self.bad(src, f"must be a whole number above 0, got {_kind(src.value)}")
            return None
        return src.value

    def clock(self, src: _Src) -> time | None:
        value = src.value
        if not isinstance(value, str) or not _HHMM.match(value):
            self.bad(src, f'must be a 24-hour time "HH:MM" in quotes, got {_kind(value)}')
            return None
        return time(int(value[:2]), int(value[3:]))

    def day(self, src: _Src) -> date | None:
        value = src.value
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.bad(src, f"must be an ISO date YYYY-MM-DD, got {_kind(value)}")
        return None

    def days(self, src: _Src) -> frozenset[int] | None:
        if not isinstance(src.value, list) or not src.value:
            self.bad(src, f"must be a list of days like [mon, tue], got {_kind(src.value)}")
            return None
        out: set[int] = set()
        for i, item in enumerate(src.value):
            if item not in DAY_NAMES:
                self.bad(
                    _Src(item, src.file, _join(src.field, i)),
                    f"must be one of {', '.join(DAY_NAMES)}, got {_kind(item)}",
                )
            else:
                out.add(DAY_NAMES.index(item))
        return frozenset(out)


def _people_list(ck: Any, src: Any, ids: Any) -> list[Person]:
    """An optional list of people (deputies, case managers); each checked like one person."""
    if src is None:
        return []
    if not isinstance(src.value, list):
        ck.bad(src, f"must be a list of people, got {_kind(src.value)}")
        return []
    found = (
        _person(ck, _Src(item, src.file, _join(src.field, i)), ids)
        for i, item in enumerate(src.value)
    )
    return [p for p in found if p]


def _person(ck: _Checker, src: _Src, contact_ids: set[str], title: bool = False) -> Person | None:
    raw = ck.mapping(src, _PERSON_KEYS | ({"title"} if title else frozenset()))
    if raw is None:
        return None
    at = lambda key: _Src(raw.get(key), src.file, _join(src.field, key))  # noqa: E731
    name = ck.text(at("name"))
    aad = ck.pattern(at("aad_object_id"), _GUID, "an Entra (AAD) object id GUID")
    email = ck.optional_text(at("email"))
    if email is not None and "@" not in email:
        ck.bad(at("email"), f"must be an email address, got {email!r}")
    phone = None
    if raw.get("phone") is not None:
        phone = ck.pattern(at("phone"), _SLUG, "a contact id from contacts (never a raw number)")
        if phone is not None and phone not in contact_ids:
            ck.bad(at("phone"), f"refers to contact {phone!r}, which is not in contacts")
            phone = None
    if name is None or aad is None:
        return None
    return Person(name=name, aad_object_id=aad.lower(), email=email, phone=phone)


def _hours(ck: _Checker, src: _Src, tz: ZoneInfo) -> Hours | None:
    if src.value == "24/7":
        return Hours(always=True, days=frozenset(range(7)), start=None, end=None, tz=tz)
    if src.value == "unknown":
        return Hours(always=False, days=frozenset(), start=None, end=None, tz=tz, known=False)
    if isinstance(src.value, str) and src.value in _HOURS_LABELS:
        return Hours(
            always=False,
            days=frozenset(),
            start=None,
            end=None,
            tz=tz,
            known=False,
            label=_HOURS_LABELS[src.value],
        )
    if isinstance(src.value, list) and src.value:
        spans = [
            _hours(ck, _Src(item, src.file, _join(src.field, i)), tz)
            for i, item in enumerate(src.value)
        ]
        if any(h is None or not h.known or h.always for h in spans):
            if all(h is not None for h in spans):
                ck.bad(src, "a list of hours must hold only {days, start, end} mappings")
            return None
        first = spans[0]
        more = tuple(span for h in spans[1:] for span in h.spans())  # type: ignore[union-attr]
        return Hours(False, first.days, first.start, first.end, tz=tz, more=more)  # type: ignore[union-attr]
    if not isinstance(src.value, dict):
        labels = ", ".join(f'"{k}"' for k in _HOURS_LABELS)
        ck.bad(
            src,
            f'must be "24/7", "unknown", {labels}, {{days, start, end}} or a list of those '
            f"mappings, got {_kind(src.value)}",
        )
        return None
    raw = ck.mapping(src, _HOURS_KEYS) or {}
    days = ck.days(_Src(raw.get("days"), src.file, _join(src.field, "days")))
    start = ck.clock(_Src(raw.get("start"), src.file, _join(src.field, "start")))
    end = ck.clock(_Src(raw.get("end"), src.file, _join(src.field, "end")))
    if start is not None and end is not None and start >= end:
        ck.bad(src, f"start {start:%H:%M} must be before end {end:%H:%M}")
        return None
    if days is None or start is None or end is None:
        return None
    return Hours(always=False, days=days, start=start, end=end, tz=tz)


def _contact(ck: _Checker, src: _Src, tz: ZoneInfo) -> Contact | None:
    raw = ck.mapping(src, _CONTACT_KEYS)
    if raw is None:
        return None
    at = lambda key: _Src(raw.get(key), src.file, _join(src.field, key))  # noqa: E731
    cid = ck.pattern(at("id"), _SLUG, "a lower-case id like out_of_hours_social_care")
    name = ck.text(at("name"))
    number = None
    if raw.get("number") is not None:
        if not isinstance(raw["number"], str):
            ck.bad(
                at("number"),
                f"must be text in quotes (as written in the source), got {_kind(raw['number'])}",
            )
        elif not _NUMBER.match(raw["number"]):
            ck.bad(
                at("number"),
                "must be a phone number (digits, spaces, brackets; several written "
                f"'A or B'), got {raw['number']!r}",
            )
        else:
            number = raw["number"].strip()
    elif "number" not in raw:
        ck.bad(at("number"), "required (write null if the source gives no number)")
    quote = ck.optional_text(at("quote"))
    source_text = raw.get("source") if isinstance(raw.get("source"), str) else ""
    if number is not None:
        _check_evidence(ck, at, number, quote, source_text)
    email = ck.optional_text(at("email"))
    email_warning = ck.optional_text(at("email_warning"))
    if email is not None and email_warning is None and _SUSPECT_EMAIL.search(email):
        ck.bad(
            at("email"),
            f"{email!r} ends in '.gov' without '.uk' (a UK council address ends '.gov.uk'): "
            "correct it, or add email_warning saying why it is shown as written",
        )
    area = ck.optional_text(at("area"))
    role = ck.optional_text(at("role"))
    hours = _hours(ck, at("hours"), tz)
    out_of_hours = ck.boolean(at("out_of_hours"))
    purpose = ck.text(at("purpose"))
    keywords: list[str] = []
    kw = raw.get("keywords")
    if not isinstance(kw, list) or not kw:
        ck.bad(at("keywords"), f"must be a list of lower-case words, got {_kind(kw)}")
    else:
        for i, word in enumerate(kw):
            if not isinstance(word, str) or not word.strip() or word != word.lower():
                ck.bad(
                    _Src(word, src.file, _join(at("keywords").field, i)),
                    f"must be lower-case text, got {_kind(word)}",
                )
            else:
                keywords.append(" ".join(word.split()))
    verified = ck.day(at("last_verified"))
    source = ck.text(at("source"))
    if None in (cid, name, hours, out_of_hours, purpose, verified, source) or not keywords:
        return None
    return Contact(
        id=cid,  # type: ignore[arg-type]
        name=name,  # type: ignore[arg-type]
        number=number,
        email=email,
        hours=hours,  # type: ignore[arg-type]
        out_of_hours=out_of_hours,  # type: ignore[arg-type]
        purpose=purpose,  # type: ignore[arg-type]
        keywords=tuple(keywords),
        last_verified=verified,  # type: ignore[arg-type]
        source=source,  # type: ignore[arg-type]
        quote=quote,
        email_warning=email_warning,
        area=area,
        role=role,
    )


_SUSPECT_EMAIL = re.compile(r"\.gov$", re.IGNORECASE)
_URL = re.compile(r"https?://\S+")
_RUN = r"(?:\([0-9]+\) ?)?[0-9]+(?: [0-9]+)*"  # "(01482) 448879", "0808 800 5000", "101"
_WRITTEN = re.compile(rf"({_RUN})((?:/[0-9]{{1,4}})+)")


def written_numbers(text: str) -> set[str]:
    """Every number a line of text gives, as digits; '(01482)396998/9' is two numbers,
    01482396998 and 01482396999, and '101, or 999' gives 101 and 999."""
    found: set[str] = set()
    for m in _WRITTEN.finditer(text):
        base = re.sub(r"[^0-9]", "", m.group(1))
        found.add(base)
        for tail in m.group(2).split("/")[1:]:
            found.add(base[: len(base) - len(tail)] + tail)
    stripped = _WRITTEN.sub(" ", text)
    for run in re.findall(_RUN, stripped):
        found.add(re.sub(r"[^0-9]", "", run))
    return found


def number_digits(number: str) -> list[str]:
    """The digits of each number in a contact's number field ('A or B' is two)."""
    return [re.sub(r"[^0-9]", "", part) for part in re.split(r" or |/", number) if part.strip()]


def _check_evidence(ck: _Checker, at: Any, number: str, quote: str | None, source: str) -> None:
    """Never an invented number: each one carries the seed policy's line it was copied from
    (`quote`), or a public page (`source` with the https:// address) and its check date."""
    if quote is not None:
        given = written_numbers(quote)
        for digits in number_digits(number):
            if digits not in given:
                ck.bad(at("quote"), f"does not contain the number {number!r} (as digits {digits})")
        return
    if not _URL.search(source):
        ck.bad(
            at("number"),
            f"{number!r} needs its evidence: `quote:` (the seed policy's line, verbatim) or a "
            "public page in `source:` (https://...) with `last_verified:`",
        )


def _merge(
    ck: _Checker, layers: list[_Layer]
) -> tuple[dict[str, _Src], dict[str, dict[str, _Src]], list[_Src]]:
    """Later layers override earlier ones: plain keys whole, sections key by key, contacts by id."""
    plain: dict[str, _Src] = {}
    sections: dict[str, dict[str, _Src]] = {name: {} for name in _SECTIONS}
    contacts: dict[str, _Src] = {}
    for layer in layers:
        for key, value in layer.data.items():
            where = _join(layer.prefix, key)
            if key in _SECTIONS:
                src = _Src(value, layer.file, where)
                raw = ck.mapping(src, _SECTIONS[key])
                for sub, subval in (raw or {}).items():
                    if sub not in _SECTIONS[key]:
                        continue  # already reported as an unknown key
                    sections[key][sub] = _Src(subval, layer.file, _join(where, sub))
            elif key == "contacts":
                if not isinstance(value, list):
                    ck.bad((layer.file, where), f"must be a list of contacts, got {_kind(value)}")
                    continue
                here: dict[str, str] = {}
                for i, item in enumerate(value):
                    cfield = _join(where, i)
                    cid = item.get("id") if isinstance(item, dict) else None
                    if not isinstance(cid, str):
                        # validated (and reported) when the contact is built
                        contacts[f"#{layer.file}#{cfield}"] = _Src(item, layer.file, cfield)
                        continue
                    if cid in here:
                        ck.bad(
                            (layer.file, _join(cfield, "id")),
                            f"duplicate contact id {cid!r} (also at {here[cid]})",
                        )
                        continue
                    here[cid] = cfield
                    contacts[cid] = _Src(item, layer.file, cfield)
            elif key not in ("extends", "schools", "trust_safeguarding_leads"):
                plain[key] = _Src(value, layer.file, where)
    return plain, sections, list(contacts.values())


def _build_school(
    ck: _Checker, layers: list[_Layer], school_file: str, school_prefix: str
) -> SchoolProfile | None:
    plain, sections, raw_contacts = _merge(ck, layers)
    missing = lambda fld: _Src(None, school_file, _join(school_prefix, fld))  # noqa: E731

    def get(key: str) -> _Src:
        return plain.get(key) or missing(key)

    def sec(section: str, key: str) -> _Src:
        return sections[section].get(key) or missing(f"{section}.{key}")

    sid = ck.pattern(get("id"), _SLUG, "a lower-case slug like griffin-primary")
    name = ck.text(get("name"))
    tenant = ck.pattern(get("tenant_id"), _GUID, "a Microsoft 365 tenant GUID")
    la = ck.text(get("local_authority"))
    tz = ZoneInfo("Europe/London")
    if "timezone" in plain:
        tz_name = ck.text(plain["timezone"])
        if tz_name:
            try:
                tz = ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                ck.bad(plain["timezone"], f"unknown timezone {tz_name!r}")

    hours = sections["school_hours"]
    days = ck.days(hours["days"]) if "days" in hours else frozenset(range(5))
    start = ck.clock(hours["start"]) if "start" in hours else time(8, 30)
    end = ck.clock(hours["end"]) if "end" in hours else time(15, 30)
    if start and end and start >= end:
        ck.bad(missing("school_hours"), f"start {start:%H:%M} must be before end {end:%H:%M}")

    closures: set[date] = set()
    if "closure_days" in plain:
        src = plain["closure_days"]
        if not isinstance(src.value, list):
            ck.bad(src, f"must be a list of ISO dates, got {_kind(src.value)}")
        else:
            for i, item in enumerate(src.value):
                d = ck.day(_Src(item, src.file, _join(src.field, i)))
                if d:
                    closures.add(d)

    contacts: list[Contact] = []
    for src in raw_contacts:
        c = _contact(ck, src, tz)
        if c is not None:
            contacts.append(c)
    ids = {c.id for c in contacts}
    built_ids = {src.value.get("id") for src in raw_contacts if isinstance(src.value, dict)}
    for required in REQUIRED_CONTACTS:
        if required not in built_ids:
            ck.bad(missing("contacts"), f"required contact {required!r} is missing")

    people = sections["people"]
    dsl = _person(ck, sec("people", "dsl"), ids)
    deputies = _people_list(ck, people.get("deputies"), ids)
    head = _person(ck, sec("people", "headteacher"), ids)
    case_managers = _people_list(ck, people.get("case_managers"), ids)
    deputy_head = _person(ck, people["deputy_head"], ids) if people.get("deputy_head") else None
    chair_src = sec("people", "chair_of_governors")
    chair = _person(ck, chair_src, ids, title=True)
    chair_title = "Chair of Governors"
    if isinstance(chair_src.value, dict) and "title" in chair_src.value:
        chair_title = (
            ck.text(_Src(chair_src.value["title"], chair_src.file, _join(chair_src.field, "title")))
            or chair_title
        )
    governor = (
        _person(ck, people["safeguarding_governor"], ids)
        if people.get("safeguarding_governor")
        else None
    )
    team = [p for p in (dsl, *deputies) if p]
    seen: set[str] = set()
    for p in team:
        if p.aad_object_id in seen:
            ck.bad(
                missing("people"), f"{p.name} has the same aad_object_id as another DSL team member"
            )
        seen.add(p.aad_object_id)

    channel = DslChannel(
        team_id=ck.text(sec("dsl_channel", "team_id")) or "",
        channel_id=ck.text(sec("dsl_channel", "channel_id")) or "",
        name=ck.text(sec("dsl_channel", "name")) or "",
        mention_routine=_mention_routine(ck, sections["dsl_channel"].get("mention_routine")),
    )

    staff_ids, email_domains = _staff(ck, sections["staff"])

    esc = sections["escalation"]
    escalation = Escalation(**{k: ck.minutes(v) or 1 for k, v in esc.items()})
    rl = sections["rules"]
    rules_kwargs: dict[str, Any] = {}
    for key, src in rl.items():
        if key in {"fgm_police_before_dsl", "fgm_all_staff_report_to_police"}:
            rules_kwargs[key] = ck.boolean(src)
        elif key in _OPTIONAL_TEXT_RULES:
            text = ck.optional_text(src)
            if text is not None or key in _NULL_MEANS_NONE:
                rules_kwargs[key] = text
        else:
            nullable = key in _NULLABLE_NUMBER_RULES
            rules_kwargs[key] = ck.minutes(src, allow_null=nullable)
    rules = LocalRules(**rules_kwargs)

    if ck.problems or None in (sid, name, tenant, la, days, start, end, dsl, head, chair):
        return None
    for cid in SOCIAL_CARE_CONTACTS:
        found = next((src for src in raw_contacts if src.value.get("id") == cid), None)
        if found is not None and found.value.get("number") is None:
            ck.warn(
                (found.file, f"{found.field}.number ({cid})"),
                f"no {_SOCIAL_CARE_NAMES[cid]} number - a member of staff who cannot reach the "
                "DSL is given 999, 101 and the NSPCC instead. Add the number from the local "
                "authority's published page, with `source:` (the page) and `last_verified:`.",
            )
    return SchoolProfile(
        id=sid,  # type: ignore[arg-type]
        name=name,  # type: ignore[arg-type]
        tenant_id=tenant.lower(),  # type: ignore[union-attr]
        local_authority=la,  # type: ignore[arg-type]
        timezone=tz,
        school_days=days,  # type: ignore[arg-type]
        school_start=start,  # type: ignore[arg-type]
        school_end=end,  # type: ignore[arg-type]
        closure_days=frozenset(closures),
        dsl=dsl,  # type: ignore[arg-type]
        deputies=tuple(deputies),
        headteacher=head,  # type: ignore[arg-type]
        deputy_head=deputy_head,
        chair_of_governors=chair,  # type: ignore[arg-type]
        chair_title=chair_title,
        dsl_channel=channel,
        escalation=escalation,
        rules=rules,
        contacts=tuple(contacts),
        source_path=school_file,
        safeguarding_governor=governor,
        case_managers=tuple(case_managers),
        staff_ids=staff_ids,
        email_domains=email_domains,
    )


_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")


def _staff(ck: _Checker, staff: Mapping[str, _Src]) -> tuple[frozenset[str], tuple[str, ...]]:
    """`staff: {aad_object_ids: [...], email_domains: [...]}` - both optional lists."""
    ids: set[str] = set()
    domains: list[str] = []
    for key, rx, what, out in (
        ("aad_object_ids", _GUID, "an Entra (AAD) object id GUID", ids),
        ("email_domains", _DOMAIN, "an e-mail domain like school.essex.sch.uk", domains),
    ):
        src = staff.get(key)
        if src is None:
            continue
        if not isinstance(src.value, list):
            ck.bad(src, f"must be a list, got {_kind(src.value)}")
            continue
        for i, item in enumerate(src.value):
            text = item.strip().lower().lstrip("@") if isinstance(item, str) else item
            value = ck.pattern(_Src(text, src.file, _join(src.field, i)), rx, what)
            if value is None:
                continue
            if isinstance(out, set):
                out.add(value)
            elif value not in out:
                out.append(value)
    return frozenset(ids), tuple(domains)


def _build(bases: list[_Layer], data: Mapping[str, Any], path: str) -> Organisation:
    ck = _Checker()
    for base in bases:
        ck.keys(base.data, _ORG_KEYS - {"schools", "id", "name"}, base.file, "")
    ck.keys(data, _ORG_KEYS, path, "")
    top = _Layer(data, path, "")
    schools: list[SchoolProfile] = []
    if "schools" in data:
        entries = data["schools"]
        if not isinstance(entries, list) or not entries:
            raise ProfileError([f"{path}: schools: must be a non-empty list of schools"])
        org_id = ck.pattern(_Src(data.get("id"), path, "id"), _SLUG, "a lower-case slug")
        org_name = ck.text(_Src(data.get("name"), path, "name"))
        # id and name belong to the trust, not its schools
        shared = _Layer({k: v for k, v in data.items() if k not in ("id", "name")}, path, "")
        for i, entry in enumerate(entries):
            prefix = _join("schools", i)
            if not isinstance(entry, dict):
                ck.bad((path, prefix), f"must be a mapping, got {_kind(entry)}")
                continue
            ck.keys(entry, _SCHOOL_KEYS, path, prefix)
            school = _build_school(ck, [*bases, shared, _Layer(entry, path, prefix)], path, prefix)
            if school:
                schools.append(school)
    else:
        org_id = org_name = None
        school = _build_school(ck, [*bases, top], path, "")
        if school:
            schools.append(school)
            org_id, org_name = school.id, school.name
    seen: dict[str, int] = {}
    for i, s in enumerate(schools):
        if s.id in seen:
            ck.bad(
                (path, f"schools.{i}.id"),
                f"duplicate school id {s.id!r} (also schools.{seen[s.id]})",
            )
        seen[s.id] = i
    leads: list[Person] = []
    if "trust_safeguarding_leads" in data:
        contact_ids = {c.id for s in schools for c in s.contacts}
        src = _Src(data["trust_safeguarding_leads"], path, "trust_safeguarding_leads")
        leads = _people_list(ck, src, contact_ids)
    if ck.problems:
        raise ProfileError(ck.problems)
    for line in ck.warnings:
        log.warning("%s", line)
    return Organisation(
        id=org_id or "",
        name=org_name or "",
        schools=tuple(schools),
        source_path=path,
        warnings=tuple(ck.warnings),
        trust_safeguarding_leads=tuple(leads),
    )


def parse_organisation(text: str, path: str, base: Mapping[str, Any] | None = None) -> Organisation:
    """Parse one profile file's text; `base` is the already-loaded mapping it extends, if any."""
    data = _load_yaml(text, path)
    bases = [_Layer(base, f"{path} (base)", "")] if base else []
    return _build(bases, data, path)


def _read_chain(path: Path, seen: tuple[Path, ...]) -> list[tuple[Path, dict[str, Any]]]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ProfileError([f"{path}: extends: circular extends chain: {chain}"])
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([f"{path}: (file): cannot read: {exc.strerror}"]) from None
    data = _load_yaml(text, str(path))
    parent = data.get("extends")
    if parent is None:
        return [(path, data)]
    if not isinstance(parent, str) or not parent.strip():
        raise ProfileError([f"{path}: extends: must be a file path, got {_kind(parent)}"])
    return [*_read_chain(path.parent / parent, (*seen, resolved)), (path, data)]


def load_organisation(path: str | Path) -> Organisation:
    """Read a profile file and the files its `extends` chain names (relative to each file)."""
    chain = _read_chain(Path(path), ())
    bases = [_Layer(data, str(p), "") for p, data in chain[:-1]]
    last_path, last_data = chain[-1]
    return _build(bases, last_data, str(last_path))


def example_profiles_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "profiles"
