"""Every number a profile can show has its evidence, and a missing one is loud, not a dead end.

A number is either copied from a seed policy - `quote:` is that line, checked here against the
seed's text - or read on a public page named in `source:` (https://...) with `last_verified:`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import pytest
import yaml

from dialogs import contacts
from flows.procedure_text import contact_line
from flows.profile import (
    ProfileError,
    SchoolProfile,
    example_profiles_dir,
    load_organisation,
    number_digits,
    parse_organisation,
    written_numbers,
)
from tests.flowkit import LONDON, all_schools, school
from tests.shared import SEEDS

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=LONDON)
_PHONE_IN_TEXT = re.compile(r"(?:\(0[0-9]+\) ?)?0[0-9]{2,4}(?: ?[0-9]{3,4}){1,3}|\b(?:999|101)\b")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _seed_text(source: str) -> str:
    match = re.search(r"\bseed (\d{3})\b", source)
    assert match, f"a quoted number must name its seed ('seed 003 ...'), got {source!r}"
    (path,) = SEEDS.glob(f"{match.group(1)}_*.txt")
    return _flat(path.read_text(encoding="utf-8"))


def _every_contact() -> list[tuple[SchoolProfile, object]]:
    return [(s, c) for s in all_schools() for c in s.contacts]


def test_the_efspt_trust_from_seed_4_ships() -> None:
    org = load_organisation(example_profiles_dir() / "efspt.yaml")
    efspt = org.school()
    assert efspt.name == "Epping Forest Schools Partnership Trust"
    assert efspt.local_authority == "Essex"
    assert efspt.contact("lado").number == "03330 139 797"
    assert efspt.contact("ecc_missing_chats").email == "lucy.stovell@essex.gov.uk"
    assert efspt.safeguarding_governor is not None
    assert efspt in all_schools()


@pytest.mark.parametrize(
    ("school_id", "contact_id"),
    [(s.id, c.id) for s, c in _every_contact() if c.number],
)
def test_every_number_is_quoted_from_a_seed_or_cited_to_a_public_page(
    school_id: str, contact_id: str
) -> None:
    contact = school(school_id).contact(contact_id)
    assert contact.last_verified is not None
    if contact.quote is not None:
        seed = _seed_text(contact.source)
        assert _flat(contact.quote) in seed, f"{contact_id}: quote not in the seed: {contact.quote}"
        given = written_numbers(contact.quote)
        for digits in number_digits(contact.number):
            assert digits in given, f"{contact_id}: {contact.number} not in {contact.quote!r}"
    else:
        assert re.search(r"https://\S+", contact.source), (
            f"{contact_id}: {contact.number} has neither a seed quote nor a public page"
        )


@pytest.mark.parametrize("school_id", [s.id for s in all_schools()])
def test_numbers_written_in_contact_text_are_numbers_the_profile_has(school_id: str) -> None:
    profile = school(school_id)
    known = {d for c in profile.contacts if c.number for d in number_digits(c.number)}
    for c in profile.contacts:
        for text in (c.name, c.purpose, profile.no_number_fallback()):
            for found in _PHONE_IN_TEXT.findall(text):
                assert re.sub(r"[^0-9]", "", found) in known, (c.id, found)


def test_written_numbers_reads_a_slash_as_two_numbers() -> None:
    assert written_numbers("Board (01482)396998/9") == {"01482396998", "01482396999"}
    assert written_numbers("dialling 101, or 999 if") == {"101", "999"}
    assert "08088005000" in written_numbers("helpline on: 0808 800 5000 (24 hour helpline)")


BASE = """
id: test-school
name: Test School
tenant_id: "00000000-0000-0000-0000-000000000000"
local_authority: Test
people:
  dsl: {name: D, aad_object_id: "00000000-0000-0000-0000-0000000000a1"}
  headteacher: {name: H, aad_object_id: "00000000-0000-0000-0000-0000000000b1"}
  chair_of_governors: {name: C, aad_object_id: "00000000-0000-0000-0000-0000000000c1"}
dsl_channel: {team_id: t, channel_id: c, name: n}
contacts:
  - {id: childrens_social_care, name: CSC, number: "01234 000001", hours: unknown,
     out_of_hours: false, purpose: p, keywords: [csc], last_verified: 2020-01-01,
     source: "https://example.org/csc"}
  - {id: out_of_hours_social_care, name: EDT, number: "01234 000002", hours: unknown,
     out_of_hours: true, purpose: p, keywords: [edt], last_verified: 2020-01-01,
     source: "https://example.org/edt"}
  - {id: lado, name: LADO, number: "01234 567890", hours: unknown, out_of_hours: false,
     purpose: p, keywords: [lado], last_verified: 2020-01-01, source: seed 000 section 10}
