# A missing child and an unexplained absence over HTTP (issue 7 s2 and s5): the missing-child
# alert exists after the first answer; "missing" asks first whether the child was in school
# today; the absence procedure walked end to end with its cards validated.
from __future__ import annotations

import json

from bot.teams.alert_card import FLAG_WORDS
from tests.cardcheck import assert_valid_cards
from tests.e2e import REPORTER, RunningBot
from tests.test_e2e import CHILD, WALKS, report
from tests.test_urgent import STILL, card_of, card_saying, channel_cards


async def test_a_missing_child_alert_exists_after_the_first_answer(bot: RunningBot):
    await bot.post(bot.message(value={"action": "start", "flow": "missing_child"}))
    shown = json.dumps(bot.replies_to(REPORTER))
    assert "Raise the alarm and start searching now - then record here." in shown
    await bot.say(CHILD)  # which child: nothing else is asked first
    await bot.settle()
    [post] = bot.channel_posts()
    card = json.dumps(card_of(post.json["activity"]), ensure_ascii=False)
    assert CHILD in card and STILL in card
    await bot.say(*WALKS["missing_child"][1:])
    await bot.settle()
    assert len(bot.channel_posts()) == 1  # every step updated the same card
    await card_saying(bot, "INC-42")
    assert_valid_cards(channel_cards(bot))


async def test_missing_asks_first_whether_the_child_was_in_school_today(bot: RunningBot):
    await bot.say("Ben is missing")
    [menu] = [a for a in bot.replies_to(REPORTER) if a.get("attachments")][-1:]
    offered = json.dumps(menu)
    assert "Missing now (was in school)" in offered
    assert "Not in school, no reason" in offered
    assert bot.channel_posts() == []  # nothing is sent until they choose


async def test_the_absence_procedure_end_to_end(bot: RunningBot):
    await report(bot, "absence", WALKS["absence"])
    [post] = bot.channel_posts()
    card = json.dumps(card_of(post.json["activity"]), ensure_ascii=False)
    assert CHILD in card
    assert "Tell the local authority if the child is still absent" in card
    assert "Called every contact the school holds" in card
    assert "Delivered" in bot.texts_to(REPORTER)
    assert_valid_cards(bot.sent_cards())


async def test_a_carer_who_does_not_know_where_the_child_is_alerts_at_once(bot: RunningBot):
    await bot.post(bot.message(value={"action": "start", "flow": "absence"}))
    await bot.say("no", CHILD, "4C", "now", "Reached someone - they do not know where the child is")
    await bot.settle()
    [post] = bot.channel_posts()
    card = json.dumps(card_of(post.json["activity"]), ensure_ascii=False)
    assert FLAG_WORDS["POLICE-NOW"] in card and STILL in card
    assert_valid_cards(channel_cards(bot))
