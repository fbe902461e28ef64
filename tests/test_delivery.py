# Delivery over HTTP (issue 10 sections 1-3): one alert per report, whatever the timing; every
# connector failure retried; a refused channel post falls back to 1:1 messages and raises an
# operator alarm. Real activities to /api/messages, the fake Bot Connector on loopback.
from __future__ import annotations

import asyncio
import logging

import pytest

from tests.cardcheck import assert_valid_cards
from tests.e2e import CARD, DEPUTY, DSL, HEAD, REPORTER, RunningBot
from tests.fakeconnector import NO_ANSWER, RESET
from tests.test_e2e import CHILD, WALKS

APOLOGY = "something went wrong on my side"


async def walk_to_summary(bot: RunningBot) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*WALKS["disclosure"])


async def test_two_sends_at_the_same_instant_make_one_alert_and_one_delivered(bot: RunningBot):
    await walk_to_summary(bot)
    # Two "Send" activities 0 ms apart (a double tap, or Teams and a client both sending).
    first, second = bot.message("send"), bot.message("send")
    statuses = await asyncio.gather(bot.post(first), bot.post(second))
    assert all(s < 300 for s, _ in statuses)
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    [concern] = await bot.server.store.list_concerns_by_reporter(REPORTER.aad)
    outbox = await bot.server.store.outbox_for_concern(concern.id)
    assert [o.kind for o in outbox].count("post_alert") == 1
    told = bot.texts_to(REPORTER)
    assert told.count("Delivered at") == 1
    assert told.count("Sending your report") == 1
    assert APOLOGY not in told


def channel_attempts(bot: RunningBot) -> list[int]:
    """Statuses of every attempt to start the alert's thread in the DSL channel."""
    return [
        r.status
        for r in bot.connector.requests_to(r"^/v3/conversations$", "POST")
        if isinstance(r.json, dict) and (r.json.get("channelData") or {}).get("channel")
    ]


def is_channel_post(json: object) -> bool:
    return isinstance(json, dict) and bool((json.get("channelData") or {}).get("channel"))


async def send_report(bot: RunningBot) -> None:
    await walk_to_summary(bot)
    await bot.say("send")
    await bot.settle()


@pytest.mark.parametrize("failure", ["html502", "reset"])
async def test_a_proxy_error_page_or_a_reset_is_retried_and_the_reporter_told_the_truth(
    bot: RunningBot, failure: str
):
    if failure == "html502":
        bot.connector.fail_next(r"^/v3/conversations$", [502], body="html", method="POST")
    else:
        bot.connector.fail_next(r"^/v3/conversations$", [RESET], method="POST")
    await send_report(bot)
    told = bot.texts_to(REPORTER)
    assert "not delivered yet" in told and "Delivered at" not in told
    bot.clock.advance(seconds=5)  # the first backoff
    await bot.settle()
    assert channel_attempts(bot) == [502 if failure == "html502" else NO_ANSWER, 201]
    told = bot.texts_to(REPORTER)
    assert told.index("not delivered yet") < told.index("Delivered at")
    assert told.count("Delivered at") == 1
    outbox = await bot.server.store.outbox_for_concern(
        (await bot.server.store.list_concerns_by_reporter(REPORTER.aad))[0].id
    )
    assert {o.status for o in outbox} == {"delivered"}
    # The first attempt may have reached Teams (a 5xx, a reset): the copy that got through
    # says it may be a second one - and it is still a valid card.
    [post] = bot.channel_posts()
    card = post.json["activity"]["attachments"][0]["content"]
    assert card["body"][0]["text"].startswith("Sent again")
    assert_valid_cards([card])


async def test_a_refused_channel_post_falls_back_to_the_dsl_team_one_to_one_and_alarms(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
):
    refusing = bot.connector.fail_always(r"^/v3/conversations$", 403, when=is_channel_post)
    caplog.set_level(logging.INFO)
    await send_report(bot)  # no time passes: "within seconds"

    # The DSL and the deputies have the alert card 1:1 at once; the head after them.
    for person in (DSL, DEPUTY, HEAD):
        cards = [a for a in bot.direct_messages(person) if a.get("attachments")]
        assert len(cards) == 1, person.name
        assert cards[0]["attachments"][0]["contentType"] == CARD
    # The operator alarm: one log line with ids only, a count, and /readyz degraded.
    alarms = [r for r in caplog.records if "ALARM" in r.getMessage()]
    assert len(alarms) == 1
    assert CHILD not in alarms[0].getMessage()
    assert await bot.server.store.refused_alerts() == 1
    async with bot._session.get(bot.url.replace("/api/messages", "/readyz")) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "degraded"
    async with bot._session.get(bot.url.replace("/api/messages", "/metrics")) as response:
        assert "safeguarding_alerts_refused_by_teams 1" in await response.text()
    told = bot.texts_to(REPORTER)
    assert told.index("not delivered yet") < told.index("Delivered at")

    # The channel post is never abandoned: it keeps being retried with backoff.
    for _ in range(4):
        bot.clock.advance(seconds=301)
        await bot.settle()
    assert channel_attempts(bot)[:5] == [403] * 5
    bot.connector.stop_failing(refusing)
    bot.clock.advance(seconds=301)
    await bot.settle()
    assert channel_attempts(bot)[-1] == 201
    assert len(bot.channel_posts()) == 1
    assert await bot.server.store.refused_alerts() == 0
    async with bot._session.get(bot.url.replace("/api/messages", "/readyz")) as response:
        assert (await response.json())["status"] == "ready"
    assert bot.texts_to(REPORTER).count("Delivered at") == 1
    assert len([r for r in caplog.records if "ALARM" in r.getMessage()]) == 1


async def test_the_reply_to_send_goes_through_the_outbox_and_arrives_in_order(bot: RunningBot):
    await walk_to_summary(bot)
    # Teams fails the reply to "Send" (the alert itself goes through).
    # (the turn's own attempt, then the outbox's first)
    bot.connector.fail_next(
        r"^/v3/conversations/a:personal-[^/]+/activities(/[^/]+)?$", [503, 503], method="POST"
    )
    status, _ = await bot.post(bot.message("send"))
    assert status < 300
    await bot.settle()
    assert "Sending your report" not in bot.texts_to(REPORTER)
    assert "Delivered at" not in bot.texts_to(REPORTER)  # waits for the reply before it
    bot.clock.advance(seconds=5)  # the reply's first backoff
    await bot.settle()
    told = bot.texts_to(REPORTER)
    assert APOLOGY not in told
    assert told.count("Sending your report") == 1
    assert told.index("Sending your report") < told.index("Delivered at")
    assert len(bot.channel_posts()) == 1
