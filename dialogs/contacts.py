"""Contact look-up: only numbers from the school profile, marked when outside their hours."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from dialogs.replies import ContactView, Reply
from flows.profile import hours_phrase

# Whole messages that ask for a number. "number for lado" / "lado number?" is a request
# everywhere; a bare "lado" is a request except where a free-text answer is expected.
_ASK = re.compile(
    r"^(?:what(?:'s| is) the |who(?:'s| is) the )?(?P<pre>number for |phone |call |contact )?"
    r"(?P<what>.+?)(?P<post> number| numbers| phone| contact| details)?(?P<q>\?)?$"
)
_WORDS = {"contacts", "numbers", "phone numbers", "directory"}


def hours_text(contact: Any) -> str:
    hours = contact.hours
    if hours.always:
        return "24 hours, every day"
    if not hours.known and not hours.label:
        return "hours not given in the school's policy"
    return hours_phrase(contact)


def view(contact: Any, now: datetime, profile: Any) -> ContactView:
    """One contact as staff see it. With no number, the purpose says what to do instead
    (999, 101, the NSPCC) - never 'ask the DSL', who may be the one they cannot reach."""
    purpose = contact.purpose
    if not contact.number:
        purpose = f"{purpose} {profile.no_number_fallback()}"
    email = contact.email
    if email and contact.email_warning:
        email = f"{email} (WARNING: {contact.email_warning})"
    name = contact.name
    if contact.area and len(profile.areas()) > 1:
        name = f"{name} [child lives in {contact.area}]"
    return ContactView(
        name=name,
        number=contact.number,
        tel=contact.tel_uri(),
        email=email,
        purpose=purpose,
        hours=hours_text(contact),
        open_now=contact.is_open(now),
        last_verified=contact.last_verified.isoformat(),
    )


def lookup(profile: Any, text: str, now: datetime, *, bare: bool = True) -> Reply | None:
    """A contacts reply if the message asks for a number we know of, else None.
    With bare=False (a free-text answer is expected) only an explicit request counts."""
    said = text.strip().lower()
    if not said or len(said) > 60 or "\n" in said:
        return None
    if said in _WORDS:
        return directory(profile, now)
    match = _ASK.match(said)
    if not match or not (bare or match.group("pre") or match.group("post") or match.group("q")):
        return None
    what = match.group("what").strip()
    if what in {"dsl", "ddsl", "safeguarding lead", "designated safeguarding lead"}:
        return _dsl_team(profile, now)
    found = [c for c in profile.find_contacts(what) if _exact_enough(c, what)]
    if not found:
        return None
    areas = profile.areas()
    if len(areas) > 1:
        return _by_area(profile, what, found, areas, now)
    return Reply(
        kind="contacts",
        title=f"Numbers for '{what}'",
        text=_note(found, now),
        contacts=tuple(view(c, now, profile) for c in found[:4]),
    )


def _area_word(area: str) -> str:
    return area.lower().split(" of ")[0]  # "East Riding of Yorkshire" -> "east riding"


def _by_area(profile: Any, what: str, found: list[Any], areas: list[str], now: datetime) -> Reply:
    """A school serving children from several local authorities (Griffin: Hull and the East
    Riding): the right number depends on where the CHILD lives, so ask - and until it is
    answered, show each area's number, labelled, never one area's number alone."""
    named = [a for a in areas if _area_word(a) in what]
    # the same service in the other areas (EHaSH in Hull <-> East Riding referrals)
    roles = {c.role or c.id for c in found}
    wider = [c for c in profile.contacts if (c.role or c.id) in roles]
    shown = list(dict.fromkeys([*found, *wider]))
    if len(named) == 1:
        shown = [c for c in shown if c.area in (None, named[0])]
        return Reply(
            kind="contacts",
            title=f"Numbers for '{what}' (child lives in {named[0]})",
            text=_note(shown, now),
            contacts=tuple(view(c, now, profile) for c in shown[:4]),
        )
    local = [c for c in shown if c.area]
    if len({c.area for c in local}) < 2:
        return Reply(
            kind="contacts",
            title=f"Numbers for '{what}'",
            text=_note(shown, now),
            contacts=tuple(view(c, now, profile) for c in shown[:4]),
        )
    shown.sort(key=lambda c: areas.index(c.area) if c.area in areas else len(areas))
    choices = " or ".join(f"'{what} {_area_word(a)}'" for a in areas)
    return Reply(
        kind="contacts",
        title=f"Numbers for '{what}': which local authority does the child live in?",
        text=(
            "The number depends on where the child lives: "
            + ", ".join(areas)
            + f". Each number below says which area it is for. Type {choices} to see one "
            "area only. " + _note(shown, now)
        ),
        contacts=tuple(view(c, now, profile) for c in shown[:8]),
    )


def _exact_enough(contact: Any, what: str) -> bool:
    # Only answer when the words name the contact: free text like "police came" is an answer.
    return (
        what.replace(" ", "_") == contact.id
        or what in contact.keywords
        or any(what == k or what.startswith(k + " ") for k in contact.keywords)
    )


def _note(contacts: list[Any], now: datetime) -> str:
    closed = [c.name for c in contacts if not c.is_open(now)]
    note = "Numbers from your school's safeguarding policy."
    if closed:
        note += " Closed now: " + "; ".join(closed) + " - use an out-of-hours number below."
    return note


def directory(profile: Any, now: datetime) -> Reply:
    contacts = list(profile.contacts)
    return Reply(
        kind="contacts",
        title="Safeguarding contacts",
        text=_note(contacts, now),
        contacts=tuple(view(c, now, profile) for c in contacts),
    )


def _dsl_team(profile: Any, now: datetime) -> Reply:
    people = [f"DSL: {profile.dsl.name}"] + [f"Deputy DSL: {p.name}" for p in profile.deputies]
    phones = [profile.contact(p.phone) for p in profile.dsl_team() if p.phone]
    return Reply(
        kind="contacts",
        title="Your DSL team",
        text="\n".join(people)
        + ("" if phones else "\nNo phone number for the DSL team is in the school profile."),
        contacts=tuple(view(c, now, profile) for c in dict.fromkeys(phones)),
    )


def out_of_hours(profile: Any, now: datetime, to: str | None = None) -> Reply:
    """Shown before the first question outside school hours: who to call now. `to` is who the
    report goes to (an allegation never to the DSL team); by default the DSL team."""
    numbers = [profile.contact("emergency")] + [c for c in profile.contacts if c.out_of_hours]
    reader = "the DSL to read" if to is None else "anyone to read"
    to = to or "the DSL team"
    return Reply(
        kind="contacts",
        title="It is outside school hours",
        text="If a child is in immediate danger, phone "
        f"{profile.contact('emergency').number} now. Out of hours, call these now - do not "
        f"wait for {reader} this report. I will still send the report to {to}.",
        contacts=tuple(view(c, now, profile) for c in numbers),
        urgent=True,
    )
