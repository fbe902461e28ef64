# Children's words protected at rest: private file modes whatever the umask, the words and
# names sealed (AES-GCM) in the database file and its WAL, key rotation, no key no start.
from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import cli
from bot.errors import ConfigError
from bot.server import build_server
from bot.settings import Secret, Settings
from bot.store import SqliteStore
from bot.store.keys import KEY_FILE, load_codec
from bot.store.sealing import MAGIC, SEALED_COLUMNS, FieldCodec, SealError
from flows.catalogue import load_definitions
from tests.e2e import DSL, REPORTER, SCHOOL, Clock, RunningBot
from tests.fakeconnector import FakeConnector
from tests.test_e2e import CHILD, WALKS, report
from tests.test_session import Chat

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
DATABASE = "safeguarding.sqlite3"
# Constants a row is blanked to once delivered: nothing in them to seal.
EMPTY = ("{}", "[]", "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def raw_bytes(data_dir: Path) -> bytes:
    """The database file and its WAL exactly as they are on disk."""
    found = b""
    for name in (DATABASE, DATABASE + "-wal"):
        path = data_dir / name
        if path.exists():
            found += path.read_bytes()
    return found


async def test_data_folder_and_database_are_private_under_a_permissive_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    data_dir = tmp_path / "school" / "data"
    async with FakeConnector() as connector:
        running = await RunningBot(connector, data_dir, Clock()).start()
        await running.say("contacts")
        files = {p.name: mode(p) for p in data_dir.iterdir()}
        await running.stop()

    assert mode(data_dir) == 0o700
    assert files[DATABASE] == 0o600
    assert files[DATABASE + "-wal"] == 0o600
    assert files[DATABASE + "-shm"] == 0o600
    assert files[KEY_FILE] == 0o600
    assert all(m & 0o077 == 0 for m in files.values()), files


async def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    SqliteStore(tmp_path / DATABASE).close()
    (tmp_path / DATABASE).chmod(0o644)

    SqliteStore(tmp_path / DATABASE).close()

    assert (mode(tmp_path), mode(tmp_path / DATABASE)) == (0o700, 0o600)


async def test_no_child_words_or_names_in_the_database_bytes_after_full_reports(
    bot: RunningBot,
) -> None:
    for flow in ("disclosure", "allegation"):
        await report(bot, flow, WALKS[flow])
    status, _ = await bot.press_on_alert("acknowledge", user=DSL)
    assert status == 200
    bot.clock.advance(minutes=45)  # reminders and escalations write their rows too
    await bot.settle()
    assert bot.server is not None
    store = bot.server.store
    # The words are really stored (and read back): only their bytes on disk are sealed.
    [stored] = [
        c
        for c in await store.list_concerns_by_reporter(REPORTER.aad)
        if c.concern.type == "disclosure"
    ]
    assert CHILD in str(stored.concern.to_dict())

    # Every value in every sealed column is sealed, under the current key: a write path that
    # forgets to mark its value Sensitive shows up here as "plain".
    assert store._codec is not None
    assert sealed_key_ids(bot.data_dir / DATABASE) == {store._codec.current_key_id}
    on_disk = raw_bytes(bot.data_dir)
    assert MAGIC in on_disk
    for secret in (CHILD, "then he hit me", "bruise left forearm", REPORTER.name, DSL.name):
        assert secret.encode() not in on_disk, secret
    await bot.stop()
    checkpointed = raw_bytes(bot.data_dir)
    for secret in (CHILD, "then he hit me", REPORTER.name, DSL.name):
        assert secret.encode() not in checkpointed, secret


async def write_words(store: SqliteStore, key: str, words: str) -> None:
    await store.write({key: {"session": {"words": words}}})


async def read_words(store: SqliteStore, key: str) -> str:
    return (await store.read([key]))[key]["session"]["words"]


def codec(*keys: str) -> FieldCodec:
    return FieldCodec([base64.b64decode(k) for k in keys])


def sealed_key_ids(path: Path) -> set[bytes]:
    conn = sqlite3.connect(path)
    try:
        ids = set()
        for table, columns in SEALED_COLUMNS.items():
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                for value in row:
                    if isinstance(value, str) and value not in EMPTY:
                        ids.add(b"plain")
                    elif isinstance(value, bytes):
                        ids.add(value[len(MAGIC) : len(MAGIC) + 4])
        return ids
    finally:
        conn.close()


async def test_rotation_new_writes_use_the_new_key_old_rows_still_read_then_rotate_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / DATABASE
    store = SqliteStore(path, codec=codec(KEY_A))
    await write_words(store, "old", "words sealed under A")
    store.close()

    store = SqliteStore(path, codec=codec(KEY_B, KEY_A))
    assert await read_words(store, "old") == "words sealed under A"
    await write_words(store, "new", "words sealed under B")
    store.close()
    a, b = codec(KEY_A).current_key_id, codec(KEY_B).current_key_id
    assert sealed_key_ids(path) == {a, b}

    monkeypatch.setenv("DATA_KEY", KEY_B)
    monkeypatch.setenv("DATA_OLD_KEYS", KEY_A)
    assert await asyncio.to_thread(cli.main, ["rotate-key", "--data", str(tmp_path)]) == 0
    assert "re-encrypted" in capsys.readouterr().out

    assert sealed_key_ids(path) == {b}
    # Nothing under the old key is left anywhere in the file or its WAL (free pages included).
    assert MAGIC + a not in raw_bytes(tmp_path)
    store = SqliteStore(path, codec=codec(KEY_B))  # A can now be retired
    assert await read_words(store, "old") == "words sealed under A"
    assert await read_words(store, "new") == "words sealed under B"
    store.close()


async def test_a_value_sealed_with_an_unknown_key_or_altered_on_disk_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / DATABASE
    store = SqliteStore(path, codec=codec(KEY_A))
    await write_words(store, "k", "words")
    store.close()

    store = SqliteStore(path, codec=codec(KEY_B))
    with pytest.raises(SealError, match="not configured"):
        await read_words(store, "k")
    store.close()

    conn = sqlite3.connect(path)
    [(blob,)] = conn.execute("SELECT data FROM bot_state").fetchall()
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    conn.execute("UPDATE bot_state SET data = ?", (tampered,))
    conn.commit()
    conn.close()
    store = SqliteStore(path, codec=codec(KEY_A))
    with pytest.raises(SealError, match="authentication"):
        await read_words(store, "k")
    store.close()


def production_settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        app_id="app",
        app_password=Secret("pw"),
        app_tenant_id=SCHOOL.tenant_id,
        app_type="SingleTenant",
        data_dir=tmp_path,
        allowed_tenant_ids=frozenset({SCHOOL.tenant_id}),
        **extra,
    )


