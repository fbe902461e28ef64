# End to end over HTTP: real activities to /api/messages, a fake Bot Connector on loopback.
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import (
    ALERT_UPDATES,
    CARD,
    CHAIR,
    CHANNEL,
    DEPUTY,
    DSL,
    HEAD,
    OUTSIDER,
    REPORTER,
    Clock,
    RunningBot,
    User,
    concern_id_of,
    until,
)
from tests.fakeconnector import FakeConnector

CHILD = "Amelia Testchild"
WORDS = 'He said "don\'t tell" \\ {{ secret }} **really**\nthen he hit me 👍🏽'

WALKS = {
    "disclosure": [
        "no",
        "family",
        CHILD,
        "Y4",
        "Not known",
        "now",
        "the library",
        "skip",
        WORDS,
        "bruise left forearm",
        "no",
        "no",
        "no",
        "Listened and said I must tell the DSL",
        "yes",
    ],
    "nudes": [
        "no",
        "no",  # no adult involved
        "Another child told me",
        CHILD,
        "Not known",
        "no",
        "no",
        "no",
        "skip",
        "skip",
        "now",
        "Handed to the DSL",
        "skip",
        "no",
        "Told the DSL",
        "yes",
    ],
    "fgm": [
        "no",
        "girl_told",
        "yes",
        "yes",
        "ok",
        CHILD,
        "Y6",
        "Not known",
        "11",
        "now",
        WORDS,
        "skip",
        "yes",
        "now",
        "REF-123",
        "Phoned police, told DSL",
        "yes",
    ],
    "missing_child": [
        CHILD,
        "no",
        "3B",
        "now",
        "field",
        "red coat",
        "Searched - not found",
        "Tried - no reply",
        "No answer",
        "Reported on the non-emergency number",
        "INC-42",
        "yes",
        "No social worker",
        "Not yet",
        "Not known",
    ],
    "absence": [
        "no",
        CHILD,
        "4C",
        "now",
        "Tried every contact - no answer from anyone",
        "Not known",
        "no",
        "Not yet - the DSL will arrange them",
        "1",
        "Called mum and both emergency contacts",
        "yes",
    ],
    "allegation": [
        "no",
        "A teacher",
        "Mr Adult",
        "harmed",
        "no",  # no conflict of interest
        CHILD,
        "Y4",
        "Not known",
        "now",
        "classroom",
        "He grabbed her",
        "no",
        WORDS,
        "skip",
        "Nothing yet",
    ],
}


async def report(bot: RunningBot, flow: str, answers: list[str], user: User = REPORTER) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": flow}, user=user))
    await bot.say(*answers, user=user)
    if flow != "missing_child":
        await bot.say("send", user=user)
    await bot.settle()


def alert_card(request) -> dict:
    [attachment] = request.json["activity"]["attachments"]
    assert attachment["contentType"] == CARD
    return attachment["content"]


def text_runs(card: dict) -> list[str]:
    return card_texts(card, ("TextRun",))


@pytest.mark.parametrize("flow", ["disclosure", "nudes", "fgm", "missing_child"])
async def test_each_flow_reaches_the_dsl_channel_and_the_acknowledgement_reaches_the_reporter(
    bot: RunningBot, flow: str
):
    await report(bot, flow, WALKS[flow])
    [post] = bot.channel_posts()
    assert post.json["channelData"]["channel"]["id"] == CHANNEL
    card = alert_card(post)
    assert CHILD in text_runs(card)
    assert "Delivered" in bot.texts_to(REPORTER)
    # A DSL presses Acknowledge on the card in the channel.
    status, body = await bot.press_on_alert("acknowledge", user=DSL)
    [conversation] = [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]
    root = next(iter(conversation.activities))
    assert status == 200 and body["type"] == CARD
    assert any(
        "Picked up by Ann Robinson" in t.get("text", "")
        for t in body["value"]["body"]
        if t["type"] == "TextBlock"
    )
    await bot.settle()
    updates = bot.connector.requests_to(rf"/v3/conversations/.+/activities/{root}$", "PUT")
    assert updates, "the card was not updated for everyone"
    assert "picked up by Ann Robinson" in bot.texts_to(REPORTER)


