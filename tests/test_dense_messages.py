"""Fewer, denser messages: starting a report out of school hours, the procedure's rules, the
out-of-hours notice and the first question arrive as ONE card - the triage card the staff
member pressed, replaced in place - over HTTP with the fake Bot Connector."""

from __future__ import annotations

from datetime import datetime, timedelta

from dialogs.contacts import out_of_hours
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import REPORTER, SCHOOL, RunningBot

PERSONAL = f"a:personal-{REPORTER.id}"


async def test_rules_out_of_hours_notice_and_first_question_are_one_card(bot: RunningBot) -> None:
    bot.clock.now += timedelta(hours=9)  # Monday 19:00: outside school hours
    await bot.say("a child told me her dad hits her")
    chat = bot.connector.conversations[PERSONAL]
    [(triage_id, triage)] = chat.activities.items()
    assert "Which of these is it?" in str(triage)
    sent_before = len(bot.connector.sent_activities(PERSONAL))
    press = bot.message(value={"action": "start", "flow": "disclosure"}, replyToId=triage_id)
    assert (await bot.post(press))[0] in (200, 201)

    assert len(bot.connector.sent_activities(PERSONAL)) == sent_before  # no new message
    [card] = [a["content"] for a in chat.activities[triage_id]["attachments"]]
    texts = " ".join(card_texts(card))
    assert "Before you start - the rules" in texts
    assert "It is outside school hours" in texts
    assert "Question 1 of" in texts
    question = texts.index("is a child in immediate danger")
    assert texts.index("the rules") < question and texts.index("outside school hours") < question
    assert_valid_cards([card])


def test_the_out_of_hours_notice_reads_as_a_sentence() -> None:
    """'do not wait for the DSL this report' lost its verb; both forms now read whole."""
    evening = datetime(2026, 11, 23, 19, 0, tzinfo=SCHOOL.timezone)
    for to, reader in ((None, "the DSL to read"), ("the headteacher only", "anyone to read")):
        notice = out_of_hours(SCHOOL, evening, to)
        assert f"do not wait for {reader} this report." in notice.text