"""


def _base() -> dict:
    return yaml.safe_load((example_profiles_dir() / "national.yaml").read_text(encoding="utf-8"))


def _parse(text: str = BASE) -> object:
    return parse_organisation(text, "test.yaml", base=_base())


def test_a_number_without_quote_or_public_page_is_refused_naming_the_field() -> None:
    with pytest.raises(
        ProfileError, match=r"test\.yaml: contacts\.2\.number: '01234 567890' needs"
    ):
        _parse()


def test_a_quote_that_does_not_hold_the_number_is_refused() -> None:
    text = BASE.replace("source: seed 000 section 10}", 'source: seed 000, quote: "LADO 999 111"}')
    with pytest.raises(ProfileError, match=r"contacts\.2\.quote: does not contain the number"):
        _parse(text)


def test_a_gov_address_without_uk_is_refused_unless_warned() -> None:
    ok = BASE.replace(
        "source: seed 000 section 10}",
        "source: https://example.org/lado, email: a@council.gov.uk}",
    )
    bad = ok.replace("a@council.gov.uk", "a@council.gcsx.gov")
    _parse(ok)
    with pytest.raises(ProfileError, match=r"contacts\.2\.email: 'a@council\.gcsx\.gov' ends in"):
        _parse(bad)
    _parse(
        bad.replace("email: a@council.gcsx.gov}", "email: a@council.gcsx.gov, email_warning: w}")
    )


@pytest.mark.parametrize("name", ["buttsbury-junior", "ccshg", "hera-trust", "efspt"])
def test_a_profile_without_a_social_care_number_warns_loudly_naming_the_field(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flows.profile"):
        org = load_organisation(example_profiles_dir() / f"{name}.yaml")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"{name}.yaml: contacts.1.number (childrens_social_care): WARNING" in w for w in warned
    ), warned
    assert any("(out_of_hours_social_care): WARNING" in w for w in warned)
    assert org.warnings and all("999, 101 and the NSPCC" in w for w in org.warnings)


def test_a_profile_with_its_social_care_numbers_loads_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flows.profile"):
        org = load_organisation(example_profiles_dir() / "griffin-primary.yaml")
    assert not org.warnings and not caplog.records


@pytest.mark.parametrize("school_id", [s.id for s in all_schools()])
def test_no_contact_anyone_can_look_up_says_ask_the_dsl(school_id: str) -> None:
    """The directory, every contact line a flow can print, and the out-of-hours list."""
    profile = school(school_id)
    shown = [contacts.directory(profile, NOW), contacts.out_of_hours(profile, NOW)]
    for reply in shown:
        for view in reply.contacts:
            assert "ask the dsl" not in f"{view.number} {view.purpose}".lower(), view.name
            if view.number is None:
                assert "999" in view.purpose and "101" in view.purpose
                assert "0808 800 5000" in view.purpose
    for c in profile.contacts:
        line = contact_line(profile, c.id)
        assert "ask the dsl" not in line.lower(), line


def test_hull_email_is_shown_only_with_its_warning() -> None:
    griffin = school("griffin-primary")
    (view,) = [
        v for v in contacts.directory(griffin, NOW).contacts if v.email and "hullcc" in v.email
    ]
    assert view.email.startswith("ehash@hullcc.gcsx.gov (WARNING:")
    assert "'.uk'" in view.email


def test_hull_duty_teams_are_out_of_office_hours_only() -> None:
    griffin = school("griffin-primary")
    for cid in ("out_of_hours_social_care", "east_riding_out_of_hours"):
        c = griffin.contact(cid)
        assert c.out_of_hours
        assert contacts.hours_text(c).startswith("out of office hours only")
    assert contacts.hours_text(griffin.contact("childrens_social_care")).startswith(
        "office hours only"
    )


def _numbers(reply) -> list[str]:
    return [v.number for v in reply.contacts if v.number]


def test_hull_social_care_asks_where_the_child_lives_and_shows_each_area() -> None:
    griffin = school("griffin-primary")
    reply = contacts.lookup(griffin, "social care", NOW)
    assert "which local authority does the child live in" in reply.title.lower()
    assert {"(01482) 448879", "(01482) 395500"} <= set(_numbers(reply))
    names = [v.name for v in reply.contacts]
    assert any("[child lives in Hull]" in n for n in names)
    assert any("[child lives in East Riding of Yorkshire]" in n for n in names)
    assert "'social care east riding'" in reply.text


@pytest.mark.parametrize(
    ("asked", "right", "wrong"),
    [
        ("social care east riding", "(01482) 395500", "(01482) 448879"),
        ("social care hull", "(01482) 448879", "(01482) 395500"),
        ("out of hours east riding", "(01377) 241273", "(01482) 300304"),
        ("lado east riding", "(01482) 396999", "(01482) 790933"),
        ("lado hull", "(01482) 790933", "(01482) 396999"),
    ],
)
def test_hull_answering_the_area_shows_only_that_areas_numbers(
    asked: str, right: str, wrong: str
) -> None:
    reply = contacts.lookup(school("griffin-primary"), asked, NOW)
    assert right in _numbers(reply) and wrong not in _numbers(reply), _numbers(reply)


def test_hull_lado_is_the_workplace_one_without_asking_where_the_child_lives() -> None:
    reply = contacts.lookup(school("griffin-primary"), "lado", NOW)
    assert _numbers(reply) == ["(01482) 790933"]
    assert "local authority" not in reply.title


def test_hull_procedure_text_gives_both_areas_numbers_labelled() -> None:
    line = contact_line(school("griffin-primary"), "childrens_social_care")
    assert "if the child lives in Hull: (01482) 448879" in line
    assert "if the child lives in East Riding of Yorkshire: (01482) 395500" in line
    # a single-area school is unchanged
    assert contact_line(school("buttsbury-junior"), "lado") == (
        "Essex LADO (Children's Workforce Allegations Management Team): 03330 139 797"
    )
