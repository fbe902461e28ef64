"""Shared fixtures: a fresh store file and a running fake Bot Connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.store import SqliteStore
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
