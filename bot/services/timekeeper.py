"""The Timekeeper: fires durable timers - escalation, deadline reminders, stalled reports.

A timer is claimed with a conditional update and finished in one transaction with what it
caused (outgoing messages, next timers, audit), so a restart or crash loses none and a
timer's effects happen once. Handlers only read and decide; the outbox does the sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.errors import SafeguardingBotError
from bot.services.alerts import AlertService
from bot.services.timing import (
    CHASE_SOCIAL_CARE,
    DEADLINE,
    ESCALATE,
    MID_REPORT,
    STALLED_NOTICE,
    STALLED_REMINDER,
    deadline_met_at,
    escalation_step,
    stalled_timers,
)
from bot.services.worker import run_until_stopped
from bot.store import OutboxMessage, Store, StoredConcern, Timer, TimerSpec
from bot.teams.cards import card, heading, verbatim
from flows.calendar import working_days_for
from flows.catalogue import catalogue
from flows.concern import Reporter
from flows.directory import UnknownSchool
from flows.engine import CompiledFlow, FlowContext
from flows.profile import SchoolProfile
from flows.routing import deputy_for, recipients

logger = logging.getLogger(__name__)
# The alert card's button, by its title (bot/teams/templates/alert.json.j2): reminders name
# it exactly, so the words match the button (tests/test_words_match_buttons.py).
ACKNOWLEDGE = "Acknowledge - I'm taking this"


@dataclass
class Effects:
    """What firing a timer causes; committed with the timer in one transaction."""

    messages: list[tuple[str | None, OutboxMessage]] = field(default_factory=list)
    then: list[TimerSpec] = field(default_factory=list)
    audit: list[tuple[str | None, str, str | None, Mapping[str, Any]]] = field(default_factory=list)


class Timekeeper:
    def __init__(
        self,
        store: Store,
        alerts: AlertService,
        *,
        clock: Callable[[], datetime],
        flows: Mapping[str, CompiledFlow] | None = None,
    ) -> None:
        self.store = store
        self.alerts = alerts
        # Each timer acts for ITS concern's (or reporter's) school: alerts.school_of.
        self.schools = alerts.schools
        self.clock = clock
        self.flows = flows or catalogue()
        self.wakeup = asyncio.Event()

    # -- the loop ------------------------------------------------------------------------

    async def fire_due(self) -> int:
        timers = await self.store.claim_due_timers(self.clock())
        for timer in timers:
            await self._fire(timer)
        return len(timers)

    async def run(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        await run_until_stopped("timers", self.fire_due, stop, self.wakeup, poll_seconds)

    async def _fire(self, timer: Timer) -> None:
        try:
            effects = await getattr(self, f"_on_{timer.kind}")(timer)
        except (SafeguardingBotError, UnknownSchool) as exc:  # UnknownSchool: a profile
            # no longer serves the concern's school - logged, retried, never dropped
            await self.store.retry_timer(timer.id, self.clock() + timedelta(seconds=30), str(exc))
            logger.warning("timer %s %s failed: %s", timer.id, timer.kind, type(exc).__name__)
            return
        done = await self.store.finish_timer(
            timer.id, messages=effects.messages, then=effects.then, audit=effects.audit
        )
        logger.info(
            "timer %s %s fired effects=%d finished=%s",
            timer.id,
            timer.kind,
            len(effects.messages),
            done,
        )
        if effects.messages:
            self.alerts.wakeup.set()

    # -- escalation ----------------------------------------------------------------------

    async def _on_escalate(self, timer: Timer) -> Effects:
        stored = await self.store.get_concern(timer.concern_id or "")
        effects = Effects()
        if stored is None or stored.acknowledged_by or stored.status == "closed":
            return effects  # picked up: the chain stops here
        step, minutes = timer.payload["step"], timer.payload["minutes"]
        concern = stored.concern
        school = self.alerts.school_of(concern)
        alerts = self.alerts
        waited = f"{_total_minutes(stored, self.clock())} minutes"
        urgent = "URGENT " if concern.priority == "urgent" else ""
        route = concern.routing.route
        to: str | None = None
        if route == "dsl_team":
            if step == 1:
                to = "deputies"
                effects.messages.append(
                    (
                        concern.id,
                        alerts.in_thread(
                            concern.id,
                            f"Not picked up after {waited}. Can one of you take this now?",
                            school.deputies or (school.dsl,),
                        ),
                    )
                )
                effects.messages.append(
                    (
                        concern.id,
                        alerts.direct(concern.reporter.aad_object_id, _nobody_yet(school, waited)),
                    )
                )
            elif step == 2:
                to = "dsl_team_direct"
                text = (
                    f"An {urgent}safeguarding alert in the '{school.dsl_channel.name}' channel has "
                    f"not been picked up for {waited}. Please open it now and press "
                    f"'{ACKNOWLEDGE}'."
                )
                for person in school.dsl_team():
                    effects.messages.append((concern.id, alerts.direct(person.aad_object_id, text)))
            elif step == 3:
                to = "headteacher"
                text = (
                    f"An {urgent}safeguarding alert has not been picked up by the DSL team for "
                    f"{waited}. Please make sure someone acts on it now (the "
                    f"'{school.dsl_channel.name}' channel)."
                )
                effects.messages.append(
                    (concern.id, alerts.direct(school.headteacher.aad_object_id, text))
                )
        else:
            # An allegation: only the case managers it went to, then their deputy - never
            # anyone who may be its subject (checked by identity, not by the role picked).
            text = (
                f"Reminder: a confidential report about an adult in school was sent to you "
                f"{waited} ago and has not been acknowledged. Open it and press '{ACKNOWLEDGE}'."
            )
            deputy = deputy_for(school, concern)
            if step == 1:
                to = "case_manager"
                for manager in recipients(school, concern):
                    effects.messages.append(
                        (concern.id, alerts.direct(manager.aad_object_id, text))
                    )
                effects.messages.append(
                    (
                        concern.id,
                        alerts.direct(
                            concern.reporter.aad_object_id, _nobody_yet_allegation(school, waited)
                        ),
                    )
                )
            elif step == 2 and deputy is not None:
                to = "deputy_head"
                effects.messages.append(
                    (
                        concern.id,
                        alerts.direct(
                            deputy.aad_object_id, text.replace("to you", "to the headteacher")
                        ),
                    )
                )
        if to is None:
            return effects  # the chain has run out
        effects.audit.append((None, "escalated", concern.id, {"step": step, "to": to}))
        effects.messages.append(
            (concern.id, OutboxMessage("update_card", {}, {"concern_id": concern.id}))
        )
        if step < 3:
            effects.then.append(escalation_step(school, concern, self.clock(), step + 1))
        logger.info("escalation concern=%s step=%d after=%dm", concern.id, step, minutes)
        return effects

    # -- deadlines -----------------------------------------------------------------------

    async def _on_deadline(self, timer: Timer) -> Effects:
        stored = await self.store.get_concern(timer.concern_id or "")
        effects = Effects()
        if stored is None or stored.status == "closed":
            return effects
        deadline_id, phase = timer.payload["deadline"], timer.payload["phase"]
        if await self._satisfied(stored, deadline_id):
            return effects
        concern = stored.concern
        deadline = next((d for d in concern.deadlines if d.id == deadline_id), None)
        if deadline is None:
            return effects
        due = datetime.fromisoformat(deadline.due_at).astimezone(
            self.alerts.school_of(concern).timezone
        )
        when = due.strftime("%a %d %b %H:%M")
        lead = "OVERDUE" if phase == "overdue" else "Due soon"
        text = f"{lead}: {deadline.label} - by {when}."
        for message in self._deadline_messages(stored, deadline.owner, deadline_id, text):
            effects.messages.append((concern.id, message))
        effects.audit.append(
            (None, "deadline_reminder", concern.id, {"deadline": deadline_id, "phase": phase})
        )
        if phase == "overdue":  # the card turns the deadline red
            effects.messages.append(
                (concern.id, OutboxMessage("update_card", {}, {"concern_id": concern.id}))
            )
        return effects

    async def _satisfied(self, stored: StoredConcern, deadline_id: str) -> bool:
        actions: dict[str, datetime] = {}
        for entry in await self.store.audit_entries(stored.id):
            actions.setdefault(entry.action, entry.at)
        return deadline_met_at(deadline_id, stored.concern, actions) is not None

    def _deadline_messages(
        self, stored: StoredConcern, owner: str, deadline_id: str, text: str
    ) -> list[OutboxMessage]:
        concern = stored.concern
        alerts = self.alerts
        school = alerts.school_of(concern)
        if owner == "reporter":
            return [
                alerts.direct(
                    concern.reporter.aad_object_id,
                    text,
                    _owner_card(concern.id, deadline_id, text, school),
                )
            ]
        if owner == "case_manager" or concern.is_allegation:
            # An allegation's reminders go to its case managers only; on the LADO route
            # nobody in school has it, so the reporter (who phones the LADO) is reminded.
            people = recipients(school, concern)
            if not people:
                return [alerts.direct(concern.reporter.aad_object_id, text)]
            return [alerts.direct(p.aad_object_id, text) for p in people]
        return [alerts.in_thread(concern.id, text, school.dsl_team())]

    async def _on_chase_social_care(self, timer: Timer) -> Effects:
        stored = await self.store.get_concern(timer.concern_id or "")
        effects = Effects()
        if stored is None or stored.status == "closed":
            return effects
        text = (
            "Children's social care should have acknowledged the referral by now (one working "
            "day). If they have not, chase them today."
        )
        school = self.alerts.school_of(stored.concern)
        if stored.concern.is_allegation:
            for person in recipients(school, stored.concern):
                effects.messages.append((stored.id, self.alerts.direct(person.aad_object_id, text)))
        else:
            effects.messages.append(
                (stored.id, self.alerts.in_thread(stored.id, text, school.dsl_team()))
            )
        effects.audit.append((None, "chase_social_care", stored.id, {}))
        return effects

    # -- stalled reports -----------------------------------------------------------------

    async def on_turn(
        self,
        storage_key: str,
        reporter: Reporter,
        state: Mapping[str, Any],
        school: SchoolProfile | None = None,
    ) -> None:
        """After every 1:1 turn: a report left mid-way gets timers; a finished one loses them.
        `school` is the reporter's school for this report (the only one, if omitted)."""
        if state.get("mode") in MID_REPORT:
            school = school or self.schools.get(None)
            who = {"aad": reporter.aad_object_id, "name": reporter.name, "school": school.id}
            for spec in stalled_timers(school, storage_key, who, self.clock()):
                await self.store.schedule(spec)
        else:
            for kind in (STALLED_REMINDER, STALLED_NOTICE):
                await self.store.cancel_timers(key=f"{kind}:{storage_key}")

    async def _session(self, timer: Timer) -> dict[str, Any] | None:
        items = await self.store.read([timer.payload["storage_key"]])
        state = (items.get(timer.payload["storage_key"]) or {}).get("session") or {}
        return state if state.get("mode") in MID_REPORT else None

    async def _on_stalled_reminder(self, timer: Timer) -> Effects:
        effects = Effects()
        state = await self._session(timer)
        if state is None:
            return effects
        flow = self.flows[state["flow"]["flow"]].definition
        who = "The DSL team already has" if flow.route == "dsl_team" else "They already have"
        text = (
            f"You started a report ('{flow.title}') and have not finished it. "
            + (
                f"{who} the alert, but not what you have not yet recorded. "
                if state.get("raised")
                else "Nothing has been sent yet. "
            )
            + "Reply here to carry on exactly where you stopped, or type 'cancel'. If a child is "
            f"in immediate danger, phone {self._school(timer).contact('emergency').number} now."
        )
        effects.messages.append((None, self.alerts.direct(timer.payload["aad"], text)))
        effects.audit.append((timer.payload["aad"], "stalled_reminder", None, {"flow": flow.id}))
        return effects

    async def _on_stalled_notice(self, timer: Timer) -> Effects:
        effects = Effects()
        state = await self._session(timer)
        if state is None:
            return effects
        flow_state = state["flow"]
        compiled = self.flows[flow_state["flow"]]
        reporter = Reporter(timer.payload["name"], timer.payload["aad"])
        concern_id = state.get("concern_id")
        if state.get("raised") and concern_id and await self.store.get_concern(concern_id):
            # Its recipients already hold the early alert: that same card says it is not
            # finished, rather than a second post about the same report.
            effects.audit.append((reporter.aad_object_id, "report_stalled", concern_id, {}))
            effects.messages.append(
                (concern_id, OutboxMessage("update_card", {}, {"concern_id": concern_id}))
            )
            return effects
        school = self._school(timer)
        context = FlowContext(school, reporter, working_days_for(school))
        with compiled.attach(flow_state, context) as run:
            partial = run.concern(state.get("concern_id") or "incomplete", self.clock())
            captured = run.answers_for_display()
            labels = {s.id: s.label for s in compiled.definition.steps}
        started = datetime.fromisoformat(flow_state["started_at"]).astimezone(school.timezone)
        notice = _incomplete_card(
            compiled.definition.title,
            reporter.name,
            started.strftime("%a %d %b %H:%M"),
            [(labels[k], v) for k, v in captured.items()],
        )
        text = f"Incomplete report started by {reporter.name}"
        route = partial.routing.route
        answered = flow_state["answers"]
        if compiled.definition.route != "dsl_team" and not {
            "subject_role",
            "subject_name",
        } <= set(answered):
            # Who the allegation is about is not known yet: it could be the very person who
            # would get this notice. Only the reporter is chased.
            effects.audit.append((reporter.aad_object_id, "incomplete_report_withheld", None, {}))
            return effects
        if route == "dsl_team":
            messages = [
                OutboxMessage(
                    "channel_post",
                    self.alerts.channel_target(school),
                    {"card": notice, "text": text},
                )
            ]
        else:  # its case managers, never its subject; the LADO route tells nobody in school
            messages = [
                self.alerts.direct(p.aad_object_id, text, notice)
                for p in recipients(school, partial)
            ]
        if not messages:
            return effects
        effects.messages.extend((None, message) for message in messages)
        effects.audit.append(
            (reporter.aad_object_id, "incomplete_report_notice", None, {"route": route})
        )
        return effects

    def _school(self, timer: Timer) -> SchoolProfile:
        """The school of the reporter whose report stalled (timers from before a trust
        deployment name none: then the only school)."""
        return self.schools.get(timer.payload.get("school"))


