# Never lost, never late: escalation, deadlines, stalled reports, out of hours - with a clock
# the test moves, through the real HTTP endpoint and a fake Bot Connector.
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import (
    ALERT_UPDATES,
    CHANNEL,
    DEPUTY,
    DSL,
    HEAD,
    REPORTER,
    SCHOOL,
    Clock,
    RunningBot,
    concern_id_of,
)
from tests.fakeconnector import FakeConnector
from tests.test_e2e import WALKS, alert_card, report, text_runs

URGENT_DISCLOSURE = ["yes", "now", *WALKS["disclosure"][1:]]


def thread_messages(bot: RunningBot) -> list[dict]:
    [conversation] = [c for c in bot.connector.conversations.values() if c.channel_id == CHANNEL]
    return [a for a in bot.connector.sent_activities(conversation.id) if not a.get("attachments")]


def direct_texts(bot: RunningBot, user) -> list[str]:
    return [a.get("text") or "" for a in bot.direct_messages(user)]


async def later(bot: RunningBot, minutes: float) -> None:
    bot.clock.advance(minutes=minutes)
    await bot.settle()


async def test_an_unacknowledged_urgent_alert_mentions_the_deputies_after_five_minutes(bot):
    await report(bot, "disclosure", URGENT_DISCLOSURE)
    assert thread_messages(bot) == []
    await later(bot, 4)
    assert thread_messages(bot) == []  # not yet: the profile says five minutes
    await later(bot, 1.5)
    [nudge] = thread_messages(bot)
    mentioned = {e["mentioned"]["id"] for e in nudge["entities"] if e["type"] == "mention"}
    assert mentioned == {d.aad_object_id for d in SCHOOL.deputies}
    assert "Nobody has picked up your report yet" in bot.texts_to(REPORTER)
    # the card shows the step
    updates = bot.connector.requests_to(ALERT_UPDATES, "PUT")
    assert "deputy DSLs @mentioned" in str(updates[-1].json)


async def test_acknowledging_at_minute_six_stops_the_chain(bot):
    await report(bot, "disclosure", URGENT_DISCLOSURE)
    await later(bot, 5.5)
    assert len(thread_messages(bot)) == 1
    await later(bot, 0.5)
    status, _ = await bot.press_on_alert("acknowledge", user=DEPUTY)
    assert status == 200
    await later(bot, 30)
    assert not [t for t in direct_texts(bot, DSL) if "not been picked up" in t]
    assert not [t for t in direct_texts(bot, HEAD) if "not been picked up" in t]
    assert len(thread_messages(bot)) == 1


async def test_when_nobody_acts_the_full_chain_fires_in_order(bot):
    await report(bot, "disclosure", URGENT_DISCLOSURE)
    for _ in range(4):
        await later(bot, 5.5)
    order = []
    for request in bot.connector.requests:
        body = request.json if isinstance(request.json, dict) else {}
        text = str(body.get("text") or (body.get("activity") or {}).get("text") or "")
        if "Can one of you take this" in text:
            order.append("thread")
        elif "channel has not been picked up" in text:
            order.append("dsl_direct")
        elif "not been picked up by the DSL team" in text:
            order.append("headteacher")
    assert order == ["thread", "dsl_direct", "dsl_direct", "dsl_direct", "headteacher"]
    entries = await bot.server.store.audit_entries(bot.server.store and _concern_id(bot))
    steps = [e.detail["step"] for e in entries if e.action == "escalated"]
    assert steps == [1, 2, 3]


def _concern_id(bot: RunningBot) -> str:
    return concern_id_of(alert_card(bot.channel_posts()[0]))


async def test_allegation_lado_deadline_reminds_the_headteacher_unless_the_lado_was_told(bot):
    await report(bot, "allegation", WALKS["allegation"])
    [alert] = [a for a in bot.direct_messages(HEAD) if a.get("attachments")]
    card = alert["attachments"][0]["content"]
    assert any("The case manager informs the LADO" in t for t in card_texts(card))
    # Monday 10:00 + one working day = Tuesday 10:00; the reminder comes two hours before.
    await later(bot, 22 * 60 + 1)
    assert any("Due soon: The case manager informs the LADO" in t for t in direct_texts(bot, HEAD))
    await later(bot, 2 * 60)
    assert any("OVERDUE" in t for t in direct_texts(bot, HEAD))


