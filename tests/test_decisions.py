# What each DSL decision must record, checked at the server: every decision, every field
# left out in turn (generated from the catalogue, not hand-picked).
from __future__ import annotations

import pytest

from bot.services.decisions import (
    DECISIONS,
    INFORMED,
    NOT_INFORMED,
    decisions_for,
    refusal,
    validate,
)
from bot.teams.record_cards import field_values
from tests.recordkit import filled

CASES = [
    (verb, f.id) for verb, decision in DECISIONS.items() for f in decision.fields if f.required
]


def _values(verb: str, **extra: str) -> dict:
    return {**field_values(verb, filled(DECISIONS[verb])), **extra}


@pytest.mark.parametrize("verb", sorted(DECISIONS))
def test_a_decision_with_every_field_is_recorded_whole(verb: str):
    fields, problems = validate(DECISIONS[verb], _values(verb))
    assert problems == []
    assert set(fields) == {f.id for f in DECISIONS[verb].fields}


@pytest.mark.parametrize(("verb", "missing"), CASES)
def test_each_required_field_left_out_is_refused_by_name(verb: str, missing: str):
    decision = DECISIONS[verb]
    values = _values(verb)
    for key in [k for k in values if k == missing or k.startswith(missing + "_")]:
        values[key] = "  "
    _fields, problems = validate(decision, values)
    [label] = [f.label for f in decision.fields if f.id == missing]
    assert problems and label in problems[0]
    assert "Nothing was changed" in refusal(decision, problems)


def test_only_the_listed_choices_and_real_dates_are_accepted():
    nfa = DECISIONS["no_further_action"]
    _, problems = validate(nfa, {"outcome": "Whatever", "reason": "x"})
    assert problems and "choose one of" in problems[0]
    social = DECISIONS["referred_social_care"]
    bad = {"how": "Phone", "when_date": "tomorrow", "when_time": "10:00"}
    assert validate(social, bad)[1]
    good = {"how": "Phone", "when_date": "2026-11-23", "when_time": "10:00"}
    assert validate(social, good) == ({"how": "Phone", "when": "2026-11-23 10:00"}, [])


def test_parents_not_informed_requires_why_not_and_informed_does_not():
    parents = DECISIONS["parents_informed"]
    assert validate(parents, {"informed": NOT_INFORMED})[1]
    assert validate(parents, {"informed": NOT_INFORMED, "why_not": "Would put her at risk"}) == (
        {"informed": NOT_INFORMED, "why_not": "Would put her at risk"},
        [],
    )
    assert validate(parents, {"informed": INFORMED}) == ({"informed": INFORMED}, [])


def test_text_longer_than_a_card_box_allows_is_refused_not_cut():
    note = DECISIONS["add_note"]
    assert validate(note, {"note": "x" * 5000})[1]


def test_allegation_decisions_are_kept_to_allegations():
    dsl = {d.verb for d in decisions_for("dsl_team")}
    allegation = {d.verb for d in decisions_for("headteacher")}
    assert {"referred_lado", "low_level_concern"} <= allegation - dsl
    assert {"no_further_action", "early_help"} <= dsl - allegation
