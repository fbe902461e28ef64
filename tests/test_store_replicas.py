# Two store instances on one database - two replicas behind a load balancer (issue 11 s3, the
# store's half): claims never overlap, a dead replica's leases are taken over, the same
# activity applies once, each timer fires once, and migrating at the same moment is safe.
# Every test runs on SQLite (two connections to one file) and on PostgreSQL.
from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.store import SCHEMA_VERSION, DuplicateActivity, SqliteStore, Store, TimerSpec
from tests.stores import is_postgres, raw

pytestmark = pytest.mark.every_backend

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


async def _drain(store: Store, owner: str, now: datetime) -> list[str]:
    """Claim in small batches until nothing is due, as a replica's outbox worker does."""
    taken: list[str] = []
    while batch := await store.claim_due(now, limit=3, owner=owner):
        taken += [item.id for item in batch]
        await asyncio.sleep(0)
    return taken


async def test_two_replicas_claiming_at_once_never_take_the_same_message(make_store):
    one, two = make_store(), make_store()
    queued = {await one.enqueue(None, "post_alert", {}, {"n": n}, at=T0) for n in range(40)}

    a, b = await asyncio.gather(
        asyncio.create_task(_drain(one, "replica-a", T0), context=one.lane_context("outbox")),
        asyncio.create_task(_drain(two, "replica-b", T0), context=two.lane_context("outbox")),
    )

    assert not set(a) & set(b)  # no message held by both
    assert set(a) | set(b) == queued  # and none left behind
    assert len(a) + len(b) == len(queued)


async def test_a_dead_replicas_claims_are_taken_over_after_the_lease(make_store):
    lease = timedelta(seconds=30)
    dead, alive = make_store(delivery_lease=lease), make_store(delivery_lease=lease)
    outbox_id = await dead.enqueue(None, "post_alert", {}, {}, at=T0)
    assert [i.id for i in await dead.claim_due(T0, owner="replica-a")] == [outbox_id]
    dead.close()  # killed mid-send: its claim stays 'sending'

    assert await alive.claim_due(T0 + lease - timedelta(seconds=1), owner="replica-b") == []
    (taken,) = await alive.claim_due(T0 + lease, owner="replica-b")
    assert (taken.id, taken.attempts, taken.unknown_outcome) == (outbox_id, 2, True)


async def test_the_same_activity_posted_to_two_replicas_is_applied_once(make_store):
    one, two = make_store(), make_store()
    await one.write({"conv-1/session": {"step": 1}})

    async def turn(store: Store, n: int) -> str:
        async with store.turn("act-1", "conv-1", ["conv-1/session"]) as unit:
            if unit.duplicate:
                return "duplicate"
            state = await store.read(["conv-1/session"])
            await store.write({"conv-1/session": {**state["conv-1/session"], "step": 2}})
            await store.enqueue(None, "direct_message", {"user_id": "u"}, {"n": n})
            await asyncio.sleep(0.01)  # both turns are now in flight
            await unit.commit()
            return "applied"

    results = await asyncio.gather(turn(one, 1), turn(two, 2), return_exceptions=True)

    applied = [r for r in results if r == "applied"]
    assert len(applied) == 1, results
    # The other turn found the activity applied (at its start, or when committing).
    assert all(
        r == "duplicate" or isinstance(r, DuplicateActivity) for r in results if r not in applied
    )
    with raw(one) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM processed_activities").fetchone()[0] == 1


async def test_each_timer_fires_once_across_two_replicas(make_store):
    one, two = make_store(), make_store()
    for n in range(20):
        await one.schedule(TimerSpec("escalate", T0, {"n": n}, key=f"k{n}"))

    async def fire(store: Store) -> list[str]:
        fired = []
        while timers := await store.claim_due_timers(T0 + timedelta(seconds=1), limit=3):
            for timer in timers:
                if await store.finish_timer(timer.id):
                    fired.append(timer.id)
            await asyncio.sleep(0)
        return fired

    a, b = await asyncio.gather(
        asyncio.create_task(fire(one), context=one.lane_context("timers")),
        asyncio.create_task(fire(two), context=two.lane_context("timers")),
    )

    assert not set(a) & set(b)
    assert len(a) + len(b) == 20


