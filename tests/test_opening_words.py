"""The staff member's opening words ("her dad hits her") are kept with the report as THEIR
words - in the Concern, on the summary they check, on the DSL's card under a label that says
whose they are, sealed at rest, never logged - instead of being thrown away at triage."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from bot.teams.alert_card import OPENING_WORDS_LABEL
from dialogs.session import OPENING_LABEL
from tests.cardcheck import card_texts
from tests.e2e import RunningBot
from tests.test_at_rest import raw_bytes
from tests.test_e2e import WALKS, WORDS, alert_card
from tests.test_session import Chat

OPENING = "a child told me her dad hits her with a belt"


def answer_disclosure(chat: Chat, danger: str = "no") -> None:
    """Answer every question of the disclosure walk by pressing its card's buttons."""
    answers = iter([danger, *WALKS["disclosure"][1:]])
    if danger == "yes":
        answers = iter(["yes", "now", *WALKS["disclosure"][1:]])
    while chat.state.get("mode") == "flow":
        chat.send(next(answers))


def test_the_opening_words_go_with_the_report_as_the_reporters_not_the_childs() -> None:
    chat = Chat()
    chat.say(OPENING)
    assert chat.state["mode"] == "triage"
    chat.send(value={"action": "start", "flow": "disclosure"})
    answer_disclosure(chat)
    assert chat.state["mode"] == "summary"
    summary = next(r for r in chat.send("what").replies if r.kind == "summary")
    assert (OPENING_LABEL, OPENING) in summary.facts  # they see it before it is sent
    chat.send(value={"action": "confirm"})
    [final] = [e.concern for e in chat.events if e.kind == "concern_final"]
    assert final.opening_words == OPENING
    assert final.words == WORDS  # the child's words are the child's, untouched
    assert OPENING not in (final.words or "")


def test_several_messages_before_choosing_are_kept_in_order() -> None:
    chat = Chat()
    chat.say("hello", OPENING)  # nothing to suggest, the menu; then the words that say it
    chat.send(value={"action": "start", "flow": "disclosure"})
    with_opening = chat.state["flow"]["opening_words"]
    assert with_opening == f"hello\n{OPENING}"


def test_words_typed_long_before_are_not_part_of_a_later_report() -> None:
    chat = Chat()
    chat.say("hello")  # the menu; then nothing for an hour
    chat.now += timedelta(hours=1)
    chat.say(OPENING)
    chat.send(value={"action": "start", "flow": "disclosure"})
    assert chat.state["flow"]["opening_words"] == OPENING
    chat = Chat()
    chat.say("hello")  # the menu; an hour later they type 'report' and start from the menu
    chat.now += timedelta(hours=1)
    chat.say("report")
    chat.send(value={"action": "start", "flow": "disclosure"})
    assert chat.state["flow"]["opening_words"] is None


def test_the_triage_card_pressed_later_still_carries_the_words_that_brought_it() -> None:
    chat = Chat()
    chat.say(OPENING)
    chat.now += timedelta(hours=1)
    chat.send(value={"action": "start", "flow": "disclosure"})
    assert chat.state["flow"]["opening_words"] == OPENING


def test_a_report_started_from_the_menu_has_no_opening_words() -> None:
    chat = Chat()
    chat.say("report")
    chat.send(value={"action": "start", "flow": "disclosure"})
    answer_disclosure(chat)
    chat.send(value={"action": "confirm"})
    [final] = [e.concern for e in chat.events if e.kind == "concern_final"]
    assert final.opening_words is None


def test_an_early_alert_gets_them_only_when_the_procedure_is_finished() -> None:
    """Before the procedure knows who the report is about, the opening words could name an
    adult the first recipients must not hear about: the early alert goes without them."""
    chat = Chat()
    chat.say(OPENING)
    chat.send(value={"action": "start", "flow": "disclosure"})
    answer_disclosure(chat, danger="yes")
    before_the_end = chat.events[:-1]  # the last answer finished the procedure
    chat.send(value={"action": "confirm"})
    kinds = {e.kind: e.concern for e in chat.events}
    assert kinds["concern_raised"].opening_words is None
    assert before_the_end and all(e.concern.opening_words is None for e in before_the_end)
    assert kinds["concern_final"].opening_words == OPENING


def test_a_switch_to_an_allegation_keeps_them_for_its_own_recipients() -> None:
    chat = Chat()
    chat.say(OPENING)
    chat.send(value={"action": "start", "flow": "disclosure"})
    chat.say("yes", "now")  # urgent: the DSL team has an early alert
    chat.say("staff")  # a member of staff: an allegation, for the headteacher only
    assert chat.state["flow"]["flow"] == "allegation"
    moved = [e for e in chat.events if e.kind in {"report_moved", "concern_raised"}]
    assert all(e.concern.opening_words is None for e in moved)
    assert chat.state["flow"]["opening_words"] == OPENING


async def test_on_the_dsl_card_labelled_sealed_at_rest_and_never_logged(
    bot: RunningBot, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    await bot.say(OPENING)
    await bot.post(bot.message(value={"action": "start", "flow": "disclosure"}))
    await bot.say(*WALKS["disclosure"], "send")
    await bot.settle()
    alert = alert_card(bot.channel_posts()[0])
    texts = card_texts(alert)
    assert OPENING_WORDS_LABEL in texts
    assert texts[texts.index(OPENING_WORDS_LABEL) + 1] == OPENING  # right under its label
    # Not in the box of the child's words.
    words_box = next(
        c for c in _containers(alert) if "The child's own words (verbatim, unedited)" in str(c)
    )
    assert OPENING not in str(words_box)
    assert OPENING.encode() not in raw_bytes(Path(bot.data_dir))
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert logged and "her dad hits her" not in logged


def _containers(node):
    if isinstance(node, dict):
        if node.get("type") == "Container":
            yield node
        for value in node.values():
            yield from _containers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _containers(value)