def _total_minutes(stored: StoredConcern, now: datetime) -> int:
    return max(1, round((now - stored.created_at).total_seconds() / 60))


def _nobody_yet(school: Any, waited: str) -> str:
    phones = [school.contact(p.phone) for p in school.dsl_team() if p.phone]
    numbers = "; ".join(f"{c.name} {c.number}" for c in phones if c.number)
    people = ", ".join(p.name for p in school.dsl_team())
    how = f"phone them now: {numbers}" if numbers else f"find {people} in person now"
    return (
        f"Nobody has picked up your report yet ({waited}). I am chasing the DSL team. If it is "
        f"urgent, {how}. If a child is in immediate danger, phone "
        f"{school.contact('emergency').number}."
    )


def _nobody_yet_allegation(school: Any, waited: str) -> str:
    lado = school.contact("lado")
    return (
        f"Your report has not been acknowledged yet ({waited}). I have reminded them. If you "
        f"cannot reach them, you may contact the LADO directly: {lado.name} {lado.number or ''}."
    ).replace(" .", ".")


def _owner_card(concern_id: str, deadline_id: str, text: str, school: Any) -> dict | None:
    """Reminder cards that let the owner record that it is done."""
    if deadline_id.startswith("fgm_"):
        body = [
            heading(text),
            {
                "type": "Input.Text",
                "id": "police_reference",
                "label": "Police reference number",
                "isRequired": True,
                "errorMessage": "Type the reference the police gave you.",
            },
        ]
        data = {"action": "add_police_reference", "concern_id": concern_id}
        return card(body, [{"type": "Action.Submit", "title": "Save the reference", "data": data}])
    if deadline_id == "written_record":
        system = school.rules.recording_system or "the school's recording system"
        data = {"action": "written_record_done", "concern_id": concern_id}
        return card(
            [heading(text)],
            [{"type": "Action.Submit", "title": f"Done - it is on {system}", "data": data}],
        )
    return None


def _incomplete_card(title: str, who: str, started: str, facts: list[tuple[str, str]]) -> dict:
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": "warning",
            "items": [
                heading("INCOMPLETE REPORT - not finished by the member of staff", color="Warning"),
                heading(title),
                {
                    "type": "TextBlock",
                    "wrap": True,
                    "text": f"Started by {who} at {started}. They have been reminded: check "
                    "with them.",
                },
            ],
        }
    ]
    for label, value in facts:
        body.append(
            {"type": "TextBlock", "text": label, "wrap": True, "weight": "Bolder", "size": "Small"}
        )
        body.extend(verbatim(value))
    out = card(body)
    out["fallbackText"] = f"Incomplete report: {title}"
    return out


__all__ = ["CHASE_SOCIAL_CARE", "DEADLINE", "ESCALATE", "Timekeeper"]
