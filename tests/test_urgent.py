# Early alerts over HTTP (issue 7 s2): an urgent flag sends the alert at once, with what is
# known; later answers update that same card; stopping or cancelling never retracts it.
from __future__ import annotations

import asyncio
import json

from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import CHANNEL, HEAD, REPORTER, RunningBot
from tests.test_e2e import CHILD, WALKS, WORDS

STILL = "STILL BEING RECORDED"


def card_of(activity: dict) -> dict:
    [attachment] = activity["attachments"]
    return attachment["content"]


def _channel_conversations(bot: RunningBot) -> list:
    return [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]


def channel_cards(bot: RunningBot) -> list[dict]:
    """Every version of every card in the DSL channel: each post, then each update of it."""
    posts = [card_of(r.json["activity"]) for r in bot.channel_posts()]
    ids = {c.id for c in _channel_conversations(bot)}
    updates = [
        card_of(r.json)
        for r in bot.connector.requests_to(r"/activities/", "PUT")
        if any(f"/{i}/" in r.path for i in ids) and r.status < 300
    ]
    return posts + updates


async def card_saying(bot: RunningBot, text: str, timeout: float = 5.0) -> str:
    """The DSL channel card once it says `text` (an update may still be in flight when the
    outbox looks idle); fails with the card as it stands."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in latest_channel_card(bot) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    card = latest_channel_card(bot)
    assert text in card, card
    return card


def latest_channel_card(bot: RunningBot) -> str:
    """The alert in the DSL channel as it stands now (its root message, updated in place)."""
    [conversation] = _channel_conversations(bot)
    root = next(iter(conversation.activities.values()))
    return json.dumps(card_of(root), ensure_ascii=False)


async def start(bot: RunningBot, flow: str) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": flow}))


async def test_an_urgent_flag_sends_the_alert_before_the_next_question_is_answered(bot):
    await start(bot, "disclosure")
    await bot.say("yes")  # immediate danger; the next question (when was 999 called) waits
    await bot.settle()
    [post] = bot.channel_posts()
    card = json.dumps(card_of(post.json["activity"]))
    assert "URGENT" in card and "immediate danger: 999" in card and STILL in card
    assert "Delivered" in bot.texts_to(REPORTER)  # the reporter is told it went
    assert_valid_cards(channel_cards(bot))


async def test_a_reporter_who_stops_after_yes_leaves_the_dsl_a_card_saying_not_finished(bot):
    await start(bot, "welfare")
    await bot.say("yes")
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    bot.clock.advance(minutes=31)  # past the stalled-report notice
    await bot.settle()
    assert len(bot.channel_posts()) == 1  # no second post, no separate "incomplete" card
    await card_saying(bot, "NOT FINISHED")
    assert_valid_cards(channel_cards(bot))


async def test_later_answers_update_that_card_and_the_confirm_completes_it(bot):
    answers = list(WALKS["disclosure"])
    answers[0] = "yes"
    answers.insert(1, "now")  # the 999 call time
    await start(bot, "disclosure")
    await bot.say(*answers)
    await bot.say("send")
    await bot.settle()
    assert len(bot.channel_posts()) == 1  # one alert, updated in place
    final = await card_saying(bot, "Listened and said I must tell the DSL")
    assert CHILD in final and "Emergency services called at" in final
    assert STILL not in final
    assert "already has is now complete" in bot.texts_to(REPORTER)
    assert_valid_cards(channel_cards(bot))
    [stored] = await bot.server.store.list_concerns_by_reporter(REPORTER.aad)
    assert stored.concern.status == "final"  # the same concern, completed


async def test_cancelling_after_an_early_alert_keeps_the_card_marked_stopped(bot):
    await start(bot, "nudes")
    await bot.say("yes", "now")
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    await bot.say("cancel", "yes")
    await bot.settle()
    assert "marked as stopped by you" in bot.texts_to(REPORTER)
    card = await card_saying(bot, "STOPPED BY THE REPORTER")
    assert STILL not in card
    assert len(bot.channel_posts()) == 1


async def test_an_urgent_allegation_waits_for_who_it_is_about_then_goes_only_to_the_head(bot):
    await start(bot, "allegation")
    await bot.say("yes", "now", "A teacher", "Mr Adult", "harmed")
    await bot.settle()
    # who receives it is not settled yet (a conflict of interest sends it to the LADO): nothing
    # may go to anyone who may be the adult or connected to them
    assert bot.direct_messages(HEAD) == [] and bot.channel_posts() == []
    await bot.say("no")  # no conflict of interest: now the alert goes at once
    await bot.settle()
    alerts = [a for a in bot.direct_messages(HEAD) if a.get("attachments")]
    assert len(alerts) == 1 and STILL in json.dumps(alerts[0])
    await bot.say(*WALKS["allegation"][5:], "send")
    await bot.settle()
    assert len([a for a in bot.direct_messages(HEAD) if a.get("attachments")]) == 1
    puts = [r.json for r in bot.connector.requests_to(r"/activities/", "PUT")]
    assert puts and CHILD in json.dumps(puts[-1]) and STILL not in json.dumps(puts[-1])
    assert bot.channel_posts() == []


async def test_a_switch_to_an_allegation_after_an_early_alert_adds_nothing_to_the_dsl_card(bot):
    await start(bot, "disclosure")
    await bot.say("yes", "now")
    await bot.settle()
    assert len(bot.channel_posts()) == 1
    await bot.say("staff")  # the child named an adult who works in the school
    await bot.settle()
    card = await card_saying(bot, "under another procedure")
    assert "member of staff" not in card.lower()
    # the allegation goes on as its own report, to the head once the adult is known
    await bot.say("A teacher", "Mr Adult", "harmed", "no")
    await bot.settle()
    assert len([a for a in bot.direct_messages(HEAD) if a.get("attachments")]) == 1
    assert len(bot.channel_posts()) == 1
    assert "Mr Adult" not in json.dumps(channel_cards(bot))


async def test_words_sent_after_an_early_alert_reach_the_card_verbatim(bot):
    await start(bot, "disclosure")
    answers = list(WALKS["disclosure"])
    answers[0] = "yes"
    answers.insert(1, "now")
    await bot.say(*answers[: answers.index(WORDS) + 1])
    await bot.settle()
    texts = card_texts(json.loads(await card_saying(bot, "then he hit me")), ("TextRun",))
    assert (
        texts.count("then he hit me 👍🏽") == 1
        and 'He said "don\'t tell" \\ {{ secret }} **really**' in texts
    )