@pytest.mark.parametrize(("role", "person"), [("A teacher", HEAD), ("The headteacher", CHAIR)])
async def test_allegations_never_reach_the_dsl_channel(bot: RunningBot, role, person):
    answers = list(WALKS["allegation"])
    answers[1] = role
    await report(bot, "allegation", answers)
    assert bot.channel_posts() == []
    creates = bot.connector.requests_to(r"^/v3/conversations$", "POST")
    members = [m["id"] for r in creates for m in (r.json.get("members") or [])]
    assert person.aad in members
    others = {HEAD.aad, CHAIR.aad} - {person.aad}
    assert not others & set(members)
    [dm] = [a for a in bot.direct_messages(person) if a.get("attachments")]
    assert CHILD in text_runs(dm["attachments"][0]["content"])


async def test_only_the_dsl_team_can_act_and_the_first_acknowledgement_wins(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    [post] = bot.channel_posts()
    concern_id = concern_id_of(alert_card(post))
    status, body = await bot.press_on_alert("acknowledge", user=OUTSIDER)
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.activity.message"
    assert "Only the DSL team" in body["value"]
    stored = await bot.server.store.get_concern(concern_id)
    assert stored.acknowledged_by is None
    assert not bot.connector.requests_to(ALERT_UPDATES, "PUT")

    results = await asyncio.gather(
        *(bot.press_on_alert("acknowledge", user=u) for u in (DSL, DEPUTY))
    )
    assert [s for s, _ in results] == [200, 200]
    stored = await bot.server.store.get_concern(concern_id)
    assert stored.acknowledged_by in {DSL.name, DEPUTY.name}
    await bot.settle()
    picked = bot.texts_to(REPORTER).count("picked up by")
    assert picked == 1


async def test_delivery_retries_429_then_500_and_delivers_exactly_once_across_a_restart(
    tmp_path: Path,
):
    async with FakeConnector() as connector:
        clock = Clock()
        bot = await RunningBot(connector, tmp_path, clock).start()
        connector.fail_next(r"^/v3/conversations$", statuses=[429], retry_after=1, method="POST")
        await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
        await bot.say(*WALKS["disclosure"], "send")
        await until(lambda: "not delivered yet" in bot.texts_to(REPORTER))
        await bot.stop()  # the server goes away with the alert still pending

        def statuses() -> list[int]:
            return [
                r.status
                for r in connector.requests_to(r"^/v3/conversations$", "POST")
                if (r.json.get("channelData") or {}).get("channel")
            ]

        connector.fail_next(r"^/v3/conversations$", statuses=[500], method="POST")
        bot = await RunningBot(connector, tmp_path, clock).start()
        while (seen := len(statuses())) < 3:
            clock.advance(seconds=10)  # past any backoff: the next attempt is due
            await until(lambda seen=seen: len(statuses()) > seen)
        await bot.settle()
        assert statuses() == [429, 500, 201]
        assert len(bot.channel_posts()) == 1
        await bot.stop()


async def test_the_same_activity_delivered_twice_advances_the_flow_once(bot: RunningBot):
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    first = bot.message("no")
    await bot.post(first)
    await bot.post(first)  # Teams re-delivers
    await bot.post(bot.message("family"))
    # Had "no" been applied twice, "family" would have been refused as an answer.
    assert "Please choose one of" not in bot.texts_to(REPORTER)
    state = await bot.server.store.read([f"msteams/users/{REPORTER.id}"])
    [session] = [v["session"] for v in state.values()]
    assert session["flow"]["history"] == ["immediate_danger", "abuser_relationship"]


async def test_attachments_are_never_fetched_or_stored(bot: RunningBot, tmp_path: Path):
    image_url = bot.connector.url + "v3/attachments/secret-image/views/original"
    await bot.post(
        bot.message(
            "look at this",
            attachments=[
                {"contentType": "image/png", "contentUrl": image_url, "name": "photo.png"}
            ],
        )
    )
    assert "do not send images" in bot.texts_to(REPORTER)
    assert not bot.connector.requests_to(r"attachments", "GET")
    await bot.stop()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("*.sqlite3*"))
    assert b"secret-image" not in stored and b"photo.png" not in stored


async def test_every_card_is_valid_adaptive_card_15_and_words_arrive_verbatim(bot: RunningBot):
    await report(bot, "disclosure", WALKS["disclosure"])
    cards = bot.sent_cards()
    assert len(cards) > 10
    assert_valid_cards(cards)
    alert = alert_card(bot.channel_posts()[0])
    assert WORDS.split("\n") == [t for t in text_runs(alert) if t in WORDS.split("\n")]


