# "my reports" and "open concerns", end to end over HTTP with the fake Bot Connector.
from __future__ import annotations

from bot.store.lanes import _LANE, CARDS_LANE, TURNS
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import CHANNEL, DSL, HEAD, OUTSIDER, REPORTER, RunningBot, User
from tests.test_e2e import CHILD, WALKS, WORDS

OTHER = User("29:other", "Olly Other", "00000000-0000-0000-0000-00000000f002")
OTHER_CHILD = "Zachary Otherchild"
ALLEGED_CHILD = "Xanthe Allegedchild"


async def file_report(bot: RunningBot, user: User, flow: str, child: str) -> None:
    answers = [child if a == CHILD else a for a in WALKS[flow]]
    await bot.post(bot.message(value={"action": "start", "flow": flow}, user=user))
    await bot.say(*answers, user=user)
    if flow != "missing_child":  # a missing child is raised at once, without a summary
        await bot.say("send", user=user)
    await bot.settle()


async def ask(bot: RunningBot, user: User, text: str | None = None, value=None) -> list[dict]:
    """Send one message; return what the bot replied to it (activities, in order)."""
    before = len(bot.replies_to(user))
    await bot.post(bot.message(text, value, user=user))
    return bot.replies_to(user)[before:]


def only_card(replies: list[dict]) -> dict:
    cards = [a["content"] for r in replies for a in r.get("attachments") or []]
    assert len(cards) == 1, replies
    assert_valid_cards(cards)
    assert cards[0]["fallbackText"]
    return cards[0]


def shown(card: dict) -> str:
    """Every piece of text on the card (TextBlocks and TextRuns) plus its fallback."""
    return "\n".join([card.get("fallbackText", ""), *card_texts(card)])


async def acknowledge(bot: RunningBot, child: str) -> None:
    """A DSL presses Acknowledge on the alert (a thread in the DSL channel) about `child`."""
    status, _ = await bot.press_on_alert("acknowledge", user=DSL, about=child)
    assert status == 200
    await bot.settle()


async def test_my_reports_shows_only_the_callers_own_reports_and_their_progress(bot):
    await file_report(bot, REPORTER, "disclosure", CHILD)
    await file_report(bot, OTHER, "disclosure", OTHER_CHILD)

    card = only_card(await ask(bot, REPORTER, "my reports"))
    text = shown(card)
    assert "Amelia" in text  # the child's first name only...
    assert "Testchild" not in text
    for line in WORDS.split("\n"):  # ...and never the child's words
        assert line not in text
    assert "Zachary" not in text and "Otherchild" not in text
    assert text.count("A child has told me something worrying") == 2  # card + fallback
    assert "sent - waiting to be picked up" in text
    assert "picked up by" not in text

    await acknowledge(bot, CHILD)
    text = shown(
        only_card(await ask(bot, REPORTER, value={"action": "command", "command": "my_reports"}))
    )
    assert "picked up by Ann Robinson at 10:00" in text
    assert "waiting to be picked up" not in text

    # The other reporter's own report is still waiting; A's is not in their list.
    text = shown(only_card(await ask(bot, OTHER, "Reports")))
    assert "Zachary" in text and "Amelia" not in text
    assert "sent - waiting to be picked up" in text


async def test_my_reports_says_when_an_alert_is_not_delivered_yet(bot):
    bot.connector.fail_next(r"^/v3/conversations$", statuses=[500] * 3, method="POST")
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*WALKS["disclosure"], "send")
    text = shown(only_card(await ask(bot, REPORTER, "my report")))
    assert "not delivered yet - still trying" in text
    assert "waiting to be picked up" not in text


async def test_my_reports_for_an_allegation_says_only_where_it_went(bot):
    answers = [ALLEGED_CHILD if a == CHILD else a for a in WALKS["allegation"]]
    await bot.post(bot.message(value={"action": "start", "flow": "allegation"}))
    await bot.say(*answers, "send")
    await bot.settle()
    text = shown(only_card(await ask(bot, REPORTER, "my reports")))
    assert "the headteacher" in text
    assert "Xanthe" not in text and "Mr Adult" not in text and "DSL" not in text


