# `safeguarding-bot doctor` against a fake login endpoint and Bot Connector: every check passes
# on a good install, and each one fails when the thing it checks is broken - without ever
# printing a secret.
from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.store import SCHEMA_VERSION
from tests.fakeconnector import FakeConnector

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "8e3b0b8a-6c1f-4a52-9d1e-2f6b7c8d9e01"
SECRET = "s3cr3t~Value-never-printed"
TENANT = "3f2504e0-4f89-11d3-9a0c-0305e8200000"
TEAM = "19:Kf2mB7dslTeamThread@thread.tacv2"
CHANNEL = "19:a81c55bd0e7f4d3c@thread.tacv2"
DATA_KEY = base64.b64encode(b"k" * 32).decode()


def real_profile(tmp_path: Path, example: str = "buttsbury-junior", **replace: str) -> Path:
    """An example profile with real-looking ids where its placeholders are."""
    text = (ROOT / "profiles" / f"{example}.yaml").read_text("utf-8")
    text = text.replace("extends: national.yaml", f"extends: {ROOT / 'profiles/national.yaml'}")
    text = text.replace("00000000-0000-0000-0000-0000000", "3f2504e0-4f89-11d3-9a0c-0305e82")
    text = re.sub(r'team_id: "[^"]*"', f'team_id: "{replace.get("team_id", TEAM)}"', text)
    text = re.sub(r'channel_id: "[^"]*"', f'channel_id: "{CHANNEL}"', text)
    path = tmp_path / f"{example}.yaml"
    path.write_text(text, "utf-8")
    return path


def dsl_roster() -> list[dict]:
    ids = ["3f2504e0-4f89-11d3-9a0c-0305e82000a" + n for n in "123"]  # DSL and two deputies
    return [{"id": f"29:{i}", "name": "x", "aadObjectId": i} for i in ids]


@pytest.fixture
async def teams() -> FakeConnector:
    async with FakeConnector() as connector:
        connector.app_credentials[APP_ID] = SECRET
        connector.tenants.add(TENANT)
        connector.add_team(
            TEAM,
            channels=[{"id": TEAM, "name": None}, {"id": CHANNEL, "name": "DSL team"}],
            members=dsl_roster(),
        )
        yield connector


@pytest.fixture
def install(tmp_path: Path, monkeypatch) -> dict:
    """A production environment, a migrated database, a local disk."""
    for key in ("DATA_OLD_KEYS", "KEY_VAULT_URL", "ALLOWED_TENANT_IDS", "HOST", "SCHOOL_ID"):
        monkeypatch.delenv(key, raising=False)
    env = {"APP_ID": APP_ID, "APP_PASSWORD": SECRET, "APP_TENANTID": TENANT, "DATA_KEY": DATA_KEY}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("APP_TYPE", raising=False)
    data = tmp_path / "data"
    assert main(["migrate", "--data", str(data)]) == 0
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 {tmp_path} xfs rw 0 0\n")
    monkeypatch.setattr("bot.doctor.MOUNTS", mounts)
    return {"data": data, "profile": real_profile(tmp_path), "mounts": mounts}


