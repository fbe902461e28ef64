"""Team-scope commands do what the manifest promises: typed in a channel (after the bot's
@mention), each is answered in the person's 1:1 chat - opened with the Bot Connector's create
conversation (isGroup false) - and the channel is told only that. 'open concerns' lists each
concern with a deep link to its channel thread, built from that thread's ids."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from bot.teams import manifest as app
from bot.teams.private import MOVED_TO_CHAT, team_command
from tests.cardcheck import assert_valid_cards
from tests.e2e import CHANNEL, DSL, REPORTER, SCHOOL, TENANT, RunningBot, User
from tests.test_e2e import CHILD, WALKS, report

TEAM_COMMANDS = next(
    [c["title"] for c in cl["commands"]]
    for cl in app.build_manifest("8a4f1c2e-1b2c-4d3e-9f00-123456789abc")["bots"][0]["commandLists"]
    if cl["scopes"] == ["team"]
)
CHANNEL_THREAD = f"{CHANNEL};messageid=1700000000999"


def in_channel(bot: RunningBot, text: str, user: User = REPORTER) -> dict[str, Any]:
    conversation = {"id": CHANNEL_THREAD, "conversationType": "channel", "tenantId": TENANT}
    activity = bot.base(user, conversation, type="message", text=f"<at>Safeguarding</at> {text}")
    activity["channelData"].update({"channel": {"id": CHANNEL}, "team": {"id": "19:team"}})
    activity["entities"] = [
        {
            "type": "mention",
            "mentioned": {"id": "28:safeguarding-bot", "name": "Safeguarding"},
            "text": "<at>Safeguarding</at>",
        }
    ]
    return activity


def chats_opened(bot: RunningBot, user: User) -> list[Any]:
    """The create-conversation calls that opened a 1:1 chat with this user."""
    return [
        r
        for r in bot.connector.requests_to(r"^/v3/conversations$", "POST")
        if r.status < 300
        and r.json.get("isGroup") is False
        and [m["id"] for m in r.json.get("members", [])] == [user.id]
    ]


def said_in_channel(bot: RunningBot) -> list[dict[str, Any]]:
    return bot.connector.sent_activities(CHANNEL_THREAD)


def test_every_team_command_in_the_manifest_is_understood() -> None:
    assert "open concerns" in TEAM_COMMANDS
    for title in TEAM_COMMANDS:
        assert team_command(f"<at>Safeguarding</at> {title}"), title
    assert team_command("<at>Safeguarding</at> her dad hits her") is None


@pytest.mark.parametrize("title", TEAM_COMMANDS)
async def test_a_team_command_continues_in_the_1_to_1_chat(bot: RunningBot, title: str) -> None:
    user = DSL if title == "open concerns" else REPORTER
    status, _ = await bot.post(in_channel(bot, title, user))
    assert status in (200, 201)
    [opened] = chats_opened(bot, user)
    assert opened.json["tenantId" if "tenantId" in opened.json else "tenantID"] == TENANT
    assert "channel" not in (opened.json.get("channelData") or {})
    assert bot.direct_messages(user), "nothing was said in the 1:1 chat"
    assert [a.get("text") for a in said_in_channel(bot)] == [MOVED_TO_CHAT]


async def test_report_in_a_channel_opens_the_menu_in_the_chat_and_carries_on_there(
    bot: RunningBot,
) -> None:
    await bot.post(in_channel(bot, "report"))
    [chat] = [c for c in bot.connector.conversations.values() if c.members and not c.is_group]
    [(card_id, menu)] = chat.activities.items()
    assert "What is your concern about?" in str(menu)
    # Pressing a procedure on that card, in that chat, starts the report there.
    conversation = {"id": chat.id, "conversationType": "personal", "tenantId": TENANT}
    press = bot.base(
        REPORTER,
        conversation,
        type="message",
        replyToId=card_id,
        value={"action": "start", "flow": "disclosure"},
    )
    assert (await bot.post(press))[0] in (200, 201)
    # The menu card was replaced in place by the first question: one live card, in the chat.
    assert "Question 1 of" in str(chat.activities[card_id])
    assert [a.get("text") for a in said_in_channel(bot)] == [MOVED_TO_CHAT]


async def test_nothing_about_a_concern_is_said_in_the_channel(bot: RunningBot) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    await bot.post(in_channel(bot, "my reports"))
    await bot.post(in_channel(bot, "her dad hits her"))  # not a command: told to use a chat
    channel = said_in_channel(bot)
    assert len(channel) == 2 and channel[0]["text"] == MOVED_TO_CHAT
    assert "private (1:1) chat" in channel[1]["text"]
    assert CHILD.split()[0] not in str(channel)
    assert len(chats_opened(bot, REPORTER)) == 1  # only for the command
    assert CHILD.split()[0] in str(bot.direct_messages(REPORTER))  # 'my reports' went there


async def test_open_concerns_link_each_concern_to_its_thread(bot: RunningBot) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    assert len(bot.channel_posts()) == 1
    thread = next(c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL)
    root = thread.id.split(";messageid=")[1]
    assert root in thread.activities  # the alert is the thread's first message
    await bot.post(in_channel(bot, "open concerns", DSL))
    [listing] = [a for a in bot.direct_messages(DSL) if "Open concerns" in str(a)]
    links = [
        action["url"]
        for action in _actions(listing["attachments"][0]["content"])
        if action["type"] == "Action.OpenUrl"
    ]
    assert len(links) == 1
    assert_valid_cards([listing["attachments"][0]["content"]])
    url = urlparse(links[0])
    assert (url.scheme, url.netloc) == ("https", "teams.microsoft.com")
    assert url.path == f"/l/message/{CHANNEL.replace(':', '%3A').replace('@', '%40')}/{root}"
    query = parse_qs(url.query)
    assert query == {
        "tenantId": [TENANT],
        "parentMessageId": [root],
        "groupId": [SCHOOL.dsl_channel.team_id],
    }


async def test_open_concerns_in_a_channel_is_refused_privately_to_staff(bot: RunningBot) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    await bot.post(in_channel(bot, "open concerns"))
    assert "Only the DSL team" in str(bot.direct_messages(REPORTER))
    assert [a.get("text") for a in said_in_channel(bot)] == [MOVED_TO_CHAT]


def _actions(node: Any):
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith("Action."):
            yield node
        for value in node.values():
            yield from _actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _actions(value)


async def test_when_teams_will_not_open_the_chat_the_channel_hears_how_to_reach_the_bot(
    bot: RunningBot,
) -> None:
    bot.connector.fail_next(r"^/v3/conversations$", statuses=[403])
    status, _ = await bot.post(in_channel(bot, "report"))
    assert status in (200, 201)
    [said] = said_in_channel(bot)
    assert "could not open a private chat" in said["text"]
    assert SCHOOL.contact("emergency").number in said["text"]
    assert not bot.direct_messages(REPORTER)
