"""The alert notifies and each DSL sees their own view, over HTTP with the fake connector:
the first channel post @mentions the DSL team (urgent at once; routine as the profile says);
Universal Actions `refresh` answers each person with their view ("You have this" / "Ann
Robinson has this"); a closed concern loses its red header; every card has summary text."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import tests.e2e
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import (
    CARD,
    CHANNEL,
    DEPUTY,
    DSL,
    OUTSIDER,
    REPORTER,
    SCHOOL,
    Clock,
    RunningBot,
    card_buttons,
)
from tests.fakeconnector import FakeConnector
from tests.recordkit import press
from tests.test_e2e import CHILD, WALKS, WORDS, alert_card, report

EVENING = datetime(2026, 11, 23, 20, 0, tzinfo=ZoneInfo("Europe/London"))  # a Monday night
TEAM = {p.aad_object_id: p.name for p in SCHOOL.dsl_team()}
ROUTINE = WALKS["disclosure"]  # "no" to every urgent question: a routine alert
URGENT = ["yes"]  # immediate danger: the alert goes at once


def mentioned(card: dict[str, Any]) -> dict[str, str]:
    """Who the card @mentions, checking each mention's text is in the card as Teams needs."""
    entities = card.get("msteams", {}).get("entities", [])
    shown = " ".join(card_texts(card))
    for entity in entities:
        assert entity["type"] == "mention" and entity["text"] in shown, entity
        assert entity["text"] == f"<at>{entity['mentioned']['name']}</at>"
    return {e["mentioned"]["id"]: e["mentioned"]["name"] for e in entities}


async def start_bot(tmp_path: Path, clock: Clock, mention_routine: str | None = None):
    connector = await FakeConnector().start()
    school = SCHOOL
    if mention_routine is not None:
        channel = dataclasses.replace(SCHOOL.dsl_channel, mention_routine=mention_routine)
        school = dataclasses.replace(SCHOOL, dsl_channel=channel)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tests.e2e, "SCHOOL", school)
        bot = await RunningBot(connector, tmp_path, clock).start()
    return connector, bot


async def raise_alert(bot: RunningBot, answers: list[str]) -> dict[str, Any]:
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*answers)
    if answers is ROUTINE:
        await bot.say("send")
    await bot.settle()
    [post] = bot.channel_posts()
    return alert_card(post)


async def test_an_urgent_alert_mentions_the_whole_dsl_team_at_once_even_at_night(tmp_path):
    connector, bot = await start_bot(tmp_path, Clock(EVENING), mention_routine="never")
    try:
        card = await raise_alert(bot, URGENT)
        assert mentioned(card) == TEAM
        assert_valid_cards([card])
    finally:
        await bot.stop()
        await connector.close()


@pytest.mark.parametrize(
    ("setting", "at", "expected"),
    [
        (None, EVENING, TEAM),  # the default: always
        ("always", EVENING, TEAM),
        ("school_hours", None, TEAM),  # Monday 10:00
        ("school_hours", EVENING, {}),
        ("never", None, {}),
    ],
)
async def test_a_routine_alert_mentions_the_team_as_the_profile_says(
    tmp_path: Path, setting: str | None, at: datetime | None, expected: dict[str, str]
) -> None:
    connector, bot = await start_bot(tmp_path, Clock(at), mention_routine=setting)
    try:
        card = await raise_alert(bot, ROUTINE)
        assert mentioned(card) == expected
        if not expected:
            assert not any("<at>" in t for t in card_texts(card))
    finally:
        await bot.stop()
        await connector.close()


async def refresh(
    bot: RunningBot, user: Any, *, reply_to: str | None = None, thread: str | None = None
) -> tuple[int, Any]:
    """What Teams sends when a card with `refresh` is shown to `user` (trigger automatic)."""
    [conversation] = [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]
    root, activity = next(iter(conversation.activities.items()))
    card = activity["attachments"][0]["content"]
    action = card["refresh"]["action"]
    press = bot.press(
        "refresh", "", user=user, thread=thread or conversation.id, reply_to=reply_to or root
    )
    press["value"] = {"action": action, "trigger": "automatic"}
    return await bot.post(press)


