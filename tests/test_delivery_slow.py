# A channel post Teams answers only after the send time-out (issue 10, "a channel post that
# takes over 60 s to be answered"). The post is carried out at once but its answer is held
# back past a short time-out (the same code path as 60 s; the test takes seconds). The bot
# must not lose the copy Teams made: with no re-send in between there is ONE thread; when a
# re-send beat the late answer, both copies are known to the concern and updated together.
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import CHANNEL, DSL, REPORTER, Clock, RunningBot, until
from tests.fakeconnector import FakeConnector
from tests.test_delivery_restart import RESEND, alert_body, channel_threads, report

SEND_TIMEOUT = 0.3  # seconds; production's is 60


@pytest.fixture
async def slow_bot(tmp_path: Path) -> AsyncIterator[RunningBot]:
    async with FakeConnector() as connector:
        running = await RunningBot(connector, tmp_path, Clock()).start(send_timeout=SEND_TIMEOUT)
        yield running
        await running.stop()


async def timed_out_alert(bot: RunningBot):
    """Report; Teams creates the thread but answers only after the bot's time-out."""
    held = bot.connector.hold_answer(r"^/v3/conversations$")
    await report(bot)
    await asyncio.wait_for(held.arrived.wait(), 5)
    [concern] = await bot.server.store.list_concerns_by_reporter(REPORTER.aad)
    store = bot.server.store

    async def retry_recorded() -> bool:
        [row] = [o for o in await store.outbox_for_concern(concern.id) if o.kind == "post_alert"]
        return row.status != "sending" and row.last_error is not None

    deadline = asyncio.get_running_loop().time() + 5
    while not await retry_recorded():  # the time-out passed: the row waits for its retry
        assert asyncio.get_running_loop().time() < deadline, "the send never timed out"
        await asyncio.sleep(0.02)
    return held, concern.id


def updated(bot: RunningBot, thread, by: str) -> bool:
    root = next(iter(thread.activities))
    return any(
        r.method == "PUT"
        and r.path == f"/v3/conversations/{thread.id}/activities/{root}"
        and by in str(r.json)
        for r in bot.connector.requests
    )


async def acknowledge_on(bot: RunningBot, thread, concern_id: str) -> None:
    root = next(iter(thread.activities))
    status, _ = await bot.post(
        bot.press("acknowledge", concern_id, user=DSL, thread=thread.id, reply_to=root)
    )
    assert status == 200


async def test_a_late_answer_with_no_resend_leaves_one_thread_that_acknowledge_updates(
    slow_bot: RunningBot,
):
    bot = slow_bot
    held, concern_id = await timed_out_alert(bot)
    held.release.set()  # Teams answers late, before the retry is due (the clock has not moved)
    store = bot.server.store
    await until(lambda: bool(bot.channel_posts()))
    posts = []

    async def recorded() -> bool:
        posts[:] = await store.alert_posts(concern_id)
        return len(posts) == 1

    deadline = asyncio.get_running_loop().time() + 5
    while not await recorded():
        assert asyncio.get_running_loop().time() < deadline, "the late copy was never recorded"
        await asyncio.sleep(0.02)

    # Nothing in flight before the clock jumps: a send still out when it jumps 600 s would
    # look like one whose sender died (its lease, renewed every 10 s, would have run out) and
    # go again - here, "Delivered at" to the reporter, sent twice.
    async def all_delivered() -> bool:
        return {o.status for o in await store.outbox_for_concern(concern_id)} == {"delivered"}

    deadline = asyncio.get_running_loop().time() + 5
    while not await all_delivered():
        assert asyncio.get_running_loop().time() < deadline, "the messages never went out"
        await asyncio.sleep(0.02)

    # Long after the retry would have been due, still one thread: the late answer closed it.
    bot.clock.advance(seconds=600)
    await bot.settle()
    await asyncio.sleep(0.2)
    [thread] = channel_threads(bot.connector)
    assert [p.activity_id for p in await store.alert_posts(concern_id)] == [
        next(iter(thread.activities))
    ]
    assert not posts[0].resend and RESEND not in str(alert_body(thread))
    assert {o.status for o in await store.outbox_for_concern(concern_id)} == {"delivered"}
    assert bot.texts_to(REPORTER).count("Delivered at") == 1

    await acknowledge_on(bot, thread, concern_id)
    await until(lambda: updated(bot, thread, DSL.name))


@pytest.mark.parametrize("acted_on", ["late copy", "re-sent copy"])
async def test_a_late_answer_after_a_resend_records_both_copies_and_updates_them_together(
    slow_bot: RunningBot, acted_on: str
):
    bot = slow_bot
    held, concern_id = await timed_out_alert(bot)
    bot.clock.advance(seconds=5)  # the retry is due: the alert goes again
    await until(lambda: len(channel_threads(bot.connector)) == 2)
    await bot.settle()
    late, resent = channel_threads(bot.connector)
    assert RESEND not in str(alert_body(late))
    assert alert_body(resent)[0]["text"].startswith(RESEND)

    held.release.set()  # only now does Teams answer the first post
    store = bot.server.store
    posts = []

    async def both_recorded() -> bool:
        posts[:] = await store.alert_posts(concern_id)
        return len(posts) == 2

    deadline = asyncio.get_running_loop().time() + 5
    while not await both_recorded():
        assert asyncio.get_running_loop().time() < deadline, "the late copy was never recorded"
        await asyncio.sleep(0.02)
    by_id = {p.activity_id: p for p in posts}
    assert by_id.keys() == {next(iter(late.activities)), next(iter(resent.activities))}
    assert by_id[next(iter(resent.activities))].resend
    assert not by_id[next(iter(late.activities))].resend
    assert len(channel_threads(bot.connector)) == 2  # no third copy
    assert all(t.channel_id == CHANNEL for t in (late, resent))
    assert bot.texts_to(REPORTER).count("Delivered at") == 1

    await acknowledge_on(bot, late if acted_on == "late copy" else resent, concern_id)
    # The short time-out applies to the card updates too: on a busy machine one may time
    # out and wait for its retry, which the test's clock must reach.
    deadline = asyncio.get_running_loop().time() + 10
    while not (updated(bot, late, DSL.name) and updated(bot, resent, DSL.name)):
        assert asyncio.get_running_loop().time() < deadline, "both copies were not updated"
        bot.clock.advance(seconds=5)
        await asyncio.sleep(0.05)


async def test_an_alert_never_waits_behind_another_concerns_slow_send(
    bot: RunningBot,
) -> None:
    """Sends start as slots free (bot/services/pipeline.py), not in batches that wait for
    their slowest send: while Teams is slow to answer one alert, the next report's alert
    still reaches the channel."""
    held = bot.connector.hold_answer(r"^/v3/conversations$")
    await report(bot)
    await asyncio.wait_for(held.arrived.wait(), 5)
    await report(bot)
    try:
        await until(lambda: len(channel_threads(bot.connector)) == 2, timeout=5)
        assert not held.release.is_set()  # the first alert's answer is still held back
    finally:
        held.release.set()
    await bot.settle()
    assert len(channel_threads(bot.connector)) == 2