async def doctor(install: dict, teams: FakeConnector, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    argv = ["doctor", "--profile", str(install["profile"]), "--data", str(install["data"])]
    argv += ["--login-url", teams.url, "--service-url", teams.url, *extra]
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert SECRET not in out and DATA_KEY not in out
    assert not any(token in out for token in teams.issued_tokens)
    return code, out


def line(out: str, name: str) -> str:
    found = [row for row in out.splitlines() if re.match(rf"\s+(PASS|FAIL|SKIP)\s+{name}", row)]
    assert len(found) == 1, out
    return found[0].strip()


async def test_a_good_install_passes_every_check(install, teams, capsys) -> None:
    code, out = await doctor(install, teams, capsys)

    assert code == 0, out
    assert "FAIL" not in out and "SKIP" not in out
    for name in (
        "app id",
        "ids: buttsbury-junior",
        "data folder",
        "database",
        "credentials",
        "DSL channel: buttsbury-junior",
        "DSL team members: buttsbury-junior",
    ):
        assert line(out, name).startswith("PASS"), out
    assert f"schema version {SCHEMA_VERSION}" in line(out, "database")
    assert "All checks passed." in out


async def test_the_shipped_example_profile_fails_on_its_placeholders(install, teams, capsys):
    install["profile"] = ROOT / "profiles" / "buttsbury-junior.yaml"
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    ids = line(out, "ids: buttsbury-junior")
    assert ids.startswith("FAIL")
    assert "tenant_id is the example's placeholder" in ids
    assert "aad_object_id is a placeholder for: DSL Ann Robinson, deputy DSL" in ids
    assert "is not a Teams team id" in ids  # the example's team_id is a GUID


async def test_a_group_id_guid_as_team_id_is_explained(install, teams, capsys, tmp_path):
    install["profile"] = real_profile(tmp_path, team_id="2f0f3c1e-9a0b-4c55-8d21-6b7e1f0a9c33")
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "not the groupId GUID" in line(out, "ids: buttsbury-junior")
    assert line(out, "DSL channel: buttsbury-junior").startswith("SKIP")


async def test_a_tenant_other_than_the_bots_fails(install, teams, capsys, monkeypatch):
    other = "9d0c1b2a-0000-4000-8000-00000000beef"
    monkeypatch.setenv("APP_TENANTID", other)
    teams.tenants.add(other)
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert f"is not APP_TENANTID {other}" in line(out, "ids: buttsbury-junior")


async def test_no_app_id_fails_and_skips_what_needs_it(install, teams, capsys, monkeypatch):
    monkeypatch.setenv("APP_ID", "")
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "APP_ID is not set" in line(out, "app id")
    assert line(out, "credentials").startswith("SKIP")
    assert line(out, "DSL channel: buttsbury-junior").startswith("SKIP")


async def test_an_app_id_that_is_not_a_guid_fails(install, teams, capsys, monkeypatch):
    monkeypatch.setenv("APP_ID", "my-bot")
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert line(out, "app id").startswith("FAIL")


async def test_a_wrong_secret_fails_with_entras_code_and_never_the_secret(
    install, teams, capsys
) -> None:
    teams.app_credentials[APP_ID] = "the-real-one"
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    credentials = line(out, "credentials")
    assert credentials.startswith("FAIL")
    assert "AADSTS7000215" in credentials and "Value, not its Secret ID" in credentials
    assert "Invalid client secret" not in out  # Entra's own text is not repeated
    assert line(out, "DSL channel: buttsbury-junior").startswith("SKIP")


async def test_an_unknown_app_and_an_unreachable_login_endpoint_fail(install, teams, capsys):
    teams.app_credentials.clear()
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "AADSTS700016" in line(out, "credentials")

    code, out = await doctor(install, teams, capsys, "--login-url", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach http://127.0.0.1:9" in line(out, "credentials")


async def test_the_bot_not_in_the_dsl_team_fails(install, teams, capsys) -> None:
    del teams.teams[TEAM]
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    channel = line(out, "DSL channel: buttsbury-junior")
    assert channel.startswith("FAIL") and "not in the DSL team (HTTP 403)" in channel


async def test_a_channel_the_bot_cannot_see_fails(install, teams, capsys) -> None:
    teams.teams[TEAM] = [{"id": TEAM, "name": None}]
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    channel = line(out, "DSL channel: buttsbury-junior")
    assert channel.startswith("FAIL") and f"cannot see channel {CHANNEL}" in channel


async def test_a_dsl_team_member_missing_from_the_team_fails(install, teams, capsys) -> None:
    teams.conversations[TEAM].members = dsl_roster()[:2]
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    members = line(out, "DSL team members: buttsbury-junior")
    assert members.startswith("FAIL") and "Stacey Carroll" in members
    assert "Ann Robinson" not in members


async def test_no_database_fails_and_names_migrate(install, teams, capsys, tmp_path) -> None:
    install["data"] = tmp_path / "elsewhere"
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "run `safeguarding-bot migrate`" in line(out, "database")
    assert not (tmp_path / "elsewhere" / "safeguarding.sqlite3").exists()  # doctor made none


async def test_a_database_newer_than_the_code_fails(install, teams, capsys) -> None:
    conn = sqlite3.connect(install["data"] / "safeguarding.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "newer than this code" in line(out, "database")


async def test_a_bad_data_key_fails_without_printing_it(install, teams, capsys, monkeypatch):
    monkeypatch.setenv("DATA_KEY", "not-a-key")
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    database = line(out, "database")
    assert "data key cannot be loaded" in database and "not-a-key" not in out


async def test_sqlite_on_a_network_share_fails(install, teams, capsys, tmp_path) -> None:
    install["mounts"].write_text(
        f"/dev/sda1 / ext4 rw 0 0\n//store.file.core.windows.net/home {tmp_path} cifs rw 0 0\n"
    )
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    folder = line(out, "data folder")
    assert folder.startswith("FAIL") and "network share (cifs" in folder


async def test_settings_that_would_not_start_are_refused_first(install, teams, capsys, monkeypatch):
    monkeypatch.setenv("APP_PASSWORD", "")
    code, out = await doctor(install, teams, capsys)
    assert code == 2
    assert "Config 'APP_PASSWORD' is missing" in out


async def test_a_managed_identity_gets_its_token_from_the_identity_endpoint(
    install, teams, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("APP_TYPE", "UserAssignedMSI")
    monkeypatch.setenv("APP_PASSWORD", "")
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{teams.url}msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", teams.identity_header)
    teams.managed_identities.add(APP_ID)
    code, out = await doctor(install, teams, capsys)
    assert code == 0, out
    assert "the managed identity issued a Bot Framework token" in line(out, "credentials")

    teams.managed_identities.clear()  # the identity is not attached to this App Service
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert "no token from the managed identity" in line(out, "credentials")


async def test_every_school_a_trust_serves_is_checked(install, teams, capsys, tmp_path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    trust = real_profile(folder, "hera-trust")
    from flows.profile import load_organisation

    schools = load_organisation(trust).schools
    assert len(schools) == 2
    roster = [p.aad_object_id for s in schools for p in s.dsl_team()]
    teams.conversations[TEAM].members = [{"id": f"29:{i}", "aadObjectId": i} for i in roster]
    install["profile"] = trust
    code, out = await doctor(install, teams, capsys)
    assert code == 0, out
    for school in schools:
        assert line(out, f"ids: {school.id}").startswith("PASS")
        assert line(out, f"DSL channel: {school.id}").startswith("PASS")
        assert line(out, f"DSL team members: {school.id}").startswith("PASS")

    # A local authority's folder of profiles, as `serve --profiles` reads it.
    real_profile(folder, "buttsbury-junior")
    argv = ["doctor", "--profiles", str(folder), "--data", str(install["data"])]
    argv += ["--login-url", teams.url, "--service-url", teams.url]
    capsys.readouterr()
    code = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert "(3 school(s))" in out
    assert line(out, "DSL team members: buttsbury-junior").startswith("FAIL")  # not in roster
    assert line(out, f"DSL team members: {schools[0].id}").startswith("PASS")
    assert code == 1
