# Issue 7 s5 end to end over HTTP: forced marriage, the body map and the child's
# social worker / looked after / SEND status reach the DSL's card, and every card is valid.
from __future__ import annotations

from typing import Any

from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import CHANNEL, DEPUTY, DSL, HEAD, OUTSIDER, REPORTER, SCHOOL, RunningBot
from tests.test_e2e import CHILD, WALKS, WORDS, report

LOOKED_AFTER = "Looked after (in care) or previously looked after"
BODY_MAP_ANSWERS = [
    "yes",
    "Back of the body",
    "Upper arm",
    "The child's left",
    "Up to the size of the child's palm",
    "Blue or purple",
    "Several small marks together",
    "Three round marks in a row, like fingertips",
]


def latest_alert(bot: RunningBot) -> dict[str, Any]:
    """The alert card as the DSL sees it now: the last version posted or updated."""
    alerts = [
        c
        for c in bot.sent_cards()
        if "safeguarding alert" in str(c.get("fallbackText", "")).lower()
    ]
    assert alerts, "no alert card was sent"
    return alerts[-1]


def fields(card: dict[str, Any]) -> list[str]:
    return card_texts(card, ("TextBlock", "TextRun"))


def field_after(texts: list[str], label: str) -> str:
    return texts[texts.index(label) + 1]


async def test_forced_marriage_leaving_soon_over_http(bot: RunningBot) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": "welfare"}))
    await bot.say("no", "no", "Forced marriage or so-called 'honour'-based abuse")
    told = bot.texts_to(REPORTER)
    assert "Forced Marriage Unit" in told and "www.gov.uk/guidance/forced-marriage" in told
    assert "Do not contact the family" in told
    before = len(bot.replies_to(REPORTER))
    await bot.say("yes")  # leaving the country this week
    after = bot.replies_to(REPORTER)[before:]
    # The emergency instruction comes first, before the next question.
    first = str(after[0])
    assert "phone 999 now" in first and "Forced Marriage Protection Order" in first
    assert "name" in str(after[-1]).lower()
    await bot.say(
        CHILD,
        "Y9",
        LOOKED_AFTER,
        "now",
        "form room",
        "She said the family is taking her abroad to be married",
        "no",
        WORDS,
        "skip",
        "Listened; told her I must tell the DSL",
        "yes",
        "send",
    )
    await bot.settle()
    posts = bot.channel_posts()
    assert len(posts) == 1 and posts[0].json["channelData"]["channel"]["id"] == CHANNEL
    card = latest_alert(bot)
    texts = fields(card)
    # The band: URGENT once, the red flags in plain words; the child's status among the facts.
    band = texts[: texts.index("Child")]
    assert band[0].startswith("URGENT") and sum("URGENT" in t for t in texts) == 1
    assert "• A child may be in immediate danger: 999" in band
    assert "• The police are needed now" in band
    assert field_after(texts, "About the child") == (
        "Looked after (in care) or previously looked after"
    )
    assert field_after(texts, "Kind of concern") == (
        "Forced marriage or so-called 'honour'-based abuse"
    )
    assert field_after(texts, "Leaving the country soon") == "Yes"
    assert field_after(texts, "Social worker / looked after / SEND") == LOOKED_AFTER
    assert CHILD in texts
    assert_valid_cards(bot.sent_cards())


async def test_body_map_over_http_reaches_the_card_in_its_own_section(bot: RunningBot) -> None:
    answers = list(WALKS["disclosure"])
    injury_at = answers.index("bruise left forearm") + 1
    assert answers[injury_at] == "no"
    answers[injury_at : injury_at + 1] = BODY_MAP_ANSWERS
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*answers, "send")
    await bot.settle()
    card = latest_alert(bot)
    texts = fields(card)
    heading = "Body map (what was seen - the child was not examined; no photographs)"
    assert heading in texts
    section = texts[texts.index(heading) + 1 :]
    assert section[:14] == [
        "Front or back",
        "Back of the body",
        "Where",
        "Upper arm",
        "Side",
        "The child's left",
        "Size",
        "Up to the size of the child's palm",
        "Colour",
        "Blue or purple",
        "Shape",
        "Several small marks together",
        "Other marks and anything else seen",
        "Three round marks in a row, like fingertips",
    ]
    # The body map is not repeated among the other fields; the status question is there.
    assert texts.count("Upper arm") == 1
    assert field_after(texts, "Social worker / looked after / SEND") == "Not known"
    assert_valid_cards(bot.sent_cards())


