"""The port for proactive sends: new channel thread, 1:1 message, thread reply, card update.

This is the only module that drives the Bot Connector outside an incoming turn. Swapping the
edge to the Microsoft 365 Agents SDK means rewriting this file, not its callers.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)
from botframework.connector.aio import ConnectorClient

from bot.errors import map_exceptions

logger = logging.getLogger(__name__)

TEAMS = "msteams"

ActivityLike = Activity | Mapping[str, Any]
ReferenceLike = ConversationReference | Mapping[str, Any]


def _activity(activity: ActivityLike) -> Activity:
    if isinstance(activity, Activity):
        result = copy.deepcopy(activity)
    else:
        result = Activity().deserialize(dict(activity))
    result.type = result.type or ActivityTypes.message
    return result


def _reference(ref: ReferenceLike) -> ConversationReference:
    if isinstance(ref, ConversationReference):
        return ref
    return ConversationReference().deserialize(dict(ref))


def _client(context: TurnContext) -> ConnectorClient:
    return context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]


def _addressed(context: TurnContext, activity: Activity) -> Activity:
    """Address `activity` to the turn's conversation, without the synthetic replyToId."""
    ref = TurnContext.get_conversation_reference(context.activity)
    outgoing = TurnContext.apply_conversation_reference(activity, ref)
    # The proactive turn's activity id is made up (uuid1), so never reply "to" it.
    outgoing.reply_to_id = None
    outgoing.id = None
    return outgoing


def _sender(activity: ActivityLike, sent: dict[str, str]) -> Any:
    """A turn callback that sends `activity` into the turn's conversation and notes the ids.
    It calls the connector directly: a proactive turn has no real activity to reply to."""
    outgoing = _activity(activity)

    async def send(context: TurnContext) -> None:
        message = _addressed(context, outgoing)
        response = await _client(context).conversations.send_to_conversation(
            message.conversation.id, message
        )
        sent["conversation_id"] = message.conversation.id
        sent["activity_id"] = response.id if response else ""

    return send


class TeamsConnector:
    """What our code calls to reach people. Every failure comes out as DeliveryError/Refused."""

    def __init__(self, adapter: CloudAdapter, bot_app_id: str, *, audience: str | None = None):
        self._adapter = adapter
        # CloudAdapter needs the app id for proactive turns: it picks credentials by it.
        self._bot_app_id = bot_app_id or ""
        self._audience = audience

    async def _create(
        self, operation: str, service_url: str, params: ConversationParameters, callback: Any
    ) -> None:
        with map_exceptions(operation):
            await self._adapter.create_conversation(
                self._bot_app_id,
                callback,
                conversation_parameters=params,
                channel_id=TEAMS,
                service_url=service_url,
                audience=self._audience,
            )

    async def post_to_channel(
        self,
        service_url: str,
        tenant_id: str,
        team_id: str,
        channel_id: str,
        activity: ActivityLike,
    ) -> tuple[str, str]:
        """Start a new thread in a Teams channel; return (conversation_id, activity_id).

        Uses adapter.create_conversation: TeamsInfo.send_message_to_teams_channel takes a
        legacy path without an app id that fails on CloudAdapter in 4.17.1.
        """
        params = ConversationParameters(
            is_group=True,
            # 4.17.1 serialises tenant_id as "tenantID"; Teams also reads channelData.tenant.
            channel_data={"channel": {"id": channel_id}, "tenant": {"id": tenant_id}},
            activity=_activity(activity),
            tenant_id=tenant_id,
        )
        created: dict[str, str] = {}

        async def capture(context: TurnContext) -> None:
            # SDK: the create activity carries the new conversation id, and the first
            # message's id (or a random uuid if the channel returned none).
            created["conversation_id"] = context.activity.conversation.id
            created["activity_id"] = context.activity.id

        await self._create("post_to_channel", service_url, params, capture)
        logger.info(
            "posted to channel (team_id=%s channel_id=%s activity_id=%s)",
            team_id,
            channel_id,
            created["activity_id"],
        )
        return created["conversation_id"], created["activity_id"]

    async def send_to_user(
        self, service_url: str, tenant_id: str, user_id: str, activity: ActivityLike
    ) -> tuple[str, str]:
        """Open (or reuse) the 1:1 chat with a user (AAD object id or 29: id) and send."""
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=f"28:{self._bot_app_id}") if self._bot_app_id else None,
            members=[ChannelAccount(id=user_id)],
            tenant_id=tenant_id,
            channel_data={"tenant": {"id": tenant_id}},
        )
        sent: dict[str, str] = {}
        await self._create("send_to_user", service_url, params, _sender(activity, sent))
        logger.info("sent to user (activity_id=%s)", sent["activity_id"])
        return sent["conversation_id"], sent["activity_id"]

    async def reply_in_thread(self, ref: ReferenceLike, activity: ActivityLike) -> str:
        """Send into the conversation `ref` names (a channel thread, a chat); return the id."""
        sent: dict[str, str] = {}
        with map_exceptions("reply_in_thread"):
            await self._adapter.continue_conversation(
                _reference(ref),
                _sender(activity, sent),
                bot_app_id=self._bot_app_id,
                audience=self._audience,
            )
        return sent["activity_id"]

    async def update_activity(
        self, ref: ReferenceLike, activity_id: str, activity: ActivityLike
    ) -> None:
        """Replace a message the bot sent earlier (e.g. the alert card once acknowledged)."""
        outgoing = _activity(activity)

        async def update(context: TurnContext) -> None:
            message = _addressed(context, outgoing)
            message.id = activity_id
            await _client(context).conversations.update_activity(
                message.conversation.id, activity_id, message
            )

        with map_exceptions("update_activity"):
            await self._adapter.continue_conversation(
                _reference(ref), update, bot_app_id=self._bot_app_id, audience=self._audience
            )
