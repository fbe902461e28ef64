"""Delivering the outbox: every message goes, however long Teams takes.

The worker keeps up to IN_FLIGHT sends under way (pipeline.py); each has SEND_TIMEOUT_SECONDS
before it is tried again. 429s, 5xx and network errors are retried with backoff, across
restarts (a crash's own unfinished sends go again at once). An alert is never abandoned; when
Teams refuses one outright, the operator alarm is raised and the DSL team is messaged 1:1 at
once. The reporter is told the truth while it is not delivered: still trying - phone the DSL.
How each kind of message is sent: sends.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.errors import Failure, StoreError, classify
from bot.services.messages import Messages
from bot.services.pipeline import Pipeline
from bot.services.sends import Sends
from bot.services.worker import run_until_stopped
from bot.store import OutboxItem, OutboxMessage, Store, StoredConcern
from flows.concern import Concern
from flows.directory import SchoolDirectory
from flows.routing import describe, recipients

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
SEND_TIMEOUT_SECONDS = 60
IN_FLIGHT = 10  # sends under way at once (pipeline.py)
TELL_REPORTER_AT_ATTEMPTS = {1, 6}


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """2, 4, 8 ... seconds, capped at 5 minutes; a Retry-After from Teams wins when longer."""
    delay = min(2**attempts, 300)
    return timedelta(seconds=max(delay, retry_after or 0))


class Delivery:
    def __init__(
        self,
        store: Store,
        sends: Sends,
        messages: Messages,
        schools: SchoolDirectory,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        *,
        owner: str,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        self.sends = sends
        self.messages = messages
        self.schools = schools
        self.clock = clock
        self.wake = wake
        self.owner = owner  # whose leases these are (reclaim_unfinished)
        self.send_timeout = send_timeout  # seconds one send may take before it is retried
        self.alarms_raised = 0  # alerts refused by Teams since start (the operator alarm)
        self.pipeline = Pipeline(
            lambda room: self.store.claim_due(self.clock(), room, owner=self.owner),
            self._deliver,
            lambda ids: self.store.renew_claims(ids, at=self.clock()),
            key=lambda item: item.concern_id or item.id,
            width=IN_FLIGHT,
            renew_every=store.delivery_lease.total_seconds() / 3,
            slot_freed=wake,
        )

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
            self.wake()
        return count

    async def run(self, stop: asyncio.Event, wakeup: Any, poll_seconds: float = 1.0) -> None:
        """The background worker: claims whenever a send slot is free and something is due
        (woken through `wakeup` by new work, by a send ending, or every `poll_seconds`); on
        stop, lets the sends in flight finish."""
        try:
            await run_until_stopped("outbox", self.pipeline.fill, stop, wakeup, poll_seconds)
        finally:
            await self.pipeline.close()

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
                self.wake()
                return

    async def _deliver(self, item: OutboxItem) -> None:
        started = self.clock()
        # The SDK can sleep on a Retry-After inside its own thread: never wait for ever. An
        # alert's post is not cancelled when it is slow: if Teams answers after the time-out,
        # the copy it made is still recorded (and the row closed if not re-sent yet).
        send = asyncio.ensure_future(self.sends.for_kind(item.kind)(item))
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
        stored = await self.sends.stored(item)
        fallback = self._fallback_messages(stored, item)
        if fallback and await self.store.enqueue_once(stored.id, "fallback", fallback):
            await self.store.audit(
                None, "alert_fallback", stored.id, {"status": failure.status, "to": len(fallback)}
            )
            self.wake()

    def _fallback_messages(self, stored: StoredConcern, item: OutboxItem) -> list[OutboxMessage]:
        """The DSL channel refused: 1:1 to the DSL and deputies, then the head. An allegation
        only ever goes to its own recipients (never the DSL team): it has no fallback beyond
        them, so it is retried and alarmed only."""
        if item.target.get("route") != "dsl_team":
            return []
        school = self.schools.get(stored.concern.school_id)
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

    async def _tell_reporter_not_delivered(self, item: OutboxItem, *, final: bool) -> None:
        if item.kind != "post_alert":
            return
        stored = await self.sends.stored(item)
        lead = (
            "Your report could NOT be delivered"
            if final
            else "Your report is saved but not delivered yet - still trying"
        )
        school = self.schools.get(stored.concern.school_id)
        if stored.concern.is_allegation:
            how = _tell_case_manager_now(school, stored.concern)
        else:
            how = phone_now(school)
        await self.messages.notify_reporter(stored.concern, f"{lead}. {how}")


def _late_answer(item: OutboxItem) -> Callable[[asyncio.Future], None]:
    """For an alert post that outlived its time-out: its copy was recorded by the send
    itself; only say what happened."""

    def done(send: asyncio.Future) -> None:
        if send.cancelled() or send.exception() is not None:
            logger.info("outbox %s late post_alert ended without a copy", item.id)
        else:
            logger.warning("outbox %s late post_alert answered: copy recorded", item.id)

    return done


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
