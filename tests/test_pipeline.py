"""The outbox's pipeline (bot/services/pipeline.py) on its own: how many sends are in flight,
one concern's sends in order, claims renewed while in flight, a failure never stops the rest."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.pipeline import Pipeline


@dataclass(frozen=True)
class Item:
    id: str
    concern_id: str


def _run(items: list[Item], delays: dict[str, float], width: int, fail: set[str] = frozenset()):
    due = list(items)
    sent: list[str] = []
    started: list[str] = []
    most = 0
    renewed: list[list[str]] = []

    async def claim(room: int) -> list[Item]:
        taken, due[:] = due[:room], due[room:]
        return taken

    async def deliver(item: Item) -> None:
        nonlocal most
        started.append(item.id)
        most = max(most, len(started) - len(sent))
        await asyncio.sleep(delays[item.id])
        sent.append(item.id)
        if item.id in fail:
            raise RuntimeError("boom")

    async def renew(ids: list[str]) -> None:
        renewed.append(ids)

    async def main() -> None:
        wake = asyncio.Event()
        pipeline = Pipeline(
            claim,
            deliver,
            renew,
            key=lambda item: item.concern_id,
            width=width,
            renew_every=0.002,
            slot_freed=wake.set,
        )
        while due or pipeline.in_flight:  # the worker: claim whenever a slot frees
            wake.clear()
            await pipeline.fill()
            if pipeline.in_flight:
                await wake.wait()
        await pipeline.close()

    asyncio.run(main())
    return sent, most, renewed


@settings(max_examples=50, deadline=None)
@given(
    concerns=st.lists(st.integers(0, 4), min_size=1, max_size=30),
    width=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_one_concerns_sends_keep_their_order_and_at_most_width_are_in_flight(
    concerns: list[int], width: int, seed: int
) -> None:
    rng = random.Random(seed)
    items = [Item(f"m{n:02d}", f"c{c}") for n, c in enumerate(concerns)]
    delays = {item.id: rng.uniform(0, 0.004) for item in items}
    fail = {item.id for item in items if rng.random() < 0.2}
    sent, most, _ = _run(items, delays, width, fail)
    assert sorted(sent) == sorted(i.id for i in items)  # all of them, failures or not
    assert most <= width
    for concern in {i.concern_id for i in items}:
        mine = [i.id for i in items if i.concern_id == concern]
        assert [s for s in sent if s in mine] == mine


def test_a_slow_send_does_not_hold_back_the_ones_claimed_after_it() -> None:
    items = [Item("slow", "a"), *(Item(f"quick{n}", f"b{n}") for n in range(6))]
    delays = {"slow": 0.2, **{f"quick{n}": 0.001 for n in range(6)}}
    sent, _, renewed = _run(items, delays, width=2)
    assert sent[-1] == "slow"  # five claimed after it went out while it was in flight
    assert any(ids == ["slow"] for ids in renewed)  # its claim was kept while it waited
