"""School profiles: the shipped examples load, and bad profiles fail with a precise message."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows.profile import (
    REQUIRED_CONTACTS,
    Organisation,
    ProfileError,
    SchoolProfile,
    example_profiles_dir,
    load_organisation,
    parse_organisation,
)
from tests.flowkit import all_schools
from tests.shared import SHARED

LONDON = ZoneInfo("Europe/London")
SOURCES = SHARED
FIXTURES = Path(__file__).parent / "profile_fixtures"
ORG_FILES = sorted(p for p in example_profiles_dir().glob("*.yaml") if p.name != "national.yaml")


def _all_schools() -> list[SchoolProfile]:
    return [s for path in ORG_FILES for s in load_organisation(path).schools]


def _sources_digits() -> str:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in SOURCES.glob("seeds/*.txt")]
    texts.append((SOURCES / "PROCEDURES.md").read_text(encoding="utf-8"))
    # one digit run per source line, so a number cannot be stitched across lines
    return "\n".join(re.sub(r"[^0-9\n]", "", t) for t in texts)


def test_the_expected_example_profiles_ship() -> None:
    names = {p.name for p in ORG_FILES}
    assert {"buttsbury-junior.yaml", "hera-trust.yaml", "griffin-primary.yaml"} <= names
    assert len(ORG_FILES) >= 4


@pytest.mark.parametrize("path", ORG_FILES, ids=lambda p: p.name)
def test_every_shipped_profile_loads_with_the_required_contacts(path: Path) -> None:
    org = load_organisation(path)
    assert org.schools
    for school in org.schools:
        ids = {c.id for c in school.contacts}
        assert set(REQUIRED_CONTACTS) <= ids
        assert school.contact("emergency").number == "999"
        assert school.contact("police").number == "101"


@pytest.mark.parametrize("school", _all_schools(), ids=lambda s: s.id)
def test_no_invented_numbers(school: SchoolProfile) -> None:
    """Digits only: every number is in a seed or PROCEDURES.md, or quoted from the public page
    its `source:` cites (tests/test_contact_sources.py checks each one's quoted line or page)."""
    sources = _sources_digits()
    for contact in school.contacts:
        if contact.number is None:
            assert "ask the DSL" not in contact.purpose, contact.id
            continue
        cited = (
            re.sub(r"[^0-9]", "", contact.source or "")
            if "https://" in (contact.source or "")
            else ""
        )
        for part in contact.number.split(" or "):
            digits = re.sub(r"[^0-9]", "", part)
            assert digits, contact.id
            assert digits in sources or digits in cited, (
                f"{school.id}: {contact.id} {contact.number} is not in the sources"
            )


def test_national_numbers_are_the_published_ones() -> None:
    school = load_organisation(example_profiles_dir() / "buttsbury-junior.yaml").school()
    assert school.contact("nspcc_helpline").number == "0808 800 5000"
    assert school.contact("nspcc_whistleblowing").number == "0800 028 0285"
    assert school.contact("childline").number == "0800 1111"
    assert school.contact("lado").tel_uri() == "tel:03330139797"


def test_trust_file_yields_two_schools_with_distinct_dsl_teams() -> None:
    org = load_organisation(example_profiles_dir() / "hera-trust.yaml")
    assert isinstance(org, Organisation)
    assert org.id == "hera-trust"
    kings, lawford = org.schools
    assert kings.dsl.name == "Karen Riches"
    assert lawford.dsl.name == "Matthew Poyton"
    assert not {p.aad_object_id for p in kings.dsl_team()} & {
        p.aad_object_id for p in lawford.dsl_team()
    }
    assert kings.dsl_channel.channel_id != lawford.dsl_channel.channel_id
    assert kings.is_dsl_team_member(kings.deputies[0].aad_object_id)
    assert not kings.is_dsl_team_member(lawford.dsl.aad_object_id)
    # trust-level settings are shared by both schools
    assert kings.rules.fgm_police_before_dsl and lawford.rules.fgm_police_before_dsl
    assert kings.chair_title == lawford.chair_title == "Chair of Trustees"


def test_school_lookup_by_id_and_unknown_id_lists_the_known_ids() -> None:
    org = load_organisation(example_profiles_dir() / "hera-trust.yaml")
    assert org.school("lawford-mead-primary").name.startswith("Lawford Mead")
    with pytest.raises(ProfileError, match=r"hera-trust\.yaml: schools: unknown school 'nope'.*"):
        org.school("nope")
    with pytest.raises(ProfileError, match="kings-road-primary, lawford-mead-primary"):
        org.school()


def test_griffin_local_rules_and_contacts() -> None:
    school = load_organisation(example_profiles_dir() / "griffin-primary.yaml").school()
    assert school.dsl.name == "Mike Lloyd"
    assert [p.name for p in school.deputies] == ["Sophie Rose"]
    assert school.rules.recording_system == "CPOMS"
    assert school.rules.written_record_hours == 24
    assert not school.rules.fgm_police_before_dsl
    assert school.contact("out_of_hours_social_care").number == "(01482) 300304"
    assert school.contact("east_riding_lado").number == "(01482) 396999"
    board = school.contact("east_riding_safeguarding_board")
    assert board.number == "(01482) 396998 or (01482) 396999"  # the policy's "396998/9"
    assert board.tel_uri() == "tel:01482396998"
    assert school.safeguarding_governor and school.safeguarding_governor.name == "Terry Johnson"
    with pytest.raises(KeyError, match="no contact 'nope'"):
        school.contact("nope")


def _fixture_cases() -> list[tuple[Path, str]]:
    cases = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# Breaks:"), f"{path.name} must say what it breaks"
        assert lines[1].startswith("# expect: ")
        cases.append((path, lines[1].removeprefix("# expect: ")))
    return cases


@pytest.mark.parametrize(
    ("path", "expected"), _fixture_cases(), ids=lambda v: getattr(v, "name", "")
)
def test_bad_profile_fails_naming_file_and_field(path: Path, expected: str) -> None:
    with pytest.raises(ProfileError, match=expected) as info:
        load_organisation(path)
    assert all(line.startswith(str(path)) for line in info.value.problems)


def test_the_bad_fixtures_cover_the_required_cases() -> None:
    names = {p.stem for p, _ in _fixture_cases()}
    assert {
        "missing_dsl",
        "bad_time",
        "unknown_key",
        "duplicate_contact",
        "missing_phone_contact",
        "yes_string",
    } <= names


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ProfileError) as info:
        load_organisation(FIXTURES / "missing_lado.yaml")
    assert len(info.value.problems) == 2
    assert str(info.value).count("\n") == 1


