"""The DSL alert card reads in 10 seconds: a third-person title, the red flags once in plain
words, key facts as label | value rows, the child's words, what to decide - and a closed
concern loses its red header. Checked for every flow at every school and every flag."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from bot.teams.alert_card import FLAG_WORDS, RED_FLAGS, Mentioned, alert_card, alert_fallback_text
from flows.catalogue import catalogue
from flows.concern import FLAGS, Concern, Detail, Reporter, Routing
from tests.cardcheck import assert_valid_cards, card_texts
from tests.e2e import card_buttons
from tests.flowkit import all_schools, plain, walk

MACHINE_TAG = re.compile(r"\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b")  # GOING-HOME-TO-ALLEGED-ABUSER
FORBIDDEN_ON_DSL_CARD = ("ask the DSL", "cannot reach the DSL", "Decide: ", "To decide")


def concern(**changes: Any) -> Concern:
    base = Concern(
        id="c-1",
        type="disclosure",
        title="A child has told me something worrying (disclosure)",
        school_id="buttsbury-junior",
        reporter=Reporter("Sam Teacher", "00000000-0000-0000-0000-00000000f001"),
        status="final",
        started_at="2026-11-23T15:30:00+00:00",
        raised_at="2026-11-23T15:30:00+00:00",
        finished_at="2026-11-23T15:34:00+00:00",
        child_name="Amelia Testchild",
        child_year="Y4",
        words='He said "don\'t tell" **really**\nthen he hit me',
        details=[Detail("immediate_danger", "Immediate danger now", "No")],
        flags=["URGENT", "GOING-HOME-TO-ALLEGED-ABUSER"],
        routing=Routing("dsl_team", "Goes to the DSL team."),
        dsl_decision="Support in school, early help, or a referral.",
    )
    return replace(base, **changes)


def texts(card: dict[str, Any]) -> list[str]:
    return card_texts(card, ("TextBlock", "TextRun"))


def band(card: dict[str, Any]) -> dict[str, Any]:
    return card["body"][0]


def test_title_is_third_person_with_kind_reporter_and_time() -> None:
    card = alert_card(concern(), recipient="the DSL team")
    assert texts(band(card))[1] == "Disclosure - reported by Sam Teacher, 15:34"
    assert "told me" not in " ".join(texts(card))


@pytest.mark.parametrize("flow_id", sorted(catalogue()))
def test_every_flow_has_a_third_person_kind_for_the_people_who_act(flow_id: str) -> None:
    kind = catalogue()[flow_id].definition.alert_title
    assert kind and not re.search(r"\b(I|me|my)\b", kind), (flow_id, kind)
    assert kind in alert_fallback_text(concern(type=flow_id))


def test_urgent_is_said_once_and_every_red_flag_is_in_plain_words_in_the_band() -> None:
    every = list(FLAGS)
    card = alert_card(concern(flags=every), recipient="the DSL team")
    shown = texts(card)
    assert sum("URGENT" in t for t in shown) == 1
    assert not [t for t in shown if MACHINE_TAG.search(t)], "a machine tag is shown"
    in_band = texts(band(card))
    for flag in RED_FLAGS:
        assert f"• {FLAG_WORDS[flag]}" in in_band, flag
    # The child's status is a key fact, not an alarm.
    assert FLAG_WORDS["LOOKED-AFTER"] not in " ".join(in_band)
    assert FLAG_WORDS["LOOKED-AFTER"] in " ".join(shown)


@pytest.mark.parametrize("flag", FLAGS)
def test_each_flag_alone_is_shown_in_words_once_never_as_its_tag(flag: str) -> None:
    card = alert_card(concern(flags=[flag]), recipient="the DSL team")
    shown = " | ".join(texts(card))
    if flag != "URGENT":
        assert flag not in shown.replace(FLAG_WORDS[flag], ""), "the tag itself is shown"
        assert shown.count(FLAG_WORDS[flag]) == 1
    else:
        assert shown.count("URGENT") == 1
    assert_valid_cards([card])


def test_band_is_red_for_urgent_or_red_flags_and_plain_when_closed() -> None:
    urgent = alert_card(concern(), recipient="the DSL team")
    assert band(urgent)["style"] == "attention"
    red_only = alert_card(concern(flags=["OTHER-CHILDREN-AT-RISK"]), recipient="the DSL team")
    assert band(red_only)["style"] == "attention"
    routine = alert_card(concern(flags=["SEND"]), recipient="the DSL team")
    assert band(routine)["style"] != "attention"
    closed = alert_card(
        concern(),
        recipient="the DSL team",
        status={"state": "closed", "by": "Ann Robinson", "at": "2026-11-23T16:00:00+00:00"},
        mentions=[Mentioned("29:dsl", "Ann Robinson")],
    )
    assert band(closed)["style"] == "default"
    assert texts(band(closed))[0].startswith("CLOSED")
    assert "attention" not in str(closed).lower()
    assert card_buttons(closed) == [] and "entities" not in closed["msteams"]
    assert_valid_cards([urgent, red_only, routine, closed])


def test_key_facts_are_rows_with_each_label_beside_its_own_value() -> None:
    card = alert_card(concern(), recipient="the DSL team")
    rows = [item for item in card["body"] if item["type"] == "ColumnSet"]
    pairs = [(texts(r["columns"][0])[0], texts(r["columns"][1])) for r in rows]
    assert pairs[:3] == [
        ("Child", ["Amelia Testchild"]),
        ("Year / class", ["Y4"]),
        ("Immediate danger now", ["No"]),
    ]
    # The facts come straight after the header, before the child's words.
    assert card["body"][1]["type"] == "ColumnSet"
    # Typed words stay TextRuns (never markdown): the value column holds no TextBlock.
    for row in rows:
        assert all(i["type"] == "RichTextBlock" for i in row["columns"][1]["items"])


def test_the_childs_words_are_verbatim_in_their_own_box() -> None:
    card = alert_card(concern(), recipient="the DSL team")
    [box] = [i for i in card["body"] if i.get("style") == "emphasis"]
    assert texts(box)[1:] == ['He said "don\'t tell" **really**', "then he hit me"]


def test_no_text_uses_a_colour_that_fails_contrast_on_white() -> None:
    """Teams' Good (#92c353) and Warning (#f8d22a) are under 3:1 on white (WCAG AA needs
    4.5:1): the old green "Picked up" line. Text is default or Attention only."""
    history = [
        {"state": "acknowledged", "by": "Ann Robinson", "at": "2026-11-23T15:40:00+00:00"},
    ]
    card = alert_card(concern(), recipient="the DSL team", history=history, escalations=["x"])
    colours = set(re.findall(r"'color': '(\w+)'", str(card)))
    assert colours <= {"Attention", "Default"}, colours
    assert "✓ Picked up by Ann Robinson at Mon 23 Nov 15:40" in texts(card)


@pytest.mark.parametrize("profile", all_schools(), ids=lambda p: p.id)
@pytest.mark.parametrize("flow_id", sorted(catalogue()))
def test_every_flows_card_at_every_school_tells_the_dsl_what_to_decide_plainly(
    flow_id: str, profile: Any
) -> None:
    done = walk(flow_id, plain(flow_id), profile=profile).concern
    card = alert_card(done, recipient="them")
    shown = " ".join(texts(card))
    for phrase in FORBIDDEN_ON_DSL_CARD:
        assert phrase not in shown, (flow_id, profile.id, phrase)
    [decide] = [i for i in card["body"] if texts(i) and texts(i)[0].startswith("What the")]
    heading, decision = texts(decide)[:2]
    assert heading.startswith("What the")
    assert decision == done.dsl_decision and not decision.startswith(("DSL:", "Case manager:"))
    assert texts(band(card))[1].startswith(catalogue()[flow_id].definition.alert_title)


def test_every_design_passes_the_official_validator() -> None:
    long_words = "x" * 7_000
    history = [
        {"state": "acknowledged", "by": "Ann Robinson", "at": "2026-11-23T15:40:00+00:00"},
        {"state": "note", "by": "Ann Robinson", "at": "2026-11-23T15:41:00+00:00", "text": "ok"},
    ]
    allegation = concern(
        type="allegation",
        routing=Routing("headteacher", "Goes to the headteacher only."),
        subject_name="Mr Adult",
        flags=["LOW-LEVEL-CONCERN"],
    )
    cards = [
        alert_card(concern(), recipient="the DSL team"),
        alert_card(concern(flags=[]), recipient="the DSL team", history=history),
        alert_card(concern(words=long_words), recipient="the DSL team"),
        alert_card(allegation, recipient="the headteacher (Pat Head) only"),
        alert_card(
            concern(),
            recipient="the DSL team",
            mentions=[Mentioned("29:a", "Ann Robinson"), Mentioned("29:b", "Adam Graves")],
            refresh_ids=["29:a", "29:b"],
            viewer_line="You have this.",
        ),
        alert_card(concern(), recipient="the DSL team", can_act=False),
    ]
    assert_valid_cards(cards)
    assert "for the headteacher (Pat Head) only" in texts(band(cards[3]))[0]
    assert card_buttons(cards[-1]) == []
    assert card_buttons(cards[0]) == [  # decisions open their own form (issue 9 s1)
        "Acknowledge - I'm taking this",
        "Record a decision",
        "Add note",
        "Add note",
        "Close",
        "Close",
    ]