async def test_no_safeguarding_text_in_the_logs(bot: RunningBot, caplog):
    caplog.set_level(logging.DEBUG)
    for flow, answers in WALKS.items():
        await report(bot, flow, answers)
    bot.clock.advance(minutes=45)  # escalation and reminders run and log too
    await bot.settle()
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert logged  # the run did log
    assert "escalat" in logged  # the timers did log
    secrets = (
        CHILD,
        "then he hit me",
        "don't tell",
        "bruise left forearm",
        "library",
        "Mr Adult",
        "He grabbed her",
        "REF-123",
        "INC-42",
        "red coat",
    )
    for secret in secrets:
        assert secret not in logged, secret


async def test_a_message_from_another_tenant_is_refused(bot: RunningBot):
    activity = bot.message("hello")
    activity["channelData"]["tenant"]["id"] = "99999999-0000-0000-0000-000000000000"
    activity["conversation"]["tenantId"] = "99999999-0000-0000-0000-000000000000"
    status, _ = await bot.post(activity)
    assert status == 403
    assert bot.replies_to(REPORTER) == []


async def test_very_long_words_are_never_cut_silently(bot: RunningBot):
    long_words = "".join(f"line {i}: she said it again and again.\n" for i in range(600))
    answers = list(WALKS["disclosure"])
    answers[answers.index(WORDS)] = long_words
    await report(bot, "disclosure", answers)
    await bot.settle()
    [post] = bot.channel_posts()
    alert = alert_card(post)
    assert any("Continued: part 1 of" in json.dumps(b) for b in alert["body"])
    [conversation] = [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]
    replies = bot.connector.sent_activities(conversation.id)
    parts = [text_runs(r["attachments"][0]["content"]) for r in replies if r.get("attachments")]
    shown = [t for t in text_runs(alert) if t.startswith("line ") or t == " "]
    rebuilt = "\n".join(shown) + "".join("\n".join(p) for p in parts)
    assert rebuilt.replace(" \n", "\n").strip() == long_words.strip()
    cards = [alert] + [r["attachments"][0]["content"] for r in replies if r.get("attachments")]
    assert_valid_cards(cards)


async def test_a_restart_resumes_the_staff_member_at_the_same_step(tmp_path: Path):
    async with FakeConnector() as connector:
        clock = Clock()
        bot = await RunningBot(connector, tmp_path, clock).start()
        await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
        await bot.say("no", "family", CHILD)
        await bot.stop()
        bot = await RunningBot(connector, tmp_path, clock).start()
        await bot.say(*WALKS["disclosure"][3:], "send")
        await bot.settle()
        [post] = bot.channel_posts()
        assert CHILD in text_runs(alert_card(post))
        await bot.stop()


async def test_an_alert_is_never_abandoned_and_the_reporter_is_told_the_truth(bot: RunningBot):
    bot.connector.fail_next(r"^/v3/conversations$", statuses=[503] * 14, method="POST")
    await report(bot, "disclosure", WALKS["disclosure"])
    assert "not delivered yet" in bot.texts_to(REPORTER)
    assert "Delivered" not in bot.texts_to(REPORTER)
    for _ in range(16):
        bot.clock.advance(seconds=301)
        await bot.settle()
    assert len(bot.channel_posts()) == 1  # the 15th attempt got through
    assert "Delivered" in bot.texts_to(REPORTER)
    assert "could NOT be delivered" not in bot.texts_to(REPORTER)


async def test_stopping_a_raised_missing_child_report_keeps_the_alert_and_says_so(bot):
    await bot.post(bot.message(value={"action": "start", "flow": "missing_child"}))
    await bot.say(*WALKS["missing_child"][:7])  # raised, then the first search step
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    await bot.say("cancel")
    assert "already has the alert" in bot.texts_to(REPORTER)
    await bot.say("yes")
    await bot.settle()
    last_card = bot.connector.requests_to(ALERT_UPDATES, "PUT")[-1].json
    assert "STOPPED BY THE REPORTER" in str(last_card)
    assert "Premises and surrounding area searched" in str(last_card)  # what they did record