async def test_no_injury_means_no_body_map_section(bot: RunningBot) -> None:
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*WALKS["disclosure"], "send")
    await bot.settle()
    texts = fields(latest_alert(bot))
    assert not any(t.startswith("Body map") for t in texts)
    assert SCHOOL.dsl.name  # the profile used is the example school


# -- "my concern has not been acted on" ---------------------------------------------------


def reconsider_buttons(activity: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "Action.Submit"
                and (node.get("data") or {}).get("command") == "reconsider"
            ):
                found.append(node["data"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(activity.get("attachments") or [])
    return found


async def test_not_acted_on_explains_the_route_and_tells_the_dsl_and_head(
    bot: RunningBot,
) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    [post] = bot.channel_posts()
    before = len(bot.replies_to(REPORTER))
    await bot.say("not acted on")
    [route] = bot.replies_to(REPORTER)[before:]
    shown = " ".join(card_texts(route["attachments"][0]["content"]))
    assert "press for the case to be reconsidered" in shown
    assert "anyone may refer to children's social care" in shown
    assert "0800 028 0285" in shown  # NSPCC whistleblowing, from the profile
    [button] = reconsider_buttons(route)
    stored = (await bot.server.store.list_concerns_by_reporter(REPORTER.aad))[0]
    assert button["concern_id"] == stored.id
    # Nothing is sent to anyone just for asking the route.
    assert bot.direct_messages(DSL) == [] and bot.direct_messages(HEAD) == []

    await bot.post(bot.message(value=button))
    await bot.settle()
    reply = bot.texts_to(REPORTER)
    assert f"I have told {SCHOOL.dsl.name} and {SCHOOL.headteacher.name}" in reply
    for person in (DSL, HEAD):
        [dm] = bot.direct_messages(person)
        assert "Reconsideration asked for" in dm["text"] and REPORTER.name in dm["text"]
        assert CHILD not in dm["text"]  # the report is named, never the child
    entries = await bot.server.store.audit_entries(stored.id)
    assert [e.action for e in entries].count("reconsideration_requested") == 1
    # The card in the DSL channel now shows the request.
    updates = bot.connector.requests_to(r"/activities/", "PUT")
    assert updates and "The reporter asked at" in str(updates[-1].json)
    assert bot.channel_posts() == [post]  # the same alert, updated in place
    # Asking again at once tells nobody twice.
    await bot.post(bot.message(value=button))
    await bot.settle()
    assert "You already asked about this report" in bot.texts_to(REPORTER)
    assert len(bot.direct_messages(DSL)) == 1
    assert_valid_cards(bot.sent_cards())


async def test_not_acted_on_is_refused_for_someone_elses_report(bot: RunningBot) -> None:
    await report(bot, "disclosure", WALKS["disclosure"])
    stored = (await bot.server.store.list_concerns_by_reporter(REPORTER.aad))[0]
    value = {"action": "command", "command": "reconsider", "concern_id": stored.id}
    await bot.post(bot.message(value=value, user=OUTSIDER))
    await bot.settle()
    assert "not one of yours" in bot.texts_to(OUTSIDER)
    assert bot.direct_messages(DSL) == [] and bot.direct_messages(HEAD) == []
    actions = [e.action for e in await bot.server.store.audit_entries(stored.id)]
    assert "reconsideration_requested" not in actions


async def test_not_acted_on_for_an_allegation_never_reaches_the_dsl(bot: RunningBot) -> None:
    answers = list(WALKS["allegation"])
    answers[1] = "The DSL or a deputy DSL"
    await report(bot, "allegation", answers)
    stored = (await bot.server.store.list_concerns_by_reporter(REPORTER.aad))[0]
    assert stored.concern.routing.route == "headteacher"
    value = {"action": "command", "command": "reconsider", "concern_id": stored.id}
    await bot.post(bot.message(value=value))
    await bot.settle()
    [dm] = [a for a in bot.direct_messages(HEAD) if "Reconsideration" in (a.get("text") or "")]
    assert REPORTER.name in dm["text"]
    assert bot.direct_messages(DSL) == [] and bot.direct_messages(DEPUTY) == []
    assert bot.channel_posts() == []
    assert f"I have told {SCHOOL.headteacher.name} that" in bot.texts_to(REPORTER)
    assert_valid_cards(bot.sent_cards())


async def test_help_names_the_command(bot: RunningBot) -> None:
    await bot.say("help")
    assert "'not acted on'" in bot.texts_to(REPORTER)
