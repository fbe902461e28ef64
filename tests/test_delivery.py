# Delivery over HTTP (issue 10 sections 1-3): one alert per report, whatever the timing; every
# connector failure retried; a refused channel post falls back to 1:1 messages and raises an
# operator alarm. Real activities to /api/messages, the fake Bot Connector on loopback.
from __future__ import annotations

import asyncio

from tests.e2e import REPORTER, RunningBot
from tests.test_e2e import WALKS

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
