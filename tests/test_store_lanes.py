# The store's own threads (lanes), the one-transaction turn unit and timers moved in place,
# on SQLite and PostgreSQL (tests/stores.py).
from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.store import DuplicateActivity, Store, TimerSpec
from tests.stores import raw
from tests.test_store import make_concern

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.every_backend


async def _thread_and_connection(store: Store) -> tuple[str, int]:
    def which(conn: object) -> tuple[str, int]:
        return threading.current_thread().name, id(conn)

    return await store._run(which)


async def test_each_lane_has_its_own_thread_and_connection_never_the_default_executor(
    store: Store,
):
    turns = await _thread_and_connection(store)
    outbox = await asyncio.create_task(
        _thread_and_connection(store), context=store.lane_context("outbox")
    )
    assert turns[0].startswith("store-turns") and outbox[0].startswith("store-outbox")
    assert turns[1] != outbox[1]
    # The same lane is one thread, whatever task asks.
    again = await asyncio.gather(*[_thread_and_connection(store) for _ in range(5)])
    assert {t for t, _ in again} == {turns[0]}


async def test_an_inline_lane_runs_on_the_callers_own_thread_with_the_lanes_connection(
    store: Store,
):
    _, outbox_conn = await asyncio.create_task(
        _thread_and_connection(store), context=store.lane_context("outbox")
    )

    async def calls() -> list[tuple[str, int]]:
        found = [await _thread_and_connection(store)]
        with store.in_lane("timers"):  # another lane from inside goes to that lane's thread
            found.append(await _thread_and_connection(store))
        return found

    here, elsewhere = await asyncio.create_task(
        calls(), context=store.lane_context("outbox", inline=True)
    )
    assert here == (threading.current_thread().name, outbox_conn)
    assert elsewhere[0].startswith("store-timers")
    # Writes too (through the write gate on SQLite).
    commits: list[tuple[str, str]] = []
    store.commit_hooks.append(lambda lane: commits.append((lane, threading.current_thread().name)))
    await asyncio.create_task(
        store.save_concern(make_concern(), at=T0), context=store.lane_context("outbox", inline=True)
    )
    assert commits == [("outbox", threading.current_thread().name)]


async def test_a_turn_unit_commits_its_writes_and_seen_mark_once(store: Store):
    commits: list[str] = []
    store.commit_hooks.append(commits.append)
    async with store.turn("act-1", "conv-1", ["k"]) as unit:
        assert not unit.duplicate
        await store.write({"k": {"session": {"step": 2}}})
        await store.save_concern(make_concern(), at=T0)
        await store.audit("aad-reporter", "concern_raised", "c-1", {}, at=T0)
        await store.schedule(TimerSpec("stalled", T0 + timedelta(hours=1), key="s:k"))
        assert commits == []  # nothing written until the unit commits
    assert commits == ["turns"]
    assert (await store.read(["k"]))["k"]["session"] == {"step": 2}
    assert await store.get_concern("c-1") is not None
    # The same activity again is a duplicate: nothing is applied twice.
    async with store.turn("act-1", "conv-1", ["k"]) as unit:
        assert unit.duplicate
    assert commits == ["turns"]


async def test_a_failed_turn_leaves_nothing_written_not_even_the_seen_mark(store: Store):
    with pytest.raises(RuntimeError):
        async with store.turn("act-1", "conv-1", ["k"]):
            await store.write({"k": {"session": {"step": 2}}})
            raise RuntimeError("crash")
    assert await store.read(["k"]) == {}
    assert await store.mark_activity_seen("act-1", "conv-1")  # never marked


async def test_two_concurrent_turns_for_one_activity_apply_it_once(store: Store):
    async def one(n: int) -> None:
        async with store.turn("act-1", "conv-1", ["k"]) as unit:
            await asyncio.sleep(0)
            await store.enqueue(None, "direct_message", {}, {"n": n})
            await unit.commit()

    results = await asyncio.gather(one(1), one(2), return_exceptions=True)
    assert sum(isinstance(r, DuplicateActivity) for r in results) == 1
    with raw(store) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1


async def test_rescheduling_moves_the_live_timer_in_place(store: Store):
    first = await store.schedule(TimerSpec("stalled", T0 + timedelta(hours=1), key="s:k"))
    for minutes in range(1, 20):
        again = await store.schedule(
            TimerSpec("stalled", T0 + timedelta(hours=1, minutes=minutes), key="s:k")
        )
        assert again == first
    timers = await store.timers(key="s:k")
    assert [(t.id, t.status, t.due_at) for t in timers] == [
        (first, "pending", T0 + timedelta(hours=1, minutes=19))
    ]


async def test_an_unchanged_conversation_reference_is_not_written_again(make_store):
    store = make_store()
    commits: list[str] = []
    store.commit_hooks.append(commits.append)
    ref = {"serviceUrl": "https://x/", "conversation": {"id": "a:1"}}
    try:
        for _ in range(3):
            await store.save_conversation_ref("user", "aad-1", ref)
        assert len(commits) == 1
        await store.save_conversation_ref("user", "aad-1", {**ref, "serviceUrl": "https://y/"})
        assert len(commits) == 2
    finally:
        store.close()
