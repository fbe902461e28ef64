"""What the alert service puts in the outbox for a concern: a message to one person, a reply
in the alert's thread, a post to a school's DSL channel, the card refreshed.

Each is a durable outbox row first; delivery.py sends it (how each kind goes: sends.py). After
queueing, `wake` tells the outbox worker to look now.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botbuilder.schema import Activity

from bot.store import OutboxMessage, Store
from flows.concern import Concern
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

REPLY_GRACE_SECONDS = 10  # a turn's durable replies wait this long for the turn to send them


class Messages:
    def __init__(
        self,
        store: Store,
        schools: SchoolDirectory,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.schools = schools
        self.clock = clock
        self.wake = wake

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

    async def notify_reporter(self, concern: Concern, text: str) -> None:
        message = self.direct(concern.reporter.aad_object_id, text)
        await self.store.enqueue(concern.id, message.kind, message.target, message.payload)
        self.wake()

    def channel_target(self, school: SchoolProfile) -> dict[str, Any]:
        """A new post in the school's DSL channel (not an alert: see sends.py)."""
        return {
            "route": "dsl_team",
            "service_url": None,  # resolved when sent
            "tenant_id": school.tenant_id,
            "team_id": school.dsl_channel.team_id,
            "channel_id": school.dsl_channel.channel_id,
        }

    async def card_update(self, concern_id: str) -> None:
        """The alert's card (every copy) shows its state again."""
        await self.store.enqueue(concern_id, "update_card", {}, {"concern_id": concern_id})
