"""Contact look-up: only numbers from the school profile, marked when outside their hours."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from dialogs.replies import ContactView, Reply

DAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

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
    if not hours.known:
        return "hours not given in the school's policy"
    days = sorted(hours.days)
    span = (
        f"{DAY[days[0]]}-{DAY[days[-1]]}"
        if days == list(range(days[0], days[-1] + 1))
        else (", ".join(DAY[d] for d in days))
    )
    return f"{span} {hours.start:%H:%M}-{hours.end:%H:%M}"


def view(contact: Any, now: datetime) -> ContactView:
    return ContactView(
        name=contact.name,
        number=contact.number,
        tel=contact.tel_uri(),
        email=contact.email,
        purpose=contact.purpose,
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
    return Reply(
        kind="contacts",
        title=f"Numbers for '{what}'",
        text=_note(found, now),
        contacts=tuple(view(c, now) for c in found[:4]),
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
        contacts=tuple(view(c, now) for c in contacts),
    )


def _dsl_team(profile: Any, now: datetime) -> Reply:
    people = [f"DSL: {profile.dsl.name}"] + [f"Deputy DSL: {p.name}" for p in profile.deputies]
    phones = [profile.contact(p.phone) for p in profile.dsl_team() if p.phone]
    return Reply(
        kind="contacts",
        title="Your DSL team",
        text="\n".join(people)
        + ("" if phones else "\nNo phone number for the DSL team is in the school profile."),
        contacts=tuple(view(c, now) for c in dict.fromkeys(phones)),
    )


def out_of_hours(profile: Any, now: datetime) -> Reply:
    """Shown before the first question outside school hours: who to call now."""
    numbers = [profile.contact("emergency")] + [c for c in profile.contacts if c.out_of_hours]
    return Reply(
        kind="contacts",
        title="It is outside school hours",
        text="If a child is in immediate danger, phone "
        f"{profile.contact('emergency').number} now. Out of hours, call these now - do not "
        "wait for the DSL to read this report. I will still send the report to the DSL team.",
        contacts=tuple(view(c, now) for c in numbers),
        urgent=True,
    )
