"""'not acted on': a staff member presses for reconsideration of a concern they reported.

Seeds 000 s5 and 004 s6: a member of staff who feels a concern "is not being addressed or
does not appear to be improving" should press for reconsideration with the DSL, and any
individual may refer to children's social care. The command explains that route and, for
the caller's OWN report only, records the request (audit) and tells the DSL and the
headteacher through the durable outbox; the alert card shows the request too.
An allegation about staff never goes to the DSL: only to the case manager it was routed to
(the headteacher, or the chair when it is about the head), and never to a person named as
the adult concerned. Messages name the report, never the child or what was written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from botbuilder.core import MessageFactory
from botbuilder.schema import Activity

from bot.services.alerts import AlertService
from bot.services.reports import RECONSIDER, _line
from bot.store import Store, StoredConcern
from bot.teams.cards import card, card_message, heading, submit
from flows.concern import Reporter
from flows.procedure_text import contact_line

logger = logging.getLogger(__name__)

REQUESTED = "reconsideration_requested"
# Asking twice within this time tells the same people nothing new.
REPEAT_WINDOW = timedelta(minutes=30)
MAX_SHOWN = 10
SOURCE = "seed 000 s5 and seed 004 s6: staff may press for reconsideration with the DSL"


class Reconsideration:
    """Explains the escalation route; records and passes on a request about one's own report."""

    def __init__(
        self,
        school: Any,
        store: Store,
        alerts: AlertService,
        clock: Callable[[], datetime],
    ) -> None:
        self.school = school  # the caller's school (the route explained); a request about
        # a report is handled by that report's school (alerts.school_of)
        self.store = store
        self.alerts = alerts
        self.clock = clock

    async def replies(
        self, caller: Reporter, value: Mapping[str, Any] | None, *, in_flow: bool = False
    ) -> list[Activity]:
        concern_id = str((value or {}).get("concern_id") or "")
        if concern_id:
            out = [await self.request(caller, concern_id)]
        else:
            out = [await self.explain(caller)]
        if in_flow:
            out.append(
                MessageFactory.text(
                    "Your report in progress is kept: carry on answering where you left off."
                )
            )
        return out

    # -- the route -------------------------------------------------------------------------

    def route_text(self) -> list[str]:
        school = self.school
        emergency = school.contact("emergency").number
        return [
            f"1. Speak to the DSL ({school.dsl.name}) again and press for the case to be "
            "reconsidered - your school's policy asks you to. If they are not available, a "
            f"deputy DSL or the headteacher ({school.headteacher.name}).",
            "2. You do not need anyone's permission to protect a child: anyone may refer to "
            f"children's social care - {contact_line(school, 'childrens_social_care')}. If a "
            f"child is in immediate danger, phone {emergency}.",
            "3. A concern about an adult working in the school goes to the headteacher (the "
            f"{school.chair_title.lower()} if it is about the headteacher), or to the LADO - "
            f"{contact_line(school, 'lado')}.",
            "4. If you feel unable to raise it in school, or it has still not been addressed: "
            f"{contact_line(school, 'nspcc_whistleblowing')}.",
        ]

    async def explain(self, caller: Reporter) -> Activity:
        found = await self.store.list_concerns_by_reporter(
            caller.aad_object_id, limit=MAX_SHOWN + 1
        )
        found = [s for s in found if s.status != "draft"][:MAX_SHOWN]
        body: list[dict[str, Any]] = [
            heading("If you feel a concern has not been acted on", size="Medium"),
            *(_line(text) for text in self.route_text()),
        ]
        lines = ["If you feel a concern has not been acted on:", *self.route_text()]
        if found:
            body.append(
                _line(
                    "I can also tell them for you: choose the report you want looked at "
                    "again. This is recorded.",
                    subtle=True,
                )
            )
            lines.append("Your reports (press the button on the card to ask again):")
        else:
            body.append(_line("You have no reports made through me to ask about.", subtle=True))
        for number, stored in enumerate(found, start=1):
            when = self._when(stored.created_at, self.alerts.school_of(stored.concern))
            title = f"{number}. {stored.concern.title} - raised {when}"
            body.append(
                {
                    "type": "Container",
                    "separator": True,
                    "items": [
                        _line(title),
                        {
                            "type": "ActionSet",
                            "actions": [
                                submit(
                                    "Ask for it to be looked at again",
                                    {
                                        "action": "command",
                                        "command": RECONSIDER,
                                        "concern_id": stored.id,
                                    },
                                )
                            ],
                        },
                    ],
                }
            )
            lines.append(title)
        logger.info("reconsideration route shown reports=%d", len(found))
        return card_message(card(body), "\n".join(lines), "Not acted on")

    # -- a request about one report --------------------------------------------------------

    async def request(self, caller: Reporter, concern_id: str) -> Activity:
        stored = await self.store.get_concern(concern_id)
        aad = caller.aad_object_id
        if stored is None or stored.concern.reporter.aad_object_id != aad:
            await self.store.audit(aad or None, "reconsideration_refused", None, {})
            logger.warning("reconsideration refused: not the caller's report")
            return MessageFactory.text(
                "That report is not one of yours, so I cannot ask about it. Nothing was sent. "
                "You can still speak to the DSL in person - type 'not acted on' for the route."
            )
        now = self.clock()
        concern = stored.concern
        school = self.alerts.school_of(concern)
        earlier = [
            e
            for e in await self.store.audit_entries(concern_id)
            if e.action == REQUESTED and e.actor_aad_id == aad and now - e.at < REPEAT_WINDOW
        ]
        if earlier:
            at = self._hhmm(earlier[-1].at, school)
            return MessageFactory.text(
                f"You already asked about this report at {at}, and they were told. Please "
                "speak to them in person now."
            )
        if concern.routing.route == "lado":
            await self.store.audit(aad, REQUESTED, concern_id, {"route": "lado", "told": 0})
            return MessageFactory.text(
                "This report was not sent to anyone in school (conflict of interest), so I have "
                f"told nobody. Phone the LADO yourself: {contact_line(school, 'lado')}."
            )
        people = self.recipients(stored)
        if not people:
            await self.store.audit(aad, REQUESTED, concern_id, {"route": "none", "told": 0})
            return MessageFactory.text(
                "There is nobody in school I can safely tell about this report. Phone the LADO "
                f"yourself: {contact_line(school, 'lado')}."
            )
        text = (
            f"Reconsideration asked for: {caller.name} feels that their report "
            f"'{concern.title}' (raised {self._when(stored.created_at, school)}) has not been "
            "acted on or is not improving, and asks for it to be looked at again. Please speak "
            f"to them today ({SOURCE})."
        )
        for person in people:
            message = self.alerts.direct(person.aad_object_id, text)
            await self.store.enqueue(concern_id, message.kind, message.target, message.payload)
        detail = {"route": concern.routing.route, "told": len(people)}
        await self.store.audit(aad, REQUESTED, concern_id, detail, at=now)
        # The alert card (DSL channel, or the case manager's chat) shows the request.
        await self.store.enqueue(concern_id, "update_card", {}, {"concern_id": concern_id})
        self.alerts.wakeup.set()
        logger.info("reconsideration requested concern=%s told=%d", concern_id, len(people))
        names = " and ".join(p.name for p in people)
        return MessageFactory.text(
            f"Recorded at {self._hhmm(now, school)}. I have told {names} that you asked for this "
            "report to be looked at again. Please speak to them in person as well. If a child is "
            "at risk of harm, anyone may refer to children's social care: "
            f"{contact_line(school, 'childrens_social_care')}."
        )

    def recipients(self, stored: StoredConcern) -> list[Any]:
        """The DSL and the headteacher; for an allegation only its case manager. Nobody whose
        name is the adult concerned's; deduplicated (a small school's head may be the DSL)."""
        school = self.alerts.school_of(stored.concern)
        route = stored.concern.routing.route
        if route == "dsl_team":
            people = [school.dsl, school.headteacher]
        elif route == "headteacher":
            people = [school.headteacher]
        else:
            people = [school.chair_of_governors]
        subject = " ".join((stored.concern.subject_name or "").lower().split())
        chosen: list[Any] = []
        for person in people:
            if person is None or any(p.aad_object_id == person.aad_object_id for p in chosen):
                continue
            if subject and " ".join(person.name.lower().split()) in subject:
                continue
            chosen.append(person)
        chair = school.chair_of_governors
        if not chosen and route == "headteacher" and chair is not None:
            chosen = [chair]  # the headteacher is the adult concerned: the chair instead
        return chosen

    def _hhmm(self, at: datetime, school: Any) -> str:
        return at.astimezone(school.timezone).strftime("%H:%M")

    def _when(self, at: datetime, school: Any) -> str:
        return at.astimezone(school.timezone).strftime("%H:%M, %a %d %b %Y")
