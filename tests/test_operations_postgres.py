# `migrate`, `doctor` and /readyz with the store in PostgreSQL (DATABASE_URL): the database is
# reached, and the URL - which may hold a password - is never printed.
from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.app import NOT_READY, create_app
from bot.cli import main
from bot.settings import Settings
from bot.store import SCHEMA_VERSION, open_store
from tests.test_app import OUR_TENANT, EchoBot
from tests.test_doctor import doctor, install, line, teams  # noqa: F401

SECRET_URL_PART = "pw-not-shown"
DOWN = f"postgresql://u:{SECRET_URL_PART}@127.0.0.1:9/nothing"


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{SECRET_URL_PART}@")


def test_migrate_brings_a_postgresql_database_to_the_schema(
    tmp_path, pg_cluster, monkeypatch, capsys
):
    url = with_password(pg_cluster.database(migrated=False))
    monkeypatch.setenv("DATABASE_URL", url)

    assert main(["migrate", "--data", str(tmp_path / "data")]) == 0

    out = capsys.readouterr()
    assert f"schema version {SCHEMA_VERSION}" in out.out
    assert SECRET_URL_PART not in out.out + out.err
    assert not (tmp_path / "data" / "safeguarding.sqlite3").exists()  # nothing on this disk
    store = open_store(url)
    try:
        assert store.schema_version == SCHEMA_VERSION
    finally:
        store.close()


def test_migrate_fails_clearly_when_postgresql_does_not_answer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", DOWN)

    assert main(["migrate", "--data", str(tmp_path / "data")]) == 1

    out = capsys.readouterr()
    assert "Database error at PostgreSQL (DATABASE_URL)" in out.err
    assert SECRET_URL_PART not in out.out + out.err


async def test_readyz_follows_a_postgresql_database(aiohttp_client, pg_cluster) -> None:
    store = open_store(pg_cluster.database())
    app = create_app(Settings.from_environ({}), EchoBot(), store, allowed_tenant_ids={OUR_TENANT})
    client: TestClient = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert (response.status, await response.json()) == (200, {"status": "ready"})

    store.close()

    response = await client.get("/readyz")
    assert (response.status, await response.json()) == (503, NOT_READY)


async def test_doctor_checks_a_postgresql_database_and_never_prints_its_url(
    install,  # noqa: F811  (test_doctor's fixtures, imported above)
    teams,  # noqa: F811
    capsys,
    monkeypatch,
    pg_cluster,
) -> None:
    monkeypatch.setenv("DATABASE_URL", with_password(pg_cluster.database()))
    install["data"] = install["data"].parent / "unused"
    code, out = await doctor(install, teams, capsys)
    assert code == 0, out
    assert "DATABASE_URL" in line(out, "data folder")
    database = line(out, "database")
    assert f"PostgreSQL (DATABASE_URL) answers, schema version {SCHEMA_VERSION}" in database
    assert SECRET_URL_PART not in out

    monkeypatch.setenv("DATABASE_URL", DOWN)
    code, out = await doctor(install, teams, capsys)
    assert code == 1
    assert line(out, "database").startswith("FAIL") and SECRET_URL_PART not in out
