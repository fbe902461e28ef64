"""Which school a member of staff is at, for a server that serves several.

Resolved before the conversation runs, so everything after it - flow texts, contacts, local
rules, the DSL channel, hours - is that school's. In order: the report in progress keeps the
school it was started at; a person the profiles list (by Entra object id) at one school is at
that school; listed at several, they are asked for each report; otherwise what they told us
before, or their e-mail domain; otherwise they are asked once ("Which school are you at?")
and it is remembered. `my school` shows it and lets them change it.

What is kept (the "school" part of the person's stored state, beside their session):
  {"id": remembered school, "report": the school of the report in hand, "at": when chosen,
   "pending": [what they wrote before they were asked]}
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botbuilder.core import MessageFactory
from botbuilder.schema import Activity

from bot.teams.cards import card, card_message, heading, submit
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)

PART = "school"
CHOOSE = "choose_school"
MY_SCHOOL = "my_school"
MY_SCHOOL_WORDS = {"my school", "which school", "change school", "change my school"}
# A two-school member's answer serves the report it was asked for; unused, it lapses.
REPORT_CHOICE_LASTS = timedelta(hours=1)
MAX_BUTTONS = 5  # more schools than this: a drop-down, not a wall of buttons


@dataclass(frozen=True)
class Turn:
    """What to do with this message: run `text`/`value` in `school`, or send `reply`."""

    school: SchoolProfile | None
    text: str
    value: dict | None
    reply: Activity | None = None


@dataclass(frozen=True)
class Resolution:
    """The school for this turn, or (school None) the schools to ask between."""

    school: SchoolProfile | None
    choices: tuple[SchoolProfile, ...] = ()
    per_report: bool = False  # listed at several schools: asked for every report
    how: str = ""  # only / report / listed / remembered / email / ask (for the log)


def is_my_school(text: str | None, value: Mapping[str, Any] | None) -> bool:
    if value:
        return value.get("action") == "command" and value.get("command") == MY_SCHOOL
    return " ".join((text or "").lower().split()) in MY_SCHOOL_WORDS


def chosen(value: Mapping[str, Any] | None) -> str | None:
    """The school id a pressed school button carries."""
    if value and value.get("action") == CHOOSE:
        return str(value.get("school_id") or "") or None
    return None


class SchoolResolver:
    def __init__(self, schools: SchoolDirectory, clock: Callable[[], datetime]) -> None:
        self.schools = schools
        self.clock = clock

    async def resolve(
        self,
        aad_object_id: str | None,
        tenant_id: str | None,
        part: dict[str, Any],
        *,
        mid_report: bool,
        email: Callable[[], Awaitable[str | None]],
    ) -> Resolution:
        """`part` (the person's stored school part) is updated in place when something new
        is learnt (an e-mail domain match is remembered, a lapsed choice dropped)."""
        single = self.schools.single
        if single is not None:
            return Resolution(single, how="only")
        report = self.schools.find(part.get("report"))
        if mid_report and report is not None:
            return Resolution(report, how="report")
        listed = self.schools.schools_of(aad_object_id, tenant_id=tenant_id)
        if len(listed) == 1:
            return Resolution(listed[0], how="listed")
        if listed:
            if report in listed and self._fresh(part):
                return Resolution(report, how="report")
            part.pop("report", None)
            return Resolution(None, listed, per_report=True, how="ask")
        remembered = self.schools.find(part.get("id"))
        if remembered is not None and remembered in self.schools.in_tenant(tenant_id):
            return Resolution(remembered, how="remembered")
        candidates = self.schools.in_tenant(tenant_id)
        if self.schools.uses_email_domains():
            address = await email()
            by_domain = self.schools.schools_of(None, address, tenant_id) if address else ()
            if len(by_domain) == 1:
                part["id"] = by_domain[0].id
                return Resolution(by_domain[0], how="email")
            candidates = by_domain or candidates
        if len(candidates) == 1:  # the only school in their tenant (a folder of profiles)
            part["id"] = candidates[0].id
            return Resolution(candidates[0], how="tenant")
        return Resolution(None, candidates, how="ask")

    async def turn(
        self,
        part: dict[str, Any],
        aad_object_id: str | None,
        tenant_id: str | None,
        text: str,
        value: dict | None,
        *,
        mid_report: bool,
        email: Callable[[], Awaitable[str | None]],
    ) -> Turn:
        """One message: answer `my school`, take an answer to the school question (pressed or
        typed), ask it (keeping what they wrote, to run once answered), or go on."""
        resolution = await self.resolve(
            aad_object_id, tenant_id, part, mid_report=mid_report, email=email
        )
        if is_my_school(text, value):
            shown = self.shown(resolution, part, aad_object_id, tenant_id, mid_report=mid_report)
            return Turn(None, text, value, shown)
        picked_id = chosen(value)
        answering = resolution.school is None and "pending" in part and text.strip()
        if picked_id or answering:
            allowed, per_report = self.allowed(aad_object_id, tenant_id)
            picked = (
                next((s for s in allowed if s.id == picked_id), None)
                if picked_id
                else self.typed(text, allowed)
            )
            if picked is None:  # not one of theirs: ask again, losing nothing typed
                if not picked_id:
                    part["pending"] = [*part.get("pending", []), text]
                return Turn(None, text, value, self.question(resolution))
            self.choose(part, picked, per_report=per_report)
            pending, pending_value = part.pop("pending", None), part.pop("pending_value", None)
            logger.info("school chosen school=%s per_report=%s", picked.id, per_report)
            if pending or pending_value:
                return Turn(picked, "\n".join(pending or []), pending_value)
            if resolution.school is not None and not per_report:  # changed with `my school`
                return Turn(None, "", None, MessageFactory.text(_now_at(picked)))
            return Turn(picked, "", None)
        if resolution.school is None:
            part["pending"] = [*part.get("pending", []), *([text] if text.strip() else [])]
            if value:
                part["pending_value"] = value
            return Turn(None, text, value, self.question(resolution))
        part.pop("pending", None)  # placed since (a profile now lists them): nothing to ask
        part.pop("pending_value", None)
        return Turn(resolution.school, text, value)

    def pin(
        self, part: dict[str, Any], school: SchoolProfile, *, was_mid_report: bool, mid_report: bool
    ) -> bool:
        """A report keeps the school it was started at until it ends, whatever `my school`
        says meanwhile; once it ends, a two-school member is asked again next time. Returns
        whether `part` changed."""
        if mid_report and part.get("report") != school.id:
            part["report"] = school.id
            part["at"] = self.clock().isoformat()
            return True
        if not mid_report and was_mid_report and "report" in part:
            part.pop("report", None)
            part.pop("at", None)
            return True
        return False

    def _fresh(self, part: Mapping[str, Any]) -> bool:
        try:
            at = datetime.fromisoformat(part.get("at") or "")
        except ValueError:
            return False
        return self.clock() - at < REPORT_CHOICE_LASTS

    def allowed(
        self, aad_object_id: str | None, tenant_id: str | None
    ) -> tuple[tuple[SchoolProfile, ...], bool]:
        """The schools this person may pick, and whether the pick is for one report only.
        Listed at one school by the profile: no choice (the profile decides)."""
        listed = self.schools.schools_of(aad_object_id, tenant_id=tenant_id)
        if len(listed) > 1:
            return listed, True
        if listed:
            return (), False
        return self.schools.in_tenant(tenant_id), False

    def choose(self, part: dict[str, Any], school: SchoolProfile, *, per_report: bool) -> None:
        if per_report:
            part["report"] = school.id
            part["at"] = self.clock().isoformat()
        else:
            part["id"] = school.id
            part.pop("report", None)  # a changed school applies from the next report

    def typed(self, text: str, choices: tuple[SchoolProfile, ...]) -> SchoolProfile | None:
        """A school named in typed words ("kings road"), when exactly one matches."""
        said = " ".join(text.lower().replace("-", " ").split())
        if len(said) < 3:
            return None
        exact = [s for s in choices if said in (s.name.lower(), s.id.replace("-", " "))]
        if exact:
            return exact[0]
        found = [s for s in choices if said in s.name.lower() or said in s.id.replace("-", " ")]
        return found[0] if len(found) == 1 else None

    # -- what the person sees ------------------------------------------------------------

    def question(self, resolution: Resolution) -> Activity:
        emergency = self.schools.schools[0].contact("emergency").number
        if resolution.per_report:
            title = "Which school is this about?"
            why = "You work at more than one school, so I ask each time you report."
        else:
            title = "Which school are you at?"
            why = "I will remember it; type 'my school' to see or change it."
        body = [
            heading(title, size="Medium"),
            _text(f"{why} If a child is in immediate danger, phone {emergency} now."),
        ]
        actions = self._choice_actions(resolution.choices, body)
        lines = [title, *(f"- {s.name}" for s in resolution.choices)]
        return card_message(card(body, actions), "\n".join(lines), title)

    def _choice_actions(
        self, choices: tuple[SchoolProfile, ...], body: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if len(choices) <= MAX_BUTTONS:
            return [
                submit(s.name, {"action": CHOOSE, "school_id": s.id}, inputs=False) for s in choices
            ]
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "school_id",
                "label": "Your school",
                "isRequired": True,
                "errorMessage": "Choose your school.",
                "choices": [{"title": s.name, "value": s.id} for s in choices],
            }
        )
        return [submit("This is my school", {"action": CHOOSE})]

    def shown(
        self,
        resolution: Resolution,
        part: Mapping[str, Any],
        aad_object_id: str | None,
        tenant_id: str | None,
        *,
        mid_report: bool,
    ) -> Activity:
        """The answer to `my school`: where I think you are, why, and how to change it."""
        listed = self.schools.schools_of(aad_object_id, tenant_id=tenant_id)
        report = self.schools.find(part.get("report")) if mid_report else None
        keep = f" Your report in progress stays with {report.name}." if report else ""
        if self.schools.single is not None:
            return MessageFactory.text(f"You are at {self.schools.single.name}.")
        if len(listed) == 1:
            return MessageFactory.text(
                f"The school profile lists you at {listed[0].name}. If that is wrong, ask "
                "whoever looks after this bot to correct the profile." + keep
            )
        if listed:
            names = " and ".join(s.name for s in listed)
            return MessageFactory.text(
                f"The school profile lists you at {names}, so I ask which school each report "
                "is about." + keep
            )
        current = self.schools.find(part.get("id"))
        title = f"You are at {current.name}." if current else "I do not know your school yet."
        body = [
            heading(title, size="Medium"),
            _text("To change it, choose your school." + keep),
        ]
        choices = tuple(s for s in self.schools.in_tenant(tenant_id) if s is not current)
        actions = self._choice_actions(choices, body)
        lines = [title, "To change it, choose:", *(f"- {s.name}" for s in choices)]
        return card_message(card(body, actions), "\n".join(lines), "Your school")


def _now_at(school: SchoolProfile) -> str:
    return f"Thank you. Your school is now {school.name}."


def _text(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True}
