"""Shared fixtures: a fresh store (tests/stores.py: SQLite, or every backend), a fake Bot
Connector, the whole bot running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import Clock, RunningBot
from tests.fakeconnector import FakeConnector
from tests.stores import make_store, parametrise, pg_cluster, store, store_backend  # noqa: F401


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrise(metafunc)


@pytest.fixture
async def fake_connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as connector:
        yield connector


@pytest.fixture
async def bot(
    tmp_path: Path,
    store_backend: str,  # noqa: F811  (the fixture imported above)
    request: pytest.FixtureRequest,
) -> AsyncIterator[RunningBot]:
    """The whole bot on a loopback port, a fake Bot Connector, and a clock the test moves
    (on SQLite; on PostgreSQL too in modules marked every_backend)."""
    url = request.getfixturevalue("pg_cluster").database() if store_backend != "sqlite" else ""
    async with FakeConnector() as connector:
        running = await RunningBot(connector, tmp_path, Clock(), database_url=url).start()
        yield running
        await running.stop()
