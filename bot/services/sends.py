"""How each kind of outbox message reaches Teams, through the Messenger port.

`post_alert`: the alert card, to the DSL channel (with its @mentions) or 1:1 to a case
manager or, on the fallback route, 1:1 to the DSL, deputies and head. The post records its
copy and, once per alert, what the first copy to get through causes (the words that did not
fit, the escalation chain, "Delivered" to the reporter). `update_card`: every copy of the
alert shows the same state. `words_part`, `thread_message`: replies in the alert's thread.
`direct_message`: a 1:1 message. `channel_post`: a new DSL-channel thread that is not an
alert. Retries, time-outs and refusals are delivery.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationReference,
    Mention,
)

from bot.errors import DeliveryError, DeliveryRefused, classify
from bot.services.alert_view import AlertView, hhmm
from bot.services.messages import Messages
from bot.services.timing import escalation_step
from bot.store import (
    AlertPost,
    AlertPostRecord,
    DeliveryEffects,
    OutboxItem,
    OutboxMessage,
    Store,
    StoredConcern,
)
from bot.teams.alert_card import alert_fallback_text, word_parts, words_card
from bot.teams.cards import card_summary
from dialogs.replies import recipient
from flows.directory import SchoolDirectory

logger = logging.getLogger(__name__)

CARD = "application/vnd.microsoft.card.adaptive"


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


class Sends:
    def __init__(
        self,
        store: Store,
        messenger: Messenger,
        schools: SchoolDirectory,
        clock: Callable[[], datetime],
        cards: AlertView,
        messages: Messages,
        default_service_url: str,
    ) -> None:
        self.store = store
        self.messenger = messenger
        self.schools = schools
        self.clock = clock
        self.cards = cards
        self.messages = messages
        self.default_service_url = default_service_url

    def for_kind(self, kind: str) -> Callable[[OutboxItem], Awaitable[str | None]]:
        """The send for this kind of message (an unknown kind raises AttributeError here)."""
        return getattr(self, f"_send_{kind}")

    async def _send_post_alert(self, item: OutboxItem) -> str:
        stored = await self.stored(item)
        target = item.target
        card = await self.cards.render(
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
        stored = await self.stored(item)
        # Every copy of the alert shows the same state: acting on any one updates them all.
        failures = []
        for post in posts:
            card = await self.cards.render(stored, resend=post.resend)
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
        stored = await self.stored(item)
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
            tenant_id = self.schools.get(stored.concern.school_id).tenant_id
        if not tenant_id:
            raise DeliveryRefused("no tenant for a first 1:1 message", status=None)
        _, activity_id = await self.messenger.send_to_user(
            await self.service_url(target), tenant_id, target["user_id"], activity
        )
        return activity_id

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

    async def stored(self, item: OutboxItem) -> StoredConcern:
        return await self._stored_by_id(item.payload["concern_id"])

    async def _stored_by_id(self, concern_id: str) -> StoredConcern:
        stored = await self.store.get_concern(concern_id)
        if stored is None:
            raise DeliveryRefused("concern missing from the store", status=None)
        return stored

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
        school = self.schools.get(stored.concern.school_id)
        to = recipient(school, stored.concern.routing.route, stored.concern.subject_ids)
        at = hhmm(now, school)
        effects["delivered"] = DeliveryEffects(
            stored.id,
            # Nobody may have seen it yet: the escalation chain starts now (acknowledging
            # stops it).
            timers=[escalation_step(school, stored.concern, now, 1)],
            audit=[(None, "alert_delivered", {"route": item.target["route"]})],
            messages=[
                self.messages.direct(
                    stored.concern.reporter.aad_object_id,
                    f"Delivered at {at}: your report is with {to}. I will tell you when "
                    "someone picks it up.",
                )
            ],
        )
        return effects
