# What is PostgreSQL's own: migrations translated (and refused when they cannot be), sealed
# columns sealed in BYTEA, key rotation, a lost connection replaced, DATABASE_URL read.
# (Everything the two backends share is in the every_backend contract tests.)
from __future__ import annotations

import asyncio
import os

import psycopg
import pytest

from bot.errors import ConfigError, StoreError
from bot.settings import Settings
from bot.store import OutboxMessage, RecordEntry, Store, TimerSpec, open_store
from bot.store.migrations import MIGRATIONS
from bot.store.postgres import PostgresStore, translate_migration
from bot.store.sealing import MAGIC, SEALED_COLUMNS, FieldCodec
from bot.store.turnlock import TURN_LEASE
from tests.test_store import T0, make_concern

WORDS = "He said 'don't tell'"


def test_every_migration_translates_and_sealed_columns_become_bytea():
    statements = [s for migration in MIGRATIONS for s in translate_migration(migration)]
    text = "\n".join(statements)
    assert "RAISE EXCEPTION 'audit is append-only'" in text
    assert "AUTOINCREMENT" not in text
    for table, columns in SEALED_COLUMNS.items():
        create = next(s for s in statements if s.startswith(f"CREATE TABLE {table} ("))
        for column in columns:
            if column in create:
                assert f"{column} BYTEA" in create, (table, column)


@pytest.mark.parametrize(
    "migration",
    [
        "CREATE TRIGGER t AFTER INSERT ON audit BEGIN DELETE FROM outbox; END;",
        "INSERT OR IGNORE INTO concerns (id) VALUES ('x');",
        "PRAGMA foreign_keys = OFF;",
    ],
)
def test_a_migration_in_sqlite_only_sql_is_refused_not_guessed(migration: str):
    with pytest.raises(StoreError):
        translate_migration(migration)


async def _fill(store: Store) -> None:
    await store.write({"conv/session": {"answers": {"words": WORDS}}})
    await store.save_concern_and_enqueue(
        make_concern(), [OutboxMessage("post_alert", {"channel_id": "19:x"}, {"text": WORDS})]
    )
    await store.acknowledge("c-1", "Ann Robinson")
    await store.schedule(TimerSpec("nudge", T0, {"name": "Ann Robinson"}, concern_id="c-1"))
    await store.save_conversation_ref("user", "aad-1", {"user": {"name": "Ann Robinson"}})
    await store.record_alert_post("c-1", "act-1", {"user": {"name": "Ann Robinson"}})
    await store.add_record_entry(
        RecordEntry("c-1", T0, "aad-1", "Ann Robinson", "add_note", {"note": WORDS}),
        audit_action="note_added",
        audit_detail={"verb": "add_note"},
    )


def _stored_values(url: str) -> list[bytes | None]:
    values = []
    with psycopg.connect(url) as conn:
        for table, columns in SEALED_COLUMNS.items():
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                values += list(row)
    return values


async def test_sealed_columns_are_sealed_in_postgresql_and_rotate_key_reseals(pg_cluster):
    url = pg_cluster.database()
    old, new = os.urandom(32), os.urandom(32)
    store = PostgresStore(url, codec=FieldCodec([old]))
    await _fill(store)
    store.close()
    values = [v for v in _stored_values(url) if v is not None]
    assert len(values) >= 7
    assert all(bytes(v).startswith(MAGIC) for v in values)
    assert not any(b"Ann Robinson" in bytes(v) or b"don't tell" in bytes(v) for v in values)

    rotated = PostgresStore(url, codec=FieldCodec([new, old]))
    counts = await rotated.reseal()
    assert counts == dict.fromkeys(SEALED_COLUMNS, 1)  # every sealed row, once
    rotated.close()
    fresh = PostgresStore(url, codec=FieldCodec([new]))  # the old key is retired
    stored = await fresh.get_concern("c-1")
    assert stored is not None and stored.acknowledged_by == "Ann Robinson"
    assert (await fresh.read(["conv/session"]))["conv/session"]["answers"]["words"] == WORDS
    fresh.close()


async def test_a_lost_connection_is_replaced_and_nothing_half_written(pg_cluster):
    url = pg_cluster.database()
    store = PostgresStore(url)
    await store.save_concern(make_concern())
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.rsplit("/", 1)[1],),
        )
    # The next call may fail (the connection died under it); the one after works again.
    for _ in range(2):
        try:
            assert await store.acknowledge("c-1", "dsl-a")
            break
        except StoreError:
            await asyncio.sleep(0)
    else:
        raise AssertionError("the store did not reconnect")
    assert (await store.get_concern("c-1")).acknowledged_by == "dsl-a"
    assert await store.ready()
    store.close()


def test_database_url_chooses_postgresql_and_anything_else_is_refused(pg_cluster):
    url = pg_cluster.database()
    settings = Settings.from_environ({"DATABASE_URL": url})
    assert settings.database == url
    assert "password" not in settings.database_label and url not in repr(settings)
    store = open_store(settings.database)
    assert isinstance(store, PostgresStore)
    store.close()
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_environ({"DATABASE_URL": "mysql://root@db/school"})


async def test_one_persons_turns_run_in_order_across_replicas(pg_cluster):
    url = pg_cluster.database()
    one, two = PostgresStore(url), PostgresStore(url)
    events: list[str] = []

    async def turn(store: Store, name: str) -> None:
        async with store.person_lock("msteams/users/29:x"):
            events.append(f"{name} in")
            await asyncio.sleep(0.1)
            events.append(f"{name} out")

    await asyncio.gather(turn(one, "a"), turn(two, "b"))
    assert events in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    one.close()
    two.close()


async def test_a_dead_replicas_turn_lease_is_taken_over_when_it_expires(pg_cluster):
    url = pg_cluster.database()
    now = [T0]
    store = PostgresStore(url, clock=lambda: now[0])
    with psycopg.connect(url, autocommit=True) as db:  # a replica died holding the lease
        db.execute(
            "INSERT INTO turn_leases (key, owner, expires_at) VALUES (%s, 'dead', %s)",
            ("k", (T0 + TURN_LEASE).isoformat(timespec="microseconds")),
        )
    waiting = asyncio.create_task(_enter(store, "k"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the lease is still live
    now[0] = T0 + TURN_LEASE
    await asyncio.wait_for(waiting, 5)
    store.close()


async def _enter(store: Store, key: str) -> None:
    async with store.person_lock(key):
        pass
