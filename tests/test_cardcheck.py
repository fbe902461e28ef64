"""The Adaptive Card checker passes good 1.5 cards and catches each kind of broken card."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import cardcheck
from tests.cardcheck import assert_valid_cards, check_cards


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict:
    out: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
    }
    if actions is not None:
        out["actions"] = actions
    return out


GOOD = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.5",
    "msteams": {"width": "Full"},
    "body": [
        {"type": "TextBlock", "text": "Safeguarding concern", "weight": "Bolder", "wrap": True},
        {
            "type": "FactSet",
            "facts": [
                {"title": "Reported by", "value": "A. Teacher"},
                {"title": "At", "value": "9:05"},
            ],
        },
        {"type": "TextBlock", "text": '"He said *don\'t* tell <anyone>"', "wrap": True},
        {
            "type": "Table",
            "columns": [{"width": 1}, {"width": 2}],
            "rows": [
                {
                    "type": "TableRow",
                    "cells": [
                        {"type": "TableCell", "items": [{"type": "TextBlock", "text": "DSL"}]},
                        {"type": "TableCell", "items": [{"type": "TextBlock", "text": "01234"}]},
                    ],
                }
            ],
        },
        {
            "type": "Input.Text",
            "id": "note",
            "label": "Note",
            "isRequired": True,
            "errorMessage": "Add a note",
        },
        {
            "type": "Input.ChoiceSet",
            "id": "kind",
            "label": "Kind",
            "choices": [{"title": "Abuse", "value": "abuse"}],
        },
    ],
    "actions": [
        {"type": "Action.Execute", "verb": "acknowledge", "title": "Acknowledge", "data": {"x": 1}},
        {"type": "Action.Submit", "title": "Send", "data": {"type": "NotAnElement"}},
        {"type": "Action.OpenUrl", "title": "Policy", "url": "https://example.school.uk/policy"},
    ],
}


def only(cards: list[dict]) -> cardcheck.CardReport:
    [report] = check_cards(cards)
    return report


def test_valid_1_5_card_passes() -> None:
    [report] = assert_valid_cards([GOOD])
    assert report.ok and report.errors == [] and report.warnings == []
    assert 0 < report.bytes < report.activity_bytes < cardcheck.TEAMS_ACTIVITY_LIMIT_BYTES


def test_empty_batch_needs_no_node() -> None:
    assert check_cards([]) == []


BROKEN = [
    pytest.param(card([{"type": "Foo"}]), 'Unknown element type "Foo"', id="unknown-element"),
    pytest.param(
        card([], [{"type": "Action.Bar", "title": "x"}]),
        'Unknown action type "Action.Bar"',
        id="unknown-action",
    ),
    pytest.param(
        card([{"type": "Image", "url": "https://x.test/a.png", "forceLoad": True}]),
        'Property "forceLoad" is supported in version 1.6, but you are using version 1.5',
        id="1.6-element-property",
    ),
    pytest.param(
        card([{"type": "Input.Text", "id": "a", "label": "A", "labelPosition": "inline"}]),
        'Property "labelPosition" is supported in version 1.6',
        id="1.6-input-property",
    ),
    pytest.param(
        card([], [{"type": "Action.Submit", "title": "x", "role": "Link"}]),
        'Property "role" is supported in version 1.6',
        id="1.6-action-property",
    ),
    pytest.param(
        {**card([{"type": "TextBlock", "text": "x"}]), "version": "1.6"},
        "Card version 1.6 is newer than 1.5",
        id="card-version-too-new",
    ),
    pytest.param(
        {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "x"}]},
        'Card "version" must be set',
        id="card-version-missing",
    ),
    pytest.param(
        {"type": "Card", "version": "1.5", "body": []},
        "Invalid or missing card type",
        id="card-type-wrong",
    ),
    pytest.param(
        card([{"type": "TextBlock"}]),
        'TextBlock at /body/0 must have a non-empty "text"',
        id="textblock-without-text",
    ),
    pytest.param(
        card([{"type": "Image"}]), 'Image at /body/0 must have a non-empty "url"', id="image-no-url"
    ),
    pytest.param(
        card([], [{"type": "Action.Execute", "title": "Ack"}]),
        'Action.Execute at /actions/0 must have a non-empty "verb"',
        id="execute-without-verb",
    ),
    pytest.param(
        card([], [{"type": "Action.OpenUrl", "title": "x"}]),
        'Property "url" must be set',
        id="openurl-without-url",
    ),
    pytest.param(
        card([{"type": "Input.Text", "label": "x"}]),
        "All inputs must have a unique Id",
        id="input-without-id",
    ),
    pytest.param(
        card(
            [
                {"type": "Input.Text", "id": "a", "label": "x"},
                {"type": "Input.Toggle", "id": "a", "title": "y", "label": "y"},
            ]
        ),
        'Duplicate Id "a"',
        id="duplicate-id",
    ),
    pytest.param(
        card([{"type": "TextBlock", "text": "x", "size": "huge"}]),
        'Invalid value "huge" for property "size"',
        id="bad-enum-value",
    ),
    pytest.param(
        card([{"type": "FactSet", "facts": [{"title": "Child"}]}]),
        'Fact at /body/0/facts/0 must have a non-empty "value"',
        id="fact-without-value",
    ),
    pytest.param(
        card([{"type": "Input.ChoiceSet", "id": "c", "label": "c", "choices": []}]),
        "must have at least one choice",
        id="empty-choiceset",
    ),
    pytest.param(
        card([], [{"type": "Action.ShowCard", "title": "More"}]),
        'must have its "card" property set',
        id="showcard-without-card",
    ),
    pytest.param(
        card([{"type": "TextBlock", "text": "x" * 30_000, "wrap": True}]),
        "Teams' limit is 28000 bytes",
        id="too-large-for-teams",
    ),
]


@pytest.mark.parametrize(("bad_card", "expected"), BROKEN)
def test_broken_card_fails_with_message(bad_card: dict, expected: str) -> None:
    report = only([bad_card])
    assert not report.ok
    assert any(expected in m for m in report.messages), report.describe()
    with pytest.raises(AssertionError, match="invalid"):
        assert_valid_cards([bad_card])


def test_required_input_without_label_is_a_warning_that_still_fails() -> None:
    report = only([card([{"type": "Input.Text", "id": "a", "isRequired": True}])])
    assert not report.ok and report.errors == []
    events = {w["event"] for w in report.warnings}
    assert events == {"RequiredInputsShouldHaveLabel", "RequiredInputsShouldHaveErrorMessage"}


def test_one_batch_reports_each_card_in_order() -> None:
    bad = copy.deepcopy(GOOD)
    bad["body"].append({"type": "Carousel", "pages": []})
    reports = check_cards([GOOD, bad, GOOD])
    assert [r.index for r in reports] == [0, 1, 2]
    assert [r.ok for r in reports] == [True, False, True]
    with pytest.raises(AssertionError) as err:
        assert_valid_cards([GOOD, bad, GOOD])
    assert "1 of 3" in str(err.value) and "card 1:" in str(err.value)


def test_size_limit_is_the_whole_activity() -> None:
    [report] = check_cards([GOOD], max_bytes=1)
    assert not report.ok
    assert any("Teams' limit is 1 bytes" in m for m in report.messages)


def test_missing_node_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cardcheck.shutil, "which", lambda _name: None)
    with pytest.raises(cardcheck.NodeToolingMissing, match="npm ci"):
        check_cards([GOOD])


def test_missing_node_modules_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(cardcheck, "NODE_MODULES", tmp_path)
    with pytest.raises(cardcheck.NodeToolingMissing, match="npm ci --no-audit --no-fund"):
        check_cards([GOOD])
