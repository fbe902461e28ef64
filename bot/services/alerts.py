"""Alerts: store the concern first, deliver from the durable outbox, track who acts on it.

Order of work for every concern event (DESIGN.md "Things that must never happen"):
1. the concern and the messages it needs are written in ONE transaction;
2. only then is the reporter told anything ("saved - sending now");
3. the outbox worker delivers, retrying 429/5xx/network errors with backoff, across restarts;
4. the reporter is told the truth: delivered, or still trying - phone the DSL now.
Allegations never go to the DSL channel: they go 1:1 to the case manager the flow routed to.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationReference,
    Mention,
)

from bot.errors import DeliveryError, DeliveryRefused, Failure, StoreError, classify
from bot.services.chronology import LINK_VERBS, Chronology
from bot.services.decisions import DECISIONS, refusal, route_kind, validate
from bot.services.pipeline import Pipeline
from bot.services.records import entry_lines, feedback, record
from bot.services.timing import (
    CHASE_SOCIAL_CARE,
    DEADLINE,
    ESCALATE,
    ESCALATION_TEXT,
    deadline_timers,
    escalation_step,
)
from bot.services.worker import run_until_stopped
from bot.store import (
    AlertPost,
    AlertPostRecord,
    DeliveryEffects,
    OutboxItem,
    OutboxMessage,
    Store,
    StoredConcern,
    TimerSpec,
)
from bot.teams.alert_card import Mentioned, alert_card, alert_fallback_text, word_parts, words_card
from bot.teams.cards import MAX_CARD_BYTES, card_bytes, card_summary
from bot.teams.record_cards import (
    VIEW_VERBS,
    chronology_block,
    decision_actions,
    decision_form,
    field_values,
    record_block,
)
from dialogs.replies import Event
from dialogs.session import recipient
from flows.calendar import working_days_for
from flows.concern import URGENT_FLAGS, Action, Concern
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile
from flows.routing import describe, named_people, recipients

logger = logging.getLogger(__name__)

CARD = "application/vnd.microsoft.card.adaptive"
MAX_ATTEMPTS = 12
SEND_TIMEOUT_SECONDS = 60
IN_FLIGHT = 10  # sends under way at once (pipeline.py)
REPLY_GRACE_SECONDS = 10  # a turn's durable replies wait this long for the turn to send them
TELL_REPORTER_AT_ATTEMPTS = {1, 6}
RECORD_SHOWN = 300  # characters of a decision's reason on a card too big for all of it
RESEND_NOTICE = {
    "type": "TextBlock",
    "text": "Sent again: an earlier attempt may also have reached this channel. It is the same "
    "report - acting on either copy updates both.",
    "wrap": True,
    "weight": "Bolder",
    "color": "Attention",
}
# Happens once per report (pressing "Send"): a concurrent duplicate is dropped by the store.
FINAL = "concern_final"  # at once, and again after about two minutes


class Messenger(Protocol):
    """The outgoing half of the Teams port (bot/teams/connector.py's TeamsConnector)."""

    async def post_to_channel(
        self, service_url: str, tenant_id: str, team_id: str, channel_id: str, activity: Activity
    ) -> tuple[str, str]: ...

    async def send_to_user(
        self, service_url: str, tenant_id: str, user_id: str, activity: Activity
    ) -> tuple[str, str]: ...

    async def reply_in_thread(self, ref: ConversationReference, activity: Activity) -> str: ...

    async def update_activity(
        self, ref: ConversationReference, activity_id: str, activity: Activity
    ) -> None: ...


def card_activity(card: dict[str, Any], summary: str) -> Activity:
    return Activity(
        type=ActivityTypes.message,
        summary=summary or card_summary(card),  # the chat list never says "Sent a card"
        attachments=[Attachment(content_type=CARD, content=card)],
    )


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """2, 4, 8 ... seconds, capped at 5 minutes; a Retry-After from Teams wins when longer."""
    delay = min(2**attempts, 300)
    return timedelta(seconds=max(delay, retry_after or 0))


@dataclass(frozen=True)
class ActResult:
    """What pressing a button on an alert did: the card to show and a line for the actor."""

    allowed: bool
    card: dict[str, Any] | None
    message: str
    concern: StoredConcern | None = None


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
        self.send_timeout = send_timeout  # seconds one send may take before it is retried
        self.alarms_raised = 0  # alerts refused by Teams since start (the operator alarm)
        self.messenger = messenger
        # Every school served. A concern is handled by ITS school's profile (school_of):
        # its channel, people, hours and escalation chain - never a deployment-wide one.
        self.schools = SchoolDirectory.of(schools)
        self.clock = clock
        self.default_service_url = default_service_url
        self.wakeup = asyncio.Event()
        self.chronology = Chronology(store, self.schools, clock)
        self.pipeline = Pipeline(
            lambda room: self.store.claim_due(self.clock(), room, owner=self.owner),
            self._deliver,
            lambda ids: self.store.renew_claims(ids, at=self.clock()),
            key=lambda item: item.concern_id or item.id,
            width=IN_FLIGHT,
            renew_every=store.delivery_lease.total_seconds() / 3,
            slot_freed=lambda: self.wakeup.set(),
        )

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
            await self._enqueue_card_update(concern.id)
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
                return [self.direct(concern.reporter.aad_object_id, _lado_text(school))]
            return [
                OutboxMessage(
                    "post_alert", {**base, "user_id": p.aad_object_id}, {"concern_id": concern.id}
                )
                for p in people
            ]
        return [OutboxMessage("post_alert", target, {"concern_id": concern.id})]

    async def _enqueue_card_update(self, concern_id: str) -> None:
        await self.store.enqueue(concern_id, "update_card", {}, {"concern_id": concern_id})

    # -- delivery ------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Send what is due now (as many as the pipeline holds) and wait for it; returns how
        many were claimed. The background worker (`run`) does not wait: see pipeline.py."""
        started = await self.pipeline.fill()
        await self.pipeline.idle()
        return started

    async def reclaim_unfinished(self) -> int:
        """At start-up: this server's own sends cut short by a crash are due again at once."""
        count = await self.store.reclaim_own(self.owner, at=self.clock())
        if count:
            logger.warning("outbox reclaimed %d unfinished send(s) at start-up", count)
            self.wakeup.set()
        return count

    async def run(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        """The background worker: claims whenever a send slot is free and something is due
        (woken by new work, by a send ending, or every `poll_seconds`); on stop, lets the
        sends in flight finish."""
        try:
            await run_until_stopped("outbox", self.pipeline.fill, stop, self.wakeup, poll_seconds)
        finally:
            await self.pipeline.close()

    async def _deliver(self, item: OutboxItem) -> None:
        started = self.clock()
        # The SDK can sleep on a Retry-After inside its own thread: never wait for ever. An
        # alert's post is not cancelled when it is slow: if Teams answers after the time-out,
        # the copy it made is still recorded (and the row closed if not re-sent yet).
        send = asyncio.ensure_future(getattr(self, f"_send_{item.kind}")(item))
        try:
            if item.kind == "post_alert":
                activity_id = await asyncio.wait_for(asyncio.shield(send), self.send_timeout)
            else:
                activity_id = await asyncio.wait_for(send, self.send_timeout)
        except StoreError as exc:  # our own store failed, not the channel: simply again
            await self._retry(item, Failure(f"store_{type(exc).__name__}"))
            return
        except Exception as exc:  # every connector failure goes through ONE classification
            if item.kind == "post_alert" and not send.done():
                send.add_done_callback(_late_answer(item))
            await self._retry(item, classify(exc))
            return
        if item.kind != "post_alert":  # an alert's own send closed its row with its effects
            await self.store.mark_delivered(item.id, activity_id, at=self.clock())
        took = (self.clock() - started).total_seconds()
        logger.info(
            "outbox %s %s delivered attempt=%d in %.2fs", item.id, item.kind, item.attempts, took
        )

    async def _retry(self, item: OutboxItem, failure: Failure) -> None:
        # An alert is never abandoned; lesser messages give up after MAX_ATTEMPTS.
        if item.attempts >= MAX_ATTEMPTS and item.kind != "post_alert":
            await self.store.mark_failed(item.id, f"gave up {failure.code}", at=self.clock())
            logger.error(
                "outbox %s %s gave up after %d attempts", item.id, item.kind, item.attempts
            )
            return
        if item.kind == "post_alert" and failure.refused:
            await self._refused(item, failure)
        if item.attempts in TELL_REPORTER_AT_ATTEMPTS:
            await self._tell_reporter_not_delivered(item, final=False)
        delay = backoff(item.attempts, failure.retry_after)
        error = ("refused " if failure.refused else "") + failure.code
        await self.store.mark_retry(
            item.id,
            self.clock() + delay,
            error,
            at=self.clock(),
            unknown_outcome=failure.outcome_unknown,
        )
        logger.warning(
            "outbox %s %s retry in %ss %s attempt=%d",
            item.id,
            item.kind,
            delay.total_seconds(),
            failure.code,
            item.attempts,
        )

    async def _refused(self, item: OutboxItem, failure: Failure) -> None:
        """A permanent-looking refusal of an alert: the channel post keeps being retried, and
        at once the fallback route and an operator alarm (once per alert)."""
        if (item.last_error or "").startswith("refused"):
            return  # already alarmed and fallen back on an earlier attempt
        self.alarms_raised += 1
        logger.error(
            "ALARM alert refused by Teams concern=%s outbox=%s route=%s status=%s:"
            " falling back to 1:1 messages; check the app's secret and that the bot is in"
            " the DSL team",
            item.concern_id,
            item.id,
            item.target.get("route"),
            failure.status,
        )
        stored = await self._stored(item)
        fallback = self._fallback_messages(stored, item)
        if fallback and await self.store.enqueue_once(stored.id, "fallback", fallback):
            await self.store.audit(
                None, "alert_fallback", stored.id, {"status": failure.status, "to": len(fallback)}
            )
            self.wakeup.set()

    def _fallback_messages(self, stored: StoredConcern, item: OutboxItem) -> list[OutboxMessage]:
        """The DSL channel refused: 1:1 to the DSL and deputies, then the head. An allegation
        only ever goes to its own recipients (never the DSL team): it has no fallback beyond
        them, so it is retried and alarmed only."""
        if item.target.get("route") != "dsl_team":
            return []
        school = self.school_of(stored.concern)
        people = [*school.dsl_team(), school.headteacher]
        seen: set[str] = set()
        messages = []
        for person in people:
            if not person or not person.aad_object_id or person.aad_object_id in seen:
                continue
            seen.add(person.aad_object_id)
            target = {
                "route": "fallback",
                "service_url": item.target.get("service_url"),
                "tenant_id": school.tenant_id,
                "user_id": person.aad_object_id,
            }
            messages.append(OutboxMessage("post_alert", target, {"concern_id": stored.id}))
        return messages

    async def _send_post_alert(self, item: OutboxItem) -> str:
        stored = await self._stored(item)
        target = item.target
        card = await self.render(
            stored, resend=item.unknown_outcome, first_post=target["route"] == "dsl_team"
        )
        activity = card_activity(card, alert_fallback_text(stored.concern))
        service_url = await self.service_url(target)
        if target["route"] == "dsl_team":
            conversation_id, activity_id = await self.messenger.post_to_channel(
                service_url,
                target["tenant_id"],
                target["team_id"],
                target["channel_id"],
                activity,
            )
        else:
            conversation_id, activity_id = await self.messenger.send_to_user(
                service_url, target["tenant_id"], target["user_id"], activity
            )
        reference = {
            "serviceUrl": service_url,
            "channelId": "msteams",
            "conversation": {"id": conversation_id, "tenantId": target["tenant_id"]},
            "activityId": activity_id,
        }
        post = AlertPostRecord(
            stored.id,
            activity_id,
            reference,
            resend=item.unknown_outcome,
            source=target["route"],
            thread=target["route"] != "fallback",
        )
        await self.store.record_delivery(
            item.id, activity_id, post=post, once=self._first_delivery(stored, item)
        )
        return activity_id

    async def _send_update_card(self, item: OutboxItem) -> str | None:
        concern_id = item.payload["concern_id"]
        posts = await self.store.alert_posts(concern_id)
        if not posts:
            ref = await self.store.get_conversation_ref("alert", concern_id)
            if ref is not None:  # posted before copies were recorded
                posts = [AlertPost(concern_id, ref.activity_id, ref, False, "sent")]
        if not posts:  # the alert itself is not out yet: it will carry the latest state
            posted = [
                o
                for o in await self.store.outbox_for_concern(concern_id)
                if o.kind == "post_alert" and o.status != "delivered"
            ]
            if posted:
                raise DeliveryError("alert not posted yet", status=None, retry_after=2)
            return None
        stored = await self._stored(item)
        # Every copy of the alert shows the same state: acting on any one updates them all.
        failures = []
        for post in posts:
            card = await self.render(stored, resend=post.resend)
            activity = card_activity(card, alert_fallback_text(stored.concern))
            activity.id = post.activity_id
            try:
                await self.messenger.update_activity(post.reference, post.activity_id, activity)
            except Exception as exc:
                failure = classify(exc)
                logger.warning(
                    "card update failed concern=%s activity_id=%s %s",
                    concern_id,
                    post.activity_id,
                    failure.code,
                )
                if not failure.refused:  # a deleted copy (404) is not waited for
                    failures.append(exc)
        if failures:
            raise failures[0]
        return posts[0].activity_id

    async def _send_words_part(self, item: OutboxItem) -> str:
        ref = await self.store.get_conversation_ref("alert", item.payload["concern_id"])
        if ref is None:
            raise DeliveryError("alert not posted yet", status=None, retry_after=2)
        stored = await self._stored(item)
        parts = word_parts(stored.concern.words or "")
        part = item.payload["part"]
        card = words_card(parts[part], part + 1, len(parts))
        return await self.messenger.reply_in_thread(ref, card_activity(card, "Words continued"))

    async def _send_direct_message(self, item: OutboxItem) -> str:
        target = item.target
        payload = item.payload
        if payload.get("card"):
            activity = card_activity(payload["card"], payload.get("text", ""))
        else:
            activity = Activity(type=ActivityTypes.message, text=payload["text"])
        ref = await self.store.get_conversation_ref("user", target["user_id"])
        if ref is not None:
            return await self.messenger.reply_in_thread(ref, activity)
        tenant_id = target.get("tenant_id")
        if not tenant_id and item.concern_id:
            stored = await self._stored_by_id(item.concern_id)
            tenant_id = self.school_of(stored.concern).tenant_id
        if not tenant_id:
            raise DeliveryRefused("no tenant for a first 1:1 message", status=None)
        _, activity_id = await self.messenger.send_to_user(
            await self.service_url(target), tenant_id, target["user_id"], activity
        )
        return activity_id

    async def _stored(self, item: OutboxItem) -> StoredConcern:
        return await self._stored_by_id(item.payload["concern_id"])

    async def _stored_by_id(self, concern_id: str) -> StoredConcern:
        stored = await self.store.get_concern(concern_id)
        if stored is None:
            raise DeliveryRefused("concern missing from the store", status=None)
        return stored

    # -- telling the reporter the truth ---------------------------------------------------

    def direct(self, user_aad_id: str, text: str, card: dict | None = None) -> OutboxMessage:
        """A 1:1 message to one person (their existing chat with the bot, or a new one)."""
        tenants = self.schools.tenant_ids()
        target = {
            "user_id": user_aad_id,
            "service_url": None,  # resolved when sent: the latest one Teams gave us
            # Several tenants (a folder of profiles): the concern's school's, when sent.
            "tenant_id": next(iter(tenants)) if len(tenants) == 1 else None,
        }
        payload: dict[str, Any] = {"text": text}
        if card is not None:
            payload["card"] = card
        return OutboxMessage("direct_message", target, payload)

    def in_thread(
        self, concern_id: str, text: str, mentions: list[Any] | tuple[Any, ...] = ()
    ) -> OutboxMessage:
        """A reply in the alert's own thread, @mentioning these people."""
        payload = {
            "concern_id": concern_id,
            "text": text,
            "mentions": [{"id": p.aad_object_id, "name": p.name} for p in mentions],
        }
        return OutboxMessage("thread_message", {}, payload)

    async def enqueue_replies(
        self, concern_id: str, user_aad_id: str, activities: list[Activity]
    ) -> list[str]:
        """Queue a turn's replies to the person as outbox rows (inside a chat turn: in its
        transaction). They are held back a few seconds so the turn itself sends them, in
        order (`deliver_now`); if it cannot, the worker retries them like any message."""
        hold = self.clock() + timedelta(seconds=REPLY_GRACE_SECONDS)
        ids = []
        for activity in activities:
            card = activity.attachments[0].content if activity.attachments else None
            message = self.direct(user_aad_id, activity.text or activity.summary or "", card)
            ids.append(
                await self.store.enqueue(
                    concern_id,
                    message.kind,
                    message.target,
                    {**message.payload, "reply": True},
                    not_before=hold,
                )
            )
        return ids

    async def deliver_now(self, outbox_ids: list[str]) -> None:
        """Send these rows now, in order, stopping at the first that does not go (the rest
        then follow it through the outbox's retries)."""
        for outbox_id in outbox_ids:
            items = await self.store.claim_ids([outbox_id], self.clock(), owner=self.owner)
            if not items:
                return  # the worker has it already
            await self._deliver(items[0])
            sent = await self.store.get_outbox(outbox_id)
            if sent is None or sent.status != "delivered":
                self.wakeup.set()
                return

    async def notify_reporter(self, concern: Concern, text: str) -> None:
        message = self.direct(concern.reporter.aad_object_id, text)
        await self.store.enqueue(concern.id, message.kind, message.target, message.payload)
        self.wakeup.set()

    async def _send_thread_message(self, item: OutboxItem) -> str:
        ref = await self.store.get_conversation_ref("alert", item.payload["concern_id"])
        if ref is None:
            raise DeliveryError("alert not posted yet", status=None, retry_after=2)
        mentions = item.payload.get("mentions") or []
        text = item.payload["text"]
        entities = []
        for person in mentions:
            tag = f"<at>{person['name']}</at>"
            text += f" {tag}"
            entities.append(
                Mention(
                    mentioned=ChannelAccount(id=person["id"], name=person["name"]),
                    text=tag,
                    type="mention",
                )
            )
        activity = Activity(type=ActivityTypes.message, text=text, entities=entities or None)
        return await self.messenger.reply_in_thread(ref, activity)

    async def _send_channel_post(self, item: OutboxItem) -> str:
        """A new thread in the DSL channel that is not an alert (e.g. an incomplete report)."""
        target = item.target
        activity = card_activity(item.payload["card"], item.payload.get("text", ""))
        _, activity_id = await self.messenger.post_to_channel(
            await self.service_url(target),
            target["tenant_id"],
            target["team_id"],
            target["channel_id"],
            activity,
        )
        return activity_id

    async def service_url(self, target: Mapping[str, Any]) -> str:
        """Where the Bot Connector is: the target's own, else the latest an activity brought
        (Teams' service URL is regional and may change), else the configured default."""
        if target.get("service_url"):
            return target["service_url"]
        latest = await self.store.get_conversation_ref("service", "latest")
        return latest.service_url if latest and latest.service_url else self.default_service_url

    def channel_target(self, school: SchoolProfile) -> dict[str, Any]:
        return {
            "route": "dsl_team",
            "service_url": None,  # resolved when sent
            "tenant_id": school.tenant_id,
            "team_id": school.dsl_channel.team_id,
            "channel_id": school.dsl_channel.channel_id,
        }

    def _first_delivery(
        self, stored: StoredConcern, item: OutboxItem
    ) -> dict[str, DeliveryEffects]:
        """What the first copy of an alert to get through causes - once, however many copies
        (a re-send, the fallback route) follow."""
        now = self.clock()
        effects = {}
        if item.target.get("route") != "fallback":
            # Words too long for one card follow in the alert's thread, in order, never cut.
            parts = range(1, len(word_parts(stored.concern.words or "")))
            effects["words"] = DeliveryEffects(
                stored.id,
                messages=[
                    OutboxMessage("words_part", {}, {"concern_id": stored.id, "part": part})
                    for part in parts
                ],
            )
        school = self.school_of(stored.concern)
        to = recipient(school, stored.concern.routing.route, stored.concern.subject_ids)
        at = _hhmm(now, school)
        effects["delivered"] = DeliveryEffects(
            stored.id,
            # Nobody may have seen it yet: the escalation chain starts now (acknowledging
            # stops it).
            timers=[escalation_step(school, stored.concern, now, 1)],
            audit=[(None, "alert_delivered", {"route": item.target["route"]})],
            messages=[
                self.direct(
                    stored.concern.reporter.aad_object_id,
                    f"Delivered at {at}: your report is with {to}. I will tell you when "
                    "someone picks it up.",
                )
            ],
        )
        return effects

    async def _tell_reporter_not_delivered(self, item: OutboxItem, *, final: bool) -> None:
        if item.kind != "post_alert":
            return
        stored = await self._stored(item)
        lead = (
            "Your report could NOT be delivered"
            if final
            else "Your report is saved but not delivered yet - still trying"
        )
        school = self.school_of(stored.concern)
        if stored.concern.is_allegation:
            how = _tell_case_manager_now(school, stored.concern)
        else:
            how = phone_now(school)
        await self.notify_reporter(stored.concern, f"{lead}. {how}")

    # -- acting on an alert ---------------------------------------------------------------

    def may_act(self, stored: StoredConcern, aad_object_id: str | None) -> bool:
        """The concern's OWN school's DSL team (or its trust's safeguarding lead) on DSL
        alerts; only the case manager the alert went to on allegations."""
        if not aad_object_id:
            return False
        school = self.school_of(stored.concern)
        route = stored.concern.routing.route
        if route == "dsl_team":
            return school.is_dsl_team_member(aad_object_id) or self.schools.is_trust_lead(
                aad_object_id, school.id
            )
        wanted = aad_object_id.strip().lower()
        return any(p.aad_object_id == wanted for p in recipients(school, stored.concern))

    def _refusal(self, stored: StoredConcern, aad_object_id: str | None) -> tuple[str, str]:
        """Why someone may not act, as (audit reason, what they are told): a DSL of another
        school of the deployment is told whose alert it is, nothing more."""
        school = self.school_of(stored.concern)
        if stored.concern.routing.route != "dsl_team":
            return "not_case_manager", "Only the case manager can act on this alert."
        if any(s.id != school.id for s in self.schools.overseen_by(aad_object_id)):
            return "other_school", (
                f"This alert belongs to {school.name}: only its DSL team can act on it."
            )
        return "not_dsl_team", "Only the DSL team can act on this alert."

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
        if not self.may_act(stored, actor_aad_id):
            reason, told = self._refusal(stored, actor_aad_id)
            await self.store.audit(
                actor_aad_id, "action_refused", concern_id, {"verb": verb, "reason": reason}
            )
            logger.warning(
                "alert action refused concern=%s verb=%s reason=%s", concern_id, verb, reason
            )
            card = await self.render(stored)
            return ActResult(False, card, f"{told} Nothing was changed.", stored)
        data = dict(values or {})
        if verb in VIEW_VERBS:  # shown to the presser only; nothing is changed
            if verb == "decision_form" and stored.status != "closed":
                route = stored.concern.routing.route
                return ActResult(
                    True, decision_form(stored.id, route, stored.concern.title), "", stored
                )
            return ActResult(True, await self.render(stored), "", stored)
        if verb in LINK_VERBS:
            message = await self.chronology.act(stored, verb, data, actor_aad_id, self.clock())
            if message:
                return ActResult(False, await self.render(stored), message, stored)
            await self._enqueue_card_update(concern_id)
            self.wakeup.set()
            return ActResult(True, await self.render(stored), "Done.", stored)
        decision = DECISIONS[verb]
        if route_kind(stored.concern.routing.route) not in decision.routes:
            return ActResult(
                False,
                await self.render(stored),
                f'"{decision.entry}" is not a decision for this kind of alert. '
                "Nothing was changed.",
                stored,
            )
        if stored.status == "closed" and verb != "add_note":
            return ActResult(
                False,
                await self.render(stored),
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
            return ActResult(False, await self.render(stored), refusal(decision, problems), stored)
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
        school = self.school_of(stored.concern)
        name = self._name(actor_aad_id, school)
        if verb == "acknowledge":
            won = await self.store.acknowledge(concern_id, name, at=now)
            if not won:
                stored = await self.store.get_concern(concern_id)
                return ActResult(
                    True,
                    await self.render(stored),
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
            await self.notify_reporter(
                stored.concern,
                f"Your report has been picked up by {name} at {_hhmm(now, school)}.",
            )
        elif decision.tells_reporter:
            await self.notify_reporter(
                stored.concern, feedback(stored.concern, decision, _hhmm(now, school))
            )
        await self._enqueue_card_update(concern_id)
        self.wakeup.set()
        return ActResult(True, await self.render(stored), "Done.", stored)

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
        await self._enqueue_card_update(concern_id)
        self.wakeup.set()
        return reply

    def _name(self, aad_object_id: str | None, school: SchoolProfile) -> str:
        trust = self.schools.organisation_of(school.id).trust_safeguarding_leads
        people = (*named_people(school), *trust)
        for person in people:
            if person and person.aad_object_id == aad_object_id:
                return person.name
        return "unknown"

    async def render(
        self,
        stored: StoredConcern,
        *,
        resend: bool = False,
        first_post: bool = False,
        viewer: str | None = None,
    ) -> dict[str, Any]:
        """The card as it stands now: status, history of actions, notes. `resend`: this copy
        was sent again after an attempt whose outcome is unknown - it says so. `first_post`:
        the post that must notify the DSL team (@mentions). `viewer`: one person's own view
        (Universal Actions refresh): who has it, and buttons only for those who may act."""
        card = await self._render(stored, first_post=first_post, viewer=viewer)
        if resend:
            card["body"].insert(0, dict(RESEND_NOTICE))
        return card

    def _mentions(self, concern: Concern) -> list[Mentioned]:
        """Whom the first post of a DSL-channel alert @mentions: a channel post notifies only
        people who follow the channel or are mentioned. Urgent: always; routine: as the
        profile says (dsl_channel.mention_routine)."""
        if concern.routing.route != "dsl_team":
            return []  # an allegation goes 1:1 to its case managers: a direct message notifies
        school = self.school_of(concern)
        when = school.dsl_channel.mention_routine
        quiet = when == "never" or (
            when == "school_hours" and not school.in_school_hours(self.clock())
        )
        if concern.priority != "urgent" and quiet:
            return []
        return [Mentioned(p.aad_object_id, p.name) for p in school.dsl_team()]

    def _refresh_ids(self, concern: Concern) -> list[str]:
        """Teams user ids (MRIs) whose client asks for its own view of the card: the people
        who may act on it (Teams allows 60)."""
        school = self.school_of(concern)
        if concern.routing.route == "dsl_team":
            leads = self.schools.organisation_of(school.id).trust_safeguarding_leads
            people = [*school.dsl_team(), *leads]
        else:
            people = list(recipients(school, concern))
        return [f"8:orgid:{p.aad_object_id}" for p in people if p.aad_object_id][:60]

    def _viewer_line(self, stored: StoredConcern, viewer: str | None) -> str:
        if viewer is None or stored.status == "closed":
            return ""
        if not self.may_act(stored, viewer):
            who = (
                "the DSL team" if stored.concern.routing.route == "dsl_team" else "its case manager"
            )
            return f"Only {who} can act on this alert."
        if not stored.acknowledged_by:
            return "Nobody has this yet: press 'Acknowledge - I'm taking this' if it is you."
        school = self.school_of(stored.concern)
        at = _hhmm(stored.acknowledged_at, school) if stored.acknowledged_at else ""
        if stored.acknowledged_by == self._name(viewer, school):
            return f"You have this (picked up at {at})." if at else "You have this."
        return f"{stored.acknowledged_by} has this."

    async def view(
        self,
        concern_id: str,
        viewer: str | None,
        activity_id: str | None,
        conversation_id: str | None = None,
    ) -> dict[str, Any] | None:
        """One person's own view of an alert (the card's refresh): None when they may not see
        it - neither someone who may act, nor looking at a copy the bot posted (that
        message, in that conversation)."""
        stored = await self.store.get_concern(concern_id)
        if stored is None:
            return None
        if not self.may_act(stored, viewer):
            posts = await self.store.alert_posts(concern_id)
            if not any(
                p.activity_id == activity_id
                and _thread(p.reference.conversation.id) == _thread(conversation_id)
                for p in posts
                if activity_id and p.reference.conversation
            ):
                return None
        return await self.render(stored, viewer=viewer or "")

    async def _render(
        self, stored: StoredConcern, *, first_post: bool = False, viewer: str | None = None
    ) -> dict[str, Any]:
        entries = await self.store.audit_entries(stored.id)
        school = self.school_of(stored.concern)
        history = [
            {"state": e.action, "by": self._name(e.actor_aad_id, school), "at": e.at.isoformat()}
            for e in entries
            if e.action
            in {
                "acknowledged",
                "referred_social_care",
                "referred_police",
                "referred_lado",
                "closed",
            }
        ]
        escalations = [
            _event_line(e.action, e.detail, _hhmm(e.at, school))
            for e in entries
            if e.action in _EVENT_LINES
        ]
        if stored.concern.status == "raised" and not {e.action for e in entries} & _ENDED:
            escalations.insert(0, _still_recording(stored.concern))
        notes = [
            {"state": "note", "by": n.label, "at": n.at, "text": n.value}
            for n in stored.concern.notes
        ]
        entries = await self.store.record_entries(stored.id)
        lines = entry_lines(
            entries,
            lambda at: _when(at, school),
            skip=frozenset({"add_note", "acknowledge"}),  # they have their own lines
        )
        view = None
        # Allegations are never in a chronology; a viewer who may not act never sees one.
        if not stored.concern.is_allegation and (viewer is None or self.may_act(stored, viewer)):
            view = await self.chronology.for_card(stored)

        def build(left_off: int = 0, cut: int | None = None) -> dict[str, Any]:
            blocks = [record_block(lines[left_off:], left_off=left_off, cut=cut)]
            if view is not None:
                blocks.append(
                    chronology_block(stored.id, view.summary, view.earlier, view.suggestions)
                )
            return alert_card(
                stored.concern,
                recipient=recipient(
                    school, stored.concern.routing.route, stored.concern.subject_ids
                ),
                history=history + notes,
                escalations=escalations,
                now=self.clock(),
                mentions=self._mentions(stored.concern) if first_post else (),
                refresh_ids=self._refresh_ids(stored.concern),
                viewer_line=self._viewer_line(stored, viewer),
                can_act=viewer is None or self.may_act(stored, viewer),
                record_blocks=[b for b in blocks if b],
                decision_actions=decision_actions(stored.id, stored.concern.routing.route),
            )

        # Teams refuses a message over about 28 KB: the record gives way, saying so - long
        # reasons are cut on the card, then the oldest entries left to the record itself
        # (the newest always shows).
        card = build()
        if card_bytes(card) > MAX_CARD_BYTES and lines:
            card = build(cut=RECORD_SHOWN)
            left_off = 0
            while card_bytes(card) > MAX_CARD_BYTES and left_off < len(lines) - 1:
                left_off += 1
                card = build(left_off, RECORD_SHOWN)
        return card


def _thread(conversation_id: str | None) -> str:
    """A channel's id without the thread part ('19:x@thread.tacv2;messageid=1' -> '19:x...')."""
    return (conversation_id or "").split(";", 1)[0]


def _late_answer(item: OutboxItem) -> Callable[[asyncio.Future], None]:
    """For an alert post that outlived its time-out: its copy was recorded by the send
    itself; only say what happened."""

    def done(send: asyncio.Future) -> None:
        if send.cancelled() or send.exception() is not None:
            logger.info("outbox %s late post_alert ended without a copy", item.id)
        else:
            logger.warning("outbox %s late post_alert answered: copy recorded", item.id)

    return done


def _moved_deadlines(before: Concern, after: Concern, now: datetime) -> list[TimerSpec]:
    """Timers for deadlines later answers set or moved (a missing child's police time counts
    from when last seen; the finished report's own deadlines); unchanged ones keep theirs."""
    known = {(d.id, d.due_at) for d in before.deadlines}
    moved = {d.id for d in after.deadlines if (d.id, d.due_at) not in known}
    return [t for t in deadline_timers(after, now) if t.payload["deadline"] in moved]


# What happened after the alert went (escalations, the reporter stopping, moving on, asking
# for reconsideration), as the card says it.
_EVENT_LINES = {
    "escalated": "Not picked up yet: {to} at {at}",
    "report_abandoned": "STOPPED BY THE REPORTER at {at} - this report was not finished: ask "
    "them in person what has happened since.",
    "report_moved": "At {at} the reporter went on with this report under another procedure, "
    "for other people; nothing more will be added here. Ask them in person if you need to.",
    "report_stalled": "NOT FINISHED: at {at} the reporter had stopped answering part-way. "
    "They have been reminded; ask them in person what has happened.",
    "reconsideration_requested": "The reporter asked at {at} for this to be looked at again "
    "(not acted on / not improving): speak to them.",
}
_ENDED = {"report_abandoned", "report_moved"}


def _event_line(action: str, detail: Mapping[str, Any], at: str) -> str:
    to = ESCALATION_TEXT.get(str(detail.get("to")), "") if action == "escalated" else ""
    return _EVENT_LINES[action].format(to=to, at=at)


def _still_recording(concern: Concern) -> str:
    urgent = [f for f in concern.flags if f in URGENT_FLAGS]
    why = f" because of {', '.join(urgent)}" if urgent else ""
    return (
        f"STILL BEING RECORDED: sent at once{why}, before the report was finished. This card "
        "updates as the reporter answers."
    )


def _when(at: datetime, school: Any) -> str:
    return at.astimezone(school.timezone).strftime("%a %d %b %Y %H:%M")


def _hhmm(at: datetime, school: Any) -> str:
    return at.astimezone(school.timezone).strftime("%H:%M")


def phone_now(school: Any) -> str:
    phones = [school.contact(p.phone) for p in school.dsl_team() if p.phone]
    numbers = "; ".join(f"{c.name} {c.number}" for c in phones if c.number)
    if numbers:
        return f"If it is urgent, phone the DSL now: {numbers}."
    social_care = school.contact("childrens_social_care")
    fallback = f" or {social_care.name} on {social_care.number}" if social_care.number else ""
    return (
        f"If it is urgent, find {school.dsl.name} (DSL) or a deputy in person now{fallback}; "
        f"{school.contact('emergency').number} if a child is in immediate danger."
    )


def _tell_case_manager_now(school: Any, concern: Concern) -> str:
    """For an allegation the DSL is never the fallback: the case managers in person, or the
    LADO (seed policies section 10)."""
    people = recipients(school, concern)
    lado = school.contact("lado")
    number = f" on {lado.number}" if lado.number else ""
    who = f"tell {describe(people)} in person now, or " if people else ""
    return f"If it is urgent, {who}phone the LADO ({lado.name}){number}."


def _lado_text(school: Any) -> str:
    lado = school.contact("lado")
    number = lado.number or "(number not in the school's policy)"
    return (
        "Because of the conflict of interest, this report has not been sent to anyone in "
        f"school. Phone the LADO now: {lado.name}, {number}. Your report is saved."
    )