def test_production_without_a_data_key_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="DATA_KEY or KEY_VAULT_URL"):
        build_server(production_settings(tmp_path), SCHOOL)
    assert not (tmp_path / KEY_FILE).exists()
    assert not (tmp_path / DATABASE).exists()

    for name, value in {
        "APP_ID": "app",
        "APP_PASSWORD": "pw",
        "APP_TENANTID": SCHOOL.tenant_id,
        "APP_TYPE": "SingleTenant",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATA_KEY", raising=False)
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    assert cli.main(["serve", "--data", str(tmp_path)]) == 2
    assert "DATA_KEY or KEY_VAULT_URL" in capsys.readouterr().err


def test_production_with_a_data_key_starts(tmp_path: Path) -> None:
    server = build_server(production_settings(tmp_path, data_key=Secret(KEY_A)), SCHOOL)
    server.store.close()
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("bad", ["short", base64.b64encode(b"x" * 16).decode(), "!!"])
def test_a_malformed_data_key_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="DATA_KEY must be 32 random bytes"):
        load_codec(production_settings(tmp_path, data_key=Secret(bad)))


def test_key_vault_current_version_seals_and_enabled_old_versions_open(tmp_path: Path) -> None:
    versions = {"v2": KEY_B, "v1": KEY_A, "v0": base64.b64encode(b"0" * 32).decode()}
    enabled = {"v2": True, "v1": True, "v0": False}
    asked: list[str] = []

    class FakeSecretClient:
        def get_secret(self, name: str, version: str | None = None) -> Any:
            asked.append(name)
            version = version or "v2"
            return SimpleNamespace(
                value=versions[version], properties=SimpleNamespace(version=version)
            )

        def list_properties_of_secret_versions(self, name: str) -> list[Any]:
            return [SimpleNamespace(version=v, enabled=e) for v, e in enabled.items()]

    settings = production_settings(tmp_path, key_vault_url="https://school.vault.azure.net/")
    ring = load_codec(settings, secret_client=lambda url: FakeSecretClient())

    assert ring.current_key_id == codec(KEY_B).current_key_id
    assert ring.open(codec(KEY_A).seal("old")) == "old"
    with pytest.raises(SealError):
        ring.open(codec(versions["v0"]).seal("disabled"))
    assert set(asked) == {"safeguarding-data-key"}