def _fixture_body(name: str) -> str:
    """A fixture's text without its header, i.e. the valid base profile plus its one defect."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_yaml_11_booleans_and_times_stay_text() -> None:
    text = _fixture_body("bad_time.yaml").replace('"25:00"', '"15:30"')
    text = text.replace("keywords: [lado]", "keywords: [lado, 'no', on, off, yes]")
    base = {"contacts": _national_contacts()}
    school = parse_organisation(text, "inline.yaml", base=base).school()
    assert school.contact("lado").keywords == ("lado", "no", "on", "off", "yes")
    # unquoted 15:30 is not read as the sexagesimal integer 930
    unquoted = text.replace('end: "15:30"', "end: 15:30")
    assert parse_organisation(unquoted, "inline.yaml", base=base).school().school_end.hour == 15


def _national_contacts() -> list[dict]:
    import yaml

    data = yaml.safe_load((example_profiles_dir() / "national.yaml").read_text(encoding="utf-8"))
    return data["contacts"]


def test_duplicate_yaml_keys_are_rejected() -> None:
    text = _fixture_body("bad_time.yaml").replace(
        "local_authority: Hull", "local_authority: Hull\nlocal_authority: Essex"
    )
    with pytest.raises(
        ProfileError, match=r"inline\.yaml: \(yaml\): .*duplicate key 'local_authority'"
    ):
        parse_organisation(text, "inline.yaml")


def test_whistleblowing_line_hours() -> None:
    line = (
        load_organisation(example_profiles_dir() / "ccshg.yaml")
        .school()
        .contact("nspcc_whistleblowing")
    )
    assert line.is_open(datetime(2025, 6, 2, 10, 0, tzinfo=LONDON))  # Monday 10:00
    assert not line.is_open(datetime(2025, 6, 2, 21, 0, tzinfo=LONDON))  # Monday 21:00
    assert not line.is_open(datetime(2025, 6, 1, 12, 0, tzinfo=LONDON))  # Sunday
    # 09:30 UTC on a summer Monday is 10:30 in London; 19:30 UTC is 20:30, closed
    assert line.is_open(datetime(2025, 6, 2, 9, 30, tzinfo=ZoneInfo("UTC")))
    assert not line.is_open(datetime(2025, 6, 2, 19, 30, tzinfo=ZoneInfo("UTC")))
    with pytest.raises(ValueError, match="timezone-aware"):
        line.is_open(datetime(2025, 6, 2, 10, 0))


def test_the_nspcc_phone_line_is_not_24_hours_but_childline_is() -> None:
    school = load_organisation(example_profiles_dir() / "ccshg.yaml").school()
    helpline = school.contact("nspcc_helpline")
    assert not helpline.hours.always
    assert helpline.is_open(datetime(2025, 6, 2, 21, 30, tzinfo=LONDON))  # Monday 21:30
    assert not helpline.is_open(datetime(2025, 6, 2, 23, 0, tzinfo=LONDON))  # Monday 23:00
    assert helpline.is_open(datetime(2025, 6, 1, 10, 0, tzinfo=LONDON))  # Sunday 10:00
    assert not helpline.is_open(datetime(2025, 6, 1, 19, 0, tzinfo=LONDON))  # Sunday 19:00
    assert "NOT 24 hours" in helpline.purpose and "at any time" in helpline.purpose
    childline = school.contact("childline")
    assert childline.hours.always
    assert childline.is_open(datetime(2025, 12, 25, 3, 0, tzinfo=LONDON))


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("lado", "lado"),
        ("LADO", "lado"),
        ("out of hours", "out_of_hours_social_care"),
        ("police", "police"),
        ("nspcc", "nspcc_helpline"),
        ("whistleblowing", "nspcc_whistleblowing"),
        ("east riding lado", "east_riding_lado"),
        ("social care", "childrens_social_care"),
    ],
)
def test_find_contacts_best_first(query: str, first: str) -> None:
    school = load_organisation(example_profiles_dir() / "griffin-primary.yaml").school()
    hits = school.find_contacts(query)
    assert hits[0].id == first


def test_find_contacts_dsl_gives_the_team_phone_contacts() -> None:
    text = _fixture_body("bad_time.yaml").replace('"25:00"', '"15:30"')
    school = parse_organisation(
        text, "inline.yaml", base={"contacts": _national_contacts()}
    ).school()
    assert school.find_contacts("dsl")[0].id == "lado"  # the fixture DSL's phone is 'lado'
    assert [p.name for p in school.find_people("DSL")] == ["Test DSL"]
    assert school.find_contacts("") == []


def test_in_school_hours() -> None:
    text = _fixture_body("bad_time.yaml").replace('"25:00"', '"15:30"')
    text = text.replace(
        "local_authority: Hull", "local_authority: Hull\nclosure_days: [2025-06-04]"
    )
    school = parse_organisation(
        text, "inline.yaml", base={"contacts": _national_contacts()}
    ).school()
    assert school.in_school_hours(datetime(2025, 6, 3, 10, 0, tzinfo=LONDON))  # Tuesday
    assert not school.in_school_hours(datetime(2025, 6, 3, 8, 29, tzinfo=LONDON))
    assert not school.in_school_hours(datetime(2025, 6, 3, 15, 30, tzinfo=LONDON))
    assert not school.in_school_hours(datetime(2025, 6, 7, 10, 0, tzinfo=LONDON))  # Saturday
    assert not school.in_school_hours(datetime(2025, 6, 4, 10, 0, tzinfo=LONDON))  # closure day
    assert not school.in_school_hours(datetime(2025, 8, 25, 10, 0, tzinfo=LONDON))  # bank holiday
    assert school.closure_days == frozenset({date(2025, 6, 4)})


def test_missing_child_wording_follows_the_local_authority() -> None:
    # Seed 004 App. C: Essex children are reported to Essex Police and offered a 'missing chat';
    # a Hull school must never be told Essex terms, and no Essex school left with the defaults.
    for school in all_schools():
        rules = school.rules
        if school.local_authority == "Essex":
            assert rules.missing_police_force == "Essex Police", school.id
            assert "missing chat" in rules.missing_return_interview, school.id
        else:
            assert "Essex" not in rules.missing_police_force, school.id
            assert "missing chat" not in rules.missing_return_interview, school.id
