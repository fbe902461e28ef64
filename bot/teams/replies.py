"""Dialog replies as Teams messages: fewer, denser messages - each card that waits for an
answer carries the notices before it."""

from __future__ import annotations

from botbuilder.core import MessageFactory
from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot.services.sends import CARD
from bot.teams.cards import is_live, message_card, reply_card, reply_summary
from dialogs.replies import Reply
from dialogs.text import reply_text


def reply_groups(replies: list[Reply]) -> list[list[Reply]]:
    """Each card that waits for an answer takes the notices before it; the rest go together."""
    groups: list[list[Reply]] = []
    pending: list[Reply] = []
    for reply in replies:
        pending.append(reply)
        if is_live(reply):
            groups.append(pending)
            pending = []
    if pending:
        groups.append(pending)
    return groups


def group_activity(group: list[Reply]) -> Activity:
    if len(group) == 1:
        card = reply_card(group[0])
        if card is None:
            return MessageFactory.text(reply_text(group[0]))
    else:
        card = message_card(group)
    return Activity(
        type=ActivityTypes.message,
        summary=reply_summary(group),  # the chat list and notification line, not "Sent a card"
        attachments=[Attachment(content_type=CARD, content=card)],
    )
