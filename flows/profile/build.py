"""Building an Organisation from layers of raw profile data (national numbers, a trust's
shared keys, one school's entry): merged, each field checked, problems raised together."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.profile.checks import _GUID, _SLUG, _Checker, _join, _kind, _Src
from flows.profile.contact import Contact
from flows.profile.fields import _contact, _mention_routine, _people_list, _person, _staff
from flows.profile.model import (
    REQUIRED_CONTACTS,
    SOCIAL_CARE_CONTACTS,
    DslChannel,
    Escalation,
    LocalRules,
    Organisation,
    Person,
    ProfileError,
    SchoolProfile,
)
from flows.profile.schema import (
    _NULL_MEANS_NONE,
    _NULLABLE_NUMBER_RULES,
    _OPTIONAL_TEXT_RULES,
    _ORG_KEYS,
    _SCHOOL_KEYS,
    _SECTIONS,
)

# The logger keeps the name it had when the profile was one module.
log = logging.getLogger("flows.profile")

# What a missing number's warning calls each of SOCIAL_CARE_CONTACTS.
_SOCIAL_CARE_NAMES = {
    "childrens_social_care": "children's social care",
    "out_of_hours_social_care": "out-of-hours children's social care",
}


@dataclass(frozen=True)
class _Layer:
    data: Mapping[str, Any]
    file: str
    prefix: str  # "" for a file's top level, "schools.0" for a school entry


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
