# The turns lane (issue 8): ordinary chat turns take a place, a turn that can send a report
# jumps the queue - but never ahead of the same person's earlier turn. The end-to-end figure
# (a Send under a flood) is asserted in tests/test_alert_isolation.py.
from __future__ import annotations

import asyncio

from bot.teams.lanes import PEOPLE_REMEMBERED, TurnLanes, person_key, person_of


def said(who: str, text: str = "hello", value: dict | None = None) -> dict:
    activity = {"type": "message", "channelId": "msteams", "from": {"id": who}, "text": text}
    if value is not None:
        activity["value"] = value
    return activity


async def run_turns(lanes: TurnLanes, activities: list[dict], hold: asyncio.Event) -> tuple:
    """Start each turn in order; each records when it got in, then waits for `hold`."""
    order: list[str] = []

    async def turn(activity: dict) -> None:
        async with lanes.place(activity):
            order.append(activity["text"])
            await hold.wait()

    tasks = []
    for activity in activities:
        tasks.append(asyncio.create_task(turn(activity)))
        await asyncio.sleep(0)  # arrives after the one before
    await asyncio.sleep(0.01)
    return order, tasks


async def test_an_ordinary_turn_waits_for_a_place_when_the_lane_is_full():
    lanes = TurnLanes(size=2)
    hold = asyncio.Event()
    order, tasks = await run_turns(lanes, [said("a", "1"), said("b", "2"), said("c", "3")], hold)
    assert order == ["1", "2"]  # the third waits
    hold.set()
    await asyncio.gather(*tasks)
    assert order == ["1", "2", "3"]


async def test_a_send_button_jumps_a_full_lane():
    lanes = TurnLanes(size=1)
    hold = asyncio.Event()
    order, tasks = await run_turns(
        lanes,
        [said("a", "busy"), said("b", "waits"), said("c", "send", {"action": "confirm"})],
        hold,
    )
    assert order == ["busy", "send"]
    assert lanes.jumped == 1
    hold.set()
    await asyncio.gather(*tasks)


async def test_someone_at_check_your_report_jumps_with_whatever_they_type():
    lanes = TurnLanes(size=1)
    lanes.can_send(person_key("msteams", "c"), True)
    hold = asyncio.Event()
    order, tasks = await run_turns(
        lanes, [said("a", "busy"), said("b", "waits"), said("c", "yes")], hold
    )
    assert order == ["busy", "yes"]
    hold.set()
    await asyncio.gather(*tasks)
    # Once they have moved on (sent, changed an answer), their turns queue again.
    lanes.can_send(person_key("msteams", "c"), False)
    assert not lanes.jumps(said("c", "yes"))


async def test_a_persons_send_never_overtakes_their_own_earlier_turn():
    lanes = TurnLanes(size=1)
    hold = asyncio.Event()
    order, tasks = await run_turns(
        lanes,
        [said("a", "busy"), said("c", "earlier"), said("c", "send", {"action": "confirm"})],
        hold,
    )
    assert order == ["busy"]  # c's send waits behind c's earlier turn, in the lane
    hold.set()
    await asyncio.gather(*tasks)
    assert order == ["busy", "earlier", "send"]
    assert lanes.jumped == 0


def test_who_is_speaking_comes_from_the_activity_or_nobody():
    assert person_of(said("29:x")) == "msteams/29:x"
    assert person_of({"type": "message", "from": {"id": "29:x"}}) is None
    assert person_of({"type": "message", "channelId": "msteams", "from": "29:x"}) is None
    # Unknown people never jump (nothing to key the hint on), whatever they send.
    assert not TurnLanes().jumps({"type": "message", "value": {"action": "confirm"}})
    # An alert card's Universal Action carries an object as its action: no jump, no error.
    invoke = {**said("d"), "type": "invoke", "value": {"action": {"verb": "acknowledge"}}}
    assert not TurnLanes().jumps(invoke)


def test_the_hint_is_bounded():
    lanes = TurnLanes()
    for n in range(PEOPLE_REMEMBERED + 5):
        lanes.can_send(person_key("msteams", f"p{n}"), True)
    assert not lanes.jumps(said("p0"))
    assert lanes.jumps(said(f"p{PEOPLE_REMEMBERED + 4}"))