def viewed(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    assert body["type"] == CARD, body
    card = body["value"]
    return card_texts(card), card_buttons(card)


async def test_each_person_sees_their_own_view_through_refresh(bot: RunningBot) -> None:
    card = await raise_alert(bot, ROUTINE)
    assert card["refresh"]["action"]["verb"] == "refresh"
    assert set(card["refresh"]["userIds"]) == {f"8:orgid:{aad}" for aad in TEAM}

    status, body = await refresh(bot, DSL)
    texts, buttons = viewed(body)
    assert status == 200 and any(t.startswith("Nobody has this yet") for t in texts)
    assert "Acknowledge - I'm taking this" in buttons

    status, body = await bot.press_on_alert("acknowledge", user=DSL)
    texts, buttons = viewed(body)  # the presser's own view at once
    assert any(t.startswith("You have this") for t in texts)
    assert "Acknowledge - I'm taking this" not in buttons

    texts, buttons = viewed((await refresh(bot, DSL))[1])
    assert any(t.startswith("You have this") for t in texts)
    texts, buttons = viewed((await refresh(bot, DEPUTY))[1])
    assert f"{DSL.name} has this." in texts and "Record a decision" in buttons

    # Someone in the channel who is not in the DSL team sees the card, without buttons.
    texts, buttons = viewed((await refresh(bot, OUTSIDER))[1])
    assert "Only the DSL team can act on this alert." in texts and buttons == []
    # ...and a refresh for a card the bot never posted shows nothing of the concern.
    for forged in ({"reply_to": "not-a-post"}, {"thread": "a:personal-outsider"}):
        status, body = await refresh(bot, OUTSIDER, **forged)
        assert body["type"] == "application/vnd.microsoft.activity.message", forged
        assert CHILD not in str(body)
    await bot.settle()
    # The shared card (what everyone else's client refreshes from) names no viewer.
    shared = bot.connector.requests_to(r"/activities/", "PUT")[-1].json
    assert not any("You have this" in t for t in card_texts(shared))


async def test_a_closed_concern_loses_its_red_header_and_its_buttons(bot: RunningBot) -> None:
    card = await raise_alert(bot, URGENT)
    assert card["body"][0]["style"] == "attention"
    await press(bot, "close", user=DSL, values={"close:outcome": "Spoke to mum; monitoring ended"})
    await bot.settle()
    [conversation] = [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]
    root = next(iter(conversation.activities.values()))
    closed = root["attachments"][0]["content"]
    assert closed["body"][0]["style"] == "default"
    assert card_texts(closed["body"][0])[0].startswith("CLOSED")
    assert card_buttons(closed) == [] and "attention" not in str(closed["body"][0])
    texts, buttons = viewed((await refresh(bot, DSL))[1])
    assert buttons == [] and not any("has this" in t for t in texts)


async def test_every_card_the_bot_sends_has_summary_text_without_names_or_words(
    bot: RunningBot,
) -> None:
    """Teams lists a card without a summary as "Sent a card"; the summary is also the
    notification line (a lock screen): it never carries names or the child's words."""
    await report(bot, "disclosure", WALKS["disclosure"])
    await bot.press_on_alert("acknowledge", user=DSL)
    bot.clock.advance(hours=30)  # reminders and deadline notices (cards among them)
    await bot.settle()
    with_cards = []
    for request in bot.connector.requests:
        body = request.json if isinstance(request.json, dict) else {}
        activity = body.get("activity", body)
        if any(a.get("contentType") == CARD for a in activity.get("attachments") or []):
            with_cards.append(activity)
    assert len(with_cards) > 10
    private = [CHILD, *WORDS.split("\n"), REPORTER.name, "bruise left forearm", "the library"]
    for activity in with_cards:
        summary = activity.get("summary") or ""
        assert summary.strip(), activity["attachments"][0]["content"]
        assert not [p for p in private if p in summary], summary
    alerts = [a["summary"] for a in with_cards if "safeguarding alert" in a["summary"].lower()]
    assert alerts and set(alerts) == {"Safeguarding alert: Disclosure"}