def test_local_development_generates_a_key_file_with_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_codec(Settings(data_dir=tmp_path))
    again = load_codec(Settings(data_dir=tmp_path))

    assert first.current_key_id == again.current_key_id
    assert mode(tmp_path / KEY_FILE) == 0o600
    assert "LOCAL DEVELOPMENT" in caplog.text and "data key" in caplog.text


def state_rows(data_dir: Path, codec_for: FieldCodec) -> str:
    conn = codec_for.connect(data_dir / DATABASE)
    try:
        return "\n".join(str(r["data"]) for r in conn.execute("SELECT data FROM bot_state"))
    finally:
        conn.close()


@pytest.mark.parametrize("flow", sorted(WALKS))
async def test_a_finished_report_leaves_no_words_in_the_session_state(
    bot: RunningBot, flow: str
) -> None:
    await report(bot, flow, WALKS[flow])
    if flow == "missing_child":  # raised at once, then checked and sent like the others
        await bot.say("send")
        await bot.settle()
    assert bot.server is not None
    codec_in_use = bot.server.store._codec
    assert codec_in_use is not None

    state = state_rows(bot.data_dir, codec_in_use)

    assert '"mode"' in state  # the session is there, and readable
    for answer in WALKS[flow]:
        if len(answer) > 6 and answer not in ("skip", "now"):
            assert answer not in state, answer


# -- every path through a session: no report content left once the report is over ---------

MARKER = "Zq-child-said"
COMMANDS = ("cancel", "yes", "no", "back", "menu", "help", "send", "change 1", "now", "skip")


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_no_session_outside_a_report_in_progress_holds_report_content(data: Any) -> None:
    """Walks that mostly answer properly (so most reports finish and are sent) with commands
    thrown in at random: cancel, back, change, menu..."""
    chat = Chat()
    flow = data.draw(st.sampled_from(sorted(load_definitions())))
    result = chat.send(value={"action": "start", "flow": flow})
    for turn in range(80):
        mode = chat.state.get("mode")
        options = [o for r in result.replies for o in r.options]
        inputs = [r.input for r in result.replies if r.input]
        if data.draw(st.integers(min_value=0, max_value=7)) == 0:
            text = data.draw(st.sampled_from(COMMANDS))
        elif mode == "summary":
            text = "send"
        elif mode == "idle":
            break
        elif options:
            text = str(data.draw(st.integers(min_value=1, max_value=len(options))))
        elif inputs and inputs[-1] == "datetime":
            text = "now"
        elif inputs and inputs[-1] == "number":
            text = "3"
        else:
            text = f"{MARKER} {turn}"
        result = chat.send(text)
        if chat.state.get("mode") not in ("flow", "summary", "confirm_cancel"):
            assert MARKER not in json.dumps(chat.state), (chat.state.get("mode"), text)
