"""Acting on an alert: the buttons on its card and the reporter's own updates.

A button is a DSL decision (checked for what it must record, then a record entry; some also
tell the reporter, set or stop timers), a chronology link, or a view shown only to the presser.
Only those access.py allows may act; anyone else is told why and nothing changes. The
reporter's own updates (an FGM police reference, the written record done) stop the deadlines
waiting for them. Every change refreshes the card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.services.access import may_act, name_of, refusal_for
from bot.services.alert_view import AlertView, hhmm
from bot.services.chronology import LINK_VERBS, Chronology
from bot.services.decisions import DECISIONS, refusal, route_kind, validate
from bot.services.messages import Messages
from bot.services.records import feedback, record
from bot.services.timing import CHASE_SOCIAL_CARE, DEADLINE, ESCALATE
from bot.store import Store, StoredConcern, TimerSpec
from bot.teams.record_cards import VIEW_VERBS, decision_form, field_values
from flows.calendar import working_days_for
from flows.concern import Action
from flows.directory import SchoolDirectory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActResult:
    """What pressing a button on an alert did: the card to show and a line for the actor."""

    allowed: bool
    card: dict[str, Any] | None
    message: str
    concern: StoredConcern | None = None


class Acting:
    def __init__(
        self,
        store: Store,
        schools: SchoolDirectory,
        clock: Callable[[], datetime],
        chronology: Chronology,
        cards: AlertView,
        messages: Messages,
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.schools = schools
        self.clock = clock
        self.chronology = chronology
        self.cards = cards
        self.messages = messages
        self.wake = wake

    async def act(
        self,
        concern_id: str,
        verb: str,
        actor_aad_id: str | None,
        note: str | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        seen_as: tuple[Mapping[str, Any], str] | None = None,
    ) -> ActResult:
        """A button on the alert: a decision (checked for what it must record), or a
        chronology link. `values`: the action's data (the boxes of the decision's card)."""
        stored = await self.store.get_concern(concern_id)
        known = verb in DECISIONS or verb in LINK_VERBS or verb in VIEW_VERBS
        if stored is None or not known:
            return ActResult(False, None, "That alert or action is not known.")
        if not may_act(self.schools, stored, actor_aad_id):
            reason, told = refusal_for(self.schools, stored, actor_aad_id)
            await self.store.audit(
                actor_aad_id, "action_refused", concern_id, {"verb": verb, "reason": reason}
            )
            logger.warning(
                "alert action refused concern=%s verb=%s reason=%s", concern_id, verb, reason
            )
            card = await self.cards.render(stored)
            return ActResult(False, card, f"{told} Nothing was changed.", stored)
        data = dict(values or {})
        if verb in VIEW_VERBS:  # shown to the presser only; nothing is changed
            if verb == "decision_form" and stored.status != "closed":
                route = stored.concern.routing.route
                return ActResult(
                    True, decision_form(stored.id, route, stored.concern.title), "", stored
                )
            return ActResult(True, await self.cards.render(stored), "", stored)
        if verb in LINK_VERBS:
            message = await self.chronology.act(stored, verb, data, actor_aad_id, self.clock())
            if message:
                return ActResult(False, await self.cards.render(stored), message, stored)
            await self.messages.card_update(concern_id)
            self.wake()
            return ActResult(True, await self.cards.render(stored), "Done.", stored)
        decision = DECISIONS[verb]
        if route_kind(stored.concern.routing.route) not in decision.routes:
            return ActResult(
                False,
                await self.cards.render(stored),
                f'"{decision.entry}" is not a decision for this kind of alert. '
                "Nothing was changed.",
                stored,
            )
        if stored.status == "closed" and verb != "add_note":
            return ActResult(
                False,
                await self.cards.render(stored),
                "This concern is closed. Add a note, or ask the reporter to report again. "
                "Nothing was changed.",
                stored,
            )
        answers = field_values(verb, data)
        legacy = note if note is not None else data.get("note")
        if legacy is not None and "note" not in answers:
            answers["note"] = legacy  # cards posted before decisions: one "note" box
        fields, problems = validate(decision, answers)
        if problems:
            return ActResult(
                False, await self.cards.render(stored), refusal(decision, problems), stored
            )
        if seen_as is not None:
            reference, activity_id = seen_as
            if await self.store.record_alert_post(
                concern_id, activity_id, reference, source="acted_on"
            ):
                logger.warning(
                    "alert copy learned from an action concern=%s activity_id=%s",
                    concern_id,
                    activity_id,
                )
        now = self.clock()
        school = self.schools.get(stored.concern.school_id)
        name = name_of(self.schools, actor_aad_id, school)
        if verb == "acknowledge":
            won = await self.store.acknowledge(concern_id, name, at=now)
            if not won:
                stored = await self.store.get_concern(concern_id)
                return ActResult(
                    True,
                    await self.cards.render(stored),
                    f"Already picked up by {stored.acknowledged_by}.",
                    stored,
                )
        elif verb == "add_note":
            concern = stored.concern
            concern.notes.append(Action(name, fields["note"], now.isoformat()))
            await self.store.save_concern(concern, status=stored.status, at=now)
        elif verb == "close":
            await self.store.cancel_timers(concern_id=concern_id)
        elif verb == "referred_lado":
            await self.store.cancel_timers(key=f"{DEADLINE}:{concern_id}:lado_one_working_day:soon")
            await self.store.cancel_timers(
                key=f"{DEADLINE}:{concern_id}:lado_one_working_day:overdue"
            )
        elif verb == "referred_social_care":
            # Social care should acknowledge within one working day: remind the DSL to chase.
            due = working_days_for(school).within_one_working_day(now)
            await self.store.schedule(
                TimerSpec(
                    CHASE_SOCIAL_CARE, due, {}, f"{CHASE_SOCIAL_CARE}:{concern_id}", concern_id
                )
            )
        if verb in {"acknowledge", "close"}:
            await self.store.cancel_timers(key=f"{ESCALATE}:{concern_id}")
        # The record entry and its audit line: one transaction (and the status, for a close).
        await record(self.store, stored, decision, fields, actor_aad_id, name, now)
        stored = await self.store.get_concern(concern_id)
        if verb == "acknowledge":
            await self.messages.notify_reporter(
                stored.concern,
                f"Your report has been picked up by {name} at {hhmm(now, school)}.",
            )
        elif decision.tells_reporter:
            await self.messages.notify_reporter(
                stored.concern, feedback(stored.concern, decision, hhmm(now, school))
            )
        await self.messages.card_update(concern_id)
        self.wake()
        return ActResult(True, await self.cards.render(stored), "Done.", stored)

    async def reporter_update(
        self, concern_id: str, actor_aad_id: str | None, action: str, value: str = ""
    ) -> str:
        """The reporter records something the procedure is waiting for (FGM police reference,
        written record done). Only the reporter of that concern may; returns the reply."""
        stored = await self.store.get_concern(concern_id)
        if stored is None or stored.concern.reporter.aad_object_id != actor_aad_id:
            return "That report is not one of yours. Nothing was changed."
        now = self.clock()
        concern = stored.concern
        if action == "add_police_reference":
            if not value.strip():
                return "Type the police reference number first. Nothing was changed."
            concern.police_reference = value
            concern.actions_taken.append(Action("Police reference added", value, now.isoformat()))
            await self.store.save_concern(concern, status=stored.status, at=now)
            await self.store.cancel_timers(concern_id=concern_id, kinds=[DEADLINE])
            reply = "Saved the police reference; the DSL's card now shows it. Thank you."
        elif action == "written_record_done":
            key = f"{DEADLINE}:{concern_id}:written_record"
            for phase in ("soon", "overdue"):
                await self.store.cancel_timers(key=f"{key}:{phase}")
            reply = "Thank you - noted that the written record is done."
        else:
            return "Sorry, I did not understand that button. Nothing was changed."
        await self.store.audit(actor_aad_id, action, concern_id, {}, at=now)
        await self.messages.card_update(concern_id)
        self.wake()
        return reply
