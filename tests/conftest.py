"""Shared fixtures: a fresh store file, a fake Bot Connector, the whole bot running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.store import SqliteStore
from tests.e2e import Clock, RunningBot
from tests.fakeconnector import FakeConnector


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "bot.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
async def fake_connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as connector:
        yield connector


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[RunningBot]:
    """The whole bot on a loopback port, a fake Bot Connector, and a clock the test moves."""
    async with FakeConnector() as connector:
        running = await RunningBot(connector, tmp_path, Clock()).start()
        yield running
        await running.stop()
