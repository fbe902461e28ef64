"""Alerts: store the concern first, deliver from the durable outbox, track who acts on it.

Order of work for every concern event (DESIGN.md "Things that must never happen"):
1. the concern and the messages it needs are written in ONE transaction;
2. only then is the reporter told anything ("saved - sending now");
3. the outbox worker delivers, retrying 429/5xx/network errors with backoff, across restarts;
4. the reporter is told the truth: delivered, or still trying - phone the DSL now.
Allegations never go to the DSL channel: they go 1:1 to the case manager the flow routed to.

AlertService is the front door the rest of the bot uses. Here: a report's events become a
stored concern and its first messages. The parts it composes, one idea each:
- messages.py: what is queued (a message to a person, a reply in the alert's thread);
- delivery.py: the outbox worker - time-outs, retries, the refusal alarm and fallback;
- sends.py: how each kind of message reaches Teams;
- acting.py: the alert card's buttons and the reporter's own updates (who may: access.py);
- alert_view.py: the card as it stands, and each person's own view of it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.services.acting import Acting
from bot.services.alert_view import AlertView
from bot.services.chronology import Chronology
from bot.services.delivery import SEND_TIMEOUT_SECONDS, Delivery
from bot.services.messages import Messages
from bot.services.sends import Messenger, Sends
from bot.services.timing import deadline_timers
from bot.store import OutboxMessage, Store, TimerSpec
from dialogs.replies import Event
from flows.concern import Concern
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile
from flows.routing import recipients

logger = logging.getLogger(__name__)

# Happens once per report (pressing "Send"): a concurrent duplicate is dropped by the store.
FINAL = "concern_final"  # at once, and again after about two minutes


class AlertService:
    def __init__(
        self,
        store: Store,
        messenger: Messenger,
        schools: SchoolDirectory | SchoolProfile,
        *,
        clock: Callable[[], datetime],
        default_service_url: str = "https://smba.trafficmanager.net/uk/",
        owner: str | None = None,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        # Whose leases these are: a restarted server reclaims its own unfinished sends.
        self.owner = owner or socket.gethostname()
        self.messenger = messenger
        # Every school served. A concern is handled by ITS school's profile (school_of):
        # its channel, people, hours and escalation chain - never a deployment-wide one.
        self.schools = SchoolDirectory.of(schools)
        self.clock = clock
        self.default_service_url = default_service_url
        self.wakeup = asyncio.Event()
        self.chronology = Chronology(store, self.schools, clock)
        # Set once the outbox has read each school's child names (or failed to): until then
        # /readyz says "starting", so a platform's warm-up waits rather than the first alert.
        self.names_read = threading.Event()

        def wake() -> None:  # read late: server.py swaps in its own loop's event
            self.wakeup.set()

        self.messages = Messages(store, self.schools, clock, wake)
        self.cards = AlertView(store, self.schools, clock, self.chronology)
        self.acting = Acting(
            store, self.schools, clock, self.chronology, self.cards, self.messages, wake
        )
        sends = Sends(
            store, messenger, self.schools, clock, self.cards, self.messages, default_service_url
        )
        self.delivery = Delivery(
            store,
            sends,
            self.messages,
            self.schools,
            clock,
            wake,
            owner=self.owner,
            send_timeout=send_timeout,
        )
        # The rest of the front door is the parts' own methods.
        self.direct = self.messages.direct  # what is queued
        self.in_thread = self.messages.in_thread
        self.channel_target = self.messages.channel_target
        self.enqueue_replies = self.messages.enqueue_replies
        self.deliver_due = self.delivery.deliver_due  # delivering it
        self.deliver_now = self.delivery.deliver_now
        self.reclaim_unfinished = self.delivery.reclaim_unfinished
        self.act = self.acting.act  # the card's buttons
        self.reporter_update = self.acting.reporter_update
        self.render = self.cards.render  # the card, and one person's view of it
        self.view = self.cards.view

    def school_of(self, concern: Concern) -> SchoolProfile:
        return self.schools.get(concern.school_id)

    # -- from the conversation -----------------------------------------------------------

    async def on_event(self, event: Event, reporter_service_url: str) -> bool:
        """Write the concern (and what must be sent) before anyone is told anything.

        Returns False when the store says this event was already applied by another turn
        (the same "Send" twice at once): nothing was written or queued, say nothing."""
        concern = event.concern
        existing = await self.store.get_concern(concern.id)
        now = self.clock()
        if existing is None:
            applied = await self.store.raise_concern(
                concern,
                ["created", *([event.kind] if event.kind == FINAL else [])],
                self._first_messages(concern, reporter_service_url),
                at=now,
                timers=deadline_timers(concern, now),
                audit=[
                    (
                        concern.reporter.aad_object_id,
                        "concern_" + ("raised" if event.kind == "concern_raised" else "final"),
                        {
                            "type": concern.type,
                            "route": concern.routing.route,
                            "flags": concern.flags,
                        },
                    )
                ],
            )
        elif event.kind == FINAL:
            # A confirm after an early raise: keep DSL notes, refresh the card - once.
            merged = replace(concern, notes=existing.concern.notes)
            applied = await self.store.raise_concern(
                merged,
                [FINAL],
                [OutboxMessage("update_card", {}, {"concern_id": concern.id})],
                status=existing.status,
                at=now,
                timers=_moved_deadlines(existing.concern, concern, now),
                audit=[(concern.reporter.aad_object_id, event.kind, {"status": event.kind})],
            )
        else:
            # An early alert (urgent, missing child) being completed: keep DSL notes and
            # refresh the same card. A report that moved to other recipients adds nothing here.
            if event.kind != "report_moved":
                merged = replace(concern, notes=existing.concern.notes)
                await self.store.save_concern(merged, status=existing.status, at=now)
                for timer in _moved_deadlines(existing.concern, concern, now):
                    await self.store.schedule(timer)
            await self.messages.card_update(concern.id)
            await self.store.audit(
                concern.reporter.aad_object_id, event.kind, concern.id, {"status": event.kind}
            )
            applied = True
        if not applied:
            logger.info("concurrent duplicate ignored concern=%s event=%s", concern.id, event.kind)
        self.wakeup.set()
        return applied

    def _first_messages(self, concern: Concern, service_url: str) -> list[OutboxMessage]:
        route = concern.routing.route
        school = self.school_of(concern)
        base = {"route": route, "service_url": service_url or self.default_service_url}
        base["tenant_id"] = school.tenant_id
        if route == "dsl_team":
            target = {
                **base,
                "team_id": school.dsl_channel.team_id,
                "channel_id": school.dsl_channel.channel_id,
            }
        else:
            # An allegation: 1:1 to every case manager the school names, never to anyone who
            # may be its subject. Nobody left (the LADO route): the reporter phones the LADO.
            people = recipients(school, concern)
            if not people:
                return [self.messages.direct(concern.reporter.aad_object_id, _lado_text(school))]
            return [
                OutboxMessage(
                    "post_alert", {**base, "user_id": p.aad_object_id}, {"concern_id": concern.id}
                )
                for p in people
            ]
        return [OutboxMessage("post_alert", target, {"concern_id": concern.id})]

    async def run(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        """The outbox worker (delivery.py), woken through `wakeup` as it is when it starts.
        Beside it, the child-name index reads each school's history once, so the first
        alert after a restart does not wait for that (~1 s at 10,000 concerns)."""
        warm_up = asyncio.create_task(self._read_names())
        try:
            await self.delivery.run(stop, self.wakeup, poll_seconds)
        finally:
            warm_up.cancel()
            await asyncio.gather(warm_up, return_exceptions=True)

    async def _read_names(self) -> None:
        try:
            for school in self.schools.schools:
                try:
                    await self.chronology.names.refresh(school.id)
                except Exception as exc:  # the first card reads it instead
                    logger.warning("child-name index not read at start: %s", type(exc).__name__)
        finally:
            self.names_read.set()


def _moved_deadlines(before: Concern, after: Concern, now: datetime) -> list[TimerSpec]:
    """Timers for deadlines later answers set or moved (a missing child's police time counts
    from when last seen; the finished report's own deadlines); unchanged ones keep theirs."""
    known = {(d.id, d.due_at) for d in before.deadlines}
    moved = {d.id for d in after.deadlines if (d.id, d.due_at) not in known}
    return [t for t in deadline_timers(after, now) if t.payload["deadline"] in moved]


def _lado_text(school: Any) -> str:
    lado = school.contact("lado")
    number = lado.number or "(number not in the school's policy)"
    return (
        "Because of the conflict of interest, this report has not been sent to anyone in "
        f"school. Phone the LADO now: {lado.name}, {number}. Your report is saved."
    )
