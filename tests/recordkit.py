"""Helpers for the record tests: find an alert the bot posted, press a decision on it with
the values its card's boxes would send, and what each decision's boxes hold."""

from __future__ import annotations

import json
from typing import Any

from bot.services.decisions import NOT_INFORMED, Decision
from bot.teams.record_cards import SEP
from tests.e2e import CHANNEL, TENANT, RunningBot, User, concern_of

DATE, TIME = "2026-11-23", "10:20"


def alert_posts(bot: RunningBot, user: User | None = None) -> list[tuple[Any, str, dict]]:
    """(conversation, activity id, card) of every alert: in the DSL channel, or (with
    `user`) in that person's 1:1 chat. Oldest first."""
    found = []
    for conversation in bot.connector.conversations.values():
        if user is None and conversation.channel_id != CHANNEL:
            continue
        if user is not None:
            ids = {m.get("id") for m in conversation.members}
            if conversation.is_group or not ({user.aad, user.id} & ids):
                continue
        for activity_id, activity in conversation.activities.items():
            for attachment in activity.get("attachments") or []:
                card = attachment.get("content") or {}
                if '"concern_id"' in json.dumps(card):
                    found.append((conversation, activity_id, card))
                    break
    return found


async def press(
    bot: RunningBot,
    verb: str,
    *,
    user: User,
    values: dict[str, Any] | None = None,
    chat_of: User | None = None,
    which: int = 0,
) -> tuple[int, Any]:
    """Press `verb` on an alert (Action.Execute) with these box values, as `user`."""
    conversation, root, card = alert_posts(bot, chat_of)[which]
    kind = "channel" if conversation.channel_id else "personal"
    activity = bot.base(
        user,
        {"id": conversation.id, "conversationType": kind, "tenantId": TENANT},
        type="invoke",
        name="adaptiveCard/action",
        replyToId=root,
        value={
            "action": {
                "type": "Action.Execute",
                "verb": verb,
                "data": {"concern_id": concern_of(card), **(values or {})},
            },
            "trigger": "manual",
        },
    )
    if conversation.channel_id:
        activity["channelData"].update({"channel": {"id": CHANNEL}})
    return await bot.post(activity)


def filled(decision: Decision, *, required_only: bool = False) -> dict[str, str]:
    """What the decision's boxes send when filled in (hostile text where text is typed)."""
    out: dict[str, str] = {}
    for f in decision.fields:
        if required_only and not f.required and f.required_if is None:
            continue
        box = f"{decision.verb}{SEP}{f.id}"
        if f.kind == "datetime":
            out[f"{box}_date"], out[f"{box}_time"] = DATE, TIME
        elif f.kind == "choice":
            out[box] = NOT_INFORMED if NOT_INFORMED in f.choices else f.choices[-1]
        else:
            out[box] = f'{decision.verb} {f.id}: "quoted" {{{{ x }}}} **bold** 👍🏽'
    return out


def typed(decision: Decision, values: dict[str, str]) -> list[str]:
    """The values a person typed (not the choices or dates): none may reach the reporter."""
    return [v for k, v in values.items() if "quoted" in v]