async def test_my_reports_mid_flow_keeps_the_staff_members_place(bot):
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say("no", "family")
    key = f"msteams/users/{REPORTER.id}"
    before = (await bot.server.store.read([key]))[key]["session"]
    replies = await ask(bot, REPORTER, "my reports")
    assert any("You have not made any reports yet" in (r.get("text") or "") for r in replies)
    assert any("carry on answering" in (r.get("text") or "") for r in replies)
    after = (await bot.server.store.read([key]))[key]["session"]
    assert after == before
    await bot.say(CHILD)  # and the flow carries on from the same question
    after = (await bot.server.store.read([key]))[key]["session"]
    assert after["flow"]["history"][-1] != before["flow"]["history"][-1]


async def test_open_concerns_is_refused_to_anyone_outside_the_dsl_team(bot):
    await file_report(bot, REPORTER, "disclosure", CHILD)
    for user in (OUTSIDER, REPORTER):
        replies = await ask(bot, user, "open concerns")
        assert [r.get("text") for r in replies] == ["Only the DSL team can see open concerns."]
        assert not any(r.get("attachments") for r in replies)
    replies = await ask(bot, OUTSIDER, value={"action": "command", "command": "open_concerns"})
    assert [r.get("text") for r in replies] == ["Only the DSL team can see open concerns."]


async def test_open_concerns_for_the_dsl_unacknowledged_first_and_never_allegations(bot):
    await file_report(bot, REPORTER, "disclosure", CHILD)
    await file_report(bot, OTHER, "disclosure", OTHER_CHILD)
    await file_report(bot, OTHER, "allegation", ALLEGED_CHILD)
    await acknowledge(bot, CHILD)  # the older one is picked up: it must now come second

    text = shown(only_card(await ask(bot, DSL, "open concerns")))
    assert text.index(OTHER_CHILD) < text.index(CHILD)
    assert "NOT PICKED UP YET" in text and "Picked up by Ann Robinson" in text
    assert ALLEGED_CHILD not in text and "allegation" not in text.lower()
    for line in WORDS.split("\n"):
        assert line not in text

    # The headteacher (case manager) sees the allegation routed to them, not the DSL's list.
    text = shown(only_card(await ask(bot, HEAD, "dashboard")))
    assert ALLEGED_CHILD in text and "allegation" in text.lower()
    assert CHILD not in text and OTHER_CHILD not in text


async def test_open_concerns_puts_overdue_before_the_rest_and_marks_it(bot):
    await file_report(bot, REPORTER, "disclosure", CHILD)
    await file_report(bot, OTHER, "absence", OTHER_CHILD)  # the 10-school-day deadline
    await acknowledge(bot, CHILD)
    await acknowledge(bot, OTHER_CHILD)

    text = shown(only_card(await ask(bot, DSL, "open")))
    assert "OVERDUE" not in text
    assert text.index(CHILD) < text.index(OTHER_CHILD)  # oldest first when nothing is late

    bot.clock.advance(days=14)
    text = shown(only_card(await ask(bot, DSL, "open")))
    assert "OVERDUE - Tell the local authority" in text
    assert text.index(OTHER_CHILD) < text.index(CHILD)


async def test_open_concerns_links_every_thread_with_one_store_call_whatever_the_count(bot):
    """Each concern's thread link (where its alert was posted) is read for the whole list at
    once: the command costs as many store calls with three concerns listed as with one."""
    store = bot.server.store
    real_run, calls = store._run, []

    async def counted(work):
        if _LANE.get() in (TURNS, CARDS_LANE):  # the chat turn's, not the outbox's or timers'
            calls.append(work)
        return await real_run(work)

    async def calls_to_list() -> tuple[int, list[str]]:
        calls.clear()
        store._run = counted
        try:
            card = only_card(await ask(bot, DSL, "open concerns"))
        finally:
            del store._run
        links = [
            a["url"]
            for item in card["body"]
            for block in item.get("items", [])
            if block["type"] == "ActionSet"
            for a in block["actions"]
        ]
        return len(calls), links

    await ask(bot, DSL, "open concerns")  # the first time the bot hears from her: her address
    await file_report(bot, REPORTER, "disclosure", CHILD)
    one_calls, one_links = await calls_to_list()
    await file_report(bot, OTHER, "disclosure", OTHER_CHILD)
    await file_report(bot, OTHER, "absence", "Yasmin Thirdchild")
    three_calls, three_links = await calls_to_list()

    roots = {
        c.id.split(";messageid=")[1]
        for c in bot.connector.conversations.values()
        if c.channel_id == CHANNEL
    }
    assert len(one_links) == 1 and len(roots) == 3
    assert {link.split("?")[0].rsplit("/", 1)[1] for link in three_links} == roots
    assert three_calls == one_calls
