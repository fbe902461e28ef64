"""The store contract tests run against every backend: the SAME test functions, once on SQLite
and once on a real PostgreSQL server (a throwaway cluster, started once per test session and
only when a PostgreSQL test runs). A test module opts in with

    pytestmark = pytest.mark.every_backend

and its `store` / `make_store` fixtures are then parametrised (conftest.py); elsewhere they
are SQLite, as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.store import SqliteStore, Store
from tests.pgcluster import Cluster

BACKENDS = ("sqlite", "postgresql")
# What a backend's driver raises for a statement the database refuses.
DB_ERRORS = (sqlite3.DatabaseError, psycopg.Error)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    yield cluster
    cluster.stop()


def parametrise(metafunc: pytest.Metafunc) -> None:
    """conftest's pytest_generate_tests: every backend for modules marked every_backend."""
    marker = metafunc.definition.get_closest_marker("every_backend")
    if marker and "store_backend" in metafunc.fixturenames:
        backends = marker.kwargs.get("backends", BACKENDS)
        metafunc.parametrize("store_backend", backends, indirect=True)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, store_backend: str
) -> Iterator[Callable[..., Store]]:
    """Opens a store on this test's one database; call it again for another instance on the
    same database (a second process, or a second replica)."""
    backend = store_backend
    opened: list[Store] = []
    target: list[Any] = []

    def make(**kwargs: Any) -> Store:
        if backend == "sqlite":
            made: Store = SqliteStore(tmp_path / "bot.sqlite3", **kwargs)
        else:
            from bot.store.postgres import PostgresStore

            if not target:
                target.append(request.getfixturevalue("pg_cluster").database())
            made = PostgresStore(target[0], **kwargs)
        opened.append(made)
        return made

    yield make
    for each in opened:
        each.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


@contextmanager
def raw(store: Store) -> Iterator[Any]:
    """A connection of its own to the store's database, bypassing the store: `execute(sql,
    params)` with `?` placeholders."""
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    from bot.store.postgres import PgConnection

    conn = PgConnection(store.url, None, application_name="test")
    try:
        yield conn
    finally:
        conn.close()


def is_postgres(store: Store) -> bool:
    return not isinstance(store, SqliteStore)
