# The commands answered before the dialog session runs (bot/teams/commands.py), end to end over
# HTTP with the fake Bot Connector: the order they are checked in, and what it keeps.
from __future__ import annotations

from bot.services.child_lookup import REFUSED
from tests.e2e import DSL, RunningBot
from tests.test_e2e import CHILD
from tests.test_trust import ASK, NEWCOMER, hera  # noqa: F401 - the trust's bot fixture


async def session_of(bot: RunningBot, user=DSL) -> dict:
    key = f"msteams/users/{user.id}"
    return (await bot.server.store.read([key]))[key]["session"]


async def at_the_childs_name(bot: RunningBot) -> dict:
    """A report in progress, waiting for the child's name; its session as stored."""
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}, user=DSL))
    await bot.say("no", "family", user=DSL)
    return await session_of(bot)


async def test_child_name_mid_report_is_the_reports_answer_not_a_look_up(bot: RunningBot):
    before = await at_the_childs_name(bot)
    shown = len(bot.texts_to(DSL))
    await bot.say(f"child {CHILD}", user=DSL)  # the DSL team may look children up...
    after = await session_of(bot)
    # ...but mid-report these words are the answer: the report keeps them.
    assert after["flow"]["history"] == [*before["flow"]["history"], "child_name"]
    assert f"child {CHILD}" in str(after["flow"])
    assert REFUSED not in bot.texts_to(DSL)[shown:]


async def test_a_record_asked_for_mid_report_is_answered_and_the_place_kept(bot: RunningBot):
    before = await at_the_childs_name(bot)
    replies = len(bot.replies_to(DSL))
    await bot.say("record 0000abcd", user=DSL)  # a reference: a command even mid-report
    assert len(bot.replies_to(DSL)) > replies
    assert await session_of(bot) == before
    await bot.say(CHILD, user=DSL)  # and the report carries on from the same question
    assert (await session_of(bot))["flow"]["history"][-1] == "child_name"


async def test_child_told_me_from_the_dsl_starts_a_report(bot: RunningBot):
    await bot.say("child told me her dad hits her", user=DSL)
    assert REFUSED not in bot.texts_to(DSL)
    assert (await session_of(bot)).get("mode")  # the conversation took it


async def test_my_reports_is_answered_before_the_school_is_asked(hera: RunningBot):  # noqa: F811
    await hera.say("my reports", user=NEWCOMER)
    assert "You have not made any reports yet" in hera.texts_to(NEWCOMER)
    assert ASK not in hera.texts_to(NEWCOMER)
    await hera.say("help", user=NEWCOMER)  # the conversation needs the school: asked now
    assert hera.texts_to(NEWCOMER).count(ASK) == 1
