"""The schools one deployment serves: the profile's `staff:` and `trust_safeguarding_leads:`
keys (parsed and checked, naming file and field), who is where, and a folder of profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import build_parser
from flows.directory import SchoolDirectory, UnknownSchool
from flows.profile import ProfileError, example_profiles_dir, load_organisation

PROFILES = example_profiles_dir()
HERA_TEXT = (PROFILES / "hera-trust.yaml").read_text(encoding="utf-8")
KR_TEACHER = "00000000-0000-0000-0000-00000000f201"
LEAD = "00000000-0000-0000-0000-00000000f401"
STAFF = f"""
    staff:
      aad_object_ids: ["{KR_TEACHER.upper()}"]
      email_domains: ["@KingsRoad.essex.sch.uk"]
    dsl_channel:
      team_id: "00000000-0000-0000-0000-0000000001d1\""""
LEADS = f"""trust_safeguarding_leads:
  - {{name: Tara Trustlead, aad_object_id: "{LEAD}"}}"""


def _hera(tmp_path: Path, text: str) -> Path:
    shutil.copy(PROFILES / "national.yaml", tmp_path / "national.yaml")
    path = tmp_path / "hera-trust.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _with_staff_and_leads(text: str = HERA_TEXT) -> str:
    first = '\n    dsl_channel:\n      team_id: "00000000-0000-0000-0000-0000000001d1"'
    assert text.count(first) == 1
    assert text.count("trust_safeguarding_leads: []") == 1
    return text.replace(first, STAFF, 1).replace("trust_safeguarding_leads: []", LEADS, 1)


def test_staff_lists_and_trust_leads_are_read(tmp_path: Path) -> None:
    org = load_organisation(_hera(tmp_path, _with_staff_and_leads()))
    kings = org.school("kings-road-primary")
    assert kings.staff_ids == frozenset({KR_TEACHER})  # ids compared lower-case
    assert kings.email_domains == ("kingsroad.essex.sch.uk",)
    assert org.school("lawford-mead-primary").staff_ids == frozenset()
    assert [p.name for p in org.trust_safeguarding_leads] == ["Tara Trustlead"]


def test_who_is_where(tmp_path: Path) -> None:
    served = SchoolDirectory.load(_hera(tmp_path, _with_staff_and_leads()))
    ids = lambda schools: [s.id for s in schools]  # noqa: E731
    assert ids(served.schools_of(KR_TEACHER)) == ["kings-road-primary"]
    # By e-mail domain only when the id is not listed anywhere; case does not matter.
    stranger = "00000000-0000-0000-0000-00000000f999"
    assert ids(served.schools_of(stranger, "a.b@KINGSROAD.essex.sch.uk")) == ["kings-road-primary"]
    assert ids(served.schools_of(stranger, "a.b@elsewhere.sch.uk")) == []
    # The DSL is at their own school; the trust-wide headteacher is named at both.
    kings_dsl = served.get("kings-road-primary").dsl.aad_object_id
    assert ids(served.schools_of(kings_dsl)) == ["kings-road-primary"]
    head = served.get("kings-road-primary").headteacher.aad_object_id
    assert ids(served.schools_of(head)) == ["kings-road-primary", "lawford-mead-primary"]
    # A DSL oversees their own school; the trust lead every school of the trust.
    assert ids(served.overseen_by(kings_dsl)) == ["kings-road-primary"]
    assert ids(served.overseen_by(LEAD)) == ["kings-road-primary", "lawford-mead-primary"]
    assert ids(served.overseen_by(head)) == []
    # Another tenant's person is never placed in this tenant's schools.
    other_tenant = "11111111-2222-3333-4444-555555555555"
    assert served.schools_of(KR_TEACHER, tenant_id=other_tenant) == ()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            '["not-a-guid"]',
            r"hera-trust\.yaml: schools\.0\.staff\.aad_object_ids\.0: must be an Entra \(AAD\) "
            r"object id GUID, got 'not-a-guid'",
        ),
        ("just-one", r"schools\.0\.staff\.aad_object_ids: must be a list, got str 'just-one'"),
    ],
)
def test_a_bad_staff_list_is_named(tmp_path: Path, bad: str, message: str) -> None:
    text = _with_staff_and_leads().replace(f'["{KR_TEACHER.upper()}"]', bad)
    with pytest.raises(ProfileError, match=message):
        load_organisation(_hera(tmp_path, text))


def test_a_bad_e_mail_domain_is_named(tmp_path: Path) -> None:
    text = _with_staff_and_leads().replace('"@KingsRoad.essex.sch.uk"', '"kings road"')
    with pytest.raises(
        ProfileError,
        match=r"schools\.0\.staff\.email_domains\.0: must be an e-mail domain like "
        r"school\.essex\.sch\.uk, got 'kings road'",
    ):
        load_organisation(_hera(tmp_path, text))


def test_a_trust_lead_needs_a_real_entra_id(tmp_path: Path) -> None:
    text = _with_staff_and_leads().replace(LEAD, "tara")
    with pytest.raises(ProfileError, match=r"trust_safeguarding_leads\.0\.aad_object_id: must be"):
        load_organisation(_hera(tmp_path, text))


def test_a_folder_of_profiles_serves_every_school_and_skips_shared_bases(tmp_path: Path) -> None:
    for name in ("national.yaml", "hera-trust.yaml", "griffin-primary.yaml"):
        shutil.copy(PROFILES / name, tmp_path / name)
    served = SchoolDirectory.load(tmp_path)
    assert [s.id for s in served.schools] == [
        "griffin-primary",
        "kings-road-primary",
        "lawford-mead-primary",
    ]
    assert served.single is None
    with pytest.raises(UnknownSchool):
        served.get("atlantis-primary")
    assert served.organisation_of("kings-road-primary").id == "hera-trust"


def test_the_same_school_id_twice_in_one_deployment_is_refused(tmp_path: Path) -> None:
    shutil.copy(PROFILES / "national.yaml", tmp_path / "national.yaml")
    shutil.copy(PROFILES / "hera-trust.yaml", tmp_path / "hera-trust.yaml")
    shutil.copy(PROFILES / "hera-trust.yaml", tmp_path / "hera-copy.yaml")
    with pytest.raises(ProfileError, match="school id 'kings-road-primary' is also in"):
        SchoolDirectory.load(tmp_path)


def test_serve_without_school_serves_the_whole_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import cli

    monkeypatch.delenv("PROFILE_PATH", raising=False)
    monkeypatch.delenv("PROFILES_DIR", raising=False)
    monkeypatch.delenv("SCHOOL_ID", raising=False)

    def served(*argv: str):
        args = build_parser().parse_args(["serve", *argv])
        args.profile_given = args.profile is not None
        args.profile = args.profile or str(cli.DEFAULT_PROFILE)
        return cli._served(args)

    trust = served("--profile", str(PROFILES / "hera-trust.yaml"))
    assert [s.id for s in trust.schools] == ["kings-road-primary", "lawford-mead-primary"]
    one = served("--profile", str(PROFILES / "hera-trust.yaml"), "--school", "kings-road-primary")
    assert one.id == "kings-road-primary"
    with pytest.raises(ProfileError, match="unknown school 'nowhere'; known: kings-road-primary"):
        served("--profile", str(PROFILES / "hera-trust.yaml"), "--school", "nowhere")
    assert served().single is not None  # the embedded default: one school