def _open_together(
    opener: Any, target: Any, replicas: int = 4
) -> tuple[list[Store], list[BaseException]]:
    """`replicas` threads open `target` at the same moment: the stores opened, the errors."""
    start = threading.Barrier(replicas)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def replica() -> None:
        start.wait()
        try:
            opened.append(opener(target))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return opened, errors


def test_two_replicas_migrating_one_empty_database_at_once(
    store_backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    if store_backend == "sqlite":
        target = tmp_path / "bot.sqlite3"
        opener = SqliteStore
    else:
        from bot.store.postgres import PostgresStore

        target = request.getfixturevalue("pg_cluster").database(migrated=False)
        opener = PostgresStore
    opened, errors = _open_together(opener, target)
    try:
        assert errors == []
        assert [s.schema_version for s in opened] == [SCHEMA_VERSION] * 4
        if is_postgres(opened[0]):
            with raw(opened[0]) as db:
                rows = db.execute("SELECT version FROM store_schema_version ORDER BY version")
                assert [r[0] for r in rows.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for each in opened:
            each.close()


async def _overlaps(first: Store, second: Store, keys: tuple[str, str]) -> list[str]:
    """Two turns holding person_lock at once; the events in the order they happened."""
    events: list[str] = []

    async def turn(store: Store, key: str, name: str) -> None:
        async with store.person_lock(key):
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    await asyncio.gather(turn(first, keys[0], "a"), turn(second, keys[1], "b"))
    return events


async def test_one_persons_turns_run_one_after_another(store: Store):
    events = await _overlaps(store, store, ("msteams/users/29:x", "msteams/users/29:x"))
    assert events in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    # Two people never wait for each other.
    events = await _overlaps(store, store, ("msteams/users/29:x", "msteams/users/29:y"))
    assert events[:2] in (["a in", "b in"], ["b in", "a in"])


async def test_two_replicas_setting_the_same_timer_at_once_move_one_timer(make_store):
    one, two = make_store(), make_store()

    async def reschedule(store: Store, minutes: int) -> str | None:
        spec = TimerSpec("stalled", T0 + timedelta(minutes=minutes), key="stalled:29:x")
        return await store.schedule(spec)

    ids = await asyncio.gather(*(reschedule(s, n) for n in range(10) for s in (one, two)))

    assert len(set(ids)) == 1  # every write moved the one live timer
    assert [t.status for t in await one.timers(key="stalled:29:x")] == ["pending"]


def test_two_replicas_on_one_machine_hold_their_delivery_leases_under_different_names(tmp_path):
    # reclaim_own at start-up takes back "my" unfinished sends at once: with the host name
    # alone, a second replica on the same machine would take the first one's in-flight sends.
    from bot.server import build_server
    from bot.settings import Settings
    from tests.e2e import SCHOOL

    owners = []
    for port in (3978, 3979):
        server = build_server(Settings(data_dir=tmp_path, port=port), SCHOOL)
        owners.append(server.alerts.owner)
        server.store.close()
    assert owners[0] != owners[1] and owners[0].endswith(":3978")


def test_replicas_opening_a_new_sqlite_file_together_never_see_it_locked(tmp_path: Path):
    # SQLite answers "database is locked" at once, without its busy handler, to a connection
    # turning a new file to WAL while another does (about 1 open in 70): run it many times.
    errors: list[BaseException] = []
    for round_ in range(60):
        opened, failed = _open_together(SqliteStore, tmp_path / f"new-{round_}.sqlite3")
        for each in opened:
            each.close()
        errors += failed
    assert errors == []
