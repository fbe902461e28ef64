"""One person's turns run one after another (bot/teams/handler.py's per-person lock).

A turn writes which card is live after its replies are sent; a quick second message must read
that, not the state from before. The first turn is held at a controlled point (the fake Bot
Connector keeps the answer to its reply back) while the second is posted: the second must not
start until the first has finished. Without the lock this test fails every time: the second
turn starts in the same step of the event loop as it arrives, so no timing is involved."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e import OUTSIDER, RunningBot, until

REPLIES = r"^/v3/conversations/a:personal-"


def _trace(bot: RunningBot) -> list[tuple[str, str]]:
    """Record, per activity id, when it reached the handler and when its turn ran."""
    assert bot.server is not None
    handler: Any = bot.server.bot
    trace: list[tuple[str, str]] = []
    on_turn, run_turn = handler.on_turn, handler._on_turn

    async def arrived(turn_context: Any) -> None:
        trace.append(("arrived", turn_context.activity.id))
        await on_turn(turn_context)

    async def ran(turn_context: Any, key: Any) -> None:
        trace.append(("started", turn_context.activity.id))
        try:
            await run_turn(turn_context, key)
        finally:
            trace.append(("finished", turn_context.activity.id))

    handler.on_turn, handler._on_turn = arrived, ran
    return trace


async def test_a_second_message_waits_for_the_first_turn_to_finish(bot: RunningBot) -> None:
    await bot.say("a child told me her dad hits her")  # the triage card
    trace = _trace(bot)
    held = bot.connector.hold_answer(REPLIES)
    first = bot.message("1")  # starts the disclosure report
    second = bot.message("help")
    first_post = asyncio.create_task(bot.post(first))
    try:
        await asyncio.wait_for(held.arrived.wait(), 10)  # the first turn is mid-reply, held
        second_post = asyncio.create_task(bot.post(second))
        await until(lambda: ("arrived", second["id"]) in trace, timeout=10)
        assert ("started", second["id"]) not in trace, (
            f"the second turn started while the first was still running: {trace}"
        )
    finally:
        held.release.set()
    assert (await first_post)[0] in (200, 201)
    assert (await second_post)[0] in (200, 201)
    assert trace.index(("finished", first["id"])) < trace.index(("started", second["id"]))
    # What each turn said went out in the order the messages were sent: the help text
    # (second) after the first question of the report (first).
    sent = [str(r.json) for r in bot.connector.requests_to(REPLIES)]
    question = next(i for i, body in enumerate(sent) if "Question 1 of" in body)
    assert all("I walk you through" not in body for body in sent[:question])
    assert any("I walk you through" in body for body in sent[question:])


async def test_different_people_are_not_held_up_by_each_other(bot: RunningBot) -> None:
    """The lock is per person: another staff member's turn runs while the first is held."""
    await bot.say("a child told me her dad hits her")
    trace = _trace(bot)
    held = bot.connector.hold_answer(REPLIES)
    first = bot.message("1")
    other = bot.message("help", user=OUTSIDER)
    first_post = asyncio.create_task(bot.post(first))
    try:
        await asyncio.wait_for(held.arrived.wait(), 10)
        assert (await asyncio.wait_for(bot.post(other), 10))[0] in (200, 201)
        assert ("finished", other["id"]) in trace and ("finished", first["id"]) not in trace
    finally:
        held.release.set()
    assert (await first_post)[0] in (200, 201)
