"""Words match buttons: whenever a text the dialogs or flows emit tells staff to press a
button by name ("press 'Change an answer'"), that button is on the same card, titled exactly
so. Checked over generated walks of every flow (every answer of every step), the commands
(help, menu, cancel, back) and the cards the Teams edge actually sends. And help keeps the
999 line apart from its list of commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.services.timekeeper import ACKNOWLEDGE
from bot.teams.alert_card import alert_card
from bot.teams.cards import message_card, reply_card
from bot.teams.replies import reply_groups as _groups
from dialogs.replies import Reply
from tests.flowkit import NOW, PLAIN, school, straight_walk
from tests.sessionwalks import FLOWS, turn, walks

SCHOOL = school("buttsbury-junior")
SERVICES = Path(__file__).resolve().parent.parent / "bot" / "services"
_STRING = re.compile(r"f?\"[^\"\n]*\"")  # one-line string literals in the source
EVENING = datetime(2026, 11, 23, 19, 0, tzinfo=NOW.tzinfo)  # the out-of-hours notice too
# A button named in words: "press 'Send now'", "tap 'Skip'", "press Now" (a capitalised word).
NAMED = re.compile(
    r"\b(?i:press|tap|click|choose)(?:ing)?\s+(?:the\s+)?"
    # a quoted name ends at a closing quote not followed by a letter ("I'm" goes on)
    r"(?:['‘](?P<single>[^\n]+?)['’](?![A-Za-z])|[\"“](?P<double>[^\"\n]+?)[\"”]"
    r"|(?P<bare>[A-Z][A-Za-z]*)\b)"
)


def texts_of(node: Any) -> Iterator[str]:
    """Every text a person reads on a card (not button titles): text blocks, inlines,
    labels, error messages, placeholders."""
    if isinstance(node, dict):
        for key in ("text", "label", "errorMessage", "placeholder", "fallbackText"):
            if isinstance(node.get(key), str):
                yield node[key]
        for key, value in node.items():
            if key not in {"actions", "selectAction"} or isinstance(value, list | dict):
                yield from texts_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts_of(item)


def titles_of(node: Any) -> set[str]:
    """Every button title on a card: actions, action sets, tappable boxes, show-cards."""
    found: set[str] = set()
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith("Action.") and node.get("title"):
            found.add(node["title"])
        for value in node.values():
            found |= titles_of(value)
    elif isinstance(node, list):
        for item in node:
            found |= titles_of(item)
    return found


def named_buttons(text: str) -> list[str]:
    return [m.group("single") or m.group("double") or m.group("bare") for m in NAMED.finditer(text)]


def mismatches(card: dict[str, Any]) -> list[str]:
    titles = titles_of(card)
    return [
        f"{name!r} named in {text!r}, buttons are {sorted(titles)}"
        for text in texts_of(card)
        for name in named_buttons(text)
        if name not in titles
    ]


def cards(replies: list[Reply]) -> Iterator[dict[str, Any]]:
    """The cards the edge sends for one turn's replies (bot/teams/replies.py's grouping)."""
    for group in _groups(replies):
        made = reply_card(group[0]) if len(group) == 1 else message_card(group)
        if made is not None:
            yield made


def command_turns() -> Iterator[tuple[str, list[Reply]]]:
    """help, menu, back and cancel from idle and part-way through every flow; triage."""
    idle: dict[str, Any] = {}
    for text in ("help", "menu", "cancel", "back", "a child told me her dad hits her"):
        yield text, turn(SCHOOL, idle, NOW, text=text)[1]
    for flow_id in FLOWS:
        state, replies = turn(SCHOOL, idle, EVENING, {"action": "start", "flow": flow_id})
        yield f"{flow_id} start", replies
        for text in ("help", "back", "cancel", "menu"):
            yield f"{flow_id} {text}", turn(SCHOOL, state, NOW, text=text)[1]
        cancelling, _ = turn(SCHOOL, state, NOW, text="cancel")
        yield f"{flow_id} cancel no", turn(SCHOOL, cancelling, NOW, {"action": "cancel_no"})[1]


@pytest.mark.parametrize("flow_id", FLOWS)
def test_every_button_a_flow_names_is_on_its_card(flow_id: str) -> None:
    problems = []
    for start in (NOW, EVENING):
        for turns in walks(flow_id, SCHOOL, start):
            for replies in turns:
                for made in cards(replies):
                    problems += mismatches(made)
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_button_a_command_names_is_on_its_card() -> None:
    problems = [
        f"{where}: {problem}"
        for where, replies in command_turns()
        for made in cards(replies)
        for problem in mismatches(made)
    ]
    assert not problems, "\n".join(problems)


def test_the_summary_names_its_own_buttons() -> None:
    """The check is alive: the summary names two buttons, and both are found on its card."""
    summaries = [
        made
        for turns in walks("disclosure", SCHOOL, NOW)
        for replies in turns
        for made in cards(replies)
        if "Check your report" in str(made)
    ]
    assert summaries
    named = {name for text in texts_of(summaries[0]) for name in named_buttons(text)}
    assert {"Change an answer", "Send now"} <= named <= titles_of(summaries[0])


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("To correct one, press 'Change' (or type 'change').", ["Change"]),
        ("Nothing is sent until you press Send.", ["Send"]),
        ("Choose the time, or press 'Now'.", ["Now"]),
        ("Type or press:\n- 'report' to start", []),
        ("press the button on the card to ask again", []),
        ("Tap “Skip” if you do not know.", ["Skip"]),
    ],
)
def test_the_scan_itself(text: str, names: list[str]) -> None:
    assert named_buttons(text) == names


def test_a_card_whose_words_name_another_button_is_caught() -> None:
    """What staff met before: "press 'Change'" beside a button titled "Change an answer"."""
    card = {
        "type": "AdaptiveCard",
        "body": [{"type": "TextBlock", "text": "To correct one, press 'Change'."}],
        "actions": [{"type": "Action.ShowCard", "title": "Change an answer", "card": {}}],
    }
    assert mismatches(card)


def test_help_keeps_the_999_line_apart() -> None:
    """The emergency line is its own red block, not one more line in the list of commands."""
    for state in ({}, turn(SCHOOL, {}, NOW, {"action": "start", "flow": "disclosure"})[0]):
        replies = turn(SCHOOL, state, NOW, text="help")[1]
        emergency = SCHOOL.contact("emergency").number
        listing = next(r for r in replies if r.title == "Help")
        assert emergency not in listing.text
        apart = [r for r in replies if emergency in r.text]
        assert len(apart) == 1 and apart[0].urgent and apart[0].text.startswith("If a child")
        made = next(cards(replies))
        red = [
            block
            for block in made["body"]
            if block.get("style") == "attention" and emergency in str(block)
        ]
        assert len(red) == 1 and "'report'" not in str(red[0])


def test_buttons_named_in_reminders_are_on_the_alert_card() -> None:
    """Reminders to the DSL team and case managers name the alert card's buttons: each name
    in bot/services' texts is a button title on the alert card they point to."""
    sources = "\n".join(p.read_text("utf-8") for p in SERVICES.glob("*.py"))
    texts = [ACKNOWLEDGE.join(m.group(0).split("{ACKNOWLEDGE}")) for m in _STRING.finditer(sources)]
    named = {name for text in texts for name in named_buttons(text)}
    assert ACKNOWLEDGE in named  # the scan is alive
    concern = straight_walk("disclosure", PLAIN["disclosure"])
    titles = titles_of(alert_card(concern, recipient="the DSL team"))
    assert named <= titles, sorted(named - titles)
