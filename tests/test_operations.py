# What an IT technician runs and relies on: `migrate`, /readyz, the settings' defaults, the
# Makefile's port overrides.
from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.app import NOT_READY, create_app
from bot.cli import main
from bot.errors import ConfigError
from bot.settings import Settings
from bot.store import SCHEMA_VERSION, SqliteStore

try:  # where the schema lives moves with the store's layout; the test does not care
    from bot.store.migrations import MIGRATIONS
except ImportError:
    from bot.store.sqlite import MIGRATIONS
from tests.test_app import OUR_TENANT, EchoBot

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "safeguarding.sqlite3"


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_creates_the_database_at_the_current_schema_and_exits(tmp_path, capsys):
    data = tmp_path / "data"

    assert main(["migrate", "--data", str(data)]) == 0

    assert user_version(data / DATABASE) == SCHEMA_VERSION
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out
    # Run again (a second replica's release step): nothing to do, still fine.
    assert main(["migrate", "--data", str(data)]) == 0
    assert user_version(data / DATABASE) == SCHEMA_VERSION


def test_migrate_applies_only_the_pending_migrations_of_an_older_database(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = 1
    conn = sqlite3.connect(data / DATABASE, isolation_level=None)
    for script in MIGRATIONS[:old]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {old}")
    conn.execute("INSERT INTO audit (at, action, detail) VALUES ('t', 'kept', '{}')")
    conn.close()

    assert main(["migrate", "--data", str(data)]) == 0

    assert user_version(data / DATABASE) == SCHEMA_VERSION
    conn = sqlite3.connect(data / DATABASE)
    assert conn.execute("SELECT action FROM audit").fetchall() == [("kept",)]
    conn.close()


def test_migrate_refuses_a_database_newer_than_the_code(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["migrate", "--data", str(data)]) == 0
    conn = sqlite3.connect(data / DATABASE, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    assert main(["migrate", "--data", str(data)]) == 1

    err = capsys.readouterr().err
    assert "newer than this code" in err and str(data / DATABASE) in err
    assert user_version(data / DATABASE) == SCHEMA_VERSION + 1  # left alone


def test_migrate_in_production_needs_the_data_key_like_serve(tmp_path, monkeypatch, capsys):
    for key in ("DATA_KEY", "KEY_VAULT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("APP_ID", "app")
    monkeypatch.setenv("APP_PASSWORD", "p")
    monkeypatch.setenv("APP_TENANTID", OUR_TENANT)

    assert main(["migrate", "--data", str(tmp_path / "data")]) == 2

    assert "No data key" in capsys.readouterr().err
    assert not (tmp_path / "data" / DATABASE).exists()


# -- /readyz ----------------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, store: SqliteStore) -> TestClient:
    app = create_app(Settings.from_environ({}), EchoBot(), store, allowed_tenant_ids={OUR_TENANT})
    return await aiohttp_client(app)


async def test_readyz_is_503_with_a_fixed_reason_when_the_database_cannot_answer(
    client: TestClient, store: SqliteStore
) -> None:
    response = await client.get("/readyz")
    assert (response.status, await response.json()) == (200, {"status": "ready"})

    store.close()

    response = await client.get("/readyz")
    assert (response.status, await response.json()) == (503, NOT_READY)


async def test_readyz_does_not_hang_on_a_database_that_does_not_answer(
    client: TestClient, store: SqliteStore, monkeypatch
) -> None:
    monkeypatch.setattr("bot.app.READY_TIMEOUT_SECONDS", 0.2)

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    monkeypatch.setattr(store, "ready", hangs)

    response = await asyncio.wait_for(client.get("/readyz"), 5)
    assert (response.status, await response.json()) == (503, NOT_READY)


async def test_readyz_is_503_when_the_database_raises(
    client: TestClient, store: SqliteStore, monkeypatch
) -> None:
    async def broken() -> bool:
        raise OSError("connection refused by 10.0.0.5 password=hunter2")

    monkeypatch.setattr(store, "ready", broken)

    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == NOT_READY  # the error's text never leaves the process


# -- settings ---------------------------------------------------------------------------------


def test_app_type_defaults_to_single_tenant_which_needs_the_tenant_id() -> None:
    # Azure no longer creates multi-tenant bots: the default must be the kind you can create.
    settings = Settings.from_environ({"APP_ID": "app", "APP_PASSWORD": "p", "APP_TENANTID": "t"})
    assert settings.app_type == "SingleTenant"
    assert settings.bot_framework_config().APP_TYPE == "SingleTenant"
    with pytest.raises(ConfigError, match="'APP_TENANTID' is missing"):
        Settings.from_environ({"APP_ID": "app", "APP_PASSWORD": "p"})
    # Local development still runs the SDK unauthenticated.
    assert Settings.from_environ({}).bot_framework_config().APP_TYPE == "MultiTenant"


# -- Makefile ---------------------------------------------------------------------------------


def make_dry_run(*args: str) -> str:
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
    ).stdout


def test_make_run_and_playground_ports_can_be_overridden() -> None:
    assert "serve --profile profiles/buttsbury-junior.yaml --data data --port 3978" in (
        make_dry_run("run")
    )
    run = make_dry_run("run", "PORT=3990")
    assert "--port 3990" in run and "3978" not in run

    playground = make_dry_run("playground", "PORT=3990", "PLAYGROUND_PORT=56190")
    assert "-e http://127.0.0.1:3990/api/messages" in playground
    assert "-p 56190" in playground
    assert "--service-url http://127.0.0.1:56190/_connector" in playground
    assert "3978" not in playground and "56150" not in playground