async def test_fgm_police_reference_reminder_until_the_teacher_adds_it(bot):
    answers = list(WALKS["fgm"])
    # not phoned yet: the teacher owes the police report
    at = answers.index("REF-123")
    answers[at - 2 : at + 1] = ["no"]
    await report(bot, "fgm", answers)
    stored = (await bot.server.store.list_concerns_by_reporter(REPORTER.aad))[0]
    assert "PERSONAL-DUTY" in stored.concern.flags
    # Monday 10:00 -> close of the next working day (Tuesday 15:30); reminder two hours before
    await later(bot, 27 * 60 + 31)
    reminders = [
        a
        for a in bot.direct_messages(REPORTER) + bot.replies_to(REPORTER)
        if a.get("attachments") and "Due soon: Teacher reports FGM" in str(a["attachments"])
    ]
    assert reminders
    card = reminders[-1]["attachments"][0]["content"]
    submit = card["actions"][0]["data"]
    await bot.post(bot.message(value={**submit, "police_reference": "CAD 1234 23/11"}))
    await bot.settle()
    stored = await bot.server.store.get_concern(stored.id)
    assert stored.concern.police_reference == "CAD 1234 23/11"
    await later(bot, 3 * 60)
    everything_sent = str(bot.direct_messages(REPORTER) + bot.replies_to(REPORTER))
    assert "OVERDUE: Teacher reports FGM" not in everything_sent
    assert "CAD 1234 23/11" in text_runs(
        bot.connector.requests_to(ALERT_UPDATES, "PUT")[-1].json["attachments"][0]["content"]
    )


async def test_an_abandoned_report_is_chased_then_the_dsl_is_told_and_it_resumes(bot):
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say("no", "family", "Amelia Testchild")
    await later(bot, 9)
    assert "have not finished it" not in bot.texts_to(REPORTER)
    await later(bot, 1.5)
    assert "have not finished it" in bot.texts_to(REPORTER)
    assert bot.channel_posts() == []
    await later(bot, 20)
    [notice] = bot.channel_posts()
    card = alert_card(notice)
    assert "INCOMPLETE REPORT" in str(card) and "Amelia Testchild" in text_runs(card)
    # carrying on: the next question is the one they stopped at
    await bot.say("Y4")
    assert "have a social worker" in bot.texts_to(REPORTER).split("Which year group")[-1]


async def test_a_finished_report_is_not_chased(bot):
    await report(bot, "disclosure", WALKS["disclosure"])
    await later(bot, 40)
    assert "have not finished it" not in bot.texts_to(REPORTER)
    assert len(bot.channel_posts()) == 1


async def test_out_of_hours_start_shows_the_out_of_hours_numbers_first(tmp_path):
    saturday = datetime(2026, 11, 28, 20, 0, tzinfo=ZoneInfo("Europe/London"))
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path, Clock(saturday)).start()
        await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
        replies = bot.replies_to(REPORTER)
        # In order, and (fewer messages) in the same card as the first question.
        # (The summary line names the question waiting: it is not part of the order shown.)
        shown = "\n".join(str({k: v for k, v in a.items() if k != "summary"}) for a in replies)
        assert shown.index("outside school hours") < shown.index("immediate danger right now")
        out_of_hours = [c for c in SCHOOL.contacts if c.out_of_hours]
        assert out_of_hours
        for contact in out_of_hours:
            assert contact.name in shown
        await bot.stop()


async def test_every_card_sent_by_timers_is_valid(bot):
    """Escalation updates, overdue deadlines, reminder and incomplete-report cards."""
    answers = ["yes", "now", *WALKS["fgm"][1:]]
    at = answers.index("REF-123")
    answers[at - 2 : at + 1] = ["no"]  # the police not phoned yet: the deadline goes overdue
    await report(bot, "fgm", answers)
    await bot.post(bot.message(value={"action": "start", "flow": "welfare"}))
    await bot.say("no")
    for _ in range(8):
        await later(bot, 6 * 60)
    cards = bot.sent_cards()
    assert any("INCOMPLETE REPORT" in str(c) for c in cards)
    assert any("OVERDUE" in str(c) for c in cards)
    assert_valid_cards(cards)


async def test_messages_nobody_asked_for_use_the_service_url_teams_last_gave(tmp_path):
    """The stalled-report notice has no incoming activity to reply to: it must use the
    regional service URL from the latest activity, not a configured guess."""
    async with FakeConnector() as connector:
        bot = await RunningBot(connector, tmp_path, Clock()).start(
            default_service_url="http://127.0.0.1:9/nowhere/"
        )
        await bot.post(bot.message(value={"action": "start", "flow": "welfare"}))
        await bot.say("no")
        await later(bot, 31)
        [notice] = bot.channel_posts()
        assert "INCOMPLETE REPORT" in str(notice.json)
        await bot.stop()


async def test_an_unfinished_allegation_is_never_shown_to_someone_who_may_be_its_subject(bot):
    await bot.post(bot.message(value={"action": "start", "flow": "allegation"}))
    await bot.say("no")  # stopped before saying who the adult is
    await later(bot, 31)
    assert "have not finished it" in bot.texts_to(REPORTER)
    assert bot.direct_messages(HEAD) == [] and bot.channel_posts() == []
    # a role alone is not enough: the name may be the headteacher's own
    await bot.say("A teacher")
    await later(bot, 31)
    assert bot.direct_messages(HEAD) == [] and bot.channel_posts() == []
    # once the adult is named (a teacher who is nobody the profile names), the headteacher
    await bot.say("Mr Adult")
    await later(bot, 31)
    [notice] = [a for a in bot.direct_messages(HEAD) if a.get("attachments")]
    assert "INCOMPLETE REPORT" in str(notice)
    assert bot.channel_posts() == []
