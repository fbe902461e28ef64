"""One field's raw value to its typed part of the profile: a person (or a list of people),
opening hours, a contact, the staff list and the channel's mention setting."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from flows.profile.checks import _GUID, _NUMBER, _SLUG, _Checker, _join, _kind, _Src
from flows.profile.contact import Contact, Hours
from flows.profile.evidence import _check_evidence
from flows.profile.model import MENTION_ROUTINE, Person
from flows.profile.schema import _CONTACT_KEYS, _HOURS_KEYS, _HOURS_LABELS, _PERSON_KEYS


def _mention_routine(ck: _Checker, src: _Src | None) -> str:
    if src is None or src.value is None:
        return "always"
    value = ck.text(src)
    if value is not None and value not in MENTION_ROUTINE:
        ck.bad(src, f"must be one of {', '.join(MENTION_ROUTINE)}, got {value!r}")
    return value if value in MENTION_ROUTINE else "always"


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
