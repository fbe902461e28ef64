"""Team-scope commands: typed in a channel, answered in the person's 1:1 chat.

The manifest offers 'report', 'my reports', 'open concerns', 'help' and 'contacts' in a team.
A concern is never discussed in a channel, so the bot opens (or reuses) the 1:1 chat with the
person - Bot Connector create conversation, isGroup false - and continues there; the channel
gets one line saying so, with no detail.
"""

from __future__ import annotations

import re
from typing import Any

from botbuilder.schema import Activity, ChannelAccount, ConversationAccount, ConversationReference

from bot.services.reports import MY_REPORTS, OPEN_CONCERNS

# What each team-scope command (as typed after the @mention) asks for: a report command
# answered from the store, or words the conversation understands.
TEAM_COMMANDS: dict[str, str] = {
    "report": "report",
    "report a concern": "report",
    "help": "help",
    "contacts": "contacts",
    "my reports": MY_REPORTS,
    "my report": MY_REPORTS,
    "open concerns": OPEN_CONCERNS,
}
MOVED_TO_CHAT = (
    "I have answered you in a private chat with me (look under Chat). Never post details of a "
    "concern in a channel."
)
NO_PRIVATE_CHAT = (
    "I could not open a private chat with you. Open Safeguarding from Apps in Teams and message "
    "me there. If a child is in immediate danger, phone {emergency} now."
)
_MENTION = re.compile(r"<at[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)


def team_command(text: str | None) -> str | None:
    """The command a channel message asks for, without the @mention; None for anything else."""
    said = " ".join(_MENTION.sub(" ", text or "").lower().split())
    return TEAM_COMMANDS.get(said.strip(" .!?"))


def _tenant(activity: Activity) -> str:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = (data.get("tenant") or {}).get("id")
    return tenant or (activity.conversation.tenant_id if activity.conversation else "") or ""


def chat_reference(activity: Activity, conversation_id: str) -> ConversationReference:
    """Where the person's 1:1 chat is, for sending more and updating cards there."""
    return ConversationReference(
        channel_id=activity.channel_id,
        service_url=activity.service_url,
        conversation=ConversationAccount(
            id=conversation_id, conversation_type="personal", tenant_id=_tenant(activity)
        ),
        bot=activity.recipient,
        user=activity.from_property,
    )


async def send_privately(
    messenger: Any, activity: Activity, outgoing: list[Activity]
) -> tuple[ConversationReference, list[str]]:
    """Open (or reuse) the sender's 1:1 chat, send `outgoing` there in order; return where
    it is and the sent activities' ids."""
    sender = activity.from_property or ChannelAccount()
    conversation_id, first = await messenger.send_to_user(
        activity.service_url, _tenant(activity), sender.id, outgoing[0]
    )
    reference = chat_reference(activity, conversation_id)
    ids = [first]
    for message in outgoing[1:]:
        ids.append(await messenger.reply_in_thread(reference, message))
    return reference, ids
